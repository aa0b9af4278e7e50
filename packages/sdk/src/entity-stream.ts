// One entity's protocol stream (event-sourced, value): the proxy's messages are handled in order, one
// at a time; a protocol violation, or an error no reply can carry, fails the stream (the
// StreamOut's `failure`) and ends it. Each entity type says what its messages mean.
import type { ServerDuplexStream } from "@grpc/grpc-js";
import { ProtocolError } from "./errors.js";
import { describeError, type Logger } from "./logger.js";
import type { OpenStream } from "./streams.js";

export abstract class EntityStream<In, Out> implements OpenStream {
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
  /** The id of the command in `message`, 0 if it is not a command. */
  protected abstract commandIdOf(message: In): bigint;
  /** The StreamOut that fails the stream. */
  protected abstract streamFailure(commandId: bigint, description: string): Out;
  /** The entity in log lines once known, e.g. ` of sdktest.Counter entity "c1"`, else "". */
  protected abstract describeEntity(): string;

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
