// The open protocol streams of a server, so that close() can end them cleanly.
import { describeError, type Logger } from "./logger.js";

export interface OpenStream {
  /** Finishes the command in progress if any, then ends the stream. */
  shutdown(): void;
}

export class Streams {
  private readonly open = new Map<OpenStream, Promise<void>>();
  private closing = false;

  constructor(private readonly logger: Logger) {}

  /** Owns `run` (the stream's whole life) until it settles; a stream opened while closing is shut at once. */
  track(stream: OpenStream, run: Promise<void>): void {
    const done = run
      .catch((e: unknown) => this.logger.error(`a protocol stream failed: ${describeError(e)}`))
      .finally(() => this.open.delete(stream));
    this.open.set(stream, done);
    if (this.closing) stream.shutdown();
  }

  get size(): number {
    return this.open.size;
  }

  async shutdown(): Promise<void> {
    this.closing = true;
    const running = [...this.open];
    for (const [stream] of running) stream.shutdown();
    await Promise.all(running.map(([, done]) => done));
  }
}
