// The shared part of keyed state models: one live instance per entity id, created on the first
// command, removed when it passivates or stops. Each instance serialises its own commands (mailbox).
import type { ProxyError } from "../errors.js";

export interface HostedEntity {
  /** Resolves when queued and in-flight commands are done and the stream is closed. */
  shutdown(): Promise<void>;
  /** Fails every queued and in-flight command with the error, and stops. */
  abort(error: ProxyError): void;
}

export class EntityHost<E extends HostedEntity> {
  private readonly live = new Map<string, E>();

  constructor(private readonly create: (entityId: string, release: () => void) => E) {}

  /** The live instance for an id, started if needed. */
  get(entityId: string): E {
    let entity = this.live.get(entityId);
    if (entity === undefined) {
      const created: E = this.create(entityId, () => {
        // Only the instance that is registered may remove itself (a newer one may have replaced it).
        if (this.live.get(entityId) === created) this.live.delete(entityId);
      });
      entity = created;
      this.live.set(entityId, entity);
    }
    return entity;
  }

  size(): number {
    return this.live.size;
  }

  ids(): string[] {
    return [...this.live.keys()];
  }

  abort(error: ProxyError): void {
    for (const e of [...this.live.values()]) e.abort(error);
  }

  async shutdown(): Promise<void> {
    await Promise.all([...this.live.values()].map((e) => e.shutdown()));
    this.live.clear();
  }
}
