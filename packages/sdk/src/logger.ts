// Where the SDK writes what an operator needs to see. Everything goes to stderr by default so that a
// user function's stdout stays its own.

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export const stderrLogger: Logger = {
  info: (m) => console.error(`[cloudstate] ${m}`),
  warn: (m) => console.error(`[cloudstate] WARN ${m}`),
  error: (m) => console.error(`[cloudstate] ERROR ${m}`),
};

/** Describes a thrown value for a log line: the stack when there is one (it starts with the message). */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.stack ?? `${e.name}: ${e.message}`;
  return String(e);
}
