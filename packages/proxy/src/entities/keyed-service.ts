// The host of one keyed service (event-sourced or value): one live entity per id, each with its own
// mailbox and stream.
import type { ProxyError } from "../errors.js";
import type { CommandOutcome, CommandRequest, EntityService } from "./command.js";
import { EntityHost } from "./entity-host.js";
import type { KeyedEntity } from "./keyed-entity.js";

// The protocol message types differ per model; the host only needs the common surface.
type AnyKeyedEntity = KeyedEntity<any, any, any>;

export class KeyedService implements EntityService {
  private readonly host: EntityHost<AnyKeyedEntity>;

  constructor(create: (entityId: string, release: () => void) => AnyKeyedEntity) {
    this.host = new EntityHost(create);
  }

  handle(request: CommandRequest): Promise<CommandOutcome> {
    return this.host.get(request.entityId).handle(request);
  }

  activeEntities(): number {
    return this.host.size();
  }

  activeEntityIds(): string[] {
    return this.host.ids();
  }

  shutdown(): Promise<void> {
    return this.host.shutdown();
  }

  abort(error: ProxyError): void {
    this.host.abort(error);
  }
}
