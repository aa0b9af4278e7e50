import assert from "node:assert/strict";
import { test } from "node:test";
import { clone, create, setExtension, type MessageInitShape } from "@bufbuild/protobuf";
import { MethodDescriptorProtoSchema, MethodOptionsSchema } from "@bufbuild/protobuf/wkt";
import { eventing, EventingSchema } from "@cloudstate-ts/protocol";
import { file_com_example_fraud_account } from "../../../../examples/fraud-detection/src/gen/com/example/fraud/account_pb.js";
import { buildModel, DiscoveryError } from "../discovery/service-model.js";
import { filesOf, specOf } from "../discovery/test-specs.js";
import { planEventing } from "./subscriptions.js";

const ES = "cloudstate.eventsourced.EventSourced";
const VALUE = "cloudstate.valueentity.ValueEntity";
const MODEL_OPTIONS = { supportedKinds: ["eventSourced", "value", "action"] as const, defaultPassivationTimeoutMs: 1000, checkProtocolVersion: true };

type EventingInit = MessageInitShape<typeof EventingSchema>;

/** The fraud example's spec, with the eventing option of FraudMonitor's methods replaced where given. */
function plan(options: Record<string, EventingInit | undefined> = {}, entities = [
  { entityType: ES, serviceName: "com.example.fraud.Account", persistenceId: "account" },
  { entityType: VALUE, serviceName: "com.example.fraud.FraudMonitor", persistenceId: "fraud-monitor" },
]) {
  const files = filesOf(file_com_example_fraud_account);
  const account = files.find((f) => f.name === "com/example/fraud/account.proto")!;
  const monitor = account.service.find((s) => s.name === "FraudMonitor")!;
  for (const [name, init] of Object.entries(options)) {
    let method = monitor.method.find((m) => m.name === name);
    if (method === undefined) {
      // Another method taking what Observe takes.
      method = clone(MethodDescriptorProtoSchema, monitor.method.find((m) => m.name === "Observe")!);
      method.name = name;
      monitor.method.push(method);
    }
    method.options = create(MethodOptionsSchema);
    if (init !== undefined) setExtension(method.options, eventing, create(EventingSchema, init));
  }
  return planEventing(buildModel(specOf(files, entities), { ...MODEL_OPTIONS, supportedKinds: [...MODEL_OPTIONS.supportedKinds] }));
}

test("the fraud example's plan: one subscription to the account event log, one topic", () => {
  const p = plan();
  assert.equal(p.subscriptions.length, 1);
  const [sub] = p.subscriptions;
  assert.equal(sub!.sourceId, "event-log:account");
  assert.equal(sub!.group, "com.example.fraud.FraudMonitor", "the default group is the service's name");
  assert.deepEqual([...sub!.byType.keys()], ["com.example.fraud.domain.TransactionRecorded"]);
  assert.equal(sub!.anyMethod, undefined);
  assert.deepEqual([...p.topics], ["fraud-alerts"]);
});

test("a consumer group can be named", () => {
  const p = plan({ Observe: { in: { consumerGroup: "audit", source: { case: "eventLog", value: "account" } } } });
  assert.equal(p.subscriptions[0]!.group, "audit");
  assert.deepEqual([...p.topics], []);
});

test("eventing mistakes are discovery errors that say what to change", () => {
  const cases: [EventingInit, RegExp][] = [
    [{ in: { source: { case: "eventLog", value: "acount" } } }, /event_log "acount" is not the persistence id of an event-sourced entity.*known: "account"/],
    [{ in: { source: { case: "topic", value: "alerts" } }, out: { destination: { case: "topic", value: "alerts" } } }, /consumes and publishes the same topic "alerts"/],
    [{ in: {} }, /eventing\.in names no source/],
    [{ in: { source: { case: "topic", value: "no spaces" } } }, /"no spaces" is not a valid topic name/],
    [{ in: { source: { case: "eventLog", value: "" } } }, /event_log is empty/],
  ];
  for (const [init, message] of cases) {
    assert.throws(() => plan({ Observe: init }), (e: unknown) => e instanceof DiscoveryError && message.test(e.message), JSON.stringify(init));
  }
});

test("two methods of one subscription cannot take the same type", () => {
  const log = { in: { source: { case: "eventLog" as const, value: "account" } } };
  assert.throws(() => plan({ Observe: log, ObserveAgain: log }), /ObserveAgain and com\.example\.fraud\.FraudMonitor\.Observe both take com\.example\.fraud\.domain\.TransactionRecorded from event-log:account/);
  // In different consumer groups, they are two subscriptions.
  const other = { in: { consumerGroup: "second", source: { case: "eventLog" as const, value: "account" } } };
  assert.equal(plan({ Observe: log, ObserveAgain: other }).subscriptions.length, 2);
});

test("a subscriber of a topic that this user function publishes to must take what is published", () => {
  // GetStatistics consumes fraud-alerts, which Observe publishes as FraudAlert; it takes GetStatisticsRequest.
  assert.throws(
    () => plan({ GetStatistics: { in: { source: { case: "topic", value: "fraud-alerts" } } } }),
    /no matching method: com\.example\.fraud\.FraudMonitor\.Observe publishes com\.example\.fraud\.FraudAlert to topic "fraud-alerts", but com\.example\.fraud\.FraudMonitor .* has no method taking it/,
  );
});

test("a consumer group belongs to one service", () => {
  // The account entity subscribing to its own log under the monitor's group name.
  const files = filesOf(file_com_example_fraud_account);
  const account = files.find((f) => f.name === "com/example/fraud/account.proto")!;
  const setOn = (service: string, method: string, group: string) => {
    const m = account.service.find((s) => s.name === service)!.method.find((x) => x.name === method)!;
    m.options = create(MethodOptionsSchema);
    setExtension(m.options, eventing, create(EventingSchema, { in: { consumerGroup: group, source: { case: "topic", value: "t" } } }));
  };
  setOn("FraudMonitor", "GetStatistics", "shared");
  setOn("Account", "GetAccount", "shared");
  const spec = specOf(files, [
    { entityType: ES, serviceName: "com.example.fraud.Account", persistenceId: "account" },
    { entityType: VALUE, serviceName: "com.example.fraud.FraudMonitor", persistenceId: "fraud-monitor" },
  ]);
  assert.throws(
    () => planEventing(buildModel(spec, { ...MODEL_OPTIONS, supportedKinds: [...MODEL_OPTIONS.supportedKinds] })),
    /consumer group "shared" of topic:t is used by com\.example\.fraud\.Account and com\.example\.fraud\.FraudMonitor/,
  );
});
