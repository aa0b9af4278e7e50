// The topic endpoints own /eventing/: a user route under it is a discovery error (the endpoints
// themselves are tested end to end in tests/eventing.test.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, setExtension } from "@bufbuild/protobuf";
import { MethodOptionsSchema } from "@bufbuild/protobuf/wkt";
import { http, HttpRuleSchema } from "@cloudstate-ts/protocol";
import { file_com_example_fraud_account } from "../../../../examples/fraud-detection/src/gen/com/example/fraud/account_pb.js";
import { buildModel, DiscoveryError } from "../discovery/service-model.js";
import { filesOf, specOf } from "../discovery/test-specs.js";
import { buildRoutes } from "../ingress/http/routes.js";
import { checkRoutesClear } from "./http-endpoints.js";
import { planEventing } from "./subscriptions.js";


/** The fraud example with GetStatistics served at `path`. */
function check(path: string): void {
  const files = filesOf(file_com_example_fraud_account);
  const account = files.find((f) => f.name === "com/example/fraud/account.proto")!;
  const method = account.service.find((s) => s.name === "FraudMonitor")!.method.find((m) => m.name === "GetStatistics")!;
  method.options = create(MethodOptionsSchema);
  setExtension(method.options, http, create(HttpRuleSchema, { pattern: { case: "get", value: path } }));
  const spec = specOf(files, [
    { entityType: "cloudstate.eventsourced.EventSourced", serviceName: "com.example.fraud.Account", persistenceId: "account" },
    { entityType: "cloudstate.valueentity.ValueEntity", serviceName: "com.example.fraud.FraudMonitor", persistenceId: "fraud-monitor" },
  ]);
  const model = buildModel(spec, { supportedKinds: ["eventSourced", "value"], defaultPassivationTimeoutMs: 1000, checkProtocolVersion: true });
  checkRoutesClear(buildRoutes(model.services.values()), planEventing(model));
}

test("a user's HTTP route under /eventing/ is refused while the proxy serves topics there", () => {
  assert.throws(
    () => check("/eventing/stats/{account_id}"),
    (e: unknown) => e instanceof DiscoveryError && /FraudMonitor\.GetStatistics: its HTTP route GET \/eventing\/stats\/\{account_id\} is under \/eventing\//.test(e.message),
  );
  assert.doesNotThrow(() => check("/stats/{account_id}"));
});
