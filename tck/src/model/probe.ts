// What the action model saw, for tests that run it in-process: actions keep no state, so the calls
// they receive (side effects, request headers) are observable only from inside the user function.
import type { MetadataValue } from "@cloudstate-ts/sdk";

export interface ModelCall {
  /** The full service name, e.g. "cloudstate.tck.model.action.ActionTwo". */
  readonly service: string;
  /** The method as in the proto, e.g. "Call". */
  readonly method: string;
  /** ActionTwo's request id; the value of the EventingEvent EventingTckModel.ConsumeEvent consumed. */
  readonly id?: string;
  readonly metadata: readonly [string, MetadataValue][];
}

export class ModelProbe {
  readonly calls: ModelCall[] = [];
  private readonly waiting = new Set<() => void>();

  record(call: ModelCall): void {
    this.calls.push(call);
    for (const wake of this.waiting) wake();
  }

  /** The first call that matches, as soon as it is recorded; rejects after `timeoutMs` with `what` in the message. */
  waitFor(what: string, match: (call: ModelCall) => boolean, timeoutMs = 2_000): Promise<ModelCall> {
    const found = this.calls.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const check = () => {
        const call = this.calls.find(match);
        if (!call) return;
        done();
        resolve(call);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${what}: not seen by the model within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiting.delete(check);
      };
      this.waiting.add(check);
    });
  }

  /** The calls to ActionTwo with this id. */
  actionTwoCalls(id: string): ModelCall[] {
    return this.calls.filter((c) => c.service === "cloudstate.tck.model.action.ActionTwo" && c.id === id);
  }
}
