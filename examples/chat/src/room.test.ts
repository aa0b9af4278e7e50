// The chat room: with the in-process testkit (two clients streaming at once, a second node's
// member), and over the Cloudstate protocol as the proxy drives it.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fromBinary, type MessageShape } from "@bufbuild/protobuf";
import { serve, type UserFunctionServer } from "@cloudstate-ts/sdk";
import { crdtDelta, crdtMessageOf, ProxyDriver, testkit, type CrdtOutMessages, type CrdtStreamOut } from "@cloudstate-ts/sdk/testing";
import { ChatMessageSchema, ChatRoom, RoomEventSchema, type RoomEvent } from "./gen/com/example/chat/chat_pb.js";
import { chatRoom } from "./room.js";

/** An event as text: "+alice", "-bob", "alice: hi". */
function show(event: RoomEvent | MessageShape<typeof RoomEventSchema>): string {
  const e = event.event;
  if (e.case === "joined") return `+${e.value}`;
  if (e.case === "left") return `-${e.value}`;
  if (e.case === "message") return `${e.value.user}: ${e.value.text}`;
  return "?";
}

describe("with the testkit", () => {
  test("two clients streaming at once see each other's join, messages and leave", async () => {
    const room = testkit(chatRoom(), { entityId: "lobby" });
    const alice = await room.stream("connect", { roomId: "lobby", user: "alice" });
    assert.deepEqual(alice.replies.map(show), ["+alice"], "on connect: who is online (herself)");
    assert.equal(alice.open, true);

    const bob = await room.stream("connect", { roomId: "lobby", user: "bob" });
    assert.deepEqual(bob.replies.map(show), ["+alice", "+bob"]);
    assert.deepEqual(alice.replies.map(show), ["+alice", "+bob"], "alice sees bob join");

    await room.call("send", { roomId: "lobby", user: "alice", text: "hi bob" });
    await room.call("send", { roomId: "lobby", user: "bob", text: "hi alice" });
    assert.deepEqual(alice.replies.map(show).slice(2), ["alice: hi bob", "bob: hi alice"]);
    assert.deepEqual(bob.replies.map(show).slice(2), ["alice: hi bob", "bob: hi alice"]);

    const cancelled = await bob.cancel();
    assert.ok(cancelled.delta, "bob's vote goes to the other nodes");
    assert.deepEqual(alice.replies.map(show).at(-1), "-bob", "alice sees bob leave");
    assert.deepEqual((await room.call("members", { roomId: "lobby" })).users, ["alice"]);
  });

  test("a late joiner gets the messages so far; a user with two connections stays online until both close", async () => {
    const room = testkit(chatRoom(), { entityId: "r2" });
    const first = await room.stream("connect", { roomId: "r2", user: "carol" });
    await room.call("send", { roomId: "r2", user: "carol", text: "one" });
    await room.call("send", { roomId: "r2", user: "carol", text: "two" });
    const second = await room.stream("connect", { roomId: "r2", user: "carol" });
    assert.deepEqual(second.replies.map(show), ["+carol", "carol: one", "carol: two"]);
    const dave = await room.stream("connect", { roomId: "r2", user: "dave" });
    await first.cancel();
    assert.deepEqual((await room.call("members", { roomId: "r2" })).users, ["carol", "dave"]);
    assert.notEqual(dave.replies.map(show).at(-1), "-carol");
    await second.cancel();
    assert.equal(dave.replies.map(show).at(-1), "-carol");
  });

  test("members online on another node count, and their messages arrive", async () => {
    const room = testkit(chatRoom(), { entityId: "r3" });
    const erin = await room.stream("connect", { roomId: "r3", user: "erin" });
    // Another node votes for frank (its tally: 1 of 2 nodes), and replicates frank's message.
    await room.replicate(crdtDelta.ormap("string", { added: [["member:frank", crdtDelta.vote({ selfVote: false, votesFor: 1, totalVoters: 2 })]] }));
    await room.replicate(
      crdtDelta.ormap("string", { added: [["message:m1", crdtDelta.lwwregister(ChatMessageSchema, { id: "m1", user: "frank", text: "hello from afar", sentAt: 1n })]] }),
    );
    assert.deepEqual(erin.replies.map(show), ["+erin", "+frank", "frank: hello from afar"]);
    assert.deepEqual((await room.call("members", { roomId: "r3" })).users, ["erin", "frank"]);
  });

  test("a message needs a user and some text", async () => {
    const room = testkit(chatRoom());
    await assert.rejects(room.call("send", { roomId: "r", user: "x", text: "  " }), /needs some text/);
    await assert.rejects(room.call("send", { roomId: "r", text: "hi" }), /a user is required/);
  });
});

describe("over the Cloudstate protocol", () => {
  const quiet = { info() {}, warn() {}, error() {} };
  let server: UserFunctionServer;
  let proxy: ProxyDriver;

  before(async () => {
    server = await serve({ entities: [chatRoom()], port: 0, logger: quiet });
    proxy = new ProxyDriver(server.port);
  });

  after(async () => {
    proxy.close();
    await server.close();
  });

  /** The event a reply or pushed message carries, as text. */
  function eventIn(clientAction: CrdtOutMessages["reply"]["clientAction"]): string {
    const action = clientAction?.action;
    assert.equal(action?.case, "reply");
    return show(fromBinary(RoomEventSchema, action.value.payload!.value));
  }

  /** A pushed message: its call and its event. */
  function events(out: CrdtStreamOut | undefined): [bigint, string] {
    const message = crdtMessageOf(out, "streamedMessage");
    return [message.commandId, eventIn(message.clientAction)];
  }

  test("discovery declares the room as a CRDT entity", async () => {
    const spec = await proxy.discover();
    assert.deepEqual(
      spec.entities.map((e) => [e.entityType, e.serviceName, e.persistenceId]),
      [["cloudstate.crdt.Crdt", "com.example.chat.ChatRoom", "chat-rooms"]],
    );
  });

  test("two streamed Connect calls on one entity hear each other; a cancel takes the user offline", async () => {
    const s = proxy.crdt();
    s.init("com.example.chat.ChatRoom", "lobby");
    const alice = crdtMessageOf(await s.command(ChatRoom.method.connect, { roomId: "lobby", user: "alice" }), "reply");
    assert.equal(alice.streamed, true);
    assert.equal(eventIn(alice.clientAction), "+alice");
    assert.equal(alice.stateAction?.action.case, "update", "alice's vote is replicated");
    const aliceId = alice.commandId;

    const bob = crdtMessageOf(await s.command(ChatRoom.method.connect, { roomId: "lobby", user: "bob" }), "reply");
    const bobId = bob.commandId;
    // Bob's reply carries the first of his events; the others follow on his call, then the others hear of him.
    assert.equal(eventIn(bob.clientAction), "+alice");
    assert.deepEqual(events(await s.next()), [bobId, "+bob"]);
    assert.deepEqual(events(await s.next()), [aliceId, "+bob"]);

    crdtMessageOf(await s.command(ChatRoom.method.send, { roomId: "lobby", user: "bob", text: "yo" }), "reply");
    assert.deepEqual([events(await s.next()), events(await s.next())], [
      [aliceId, "bob: yo"],
      [bobId, "bob: yo"],
    ]);

    const cancelled = crdtMessageOf(await s.cancelStream(bobId), "streamCancelledResponse");
    assert.equal(cancelled.stateAction?.action.case, "update", "bob's vote, now no");
    assert.deepEqual(events(await s.next()), [aliceId, "-bob"]);
    s.end();
  });
});
