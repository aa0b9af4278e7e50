// Runs an event-sourced entity in-process, as the proxy would (journal, snapshots, restarts), with
// no network: for the user's unit tests. Commands and replies still go through their wire encoding.
import { create, fromBinary, type DescMessage, type Message, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import type { GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import type { Any } from "@bufbuild/protobuf/wkt";
import {
  CommandSchema,
  EventSourcedEventSchema,
  EventSourcedSnapshotSchema,
  type Forward,
  type SideEffect,
} from "@cloudstate-ts/protocol";
import { pack, typeNameOf } from "../any.js";
import { CommandFailure } from "../errors.js";
import type { EventSourcedEntity } from "../eventsourced/entity.js";
import { EventSourcedInstance } from "../eventsourced/handler.js";
import { stderrLogger, type Logger } from "../logger.js";

/** Everything one command produced. */
export interface CommandResult<Output extends Message> {
  /** The reply, unless the command forwarded or failed. */
  readonly reply?: Output;
  readonly forward?: Forward;
  readonly failure?: { readonly description: string; readonly restart: boolean };
  /** The events persisted by this command (none on failure). */
  readonly events: Message[];
  /** The side effects the proxy would run (none on failure). */
  readonly sideEffects: SideEffect[];
  /** Whether the command's reply carried a snapshot. */
  readonly snapshotted: boolean;
}

export interface TestkitOptions {
  /** Default "test-entity". */
  entityId?: string;
  /** Where unexpected handler errors are logged; default stderr. */
  logger?: Logger;
}

export class EventSourcedTestkit<Methods extends GenServiceMethods, StateSchema extends DescMessage> {
  readonly entityId: string;
  /** Every persisted event, decoded, in journal order. */
  readonly events: Message[] = [];
  private readonly journal: Any[] = [];
  private snapshot: { sequence: number; state: Any } | undefined;
  private instance: EventSourcedInstance;
  private nextId = 1n;
  private readonly logger: Logger;

  constructor(
    private readonly entity: EventSourcedEntity<Methods, StateSchema>,
    options: TestkitOptions = {},
  ) {
    this.entityId = options.entityId ?? "test-entity";
    this.logger = options.logger ?? stderrLogger;
    this.instance = this.recover();
  }

  /** The entity's current state (do not modify it). */
  get state(): MessageShape<StateSchema> {
    return this.instance.state as MessageShape<StateSchema>;
  }

  /** The sequence number of the last persisted event. */
  get sequence(): number {
    return this.instance.sequence;
  }

  /** Handles one command and reports all it produced; failures resolve too. */
  async send<K extends keyof Methods & string>(
    command: K,
    input: MessageInitShape<Methods[K]["input"]>,
  ): Promise<CommandResult<MessageShape<Methods[K]["output"]>>> {
    const method = this.entity.service.method[command];
    if (!method) throw new TypeError(`${this.entity.service.typeName} has no method ${command}`);
    const id = this.nextId++;
    const reply = await this.instance.handle(
      create(CommandSchema, {
        entityId: this.entityId,
        id,
        name: method.name,
        payload: pack(method.input, create(method.input, input)),
      }),
    );
    const action = reply.clientAction?.action;
    if (action?.case === "failure") {
      // The proxy drops the reply and, on restart, rebuilds the entity from its journal.
      if (action.value.restart) this.restart();
      return { failure: action.value, events: [], sideEffects: [], snapshotted: false };
    }
    const events = reply.events.map((any) => {
      this.journal.push(any);
      const route = this.entity.events.get(typeNameOf(any.typeUrl))!;
      return fromBinary(route.schema, any.value);
    });
    this.events.push(...events);
    if (reply.snapshot) this.snapshot = { sequence: this.instance.sequence, state: reply.snapshot };
    return {
      reply: action?.case === "reply" ? (fromBinary(method.output, action.value.payload!.value) as MessageShape<Methods[K]["output"]>) : undefined,
      forward: action?.case === "forward" ? action.value : undefined,
      events,
      sideEffects: reply.sideEffects,
      snapshotted: reply.snapshot !== undefined,
    };
  }

  /** Handles one command and returns its reply; rejects with a CommandFailure if it failed. */
  async call<K extends keyof Methods & string>(
    command: K,
    input: MessageInitShape<Methods[K]["input"]>,
  ): Promise<MessageShape<Methods[K]["output"]>> {
    const result = await this.send(command, input);
    if (result.failure) {
      if (result.failure.restart) throw new Error(result.failure.description);
      throw new CommandFailure(result.failure.description);
    }
    if (!result.reply) throw new Error(`${command} forwarded to ${result.forward?.serviceName}/${result.forward?.commandName} instead of replying`);
    return result.reply;
  }

  /** Rebuilds the entity from the last snapshot and the later events, as after passivation or a restart. */
  restart(): void {
    this.instance = this.recover();
  }

  private recover(): EventSourcedInstance {
    const snapshot = this.snapshot && create(EventSourcedSnapshotSchema, { snapshotSequence: BigInt(this.snapshot.sequence), snapshot: this.snapshot.state });
    const instance = new EventSourcedInstance(this.entity as unknown as EventSourcedEntity, this.entityId, snapshot, this.logger);
    for (let seq = (this.snapshot?.sequence ?? 0) + 1; seq <= this.journal.length; seq++) {
      instance.replay(create(EventSourcedEventSchema, { sequence: BigInt(seq), payload: this.journal[seq - 1] }));
    }
    return instance;
  }
}

/** An in-process testkit for an event-sourced entity. */
export function testkit<Methods extends GenServiceMethods, StateSchema extends DescMessage>(
  entity: EventSourcedEntity<Methods, StateSchema>,
  options?: TestkitOptions,
): EventSourcedTestkit<Methods, StateSchema> {
  return new EventSourcedTestkit(entity, options);
}
