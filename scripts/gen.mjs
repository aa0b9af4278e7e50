// Generates TypeScript from .proto files with buf + protoc-gen-es (both from npm; no network).
// Run `npm run gen` after changing any .proto file; the generated code is committed.
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", name);

// [proto folder (a module of buf.yaml), output folder, also generate the files it imports]
const targets = [
  ["proto", "packages/protocol/src/gen", false],
  // A user's generated code needs the Cloudstate annotation files beside it (protobuf-es imports them relatively).
  ["examples/shopping-cart/proto", "examples/shopping-cart/src/gen", true],
  ["examples/chat/proto", "examples/chat/src/gen", true],
  ["examples/counter/proto", "examples/counter/src/gen", true],
  ["examples/value-cart/proto", "examples/value-cart/src/gen", true],
  ["examples/fraud-detection/proto", "examples/fraud-detection/src/gen", true],
  ["packages/sdk/testdata/proto", "packages/sdk/src/testdata/gen", true],
  ["tck/proto", "tck/src/gen", true],
  ["bench/proto", "bench/src/gen", true],
];

for (const [input, out, withImports] of targets) {
  const template = {
    version: "v2",
    plugins: [{ local: bin("protoc-gen-es"), out: join(root, out), opt: ["target=ts", "import_extension=js"] }],
  };
  rmSync(join(root, out), { recursive: true, force: true });
  mkdirSync(join(root, out), { recursive: true });
  const tmp = join(root, "node_modules", ".cache", "buf.gen.json");
  mkdirSync(dirname(tmp), { recursive: true });
  writeFileSync(tmp, JSON.stringify(template));
  const args = ["generate", input, "--template", tmp];
  if (withImports) args.push("--include-imports");
  execFileSync(bin("buf"), args, { stdio: "inherit", cwd: root });
  console.log(`generated ${out} from ${input}`);
}
