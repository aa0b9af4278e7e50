// Direction (b), HTTP/JSON: the same model through the proxy's HTTP transcoding — the default route
// (POST /<package.Service>/<Method>, body "*") of methods without a google.api.http rule, and
// failures as an error status with the message in the body.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startProxyUnderTest, type ProxyUnderTest } from "./proxy-under-test.js";

describe("direction (b) — HTTP/JSON through the proxy", () => {
  let p: ProxyUnderTest;

  before(async () => {
    p = await startProxyUnderTest();
  });
  after(() => p.close());

  async function post(path: string, body: unknown): Promise<{ status: number; text: string }> {
    const response = await fetch(`http://${p.address}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(5_000),
    });
    return { status: response.status, text: await response.text() };
  }

  function parsed(response: { status: number; text: string }, what: string): unknown {
    assert.equal(response.status, 200, `${what}: expected HTTP 200, got ${response.status}: ${response.text}`);
    return JSON.parse(response.text);
  }

  test("value entity: the HTTP API's default route updates and reads the state", async () => {
    const id = p.id("http-value");
    const path = "/cloudstate.tck.model.valueentity.ValueEntityTckModel/Process";
    assert.deepEqual(parsed(await post(path, { id, actions: [{ update: { value: "over http" } }] }), "value entity: an update over HTTP"), { message: "over http" });
    assert.deepEqual(parsed(await post(path, { id }), "value entity: a read over HTTP"), { message: "over http" }, "value entity: the update is stored");
  });

  test("event-sourced: the HTTP API's default route emits and reads the state", async () => {
    const id = p.id("http-es");
    const path = "/cloudstate.tck.model.eventsourced.EventSourcedTckModel/Process";
    await post(path, { id, actions: [{ emit: { value: "A" } }, { emit: { value: "B" } }] });
    assert.deepEqual(parsed(await post(path, { id }), "event-sourced: a read over HTTP"), { message: "AB" }, "event-sourced: the events are persisted");
  });

  test("value entity: an HTTP failure is an error status with the message in the body", async () => {
    const path = "/cloudstate.tck.model.valueentity.ValueEntityTckModel/Process";
    const response = await post(path, { id: p.id("http-failure"), actions: [{ fail: { message: "http entity failure" } }] });
    assert.ok(response.status >= 400, `value entity: an HTTP failure has an error status (got ${response.status})`);
    assert.ok(response.text.includes("http entity failure"), `value entity: the failure's message is in the body (got ${response.text})`);
  });

  test("action: an HTTP failure is an error status with the message in the body", async () => {
    const response = await post("/cloudstate.tck.model.action.ActionTckModel/ProcessUnary", { groups: [{ steps: [{ fail: { message: "http action failure" } }] }] });
    assert.ok(response.status >= 400, `action: an HTTP failure has an error status (got ${response.status})`);
    assert.ok(response.text.includes("http action failure"), `action: the failure's message is in the body (got ${response.text})`);
  });

  test("action: the HTTP API's default route answers a unary action", async () => {
    const response = await post("/cloudstate.tck.model.action.ActionTckModel/ProcessUnary", { groups: [{ steps: [{ reply: { message: "over http" } }] }] });
    assert.deepEqual(parsed(response, "action: a unary call over HTTP"), { message: "over http" });
  });
});
