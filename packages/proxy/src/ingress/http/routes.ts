// The HTTP/JSON route table (PROTOCOL.md §7): each method's google.api.http rule with one level of
// additional bindings, plus `POST /<package.Service>/<Method>` with body "*" for every method.
// Built once after discovery; a rule the proxy cannot serve is a DiscoveryError naming the method.
import { getOption, hasOption, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { http, type HttpRule } from "@cloudstate-ts/protocol";
import { DiscoveryError, type MethodModel, type ServiceModel } from "../../discovery/service-model.js";
import {
  compareSpecificity,
  matchPath,
  parsePathTemplate,
  sameShape,
  splitPath,
  PathTemplateError,
  type Captures,
  type PathTemplate,
} from "./path-template.js";

/** Where the request message comes from besides path and query. */
export type BodyRule =
  | { readonly kind: "none" } // body: "" — every field from path and query
  | { readonly kind: "all" } // body: "*" — the JSON body is the message
  | { readonly kind: "field"; readonly path: readonly DescField[] }; // body: "<field>"

export interface HttpRoute {
  /** Upper case: GET, PUT, POST, DELETE, PATCH or a custom kind. */
  readonly httpMethod: string;
  readonly template: PathTemplate;
  readonly service: ServiceModel;
  readonly method: MethodModel;
  /** The fields each template variable sets, in template order. */
  readonly variables: readonly (readonly DescField[])[];
  readonly body: BodyRule;
  /** response_body: the top-level output field whose JSON is the whole response. */
  readonly responseBody: DescField | undefined;
  /** Whether this is the generated `POST /<package.Service>/<Method>` route. */
  readonly isDefault: boolean;
}

export interface RouteMatch {
  readonly route: HttpRoute;
  readonly captures: Captures;
}

export class RouteTable {
  private readonly byMethod = new Map<string, HttpRoute[]>();

  constructor(readonly routes: readonly HttpRoute[]) {
    for (const route of routes) {
      let list = this.byMethod.get(route.httpMethod);
      if (!list) this.byMethod.set(route.httpMethod, (list = []));
      list.push(route);
    }
    for (const list of this.byMethod.values()) list.sort((a, b) => compareSpecificity(a.template, b.template));
  }

  /**
   * The most specific route for a request; HEAD falls back to the GET routes. Throws
   * PathDecodeError for a malformed percent-escape in a segment a route reads.
   */
  find(httpMethod: string, path: string): RouteMatch | undefined {
    const split = splitPath(path);
    const list = this.byMethod.get(httpMethod) ?? (httpMethod === "HEAD" ? this.byMethod.get("GET") : undefined);
    for (const route of list ?? []) {
      const captures = matchPath(route.template, split);
      if (captures) return { route, captures };
    }
    return undefined;
  }

  /** The HTTP methods that have a route for this path (for a helpful "no route" message). */
  methodsFor(path: string): string[] {
    const split = splitPath(path);
    const out: string[] = [];
    for (const [m, list] of this.byMethod) {
      if (list.some((r) => matchPath(r.template, split) !== undefined)) out.push(m);
    }
    return out.sort();
  }
}

/** Builds and checks every route of the user's services. */
export function buildRoutes(services: Iterable<ServiceModel>): RouteTable {
  const routes: HttpRoute[] = [];
  for (const service of services) {
    for (const method of service.methods.values()) {
      const where = `${service.name}.${method.name}`;
      if (hasOption(method.desc, http)) {
        const rule = getOption(method.desc, http);
        routes.push(...routesOf(rule, service, method, where, true));
      }
      const defaultPath = `/${service.name}/${method.name}`;
      // A rule that already is the default route needs no second copy.
      if (!routes.some((r) => r.method === method && r.httpMethod === "POST" && r.template.text === defaultPath && r.body.kind === "all")) {
        routes.push({
          httpMethod: "POST",
          template: parsePathTemplate(defaultPath),
          service,
          method,
          variables: [],
          body: { kind: "all" },
          responseBody: undefined,
          isDefault: true,
        });
      }
    }
  }
  checkConflicts(routes);
  return new RouteTable(routes);
}

function routesOf(rule: HttpRule, service: ServiceModel, method: MethodModel, where: string, topLevel: boolean): HttpRoute[] {
  const fail = (why: string): never => {
    throw new DiscoveryError(`${where}: its google.api.http option ${why}`);
  };
  const out: HttpRoute[] = [];
  const pattern = rule.pattern;
  if (pattern.case !== undefined) {
    let httpMethod: string;
    let text: string;
    if (pattern.case === "custom") {
      httpMethod = pattern.value.kind.toUpperCase();
      text = pattern.value.path;
      if (!/^[A-Z][A-Z0-9_-]*$/.test(httpMethod)) fail(`has a custom pattern with kind "${pattern.value.kind}", which is not an HTTP method name`);
    } else {
      httpMethod = pattern.case.toUpperCase();
      text = pattern.value;
    }
    let template: PathTemplate;
    try {
      template = parsePathTemplate(text);
    } catch (e) {
      if (!(e instanceof PathTemplateError)) throw e;
      return fail(`has an ${e.message}`);
    }
    const input = method.desc.input;
    const variables = template.variables.map((v) => {
      const path = resolveFieldPath(input, v.fieldPath, (why) => fail(`path "${text}": ${why}`));
      const last = path[path.length - 1]!;
      if (last.fieldKind !== "scalar" && last.fieldKind !== "enum") {
        fail(`path "${text}": the variable ${v.fieldPath.join(".")} is a ${last.fieldKind} field; a path variable must set a single scalar or enum field`);
      }
      return path;
    });
    let body: BodyRule;
    if (rule.body === "") body = { kind: "none" };
    else if (rule.body === "*") body = { kind: "all" };
    else body = { kind: "field", path: resolveFieldPath(input, rule.body.split("."), (why) => fail(`body "${rule.body}": ${why}`)) };
    let responseBody: DescField | undefined;
    if (rule.responseBody !== "") {
      responseBody = method.desc.output.fields.find((f) => f.name === rule.responseBody || f.jsonName === rule.responseBody);
      if (!responseBody) fail(`response_body "${rule.responseBody}": ${method.desc.output.typeName} has no field ${rule.responseBody}`);
    }
    out.push({ httpMethod, template, service, method, variables, body, responseBody, isDefault: false });
  } else if (topLevel && rule.additionalBindings.length === 0) {
    fail(`sets no pattern (get, put, post, delete, patch or custom)`);
  }
  if (rule.additionalBindings.length > 0) {
    if (!topLevel) fail(`nests additional_bindings inside additional_bindings; only one level is allowed`);
    for (const binding of rule.additionalBindings) {
      if (binding.pattern.case === undefined) fail(`has an additional binding without a pattern`);
      out.push(...routesOf(binding, service, method, where, false));
    }
  }
  return out;
}

/** Resolves a dotted field path (proto or JSON names) through singular message fields. */
export function resolveFieldPath(message: DescMessage, names: readonly string[], fail: (why: string) => never): DescField[] {
  const path: DescField[] = [];
  let current: DescMessage | undefined = message;
  for (const [i, name] of names.entries()) {
    if (!current) fail(`${names.slice(0, i).join(".")} is not a message field, so it has no field ${name}`);
    const field: DescField | undefined = current!.fields.find((f) => f.name === name || f.jsonName === name);
    if (!field) return fail(`${current!.typeName} has no field ${name}`);
    path.push(field);
    current = field.fieldKind === "message" ? field.message : undefined;
    if (i < names.length - 1 && field.fieldKind !== "message") {
      fail(`${field.name} is a ${field.fieldKind === "scalar" || field.fieldKind === "enum" ? "scalar" : field.fieldKind} field, so it has no field ${names[i + 1]}`);
    }
  }
  return path;
}

function checkConflicts(routes: readonly HttpRoute[]): void {
  for (let i = 0; i < routes.length; i++) {
    for (let j = i + 1; j < routes.length; j++) {
      const a = routes[i]!;
      const b = routes[j]!;
      if (a.httpMethod !== b.httpMethod || !sameShape(a.template, b.template)) continue;
      const name = (r: HttpRoute) => `${r.service.name}.${r.method.name}`;
      const describe = (r: HttpRoute) => `${name(r)} (${r.isDefault ? "default route " : ""}${r.httpMethod} ${r.template.text})`;
      const same = a.method === b.method ? ` twice` : "";
      throw new DiscoveryError(
        `HTTP route conflict${same}: ${describe(a)} and ${describe(b)} match the same requests; change one google.api.http path`,
      );
    }
  }
}
