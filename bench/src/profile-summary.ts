// Prints the functions with the most self time in a V8 .cpuprofile (from node --cpu-prof).
//   npx tsx bench/src/profile-summary.ts [--top N] FILE.cpuprofile...   (default top 25; idle time
//   is reported apart and percentages are of busy time)
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number; // 0-based
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number; // µs
  endTime: number;
  samples?: number[];
  timeDeltas?: number[]; // µs
}

export interface SelfTime {
  readonly name: string;
  /** file:line (1-based), shortened to the path inside node_modules or the repository. */
  readonly location: string;
  readonly selfMs: number;
  readonly percent: number;
}

/**
 * Self time per function (name + location), summed over every node of that function. Uses the
 * samples and their time deltas when present, else hit counts × the mean sampling interval.
 */
export function selfTimes(profile: CpuProfile): { total: number; rows: SelfTime[] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  if (profile.samples && profile.timeDeltas && profile.samples.length === profile.timeDeltas.length) {
    // timeDeltas[i] is the time before sample i; attribute the interval after a sample to it.
    const { samples, timeDeltas } = profile;
    for (let i = 0; i < samples.length; i++) {
      const dt = i + 1 < timeDeltas.length ? timeDeltas[i + 1]! : 0;
      selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + Math.max(0, dt));
    }
  } else {
    const hits = profile.nodes.reduce((n, x) => n + (x.hitCount ?? 0), 0);
    const interval = hits > 0 ? (profile.endTime - profile.startTime) / hits : 0;
    for (const n of profile.nodes) selfUs.set(n.id, (n.hitCount ?? 0) * interval);
  }
  const grouped = new Map<string, { name: string; location: string; us: number }>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    total += us;
    const name = frame.functionName || "(anonymous)";
    const line = frame.lineNumber > 0 ? frame.lineNumber + 1 : (locateByName(frame.url, frame.functionName) ?? (isTs(frame.url) ? "?" : 1));
    const location = frame.url ? `${shorten(frame.url)}:${line}` : "(native)";
    const key = `${name}\u0000${location}`;
    const g = grouped.get(key) ?? { name, location, us: 0 };
    g.us += us;
    grouped.set(key, g);
  }
  const rows = [...grouped.values()]
    .sort((a, b) => b.us - a.us)
    .map((g) => ({
      name: g.name,
      location: g.location,
      selfMs: Math.round(g.us / 100) / 10,
      percent: total > 0 ? Math.round((g.us / total) * 1000) / 10 : 0,
    }));
  return { total: total / 1000, rows };
}

const isTs = (url: string): boolean => url.startsWith("file://") && /\.[cm]?tsx?$/.test(url);

const sources = new Map<string, string[] | undefined>();

/**
 * tsx hands V8 each TypeScript file compiled onto one line, so a .ts frame says line 1: find the
 * line that declares the function in the source instead (first match; undefined if none).
 */
function locateByName(url: string, name: string): number | undefined {
  if (!isTs(url) || name === "") return undefined;
  if (!sources.has(url)) {
    try {
      sources.set(url, readFileSync(new URL(url), "utf8").split("\n"));
    } catch {
      sources.set(url, undefined);
    }
  }
  const lines = sources.get(url);
  if (lines === undefined) return undefined;
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const declaration = new RegExp(
    `(^|[\\s(,])(async\\s+)?(function\\s*\\*?\\s*)?(get\\s+|set\\s+)?${escaped}\\s*(<[^>]*>)?\\(|(const|let|readonly|private|public)\\s+(readonly\\s+)?${escaped}\\s*[:=]`,
  );
  const i = lines.findIndex((l) => declaration.test(l) && !/^\s*(\/\/|\*)/.test(l));
  return i >= 0 ? i + 1 : undefined;
}

/** Busy self time by where the code lives: a node_modules package, node's internals, our packages, V8. */
export function byArea(rows: readonly SelfTime[]): { area: string; selfMs: number }[] {
  const areas = new Map<string, number>();
  for (const r of rows) {
    if (r.name === "(idle)") continue;
    const area = areaOf(r);
    areas.set(area, (areas.get(area) ?? 0) + r.selfMs);
  }
  return [...areas].map(([area, selfMs]) => ({ area, selfMs: Math.round(selfMs * 10) / 10 })).sort((a, b) => b.selfMs - a.selfMs);
}

function areaOf(r: SelfTime): string {
  if (r.location === "(native)") {
    if (r.name === "(garbage collector)") return "V8: garbage collector";
    if (r.name === "(program)") return "V8: (program) — native code outside JS: http2/nghttp2, syscalls";
    return "native builtins (writeBuffer, runMicrotasks, …)";
  }
  if (r.location.startsWith("node:")) return "node internals (http2, streams, events, …)";
  const pkg = /^(@[^/]+\/[^/]+|[^/]+)\//.exec(r.location);
  if (/^(packages|examples|tests|bench)\//.test(r.location)) return r.location.split("/").slice(0, 2).join("/");
  return pkg ? pkg[1]! : r.location;
}

function shorten(url: string): string {
  const path = url.replace(/^file:\/\//, "");
  const nm = path.lastIndexOf("/node_modules/");
  if (nm >= 0) return path.slice(nm + "/node_modules/".length);
  const repo = /\/(packages|examples|tests|bench)\/.*$/.exec(path);
  return repo ? repo[0].slice(1) : path;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  let top = 25;
  const at = args.indexOf("--top");
  if (at >= 0) {
    top = Number(args[at + 1]);
    args.splice(at, 2);
  }
  if (args.length === 0 || !Number.isSafeInteger(top) || top < 1) {
    process.stderr.write("usage: tsx bench/src/profile-summary.ts [--top N] FILE.cpuprofile...\n");
    process.exit(2);
  }
  process.stdout.on("error", () => process.exit(0)); // e.g. piped into head
  for (const file of args) {
    // `npm run profile-summary` runs in bench/: paths are the caller's.
    const profile = JSON.parse(readFileSync(resolve(process.env.INIT_CWD ?? process.cwd(), file), "utf8")) as CpuProfile;
    const { total, rows } = selfTimes(profile);
    const idle = rows.filter((r) => r.name === "(idle)").reduce((n, r) => n + r.selfMs, 0);
    const busy = total - idle;
    process.stdout.write(
      `${file}: ${Math.round(total)} ms sampled, ${Math.round(idle)} ms idle, ${Math.round(busy)} ms busy\n`,
    );
    process.stdout.write(`${"self ms".padStart(9)} ${"%busy".padStart(6)}  function  location\n`);
    for (const r of rows.filter((x) => x.name !== "(idle)").slice(0, top)) {
      const pct = busy > 0 ? (r.selfMs / busy) * 100 : 0;
      process.stdout.write(`${r.selfMs.toFixed(1).padStart(9)} ${pct.toFixed(1).padStart(6)}  ${r.name}  ${r.location}\n`);
    }
    process.stdout.write("by area:\n");
    for (const a of byArea(rows).slice(0, 12)) {
      const pct = busy > 0 ? (a.selfMs / busy) * 100 : 0;
      process.stdout.write(`${a.selfMs.toFixed(1).padStart(9)} ${pct.toFixed(1).padStart(6)}  ${a.area}\n`);
    }
    process.stdout.write("\n");
  }
}
