// The CloudEvent a command carries when the proxy delivers it from an eventing source (a topic or an
// event log, PROTOCOL.md §8): its attributes travel as metadata, in the CloudEvents binary mode.
import type { Metadata, MetadataValue } from "./context.js";

/**
 * The CloudEvent attributes of a command the proxy delivered from an eventing source. The event's
 * data is the command's payload (see `eventData` for payloads of methods that take google.protobuf.Any).
 */
export interface CloudEvent {
  /** `ce-id`: unique per source (for an event log, the event's offset). */
  readonly id: string;
  /** `ce-source`: where the event comes from (the topic, or the event log's persistence id); "" if absent. */
  readonly source: string;
  /** `ce-specversion`, e.g. "1.0". */
  readonly specVersion: string;
  /** `ce-type`: what the event is (usually the payload's type name); "" if absent. */
  readonly type: string;
  /** `ce-subject`: what the event is about (for an event log, the entity id). */
  readonly subject?: string;
  /** `ce-time`, when it is a valid RFC 3339 time (the raw value stays in `ctx.metadata`). */
  readonly time?: Date;
  /** The data's media type (`Content-Type`, or `ce-datacontenttype`). */
  readonly contentType?: string;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const utf8 = new TextDecoder();

/** @internal The CloudEvent in `metadata`, or undefined when it has no `ce-specversion` and `ce-id`. */
export function cloudEventOf(metadata: Metadata): CloudEvent | undefined {
  const get = (key: string): string | undefined => text(metadata.get(key));
  const specVersion = get("ce-specversion");
  const id = get("ce-id");
  if (specVersion === undefined || id === undefined) return undefined;
  const event: { -readonly [K in keyof CloudEvent]: CloudEvent[K] } = {
    id,
    source: get("ce-source") ?? "",
    specVersion,
    type: get("ce-type") ?? "",
  };
  const subject = get("ce-subject");
  if (subject !== undefined) event.subject = subject;
  const time = get("ce-time");
  if (time !== undefined && RFC3339.test(time)) {
    const ms = Date.parse(time.replace(" ", "T").toUpperCase());
    if (!Number.isNaN(ms)) event.time = new Date(ms);
  }
  const contentType = get("content-type") ?? get("ce-datacontenttype");
  if (contentType !== undefined) event.contentType = contentType;
  return event;
}

function text(value: MetadataValue | undefined): string | undefined {
  return value === undefined || typeof value === "string" ? value : utf8.decode(value);
}
