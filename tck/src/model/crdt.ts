// The CRDT model (proto/cloudstate/tck/model/crdt.proto): the CRDT type of an entity (and of an ORMap
// value) is named by the prefix of its id (key); Process runs a request's actions — update, delete,
// forward, effect, fail — and answers with the state; ProcessStreamed keeps a call open and pushes
// the state as it changes.
import { create, equals, type MessageInitShape } from "@bufbuild/protobuf";
import {
  Clock,
  crdtEntity,
  Flag,
  GCounter,
  GSet,
  LWWRegister,
  ORMap,
  ORSet,
  PNCounter,
  Vote,
  WriteConsistency as SdkWriteConsistency,
  type Crdt,
  type CrdtCommandContext,
  type Forward as SdkForward,
  type Reply,
} from "@cloudstate-ts/sdk";
import {
  ClockType,
  CrdtConfigured,
  CrdtTckModel,
  CrdtTwo,
  StateSchema,
  WriteConsistency,
  type Effect,
  type Request,
  type ResponseSchema,
  type State,
  type StreamedRequest,
  type Update,
} from "../gen/cloudstate/tck/model/crdt_pb.js";
import { CONFIGURED_PASSIVATION_MS, MARK } from "./marks.js";

export const CRDT_PERSISTENCE_IDS = {
  model: "crdt-tck-model",
  two: "crdt-tck-model-2",
  configured: "crdt-configured",
} as const;

/** The CRDT types, by the id prefix that names them. */
const MAKERS = {
  GCounter: () => new GCounter(),
  PNCounter: () => new PNCounter(),
  GSet: () => new GSet("string"),
  ORSet: () => new ORSet("string"),
  LWWRegister: () => new LWWRegister("string", ""),
  Flag: () => new Flag(),
  ORMap: (): ORMap<"string", Crdt> => new ORMap("string", (key: string) => crdtFor(key)),
  Vote: () => new Vote(),
} as const;
export type CrdtTypeName = keyof typeof MAKERS;
export const CRDT_TYPE_NAMES = Object.keys(MAKERS) as CrdtTypeName[];

/** The type named by an id's (or key's) prefix: the text before the first "-". */
export function crdtTypeOf(id: string): CrdtTypeName | undefined {
  const prefix = id.split("-", 1)[0]!;
  return Object.hasOwn(MAKERS, prefix) ? (prefix as CrdtTypeName) : undefined;
}

function crdtFor(id: string): Crdt {
  const type = crdtTypeOf(id);
  if (!type) throw new Error(`"${id}" names no CRDT type: it must start with one of ${CRDT_TYPE_NAMES.map((t) => `${t}-`).join(", ")}`);
  return MAKERS[type]();
}

/** The type name of a CRDT (as in ids). */
function typeName(crdt: Crdt): CrdtTypeName {
  if (crdt instanceof GCounter) return "GCounter";
  if (crdt instanceof PNCounter) return "PNCounter";
  if (crdt instanceof GSet) return "GSet";
  if (crdt instanceof ORSet) return "ORSet";
  if (crdt instanceof LWWRegister) return "LWWRegister";
  if (crdt instanceof Flag) return "Flag";
  if (crdt instanceof ORMap) return "ORMap";
  return "Vote";
}

const UPDATE_TYPES: Record<NonNullable<Update["update"]["case"]>, CrdtTypeName> = {
  gcounter: "GCounter",
  pncounter: "PNCounter",
  gset: "GSet",
  orset: "ORSet",
  lwwregister: "LWWRegister",
  flag: "Flag",
  ormap: "ORMap",
  vote: "Vote",
};

const CLOCKS: Record<ClockType, Clock> = {
  [ClockType.DEFAULT]: Clock.DEFAULT,
  [ClockType.REVERSE]: Clock.REVERSE,
  [ClockType.CUSTOM]: Clock.CUSTOM,
  [ClockType.CUSTOM_AUTO_INCREMENT]: Clock.CUSTOM_AUTO_INCREMENT,
};

const CONSISTENCIES: Record<WriteConsistency, SdkWriteConsistency> = {
  [WriteConsistency.LOCAL]: SdkWriteConsistency.LOCAL,
  [WriteConsistency.MAJORITY]: SdkWriteConsistency.MAJORITY,
  [WriteConsistency.ALL]: SdkWriteConsistency.ALL,
};

/** Applies `update` to `crdt` (named `id`); `fail` ends the command. */
function applyUpdate(crdt: Crdt, update: Update, id: string, fail: (message: string) => never): void {
  const u = update.update;
  if (u.case === undefined) return;
  const expected = UPDATE_TYPES[u.case];
  if (!(crdt instanceof ({ GCounter, PNCounter, GSet, ORSet, LWWRegister, Flag, ORMap, Vote } as const)[expected])) {
    fail(`${id} is a ${typeName(crdt)}, not a ${expected}`);
  }
  switch (u.case) {
    case "gcounter":
      (crdt as GCounter).increment(u.value.increment);
      break;
    case "pncounter": {
      const counter = crdt as PNCounter;
      if (u.value.change < 0n) counter.decrement(-u.value.change);
      else counter.increment(u.value.change);
      break;
    }
    case "gset":
      (crdt as GSet<"string">).add(u.value.add);
      break;
    case "orset": {
      const set = crdt as ORSet<"string">;
      const a = u.value.action;
      if (a.case === "add") set.add(a.value);
      else if (a.case === "remove") set.delete(a.value);
      else if (a.case === "clear" && a.value) set.clear();
      break;
    }
    case "lwwregister": {
      const clock = u.value.clock;
      (crdt as LWWRegister<"string">).set(u.value.value, CLOCKS[clock?.clockType ?? ClockType.DEFAULT], clock?.customClockValue ?? 0n);
      break;
    }
    case "flag":
      (crdt as Flag).enable();
      break;
    case "ormap": {
      const map = crdt as ORMap<"string", Crdt>;
      const a = u.value.action;
      const valueFor = (key: string): Crdt => {
        if (!crdtTypeOf(key)) fail(`the ORMap key "${key}" names no CRDT type`);
        return map.getOrCreate(key);
      };
      if (a.case === "add") valueFor(a.value);
      else if (a.case === "update") {
        const { key, update: nested } = a.value;
        const value = valueFor(key);
        if (nested) applyUpdate(value, nested, key, fail);
      } else if (a.case === "remove") map.delete(a.value);
      else if (a.case === "clear" && a.value) map.clear();
      break;
    }
    case "vote":
      (crdt as Vote).vote(u.value.selfVote);
      break;
  }
}

/** The CRDT's value, as Response.state. */
export function stateOf(crdt: Crdt): State {
  return create(StateSchema, stateInit(crdt));
}

function stateInit(crdt: Crdt): MessageInitShape<typeof StateSchema> {
  if (crdt instanceof GCounter) return { value: { case: "gcounter", value: { value: crdt.bigValue } } };
  if (crdt instanceof PNCounter) return { value: { case: "pncounter", value: { value: crdt.bigValue } } };
  if (crdt instanceof GSet) return { value: { case: "gset", value: { elements: [...(crdt as GSet<"string">).values()].sort() } } };
  if (crdt instanceof ORSet) return { value: { case: "orset", value: { elements: [...(crdt as ORSet<"string">).values()].sort() } } };
  if (crdt instanceof LWWRegister) return { value: { case: "lwwregister", value: { value: (crdt as LWWRegister<"string">).value } } };
  if (crdt instanceof Flag) return { value: { case: "flag", value: { value: crdt.value } } };
  if (crdt instanceof ORMap) {
    const entries = [...(crdt as ORMap<"string", Crdt>).entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return { value: { case: "ormap", value: { entries: entries.map(([key, value]) => ({ key, value: stateInit(value) })) } } };
  }
  const vote = crdt as Vote;
  return { value: { case: "vote", value: { selfVote: vote.selfVote, votesFor: vote.votesFor, totalVoters: vote.totalVoters } } };
}

type EffectTarget = { effect: CrdtCommandContext<Crdt>["effect"] };

/** CrdtTwo.Call(Request{id, [update{gset{add: mark}}]}). */
function twoRequest(id: string, mark: string): MessageInitShape<typeof CrdtTwo.method.call.input> {
  return { id, actions: [{ action: { case: "update", value: { update: { case: "gset", value: { add: mark } } } } }] };
}

function sendEffects(ctx: EffectTarget, effects: readonly Effect[]): void {
  for (const { id, synchronous } of effects) {
    ctx.effect(CrdtTwo.method.call, twoRequest(id, synchronous ? MARK.syncEffect : MARK.effect), { synchronous });
  }
}

/** Runs the actions in order; answers with the state after them, or with the last forward. */
function process(request: Request, ctx: CrdtCommandContext<Crdt>): Reply<typeof ResponseSchema> {
  let forward: SdkForward<typeof ResponseSchema> | undefined;
  const fail = (message: string): never => ctx.fail(message);
  for (const { action } of request.actions) {
    switch (action.case) {
      case "update":
        applyUpdate(ctx.state, action.value, ctx.entityId, fail);
        ctx.writeConsistency = CONSISTENCIES[action.value.writeConsistency];
        break;
      case "delete":
        ctx.delete();
        break;
      case "forward":
        forward = ctx.forward(CrdtTwo.method.call, twoRequest(action.value.id, MARK.forward));
        break;
      case "effect":
        sendEffects(ctx, [action.value]);
        break;
      case "fail":
        ctx.fail(action.value.message);
    }
  }
  return forward ?? { state: stateOf(ctx.state) };
}

export function crdtModel() {
  const model = crdtEntity({
    service: CrdtTckModel,
    persistenceId: CRDT_PERSISTENCE_IDS.model,
    crdt: (id): Crdt => crdtFor(id),
    commands: {
      process,
      processStreamed(request: StreamedRequest, ctx) {
        const fail = (message: string): never => ctx.fail(message);
        if (request.update) {
          applyUpdate(ctx.state, request.update, ctx.entityId, fail);
          ctx.writeConsistency = CONSISTENCIES[request.update.writeConsistency];
        }
        const { endState, cancelUpdate } = request;
        let last = stateOf(ctx.state);
        const ends = (state: State) => endState !== undefined && equals(StateSchema, state, endState);
        // No callback: the call ends with its first message.
        if (!request.empty && ends(last)) return { state: last };
        ctx.onStreamCancel((state, cancel) => {
          if (cancelUpdate) {
            applyUpdate(state, cancelUpdate, cancel.entityId, (message) => {
              throw new Error(message);
            });
            cancel.writeConsistency = CONSISTENCIES[cancelUpdate.writeConsistency];
          }
          sendEffects(cancel, request.cancelEffects);
        });
        if (request.empty) return undefined;
        ctx.onStateChange((state, change) => {
          const now = stateOf(state);
          if (equals(StateSchema, now, last)) return undefined;
          last = now;
          sendEffects(change, request.effects);
          if (ends(now)) change.endStream();
          return { state: now };
        });
        return { state: last };
      },
    },
  });
  const two = crdtEntity({
    service: CrdtTwo,
    persistenceId: CRDT_PERSISTENCE_IDS.two,
    crdt: (): Crdt => new GSet("string"),
    commands: { call: process },
  });
  const configured = crdtEntity({
    service: CrdtConfigured,
    persistenceId: CRDT_PERSISTENCE_IDS.configured,
    passivationTimeoutMs: CONFIGURED_PASSIVATION_MS,
    crdt: (id): Crdt => crdtFor(id),
    commands: { call: process },
  });
  return [model, two, configured];
}
