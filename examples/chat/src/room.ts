// A chat room: a CRDT entity per room, replicated on every proxy node that serves it. Its CRDT is one
// ORMap holding a Vote per member ("member:<user>": online while any node has a connection of theirs
// open) and an LWWRegister per message ("message:<id>"). Connect is a streamed call that stays open
// while the user is online and pushes each join, leave and message as the room's CRDT changes.
import { randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { crdtEntity, LWWRegister, ORMap, Vote } from "@cloudstate-ts/sdk";
import { ChatMessageSchema, ChatRoom, type ChatMessage, type RoomEventSchema } from "./gen/com/example/chat/chat_pb.js";

const MEMBER = "member:";
const MESSAGE = "message:";

type Room = ORMap<"string", Vote | LWWRegister<typeof ChatMessageSchema>>;
type RoomEvent = MessageInitShape<typeof RoomEventSchema>;

function newRoom(): Room {
  return new ORMap("string", (key) => (key.startsWith(MEMBER) ? new Vote() : new LWWRegister(ChatMessageSchema, {})));
}

/** The user's Vote: this node votes yes while it has a connection of theirs open. */
function presence(room: Room, user: string): Vote {
  const vote = room.getOrCreate(MEMBER + user);
  if (!(vote instanceof Vote)) throw new Error(`${MEMBER}${user} is not a Vote`);
  return vote;
}

/** The members online on any node, sorted. */
export function online(room: Room): string[] {
  const users: string[] = [];
  for (const [key, value] of room) if (value instanceof Vote && value.atLeastOne) users.push(key.slice(MEMBER.length));
  return users.sort();
}

/** The messages, oldest first. */
function messages(room: Room): ChatMessage[] {
  const list: ChatMessage[] = [];
  for (const value of room.values()) if (value instanceof LWWRegister) list.push(value.value);
  return list.sort((a, b) => (a.sentAt === b.sentAt ? a.id.localeCompare(b.id) : a.sentAt < b.sentAt ? -1 : 1));
}

/** What one connected client has been told, so that it is told only what changed. */
class Seen {
  private members = new Set<string>();
  private readonly messageIds = new Set<string>();

  /** The events since the last call: joins and leaves first, then new messages. */
  since(room: Room): RoomEvent[] {
    const events: RoomEvent[] = [];
    const now = online(room);
    for (const user of now) if (!this.members.has(user)) events.push({ event: { case: "joined", value: user } });
    for (const user of this.members) if (!now.includes(user)) events.push({ event: { case: "left", value: user } });
    this.members = new Set(now);
    for (const message of messages(room)) {
      if (this.messageIds.has(message.id)) continue;
      this.messageIds.add(message.id);
      events.push({ event: { case: "message", value: message } });
    }
    return events;
  }
}

/** The chat room entity. Each call makes one with its own record of this node's connections. */
export function chatRoom() {
  // This node's open connections per user, for each room replica here (not replicated: it is what this node votes on).
  const connections = new WeakMap<Room, Map<string, number>>();
  // Strictly increasing on this node, so that one sender's messages keep their order.
  let lastSentAt = 0;

  return crdtEntity({
    service: ChatRoom,
    persistenceId: "chat-rooms",
    crdt: newRoom,
    commands: {
      connect({ user }, ctx) {
        if (!user) ctx.fail("a user is required");
        if (!ctx.streamed) ctx.fail("Connect is a stream: call it as one");
        const room = ctx.state;
        const open = connections.get(room) ?? new Map<string, number>();
        connections.set(room, open);
        const seen = new Seen();
        ctx.onStateChange((room) => seen.since(room));
        ctx.onStreamCancel((room) => {
          const left = (open.get(user) ?? 1) - 1;
          if (left > 0) {
            open.set(user, left);
          } else {
            open.delete(user);
            presence(room, user).vote(false); // offline here; online elsewhere if another node still votes yes
          }
        });
        open.set(user, (open.get(user) ?? 0) + 1);
        presence(room, user).vote(true);
        // First who is online (this user included) and the messages so far.
        return seen.since(room);
      },
      send({ user, text }, ctx) {
        if (!user) ctx.fail("a user is required");
        if (!text.trim()) ctx.fail("a message needs some text");
        lastSentAt = Math.max(Date.now(), lastSentAt + 1);
        const id = randomUUID();
        ctx.state.set(MESSAGE + id, new LWWRegister(ChatMessageSchema, { id, user, text, sentAt: BigInt(lastSentAt) }));
        return {};
      },
      members: (_request, ctx) => ({ users: online(ctx.state) }),
    },
  });
}
