// Runs the load generator's callers in worker threads (one event loop, so one core, each). This
// module is both sides: runInThreads() on the main thread, and the worker when loaded in one.
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { prepareCallers, type CallerPlan, type CallerTally } from "./load.js";

type ToWorker = { kind: "start"; measureFrom: string; measureTo: string };
type FromWorker = { kind: "ready" } | { kind: "done"; tally: CallerTally } | { kind: "failed"; message: string };

const TSX_API = import.meta.resolve("tsx/esm/api");

interface WorkerInput {
  readonly benchCallers: CallerPlan;
}

/** Starts one worker per plan, waits until all are connected, then runs them over the same window. */
export async function runInThreads(plans: CallerPlan[], window: () => [bigint, bigint]): Promise<CallerTally[]> {
  // Workers do not inherit tsx's loader hooks (Node 20): each registers them, then loads this file.
  const boot = `import(${JSON.stringify(TSX_API)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(import.meta.url)}); })`;
  const workers = plans.map(
    (plan) => new Worker(boot, { eval: true, workerData: { benchCallers: plan } satisfies WorkerInput }),
  );
  try {
    const next = (w: Worker): Promise<FromWorker> =>
      new Promise((resolve, reject) => {
        const onMessage = (m: FromWorker) => {
          cleanup();
          if (m.kind === "failed") reject(new Error(m.message));
          else resolve(m);
        };
        const onError = (e: Error) => {
          cleanup();
          reject(e);
        };
        const onExit = (code: number) => {
          cleanup();
          reject(new Error(`load worker exited with code ${code}`));
        };
        const cleanup = () => {
          w.off("message", onMessage);
          w.off("error", onError);
          w.off("exit", onExit);
        };
        w.on("message", onMessage);
        w.once("error", onError);
        w.once("exit", onExit);
      });
    await Promise.all(workers.map(next));
    const [from, to] = window();
    const done = workers.map(next);
    for (const w of workers) w.postMessage({ kind: "start", measureFrom: String(from), measureTo: String(to) } satisfies ToWorker);
    const results = await Promise.all(done);
    return results.map((r) => (r as Extract<FromWorker, { kind: "done" }>).tally);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

if (!isMainThread && parentPort && (workerData as Partial<WorkerInput> | null)?.benchCallers) {
  const port = parentPort;
  const send = (m: FromWorker) => port.postMessage(m);
  try {
    const callers = await prepareCallers((workerData as WorkerInput).benchCallers);
    port.once("message", (m: ToWorker) => {
      callers
        .run(BigInt(m.measureFrom), BigInt(m.measureTo))
        .then(
          (tally) => send({ kind: "done", tally }),
          (e: unknown) => send({ kind: "failed", message: (e as Error).message }),
        )
        .finally(() => callers.close());
    });
    send({ kind: "ready" });
  } catch (e) {
    send({ kind: "failed", message: (e as Error).message });
  }
}
