// The SDK tests' CRDT entities (testdata/proto/sdktest/crdts.proto): one per CRDT type, each command
// a list of actions (updates, delete, forward, effect, fail, throw), each streamed call configured
// by its request.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { CrdtClock } from "@cloudstate-ts/protocol";
import { CommandFailure, crdtEntity, Flag, GCounter, GSet, LWWRegister, ORMap, ORSet, PNCounter, Vote, type Crdt } from "../index.js";
import type { CrdtKind } from "../crdt/types/crdt.js";
import {
  CrdtTarget,
  FlagTest,
  GCounterTest,
  GSetTest,
  LWWRegisterTest,
  ORMapTest,
  ORSetTest,
  PNCounterTest,
  VoteTest,
  type CrdtResponseSchema,
  type CrdtStateSchema,
  type CrdtUpdate,
} from "./gen/sdktest/crdts_pb.js";

type State = MessageInitShape<typeof CrdtStateSchema>;

export const makers: Record<CrdtKind, () => Crdt> = {
  gcounter: () => new GCounter(),
  pncounter: () => new PNCounter(),
  gset: () => new GSet("string"),
  orset: () => new ORSet("string"),
  lwwregister: () => new LWWRegister("string", ""),
  flag: () => new Flag(),
  ormap: () => new ORMap("string", valueFor),
  vote: () => new Vote(),
};

/** An ORMap value's type is the start of its key: "gcounter-a" holds a GCounter. */
function valueFor(key: string): Crdt {
  const make = makers[key.split("-")[0] as CrdtKind];
  if (!make) throw new CommandFailure(`no CRDT type for key "${key}"`);
  return make();
}

const clocks = [CrdtClock.DEFAULT, CrdtClock.REVERSE, CrdtClock.CUSTOM, CrdtClock.CUSTOM_AUTO_INCREMENT];

export function applyUpdate(crdt: Crdt, update: CrdtUpdate): void {
  const u = update.update;
  const refuse = (): never => {
    throw new CommandFailure(`cannot ${u.case} a ${crdt.kind}`);
  };
  switch (u.case) {
    case "increment":
      if (crdt instanceof GCounter || crdt instanceof PNCounter) crdt.increment(u.value);
      else refuse();
      break;
    case "change":
      if (crdt instanceof PNCounter) crdt.increment(u.value);
      else refuse();
      break;
    case "add":
      if (crdt instanceof GSet || crdt instanceof ORSet) (crdt as GSet<"string">).add(u.value);
      else refuse();
      break;
    case "remove":
      if (crdt instanceof ORSet) (crdt as ORSet<"string">).delete(u.value);
      else refuse();
      break;
    case "clear":
      if (crdt instanceof ORSet || crdt instanceof ORMap) crdt.clear();
      else refuse();
      break;
    case "register":
      if (crdt instanceof LWWRegister) (crdt as LWWRegister<"string">).set(u.value.value, clocks[u.value.clock], u.value.customClockValue);
      else refuse();
      break;
    case "enable":
      if (crdt instanceof Flag) crdt.enable();
      else refuse();
      break;
    case "vote":
      if (crdt instanceof Vote) crdt.vote(u.value);
      else refuse();
      break;
    case "map": {
      if (!(crdt instanceof ORMap)) return refuse();
      const map = crdt as ORMap<"string", Crdt>;
      const change = u.value.change;
      if (change.case === "remove") map.delete(u.value.key);
      else if (change.case === "update") applyUpdate(map.getOrCreate(u.value.key), change.value);
      else map.getOrCreate(u.value.key);
      break;
    }
    default:
      throw new CommandFailure("empty update");
  }
}

export function stateOf(crdt: Crdt): State {
  if (crdt instanceof GCounter) return { value: { case: "gcounter", value: crdt.bigValue } };
  if (crdt instanceof PNCounter) return { value: { case: "pncounter", value: crdt.bigValue } };
  if (crdt instanceof GSet) return { value: { case: "gset", value: { elements: [...(crdt as GSet<"string">)].sort() } } };
  if (crdt instanceof ORSet) return { value: { case: "orset", value: { elements: [...(crdt as ORSet<"string">)].sort() } } };
  if (crdt instanceof LWWRegister) return { value: { case: "lwwregister", value: (crdt as LWWRegister<"string">).value } };
  if (crdt instanceof Flag) return { value: { case: "flag", value: crdt.value } };
  if (crdt instanceof Vote) {
    return { value: { case: "vote", value: { selfVote: crdt.selfVote, votesFor: crdt.votesFor, totalVoters: crdt.totalVoters } } };
  }
  const map = crdt as ORMap<"string", Crdt>;
  const entries = [...map].sort(([a], [b]) => a.localeCompare(b)).map(([key, value]) => ({ key, value: stateOf(value) }));
  return { value: { case: "ormap", value: { entries } } };
}

const response = (crdt: Crdt): MessageInitShape<typeof CrdtResponseSchema> => ({ state: stateOf(crdt) });

/** A test entity for `service` (any of the eight), holding a CRDT of `kind`. */
function testEntity(service: typeof GCounterTest, kind: CrdtKind) {
  return crdtEntity({
    service,
    crdt: makers[kind],
    commands: {
      async process(request, ctx) {
        if (request.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, request.delayMs));
        ctx.writeConsistency = request.writeConsistency;
        for (const { action } of request.actions) {
          switch (action.case) {
            case "update":
              applyUpdate(ctx.state, action.value);
              break;
            case "delete":
              ctx.delete();
              break;
            case "forward":
              return ctx.forward(CrdtTarget.method.call, { id: action.value });
            case "effect":
              ctx.effect(CrdtTarget.method.call, { id: action.value.id }, { synchronous: action.value.synchronous });
              break;
            case "fail":
              ctx.fail(action.value);
              break;
            case "throw":
              throw new Error(action.value);
          }
        }
        return response(ctx.state);
      },
      watch(request, ctx) {
        let pushed = 0;
        if (request.watch) {
          ctx.onStateChange((state, change) => {
            if (request.failOnChange) change.fail(request.failOnChange);
            if (request.updateOnChange) applyUpdate(state, request.updateOnChange);
            if (request.forwardOnChange) return change.forward(CrdtTarget.method.call, { id: "change" });
            if (request.effectOnChange) change.effect(CrdtTarget.method.call, { id: "change" });
            pushed++;
            if (request.endAfter > 0 && pushed >= request.endAfter) change.endStream();
            return response(state);
          });
        }
        if (request.updateOnCancel || request.effectOnCancel) {
          ctx.onStreamCancel((state, cancel) => {
            if (request.updateOnCancel) applyUpdate(state, request.updateOnCancel);
            if (request.effectOnCancel) cancel.effect(CrdtTarget.method.call, { id: "cancel" });
          });
        }
        return Array.from({ length: request.initialReplies }, () => response(ctx.state));
      },
    },
  });
}

export const SERVICES = {
  gcounter: GCounterTest,
  pncounter: PNCounterTest,
  gset: GSetTest,
  orset: ORSetTest,
  lwwregister: LWWRegisterTest,
  flag: FlagTest,
  ormap: ORMapTest,
  vote: VoteTest,
} as const satisfies Record<CrdtKind, typeof GCounterTest>;

/** The test entity of one CRDT type. */
export function crdtTestEntity(kind: CrdtKind) {
  return testEntity(SERVICES[kind] as typeof GCounterTest, kind);
}

/** One test entity per CRDT type. */
export function crdtTestEntities() {
  return (Object.keys(SERVICES) as CrdtKind[]).map(crdtTestEntity);
}
