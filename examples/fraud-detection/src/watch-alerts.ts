// Follows the "fraud-alerts" topic over HTTP (Server-Sent Events) and prints each alert decoded,
// one JSON line each. Usage: npx tsx examples/fraud-detection/src/watch-alerts.ts [proxy base URL]
// (default http://127.0.0.1:9000; resumes after offset AFTER when set).
import { fromBinary, toJsonString } from "@bufbuild/protobuf";
import { FraudAlertSchema } from "./gen/com/example/fraud/account_pb.js";

const base = process.argv[2] ?? "http://127.0.0.1:9000";
const after = process.env.AFTER ?? "0";
const res = await fetch(`${base}/eventing/topics/fraud-alerts?after=${after}`, { headers: { accept: "text/event-stream" } });
if (res.status !== 200 || res.body === null) {
  process.stderr.write(`GET ${base}/eventing/topics/fraud-alerts: ${res.status} ${await res.text()}\n`);
  process.exit(1);
}
const decoder = new TextDecoder();
let buffer = "";
for await (const chunk of res.body) {
  buffer += decoder.decode(chunk as Uint8Array, { stream: true });
  let end: number;
  while ((end = buffer.indexOf("\n\n")) >= 0) {
    const block = buffer.slice(0, end);
    buffer = buffer.slice(end + 2);
    const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
    if (data === "") continue; // a comment (keep-alive)
    const event = JSON.parse(data) as { offset?: string; time?: string; data_base64?: string };
    const alert = fromBinary(FraudAlertSchema, Buffer.from(event.data_base64 ?? "", "base64"));
    process.stdout.write(`{"offset":${JSON.stringify(event.offset)},"time":${JSON.stringify(event.time)},"alert":${toJsonString(FraudAlertSchema, alert)}}\n`);
  }
}
