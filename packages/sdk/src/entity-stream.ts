// One entity's protocol stream (event-sourced, value): the proxy's messages are handled in order, one
// at a time; a protocol violation, or an error no reply can carry, fails the stream (the
// StreamOut's `failure`) and ends it. Each entity type says what its messages mean.
import type { ServerDuplexStream } from "@grpc/grpc-js";
import { ProtocolError } from "./errors.js";
import { describeError, type Logger } from "./logger.js";
import type { OpenStream } from "./streams.js";

/** What a stream knows of its entity once init has arrived. */
export interface StreamInstance {
  readonly entity: { readonly service: { readonly typeName: string } };
  readonly entityId: string;
}

/** The shape every StreamIn shares: a oneof `message` whose `command` case carries an id. */
type StreamIn = { readonly message: { readonly case: string | undefined; readonly value?: unknown } };

export abstract class EntityStream<In extends StreamIn, Out, I extends StreamInstance> implements OpenStream {
  /** Set by init; every later message is for this entity. */
  protected instance: I | undefined;
  private busy = false;
  private stopping = false;
  private ended = false;

  constructor(
    private readonly call: ServerDuplexStream<In, Out>,
    protected readonly logger: Logger,
    /** The entity type in log lines, e.g. "event-sourced". */
    private readonly model: string,
  ) {}

  /** Handles one message from the proxy (writing any reply); throws to fail the stream. */
  protected abstract receive(message: In): Promise<void> | void;
  /** The StreamOut that fails the stream. */
  protected abstract streamFailure(commandId: bigint, description: string): Out;

  /** The id of the command in `message`, 0 if it is not a command. */
  protected commandIdOf(message: In): bigint {
    const m = message.message;
    return m.case === "command" ? (m.value as { readonly id: bigint }).id : 0n;
  }

  /** The entity in log lines once known, e.g. ` of sdktest.Counter entity "c1"`, else "". */
  protected describeEntity(): string {
    return this.instance ? ` of ${this.instance.entity.service.typeName} entity "${this.instance.entityId}"` : "";
  }

  /**
   * Starts the entity an init names. A second init, or a service no entity of this kind serves
   * (`kind`, e.g. "value entity"), is a protocol error.
   */
  protected begin<E>(entities: ReadonlyMap<string, E>, init: { serviceName: string; entityId: string }, kind: string, start: (entity: E) => I): void {
    if (this.instance) throw new ProtocolError(`a second init (for entity "${init.entityId}") on one stream`);
    const entity = entities.get(init.serviceName);
    if (!entity) {
      const served = [...entities.keys()].join(", ") || "none";
      throw new ProtocolError(`no ${kind} serves ${init.serviceName} (served: ${served})`);
    }
    this.instance = start(entity);
  }

  /** The entity, for a message that needs init first. */
  protected started(what: string): I {
    if (!this.instance) throw new ProtocolError(`received ${what} before init`);
    return this.instance;
  }

  async run(): Promise<void> {
    let commandId = 0n; // of the message in hand, for a stream failure (0 = not a command)
    try {
      // Iterating the call itself would destroy it at the end of input, before our end() can send the status.
      const messages = this.call.iterator({ destroyOnReturn: false }) as AsyncIterable<In>;
      for await (const message of messages) {
        if (this.ended) break;
        this.busy = true;
        commandId = this.commandIdOf(message);
        await this.receive(message);
        this.busy = false;
        if (this.stopping) break;
      }
    } catch (e) {
      if (this.call.cancelled || this.ended) return; // the proxy went away, or we are shutting down
      if (e instanceof ProtocolError) {
        this.logger.warn(`protocol error on ${article(this.model)} ${this.model} stream${this.describeEntity()}: ${e.message}`);
      } else {
        this.logger.error(`${this.model} stream${this.describeEntity()} failed: ${describeError(e)}`);
      }
      // The stream cannot go on: a StreamOut failure tells the proxy to stop this entity.
      const description = e instanceof Error ? e.message : String(e);
      this.write(this.streamFailure(commandId, description));
    } finally {
      this.end();
    }
  }

  shutdown(): void {
    this.stopping = true;
    // Idle: end now (the for-await loop then stops). Busy: the loop ends after the current reply.
    if (!this.busy) this.end();
  }

  protected write(message: Out): void {
    if (!this.ended && !this.call.cancelled) this.call.write(message);
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    if (!this.call.cancelled) this.call.end();
  }
}

function article(word: string): string {
  return /^[aeiou]/.test(word) ? "an" : "a";
}
