// Runs every *.test.ts under packages/, examples/, tck/ and tests/ with node's test runner through tsx.
// (Node 20's test runner takes no globs, so the files are listed here.)
// Usage: node scripts/test.mjs [filter...]  — a filter keeps the files whose path contains it.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join, relative, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const roots = ["packages", "examples", "tck", "tests", "bench"];

function find(dir, out) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    if (e.name === "node_modules" || e.name === "gen" || e.name.startsWith(".")) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) find(p, out);
    else if (e.name.endsWith(".test.ts")) out.push(relative(root, p));
  }
  return out;
}

const filters = process.argv.slice(2);
const files = roots
  .flatMap((r) => find(join(root, r), []))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error("no test files found");
  process.exit(1);
}
const res = spawnSync(
  process.execPath,
  ["--test", "--test-concurrency=2", "--test-timeout=180000", "--import", "tsx", ...files],
  { stdio: "inherit", cwd: root },
);
process.exit(res.status ?? 1);
