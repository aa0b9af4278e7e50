import assert from "node:assert/strict";
import type * as http from "node:http";
import { describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { MetadataSchema } from "@cloudstate-ts/protocol";
import { metadataFromHttp, replyHeaders } from "./headers.js";

describe("HTTP headers and Cloudstate metadata", () => {
  test("request headers become string metadata entries, without hop-by-hop and transport headers", () => {
    const req = {
      headersDistinct: {
        host: ["127.0.0.1:9000"],
        connection: ["keep-alive"],
        "content-type": ["application/json"],
        "content-length": ["2"],
        "transfer-encoding": ["chunked"],
        "user-agent": ["curl/8"],
        authorization: ["Bearer t"],
        "x-tag": ["a", "b"],
      },
    } as unknown as http.IncomingMessage;
    const md = metadataFromHttp(req);
    assert.deepEqual(
      md?.entries.map((e) => [e.key, e.value.case, e.value.value]),
      [
        ["authorization", "stringValue", "Bearer t"],
        ["x-tag", "stringValue", "a"],
        ["x-tag", "stringValue", "b"],
      ],
    );
  });

  test("no forwarded headers is no metadata", () => {
    assert.equal(metadataFromHttp({ headersDistinct: { host: ["h"] } } as unknown as http.IncomingMessage), undefined);
  });

  test("reply metadata: string entries become headers; bytes, transport and invalid ones are dropped", () => {
    const md = create(MetadataSchema, {
      entries: [
        { key: "X-Trace", value: { case: "stringValue", value: "t1" } },
        { key: "x-trace", value: { case: "stringValue", value: "t2" } },
        { key: "x-bin", value: { case: "bytesValue", value: new Uint8Array([1]) } },
        { key: "content-type", value: { case: "stringValue", value: "text/html" } },
        { key: "connection", value: { case: "stringValue", value: "close" } },
        { key: "bad name", value: { case: "stringValue", value: "v" } },
        { key: "x-newline", value: { case: "stringValue", value: "a\r\nb" } },
      ],
    });
    assert.deepEqual(replyHeaders(md), { "x-trace": ["t1", "t2"] });
    assert.deepEqual(replyHeaders(undefined), {});
  });
});
