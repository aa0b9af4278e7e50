// Structured JSON logs (pino). Components take a child logger so each line names where it came from.
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(level: string, destination: NodeJS.WritableStream = process.stdout): Logger {
  return pino({ level, base: { name: "cloudstate-proxy" } }, destination);
}

/** A logger that writes nothing: for tests and embedded use. */
export const silentLogger: Logger = pino({ level: "silent" });
