// google.api.http path templates (PROTOCOL.md §7):
//
//   Template = "/" [ Segments ] [ ":" Verb ]     Segment  = "*" | "**" | LITERAL | Variable
//   Segments = Segment { "/" Segment }           Variable = "{" FieldPath [ "=" Segments ] "}"
//   FieldPath = IDENT { "." IDENT }
//
// `*` matches one non-empty segment, `**` any number of segments (only last), `{f}` is `{f=*}`.
// A one-segment variable is fully percent-decoded; a multi-segment one keeps `%2F` as is, so
// the `/` it captured stays distinguishable from an escaped one (as the google.api.http spec says).

export type Segment =
  | { readonly kind: "literal"; readonly value: string }
  | { readonly kind: "one" } // `*`
  | { readonly kind: "rest" }; // `**`

export interface TemplateVariable {
  /** The field path, e.g. ["name", "first"] for `{name.first}`. */
  readonly fieldPath: readonly string[];
  /** The template segments the variable spans: [start, end). */
  readonly start: number;
  readonly end: number;
}

export interface PathTemplate {
  readonly text: string;
  readonly segments: readonly Segment[];
  readonly variables: readonly TemplateVariable[];
  readonly verb: string | undefined;
}

export class PathTemplateError extends Error {
  constructor(template: string, why: string) {
    super(`invalid path template "${template}": ${why}`);
    this.name = "PathTemplateError";
  }
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Characters that end a literal; everything else (including %-escapes) belongs to it. */
const LITERAL_END = new Set(["/", "{", "}", "*", ":", "=", "?", "#"]);

export function parsePathTemplate(text: string): PathTemplate {
  const fail = (why: string): never => {
    throw new PathTemplateError(text, why);
  };
  if (!text.startsWith("/")) fail("it must start with /");
  const segments: Segment[] = [];
  const variables: TemplateVariable[] = [];
  let pos = 1;
  const peek = () => text[pos];

  const literal = (): string => {
    const start = pos;
    while (pos < text.length && !LITERAL_END.has(text[pos]!)) pos++;
    if (pos === start) fail(pos < text.length ? `unexpected "${text[pos]}" at ${pos}` : "it ends with an empty segment");
    return text.slice(start, pos);
  };

  const segment = (inVariable: boolean): void => {
    if (text.startsWith("**", pos)) {
      pos += 2;
      segments.push({ kind: "rest" });
    } else if (peek() === "*") {
      pos++;
      segments.push({ kind: "one" });
    } else if (peek() === "{") {
      if (inVariable) fail(`variables cannot be nested (at ${pos})`);
      variable();
    } else {
      segments.push({ kind: "literal", value: literal() });
    }
  };

  const segmentList = (inVariable: boolean): void => {
    segment(inVariable);
    while (peek() === "/") {
      pos++;
      segment(inVariable);
    }
  };

  const variable = (): void => {
    pos++; // {
    const close = text.indexOf("}", pos);
    if (close < 0) fail("a { is never closed");
    const eq = text.indexOf("=", pos);
    const nameEnd = eq >= 0 && eq < close ? eq : close;
    const fieldPath = text.slice(pos, nameEnd).split(".");
    if (!fieldPath.every((p) => IDENT.test(p))) fail(`"${text.slice(pos, nameEnd)}" is not a field path`);
    const dotted = fieldPath.join(".");
    if (variables.some((v) => v.fieldPath.join(".") === dotted)) fail(`the variable ${dotted} appears twice`);
    pos = nameEnd;
    const start = segments.length;
    if (peek() === "=") {
      pos++;
      segmentList(true);
    } else {
      segments.push({ kind: "one" });
    }
    if (peek() !== "}") fail(`expected } at ${pos}`);
    pos++;
    variables.push({ fieldPath, start, end: segments.length });
  };

  // "/" alone is the root; "/:verb" has no segments either.
  if (pos < text.length && peek() !== ":") segmentList(false);
  let verb: string | undefined;
  if (peek() === ":") {
    pos++;
    verb = literal();
  }
  if (pos < text.length) fail(`unexpected "${text[pos]}" at ${pos}`);
  const restAt = segments.findIndex((s) => s.kind === "rest");
  if (restAt >= 0 && restAt !== segments.length - 1) fail("** may only be the last segment");
  return { text, segments, variables, verb };
}

/** A request path split once, for matching against every template. */
export interface RequestPath {
  /** The raw (still percent-encoded) segments. */
  readonly raw: readonly string[];
}

/** Splits the path part of a URL (no query) into raw segments; "/" has none. */
export function splitPath(path: string): RequestPath {
  const body = path.startsWith("/") ? path.slice(1) : path;
  return { raw: body === "" ? [] : body.split("/") };
}

export class PathDecodeError extends Error {
  constructor(segment: string) {
    super(`the path segment "${segment}" is not valid percent-encoding`);
    this.name = "PathDecodeError";
  }
}

function decode(raw: string, keepSlash: boolean): string {
  if (!raw.includes("%")) return raw;
  try {
    return decodeURIComponent(keepSlash ? raw.replace(/%2F/gi, (m) => `%25${m.slice(1)}`) : raw);
  } catch {
    throw new PathDecodeError(raw);
  }
}

/** The value of each template variable, in template order. */
export type Captures = readonly string[];

/**
 * Matches a path against a template; undefined when it does not match. Throws PathDecodeError
 * when a segment it needs to read is malformed percent-encoding.
 */
export function matchPath(template: PathTemplate, path: RequestPath): Captures | undefined {
  let raw = path.raw;
  if (template.verb !== undefined) {
    const suffix = `:${template.verb}`;
    const last = raw[raw.length - 1];
    if (last === undefined || !last.endsWith(suffix)) return undefined;
    raw = [...raw.slice(0, -1), last.slice(0, -suffix.length)];
    // "/v1:verb" against "/:verb": an emptied last segment belongs to no template segment.
    if (raw.length === 1 && raw[0] === "" && template.segments.length === 0) raw = [];
  }
  const { segments } = template;
  const hasRest = segments.length > 0 && segments[segments.length - 1]!.kind === "rest";
  if (hasRest ? raw.length < segments.length - 1 : raw.length !== segments.length) return undefined;
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    if (s.kind === "rest") break;
    const r = raw[i]!;
    if (r === "") return undefined;
    if (s.kind === "literal" && s.value !== r && s.value !== decode(r, false)) return undefined;
  }
  return template.variables.map((v) => {
    const end = v.end === segments.length && hasRest ? raw.length : v.end;
    if (end - v.start === 1 && segments[v.start]!.kind === "one") return decode(raw[v.start]!, false);
    return raw.slice(v.start, end).map((r) => decode(r, true)).join("/");
  });
}

const RANK = { literal: 3, one: 2, rest: 1 } as const;

/**
 * Orders templates most specific first: a verb beats none; then, segment by segment from the left,
 * a literal beats a one-segment wildcard, which beats `**`; a template that is a prefix of another
 * comes first (it is the exact one). Matching in this order picks the most specific match.
 */
export function compareSpecificity(a: PathTemplate, b: PathTemplate): number {
  if ((a.verb === undefined) !== (b.verb === undefined)) return a.verb === undefined ? 1 : -1;
  const n = Math.min(a.segments.length, b.segments.length);
  for (let i = 0; i < n; i++) {
    const d = RANK[b.segments[i]!.kind] - RANK[a.segments[i]!.kind];
    if (d !== 0) return d;
  }
  return a.segments.length - b.segments.length;
}

/** Whether two templates match exactly the same paths (variable names aside): a route conflict. */
export function sameShape(a: PathTemplate, b: PathTemplate): boolean {
  return (
    a.verb === b.verb &&
    a.segments.length === b.segments.length &&
    a.segments.every((s, i) => {
      const t = b.segments[i]!;
      return s.kind === t.kind && (s.kind !== "literal" || s.value === (t as { value: string }).value);
    })
  );
}
