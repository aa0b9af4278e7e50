// ctx.cloudEvent: the CloudEvent attributes (binary mode) the proxy puts in an eventing delivery's metadata.
import assert from "node:assert/strict";
import { test } from "node:test";
import { BaseContext, Metadata, metadataProto, type MetadataInit } from "./context.js";

const eventOf = (init: MetadataInit) => new BaseContext("Observe", Metadata.fromProto(metadataProto(init))).cloudEvent;

test("a delivery's attributes, typed", () => {
  const event = eventOf({
    "ce-id": "17",
    "ce-source": "counter",
    "ce-specversion": "1.0",
    "ce-type": "sdktest.domain.Added",
    "ce-subject": "acct-1",
    "ce-time": "2024-05-06T07:08:09.123Z",
    "Content-Type": "application/protobuf",
    "x-other": "ignored",
  });
  assert.deepEqual(event, {
    id: "17",
    source: "counter",
    specVersion: "1.0",
    type: "sdktest.domain.Added",
    subject: "acct-1",
    time: new Date(Date.UTC(2024, 4, 6, 7, 8, 9, 123)),
    contentType: "application/protobuf",
  });
});

test("keys compare case-insensitively, and bytes values read as UTF-8", () => {
  const event = eventOf([
    ["CE-ID", "a"],
    ["Ce-SpecVersion", "1.0"],
    ["ce-source", new TextEncoder().encode("tópic")],
    ["CE-TYPE", "t"],
    ["content-type", "text/plain"],
  ]);
  assert.deepEqual(event, { id: "a", source: "tópic", specVersion: "1.0", type: "t", contentType: "text/plain" });
});

test("no cloudEvent without both ce-specversion and ce-id (a client's call)", () => {
  assert.equal(eventOf({}), undefined);
  assert.equal(eventOf({ "x-user": "erin" }), undefined);
  assert.equal(eventOf({ "ce-id": "1", "ce-source": "s", "ce-type": "t" }), undefined, "no specversion");
  assert.equal(eventOf({ "ce-specversion": "1.0", "ce-source": "s", "ce-type": "t" }), undefined, "no id");
});

test("optional attributes stay undefined; a missing source or type reads as empty", () => {
  const event = eventOf({ "ce-specversion": "1.0", "ce-id": "1" });
  assert.deepEqual(event, { id: "1", source: "", specVersion: "1.0", type: "" });
  assert.equal(Object.hasOwn(event!, "subject"), false);
});

test("ce-time: RFC 3339 with offsets and fractions is read; anything else is left out", () => {
  const time = (value: string) => eventOf({ "ce-specversion": "1.0", "ce-id": "1", "ce-time": value })!.time;
  assert.equal(time("2024-05-06T09:08:09+02:00")?.toISOString(), "2024-05-06T07:08:09.000Z");
  assert.equal(time("2024-05-06t07:08:09.123456789z")?.toISOString(), "2024-05-06T07:08:09.123Z");
  assert.equal(time("2024-05-06"), undefined, "a date only");
  assert.equal(time("May 6, 2024"), undefined, "Date.parse would take it; RFC 3339 does not");
  assert.equal(time("2024-13-45T99:99:99Z"), undefined);
});

test("ce-datacontenttype stands in for a missing Content-Type", () => {
  assert.equal(eventOf({ "ce-specversion": "1.0", "ce-id": "1", "ce-datacontenttype": "application/json" })!.contentType, "application/json");
});
