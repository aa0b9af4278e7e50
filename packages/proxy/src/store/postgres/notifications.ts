// Wake-ups across processes (Store.onExternalWrite): a batch that inserts journal rows or topic
// messages NOTIFYs its schema's channel inside its transaction (batch.ts), so PostgreSQL delivers
// the notification when the batch commits, and never when it rolls back. A store LISTENs on one
// connection of its own (not from the pool: a pooled connection would hand its LISTEN to whoever
// borrows it next), and only while it has listeners.
//
// The listening connection is best effort: when it drops (the server restarted, the session was
// terminated) or stops answering its heartbeat, it is replaced after a backoff, and the listeners
// are called once when listening starts again, because writes may have committed meanwhile (and
// also when it first starts, for writes that committed before it was listening). Nothing that
// happens to it is fatal, and it never touches the writes: consumers poll anyway.
import { createHash } from "node:crypto";
import pg from "pg";
import { quoteIdentifier } from "./schema.js";

const MIN_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5_000;
// A connection that lived this long was fine: the next reconnect starts from the shortest backoff.
const HEALTHY_MS = 10_000;
// LISTEN again (a no-op for the server) now and then, so that a connection that silently stopped
// answering (a network partition) is noticed and replaced.
const HEARTBEAT_MS = 30_000;

/**
 * The channel a schema's writes are notified on: "cloudstate_" and 16 hex digits of a hash of the
 * schema name, a valid identifier whatever the name holds (a name may be 63 bytes of anything).
 * Stores on different schemas do not wake each other; channels are per database anyway.
 */
export function notifyChannel(schema: string): string {
  return `cloudstate_${createHash("sha256").update(schema).digest("hex").slice(0, 16)}`;
}

/** The statement a batch runs before it commits when it wrote journal rows or topic messages. */
export function notifyStatement(schema: string): string {
  return `NOTIFY ${quoteIdentifier(notifyChannel(schema))}`;
}

interface Entry {
  readonly listener: () => void;
}

/** One run of the listening loop, from the first listener to the removal of the last. */
interface Session {
  stopped: boolean;
  /** Ends the current connection attempt, connection or backoff at once. */
  interrupt: () => void;
  done: Promise<void>;
}

/** The listeners of Store.onExternalWrite of one PostgreSQL store, and its listening connection. */
export class ExternalWriteListeners {
  readonly channel: string;
  private readonly listen: string;
  private readonly entries = new Set<Entry>();
  private session: Session | undefined;
  private closed = false;

  /** `config`: how to open the listening connection (with connect and query timeouts). */
  constructor(
    private readonly config: pg.ClientConfig,
    schema: string,
  ) {
    this.channel = notifyChannel(schema);
    this.listen = `LISTEN ${quoteIdentifier(this.channel)}`;
  }

  add(listener: () => void): () => void {
    if (this.closed) return () => undefined;
    const entry: Entry = { listener };
    this.entries.add(entry);
    this.session ??= this.start();
    return () => {
      if (this.entries.delete(entry) && this.entries.size === 0) void this.stop();
    };
  }

  /** Removes every listener and closes the listening connection; later add() calls do nothing. */
  async close(): Promise<void> {
    this.closed = true;
    this.entries.clear();
    await this.stop();
  }

  private start(): Session {
    const session: Session = { stopped: false, interrupt: () => undefined, done: Promise.resolve() };
    session.done = this.run(session).catch(ignore); // it should not throw; if it does, consumers still poll
    return session;
  }

  private async stop(): Promise<void> {
    const session = this.session;
    if (!session) return;
    this.session = undefined;
    session.stopped = true;
    session.interrupt();
    await session.done;
  }

  /** Connects, listens until the connection is gone, and again after a backoff, until stopped. Never rejects. */
  private async run(session: Session): Promise<void> {
    let backoffMs = MIN_BACKOFF_MS;
    while (!session.stopped) {
      const client = new pg.Client(this.config);
      // A broken connection also ends the client (or fails the call in progress), which is what the loop watches.
      client.on("error", ignore);
      let drop!: () => void;
      const gone = new Promise<void>((resolve) => (drop = resolve));
      client.once("end", drop);
      let ending: Promise<void> | undefined;
      const end = () => (ending ??= client.end().catch(ignore));
      session.interrupt = () => {
        drop();
        void end();
      };
      // pg never settles a connect() that end() interrupted: stop waiting when the connection is gone.
      const whileConnected = <T>(promise: Promise<T>) =>
        Promise.race([promise, gone.then(() => Promise.reject(new Error("the listening connection is gone")))]);
      let heartbeat: NodeJS.Timeout | undefined;
      let listeningSince: number | undefined;
      try {
        await whileConnected(client.connect());
        client.on("notification", (message) => {
          if (message.channel === this.channel) this.notify();
        });
        await whileConnected(client.query(this.listen));
        if (session.stopped) break;
        listeningSince = Date.now();
        // Writes may have committed while nobody listened: before this connection, or between two.
        this.notify();
        heartbeat = setInterval(() => client.query(this.listen).catch(drop), HEARTBEAT_MS).unref();
        await gone;
      } catch {
        // Could not connect or LISTEN: try again after the backoff.
      } finally {
        clearInterval(heartbeat);
        client.removeAllListeners("notification");
        const ended = end();
        // Only a store that closes waits for the goodbye (a dead server may never answer it).
        if (session.stopped) await ended;
      }
      if (session.stopped) break;
      if (listeningSince !== undefined && Date.now() - listeningSince >= HEALTHY_MS) backoffMs = MIN_BACKOFF_MS;
      await this.sleep(session, backoffMs);
      backoffMs = Math.min(2 * backoffMs, MAX_BACKOFF_MS);
    }
  }

  private sleep(session: Session, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      timer.unref();
      session.interrupt = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private notify(): void {
    for (const entry of [...this.entries]) {
      // A listener may remove another one: that one is not called any more.
      if (!this.entries.has(entry)) continue;
      try {
        entry.listener();
      } catch {
        // A listener must not break the others, nor the listening connection.
      }
    }
  }
}

function ignore(): void {}
