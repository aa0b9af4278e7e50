// The chat room end to end: the user function served in-process, an in-process proxy (memory store)
// in front, and plain grpc-js clients calling the proxy as any gRPC client would: two clients
// connected to one room at once (server streams that stay open), a message, a leave, the members.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { serve, type UserFunctionServer } from "@cloudstate-ts/sdk";
import type { RunningProxy } from "../../../packages/proxy/src/index.js";
import { eventually, GrpcClient, type OpenStream } from "../../../tests/support/grpc-client.js";
import { startTestProxy } from "../../../tests/support/proxy.js";
import { ChatRoom, type RoomEvent, type RoomEventSchema } from "./gen/com/example/chat/chat_pb.js";
import { chatRoom } from "./room.js";

const quiet = { info() {}, warn() {}, error() {} };

/** An event as text: "+alice", "-bob", "alice: hi". */
function show(event: RoomEvent): string {
  const e = event.event;
  if (e.case === "joined") return `+${e.value}`;
  if (e.case === "left") return `-${e.value}`;
  if (e.case === "message") return `${e.value.user}: ${e.value.text}`;
  return "?";
}

const shown = (s: OpenStream<typeof RoomEventSchema>) => s.received.map(show);

describe("the chat room through the proxy", () => {
  let server: UserFunctionServer;
  let proxy: RunningProxy;
  const clients: GrpcClient[] = [];
  const client = () => {
    const c = new GrpcClient(proxy.port);
    clients.push(c);
    return c;
  };

  before(async () => {
    server = await serve({ entities: [chatRoom()], port: 0, host: "127.0.0.1", logger: quiet });
    proxy = await startTestProxy(server.port, { store: "memory" });
  });

  after(async () => {
    for (const c of clients) c.close();
    await proxy?.stop();
    await server?.close();
  });

  test("two connected clients see each other join, both get a message, one sees the other leave", async () => {
    const [a, b, c] = [client(), client(), client()];
    const alice = a.stream(ChatRoom.method.connect, { roomId: "lobby", user: "alice" });
    await eventually(() => shown(alice).includes("+alice"), () => `alice's own join, got ${JSON.stringify(shown(alice))}`);

    const bob = b.stream(ChatRoom.method.connect, { roomId: "lobby", user: "bob" });
    await eventually(() => shown(bob).includes("+bob"), () => `bob's events, got ${JSON.stringify(shown(bob))}`);
    assert.deepEqual(shown(bob), ["+alice", "+bob"], "bob is told who is online, himself included");
    await eventually(() => shown(alice).includes("+bob"), () => `alice seeing bob join, got ${JSON.stringify(shown(alice))}`);
    assert.deepEqual(shown(alice), ["+alice", "+bob"]);
    assert.deepEqual((await c.unary(ChatRoom.method.members, { roomId: "lobby" })).users, ["alice", "bob"]);

    await c.unary(ChatRoom.method.send, { roomId: "lobby", user: "alice", text: "hi bob" });
    await eventually(
      () => shown(alice).length === 3 && shown(bob).length === 3,
      () => `the message on both streams, got alice ${JSON.stringify(shown(alice))}, bob ${JSON.stringify(shown(bob))}`,
    );
    assert.equal(shown(alice)[2], "alice: hi bob");
    assert.equal(shown(bob)[2], "alice: hi bob");
    const message = bob.received[2]!.event;
    assert.equal(message.case, "message");
    assert.ok(message.value.id && message.value.sentAt > 0n, "the message has an id and a time");

    bob.cancel();
    await eventually(() => shown(alice).includes("-bob"), () => `alice seeing bob leave, got ${JSON.stringify(shown(alice))}`);
    assert.deepEqual(shown(alice), ["+alice", "+bob", "alice: hi bob", "-bob"]);
    assert.equal(alice.ended, undefined, "alice's stream stays open");
    assert.deepEqual((await c.unary(ChatRoom.method.members, { roomId: "lobby" })).users, ["alice"]);

    // A late joiner gets who is online and the messages so far.
    const carol = c.stream(ChatRoom.method.connect, { roomId: "lobby", user: "carol" });
    await eventually(() => shown(carol).length === 3, () => `carol's first events, got ${JSON.stringify(shown(carol))}`);
    assert.deepEqual(shown(carol), ["+alice", "+carol", "alice: hi bob"]);
    await eventually(() => shown(alice).at(-1) === "+carol", () => `alice seeing carol join, got ${JSON.stringify(shown(alice))}`);

    alice.cancel();
    carol.cancel();
    await eventually(
      async () => (await c.unary(ChatRoom.method.members, { roomId: "lobby" })).users.length === 0,
      () => "the room to be empty once everyone left",
    );
  });

  test("rooms are separate entities", async () => {
    const [a, b] = [client(), client()];
    const dave = a.stream(ChatRoom.method.connect, { roomId: "room-1", user: "dave" });
    const erin = b.stream(ChatRoom.method.connect, { roomId: "room-2", user: "erin" });
    await eventually(() => shown(dave).length > 0 && shown(erin).length > 0, () => "both first events");
    await a.unary(ChatRoom.method.send, { roomId: "room-1", user: "dave", text: "only here" });
    await eventually(() => shown(dave).includes("dave: only here"), () => `dave's message, got ${JSON.stringify(shown(dave))}`);
    assert.deepEqual((await b.unary(ChatRoom.method.members, { roomId: "room-2" })).users, ["erin"]);
    assert.deepEqual(shown(erin), ["+erin"], "nothing from room-1 reaches room-2");
    dave.cancel();
    erin.cancel();
  });

  test("errors reach the client as gRPC statuses", async () => {
    const c = client();
    await assert.rejects(c.unary(ChatRoom.method.send, { roomId: "lobby", user: "x", text: "  " }), /needs some text/);
    const nobody = c.stream(ChatRoom.method.connect, { roomId: "lobby", user: "" });
    await eventually(() => nobody.ended !== undefined, () => "the call without a user to fail");
    assert.match(nobody.ended!.details, /a user is required/);
    assert.deepEqual(nobody.received, []);
  });
});
