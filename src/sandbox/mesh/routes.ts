// biome-ignore-all lint/suspicious/noExplicitAny: Kubernetes objects arrive as JSON from a watch; fields are read defensively.

import { qualifyHost } from '../../mesh/host.ts';
import type { Endpoint as PodEndpoint } from '../pods/endpoints.ts';

/**
 * The mesh gateway's decision, kept pure as Envoy keeps it: `compileRoutes` turns the watched
 * VirtualServices, DestinationRules, Services and Pods into a route table, and `route` looks a
 * request up in it. Nothing here does I/O; the proxy (gateway.ts) only forwards what `route` chose.
 */

/** The pod annotation naming the port its process listens on (the contract with the pod runtime). */
export const POD_PORT_ANNOTATION = 'sandbox.vane.dev/port';

/** Istio's gateway name for sidecars: routes bound to other gateways do not apply here. */
const MESH = 'mesh';

export interface StringMatch {
  exact?: string;
  prefix?: string;
  regex?: string;
}

interface CompiledStringMatch {
  test(value: string | undefined): boolean;
}

interface CompiledMatch {
  uri?: CompiledStringMatch;
  method?: CompiledStringMatch;
  authority?: CompiledStringMatch;
  scheme?: CompiledStringMatch;
  headers: [string, CompiledStringMatch][];
  withoutHeaders: [string, CompiledStringMatch][];
  queryParams: [string, CompiledStringMatch][];
  port?: number;
  sourceNamespace?: string;
  /** false when the match names gateways and `mesh` is not one of them. */
  appliesToMesh: boolean;
}

export interface Percentage {
  /** 0..100 */
  value: number;
}

export interface RouteDestination {
  /** FQDN of the destination host, qualified in the VirtualService's namespace. */
  host: string;
  subset?: string;
  weight: number;
}

export interface RetryPolicy {
  attempts: number;
  perTryTimeoutMs?: number;
  /** Envoy retry conditions: 5xx, gateway-error, connect-failure, reset, refused-stream, retriable-status-codes, or HTTP codes. */
  retryOn: string[];
}

export interface FaultPolicy {
  delay?: { fixedDelayMs: number; percentage: number };
  abort?: { httpStatus: number; percentage: number };
}

export interface MirrorPolicy {
  host: string;
  subset?: string;
  /** 0..100 */
  percentage: number;
}

/** Header operations of a route (Istio's `headers.request` / `headers.response`). */
export interface HeaderOps {
  set: [string, string][];
  add: [string, string][];
  remove: string[];
}

/** A route answered by the proxy itself: Istio's directResponse or redirect. */
export interface LocalAnswer {
  status: number;
  body?: string;
  redirect?: { uri?: string; authority?: string; scheme?: string; port?: number };
}

export interface CompiledRoute {
  name?: string;
  /** OR of matches; empty means every request. */
  matches: CompiledMatch[];
  /** Empty when the route answers locally. */
  destinations: RouteDestination[];
  local?: LocalAnswer;
  requestHeaders?: HeaderOps;
  responseHeaders?: HeaderOps;
  /** Undefined: no timeout (Istio's default), bounded by the gateway's own cap. */
  timeoutMs?: number;
  retries: RetryPolicy;
  fault?: FaultPolicy;
  mirrors: MirrorPolicy[];
}

export interface CompiledVirtualService {
  namespace: string;
  name: string;
  /** Hosts qualified in the VirtualService's namespace (wildcards kept as written). */
  hosts: string[];
  /** exportTo '.' only: visible to callers in its own namespace. */
  localOnly: boolean;
  createdAt: string;
  /** The object's resourceVersion when compiled. */
  resourceVersion: string;
  http: CompiledRoute[];
}

/** A ready pod behind a Service (as the pod runtime lists them), with its workload. */
export interface Endpoint extends PodEndpoint {
  /** The pod's workload (its Deployment), as Istio's destination_workload names it. */
  workload: string;
}

export interface ServiceEntry {
  name: string;
  namespace: string;
  fqdn: string;
  selector: Record<string, string>;
}

export interface RouteTable {
  virtualServices: CompiledVirtualService[];
  /** By FQDN. */
  services: Map<string, ServiceEntry>;
  /** By FQDN, then namespace of the DestinationRule: subset name → labels. */
  destinationRules: Map<string, Map<string, Map<string, Record<string, string>>>>;
  /** Ready endpoints by namespace. */
  endpoints: Map<string, Endpoint[]>;
  /** Objects that could not be compiled, with the reason (they are left out, as Istio rejects them). */
  problems: string[];
  /** Round-robin cursors per cluster: the only state, as an Envoy load balancer keeps. */
  cursors: Map<string, number>;
}

export interface RouteRequest {
  /** The Host header (or :authority), with or without port. */
  host: string;
  /** Path with query string. */
  path: string;
  method: string;
  /** Lower-case names. */
  headers: Record<string, string | string[] | undefined>;
  /** The caller's namespace. Default `default`. */
  namespace?: string;
  scheme?: string;
}

/** A destination resolved to one pod, with the route's policies. */
export interface RouteHit {
  kind: 'route';
  /** FQDN the request was routed to. */
  host: string;
  subset?: string;
  service?: ServiceEntry;
  endpoint: Endpoint;
  /** Every endpoint of the chosen cluster (retries pick among them). */
  cluster: Endpoint[];
  clusterKey: string;
  route?: CompiledRoute;
  virtualService?: { namespace: string; name: string };
}

/** What Envoy answers itself when it cannot route. */
export interface RouteFailure {
  kind: 'failure';
  status: number;
  /** Envoy response flag: NR (no route), UH (no healthy upstream), NC (no cluster). */
  flags: string;
  message: string;
  host: string;
  subset?: string;
  service?: ServiceEntry;
  route?: CompiledRoute;
  virtualService?: { namespace: string; name: string };
}

/** A route the proxy answers itself (directResponse or redirect). */
export interface RouteLocal {
  kind: 'local';
  host: string;
  service?: ServiceEntry;
  route: CompiledRoute;
  answer: LocalAnswer;
  virtualService: { namespace: string; name: string };
}

export type RouteResult = RouteHit | RouteFailure | RouteLocal;

const GO_DURATION = /^(?:(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns))+$/;
const GO_DURATION_PART = /(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/g;
const UNIT_MS: Record<string, number> = {
  h: 3_600_000,
  m: 60_000,
  s: 1000,
  ms: 1,
  us: 0.001,
  µs: 0.001,
  ns: 1e-6,
};

/** An Istio (protobuf / Go) duration such as "2s", "0.5s", "1m30s", "250ms" → milliseconds. */
export function parseIstioDuration(s: unknown, field: string): number {
  if (typeof s !== 'string' || !GO_DURATION.test(s.trim()))
    throw new Error(
      `${field}: ${JSON.stringify(s)} is not a duration; write one such as "2s", "0.5s" or "250ms"`,
    );
  let ms = 0;
  for (const m of s.trim().matchAll(GO_DURATION_PART)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  return ms;
}

function compileStringMatch(
  m: any,
  field: string,
  { presence = false, ignoreCase = false } = {},
): CompiledStringMatch {
  if (!m || typeof m !== 'object')
    throw new Error(`${field}: expected an object with exact, prefix or regex`);
  const keys = Object.keys(m).filter((k) => m[k] !== undefined);
  // For headers and query parameters, an empty match asks only that the name is present.
  if (keys.length === 0 && presence) return { test: (v) => v !== undefined };
  if (keys.length !== 1 || !['exact', 'prefix', 'regex'].includes(keys[0]!))
    throw new Error(`${field}: give exactly one of exact, prefix, regex (got ${keys.join(', ') || 'none'})`);
  const kind = keys[0]!;
  const want = ignoreCase && kind !== 'regex' ? String(m[kind]).toLowerCase() : String(m[kind]);
  const norm = (v: string | undefined) => (ignoreCase ? v?.toLowerCase() : v);
  if (kind === 'exact') return { test: (v) => norm(v) === want };
  if (kind === 'prefix') return { test: (v) => norm(v)?.startsWith(want) === true };
  let re: RegExp;
  try {
    // Envoy's safe_regex (RE2) matches the whole value.
    re = new RegExp(`^(?:${want})$`, ignoreCase ? 'i' : '');
  } catch (e) {
    throw new Error(`${field}.regex: ${(e as Error).message}`);
  }
  return { test: (v) => v !== undefined && re.test(v) };
}

function compileMatchMap(m: any, field: string): [string, CompiledStringMatch][] {
  if (m === undefined || m === null) return [];
  return Object.entries(m).map(([k, v]) => [
    k.toLowerCase(),
    compileStringMatch(v, `${field}.${k}`, { presence: true }),
  ]);
}

function compileMatch(m: any, field: string): CompiledMatch {
  const gateways: unknown = m?.gateways;
  return {
    uri: m?.uri
      ? compileStringMatch(m.uri, `${field}.uri`, { ignoreCase: m.ignoreUriCase === true })
      : undefined,
    method: m?.method ? compileStringMatch(m.method, `${field}.method`) : undefined,
    authority: m?.authority ? compileStringMatch(m.authority, `${field}.authority`) : undefined,
    scheme: m?.scheme ? compileStringMatch(m.scheme, `${field}.scheme`) : undefined,
    headers: compileMatchMap(m?.headers, `${field}.headers`),
    withoutHeaders: compileMatchMap(m?.withoutHeaders, `${field}.withoutHeaders`),
    // Query parameter names are case-sensitive; keep them as written.
    queryParams: Object.entries(m?.queryParams ?? {}).map(([k, v]) => [
      k,
      compileStringMatch(v, `${field}.queryParams.${k}`, { presence: true }),
    ]),
    port: typeof m?.port === 'number' ? m.port : undefined,
    sourceNamespace: typeof m?.sourceNamespace === 'string' ? m.sourceNamespace : undefined,
    appliesToMesh: !Array.isArray(gateways) || gateways.length === 0 || gateways.includes(MESH),
  };
}

function percentage(p: any, legacy: any, field: string): number {
  const v = p?.value ?? (typeof legacy === 'number' ? legacy : undefined);
  if (v === undefined) return 100;
  if (typeof v !== 'number' || v < 0 || v > 100)
    throw new Error(`${field}: percentage ${JSON.stringify(v)} must be a number from 0 to 100`);
  return v;
}

/** Istio's retry policy when a route sets none. */
export const DEFAULT_RETRIES: RetryPolicy = {
  attempts: 2,
  retryOn: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes', '503'],
};

function compileRetries(r: any, field: string): RetryPolicy {
  if (r === undefined || r === null) return DEFAULT_RETRIES;
  const attempts = r.attempts ?? 0;
  if (!Number.isInteger(attempts) || attempts < 0)
    throw new Error(`${field}.attempts: ${JSON.stringify(attempts)} must be a whole number >= 0`);
  return {
    attempts,
    perTryTimeoutMs:
      r.perTryTimeout !== undefined
        ? parseIstioDuration(r.perTryTimeout, `${field}.perTryTimeout`)
        : undefined,
    retryOn:
      typeof r.retryOn === 'string' && r.retryOn.trim()
        ? r.retryOn
            .split(',')
            .map((s: string) => s.trim())
            .filter(Boolean)
        : DEFAULT_RETRIES.retryOn,
  };
}

function compileFault(f: any, field: string): FaultPolicy | undefined {
  if (!f) return undefined;
  const out: FaultPolicy = {};
  if (f.delay) {
    out.delay = {
      fixedDelayMs: parseIstioDuration(f.delay.fixedDelay, `${field}.delay.fixedDelay`),
      percentage: percentage(f.delay.percentage, f.delay.percent, `${field}.delay.percentage`),
    };
  }
  if (f.abort) {
    const s = f.abort.httpStatus;
    if (!Number.isInteger(s) || s < 200 || s > 599)
      throw new Error(
        `${field}.abort.httpStatus: ${JSON.stringify(s)} must be an HTTP status from 200 to 599`,
      );
    out.abort = {
      httpStatus: s,
      percentage: percentage(f.abort.percentage, undefined, `${field}.abort.percentage`),
    };
  }
  return out;
}

function compileHeaderOps(h: any, field: string): HeaderOps | undefined {
  if (!h) return undefined;
  const pairs = (o: any, f: string): [string, string][] => {
    if (o === undefined || o === null) return [];
    if (typeof o !== 'object') throw new Error(`${field}.${f}: expected a map of header names to values`);
    return Object.entries(o).map(([k, v]) => [k.toLowerCase(), String(v)]);
  };
  return {
    set: pairs(h.set, 'set'),
    add: pairs(h.add, 'add'),
    remove: (Array.isArray(h.remove) ? h.remove : []).map((k: string) => String(k).toLowerCase()),
  };
}

function compileLocal(r: any, field: string): LocalAnswer | undefined {
  if (r?.directResponse) {
    const status = r.directResponse.status;
    if (!Number.isInteger(status) || status < 200 || status > 599)
      throw new Error(
        `${field}.directResponse.status: ${JSON.stringify(status)} must be an HTTP status from 200 to 599`,
      );
    const b = r.directResponse.body;
    const body = b?.string ?? (b?.bytes ? Buffer.from(String(b.bytes), 'base64').toString() : undefined);
    return { status, ...(body !== undefined ? { body } : {}) };
  }
  if (r?.redirect) {
    const x = r.redirect;
    return {
      status: x.redirectCode ?? 301,
      redirect: {
        ...(x.uri ? { uri: String(x.uri) } : {}),
        ...(x.authority ? { authority: String(x.authority) } : {}),
        ...(x.scheme ? { scheme: String(x.scheme) } : {}),
        ...(typeof x.port === 'number' ? { port: x.port } : {}),
      },
    };
  }
  return undefined;
}

function compileRoute(r: any, ns: string, field: string): CompiledRoute {
  const dests: any[] = Array.isArray(r?.route) ? r.route : [];
  const local = compileLocal(r, field);
  if (dests.length === 0 && !local)
    throw new Error(`${field}.route: a route needs at least one destination, a redirect or a directResponse`);
  const destinations = dests.map((d, i) => {
    const host = d?.destination?.host;
    if (typeof host !== 'string' || !host) throw new Error(`${field}.route[${i}].destination.host: required`);
    const w = d.weight ?? (dests.length === 1 ? 100 : 0);
    if (typeof w !== 'number' || w < 0) throw new Error(`${field}.route[${i}].weight: must be >= 0`);
    return {
      host: qualifyHost(host, ns),
      ...(d.destination.subset ? { subset: String(d.destination.subset) } : {}),
      weight: w,
    };
  });
  const requestHeaders = compileHeaderOps(r.headers?.request, `${field}.headers.request`);
  const responseHeaders = compileHeaderOps(r.headers?.response, `${field}.headers.response`);
  if (destinations.length > 1 && destinations.reduce((s, d) => s + d.weight, 0) === 0)
    throw new Error(`${field}.route: the weights total 0; Istio refuses such a route`);
  const mirrors: MirrorPolicy[] = [];
  if (r.mirror?.host)
    mirrors.push({
      host: qualifyHost(r.mirror.host, ns),
      ...(r.mirror.subset ? { subset: String(r.mirror.subset) } : {}),
      percentage: percentage(r.mirrorPercentage, r.mirrorPercent, `${field}.mirrorPercentage`),
    });
  for (const [i, m] of (Array.isArray(r.mirrors) ? r.mirrors : []).entries()) {
    if (!m?.destination?.host) throw new Error(`${field}.mirrors[${i}].destination.host: required`);
    mirrors.push({
      host: qualifyHost(m.destination.host, ns),
      ...(m.destination.subset ? { subset: String(m.destination.subset) } : {}),
      percentage: percentage(m.percentage, undefined, `${field}.mirrors[${i}].percentage`),
    });
  }
  const matches = (Array.isArray(r.match) ? r.match : []).map((m: any, i: number) =>
    compileMatch(m, `${field}.match[${i}]`),
  );
  const timeoutMs = r.timeout !== undefined ? parseIstioDuration(r.timeout, `${field}.timeout`) : undefined;
  return {
    ...(r.name ? { name: String(r.name) } : {}),
    matches,
    destinations,
    ...(local ? { local } : {}),
    ...(requestHeaders ? { requestHeaders } : {}),
    ...(responseHeaders ? { responseHeaders } : {}),
    // 0s disables the timeout, as in Istio.
    ...(timeoutMs ? { timeoutMs } : {}),
    retries: compileRetries(r.retries, `${field}.retries`),
    ...(r.fault ? { fault: compileFault(r.fault, `${field}.fault`) } : {}),
    mirrors,
  };
}

function labelsMatch(selector: Record<string, string>, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}

function isReady(pod: any): boolean {
  if (pod?.metadata?.deletionTimestamp) return false;
  const conds: any[] = pod?.status?.conditions ?? [];
  return conds.some((c) => c?.type === 'Ready' && c?.status === 'True');
}

/** The workload of a pod as Istio names it: its Deployment, from the owner or the pod-name pattern. */
export function workloadOf(pod: any): string {
  const name: string = pod?.metadata?.name ?? 'unknown';
  const owner =
    (pod?.metadata?.ownerReferences ?? []).find((o: any) => o?.controller) ??
    pod?.metadata?.ownerReferences?.[0];
  if (owner?.kind === 'ReplicaSet' && typeof owner.name === 'string')
    return owner.name.replace(/-[a-z0-9]{5,10}$/, '');
  if (owner?.name) return String(owner.name);
  const gen: string | undefined = pod?.metadata?.generateName;
  if (gen) return gen.replace(/-$/, '').replace(/-[a-z0-9]{5,10}$/, '');
  const m = /^(.+)-[a-z0-9]{5,10}-[a-z0-9]{5}$/.exec(name);
  return m ? m[1]! : name;
}

export interface MeshObjects {
  virtualServices: any[];
  destinationRules: any[];
  services: any[];
  pods: any[];
}

/** Compiles the watched objects into a route table. Objects Istio would reject are left out and listed in `problems`. */
export function compileRoutes(objects: MeshObjects): RouteTable {
  const problems: string[] = [];
  const virtualServices: CompiledVirtualService[] = [];
  for (const vs of objects.virtualServices) {
    const ns = vs?.metadata?.namespace ?? 'default';
    const name = vs?.metadata?.name ?? '?';
    const spec = vs?.spec ?? {};
    const gws: unknown = spec.gateways;
    // A VirtualService bound to gateways applies to sidecars only when `mesh` is among them.
    if (Array.isArray(gws) && gws.length > 0 && !gws.includes(MESH)) continue;
    try {
      const http = (Array.isArray(spec.http) ? spec.http : []).map((r: any, i: number) =>
        compileRoute(r, ns, `VirtualService ${ns}/${name} spec.http[${i}]`),
      );
      virtualServices.push({
        namespace: ns,
        name,
        hosts: (Array.isArray(spec.hosts) ? spec.hosts : []).map((h: string) => qualifyHost(String(h), ns)),
        localOnly:
          Array.isArray(spec.exportTo) &&
          spec.exportTo.length > 0 &&
          spec.exportTo.every((e: string) => e === '.' || e === ns),
        createdAt: vs?.metadata?.creationTimestamp ?? '',
        resourceVersion: String(vs?.metadata?.resourceVersion ?? ''),
        http,
      });
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  // Istio merges VirtualServices of one host by age; the oldest wins where they overlap.
  virtualServices.sort((a, b) =>
    a.createdAt !== b.createdAt
      ? a.createdAt < b.createdAt
        ? -1
        : 1
      : `${a.namespace}/${a.name}` < `${b.namespace}/${b.name}`
        ? -1
        : 1,
  );

  const services = new Map<string, ServiceEntry>();
  for (const s of objects.services) {
    const ns = s?.metadata?.namespace ?? 'default';
    const name = s?.metadata?.name;
    if (!name) continue;
    const fqdn = qualifyHost(name, ns);
    services.set(fqdn, { name, namespace: ns, fqdn, selector: { ...(s?.spec?.selector ?? {}) } });
  }

  const destinationRules: RouteTable['destinationRules'] = new Map();
  for (const dr of objects.destinationRules) {
    const ns = dr?.metadata?.namespace ?? 'default';
    const host = dr?.spec?.host;
    if (typeof host !== 'string') continue;
    const fqdn = qualifyHost(host, ns);
    const byNs = destinationRules.get(fqdn) ?? new Map();
    const subsets = new Map<string, Record<string, string>>();
    for (const s of Array.isArray(dr?.spec?.subsets) ? dr.spec.subsets : [])
      if (s?.name) subsets.set(String(s.name), { ...(s.labels ?? {}) });
    byNs.set(ns, subsets);
    destinationRules.set(fqdn, byNs);
  }

  const endpoints = new Map<string, Endpoint[]>();
  for (const p of objects.pods) {
    const port = Number(p?.metadata?.annotations?.[POD_PORT_ANNOTATION]);
    const ip = p?.status?.podIP;
    if (!isReady(p) || !ip || !Number.isInteger(port) || port <= 0) continue;
    const ns = p.metadata.namespace ?? 'default';
    const list = endpoints.get(ns) ?? [];
    list.push({
      pod: p.metadata.name,
      namespace: ns,
      ip,
      port,
      labels: { ...(p.metadata.labels ?? {}) },
      workload: workloadOf(p),
    });
    endpoints.set(ns, list);
  }
  for (const list of endpoints.values()) list.sort((a, b) => (a.pod < b.pod ? -1 : a.pod > b.pod ? 1 : 0));

  return { virtualServices, services, destinationRules, endpoints, problems, cursors: new Map() };
}

function hostMatches(pattern: string, fqdn: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('*.')) return fqdn.endsWith(pattern.slice(1));
  return pattern === fqdn;
}

function header(req: RouteRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

function splitHost(host: string): { name: string; port?: number } {
  const h = host.trim().toLowerCase();
  const m = /^(.*?)(?::(\d+))?$/.exec(h);
  return { name: m?.[1] ?? h, ...(m?.[2] ? { port: Number(m[2]) } : {}) };
}

function matchApplies(
  m: CompiledMatch,
  req: RouteRequest,
  path: string,
  query: URLSearchParams,
  port: number | undefined,
  callerNs: string,
): boolean {
  if (!m.appliesToMesh) return false;
  if (m.uri && !m.uri.test(path)) return false;
  if (m.method && !m.method.test(req.method.toUpperCase())) return false;
  if (m.authority && !m.authority.test(req.host)) return false;
  if (m.scheme && !m.scheme.test(req.scheme ?? 'http')) return false;
  if (m.port !== undefined && port !== undefined && m.port !== port) return false;
  if (m.sourceNamespace !== undefined && m.sourceNamespace !== callerNs) return false;
  for (const [k, sm] of m.headers) if (!sm.test(header(req, k))) return false;
  for (const [k, sm] of m.withoutHeaders) if (sm.test(header(req, k))) return false;
  for (const [k, sm] of m.queryParams) if (!sm.test(query.get(k) ?? undefined)) return false;
  return true;
}

/** The first matching route of a VirtualService, in order; a route without matches takes every request. */
export function firstMatchingRoute(vs: CompiledVirtualService, req: RouteRequest): CompiledRoute | undefined {
  const q = req.path.indexOf('?');
  const path = q < 0 ? req.path : req.path.slice(0, q);
  const query = new URLSearchParams(q < 0 ? '' : req.path.slice(q + 1));
  const { port } = splitHost(req.host);
  const callerNs = req.namespace ?? 'default';
  return vs.http.find(
    (r) => r.matches.length === 0 || r.matches.some((m) => matchApplies(m, req, path, query, port, callerNs)),
  );
}

/** The VirtualService a caller in `namespace` sees for `fqdn`: its own namespace first, then the oldest. */
export function findVirtualService(
  table: RouteTable,
  fqdn: string,
  namespace: string,
): CompiledVirtualService | undefined {
  let found: CompiledVirtualService | undefined;
  for (const vs of table.virtualServices) {
    if (vs.localOnly && vs.namespace !== namespace) continue;
    if (!vs.hosts.some((h) => hostMatches(h, fqdn))) continue;
    if (vs.namespace === namespace) return vs;
    found ??= vs;
  }
  return found;
}

/** Picks by relative weight (DESIGN rule 10): destination i gets weight_i / sum. `random` in [0, 1). */
export function pickWeighted<T extends { weight: number }>(items: readonly T[], random: number): T {
  if (items.length === 1) return items[0]!;
  const total = items.reduce((s, d) => s + d.weight, 0);
  let x = random * total;
  for (const d of items) {
    if (d.weight <= 0) continue;
    if (x < d.weight) return d;
    x -= d.weight;
  }
  // random*total rounds up to total only by floating error: the last positive weight.
  return [...items].reverse().find((d) => d.weight > 0) ?? items[0]!;
}

/**
 * The ready endpoints of host + subset: the Service's selector plus the subset's labels from the
 * DestinationRule (the caller's namespace first, then the service's, then any). Undefined when the
 * subset is not defined (Envoy has no such cluster).
 */
export function resolveCluster(
  table: RouteTable,
  host: string,
  subset: string | undefined,
  callerNs: string,
): { service?: ServiceEntry; endpoints: Endpoint[] } | undefined {
  const service = table.services.get(host);
  if (!service) return subset ? undefined : { endpoints: [] };
  let labels: Record<string, string> = {};
  if (subset) {
    const byNs = table.destinationRules.get(host);
    const subsets =
      byNs?.get(callerNs) ?? byNs?.get(service.namespace) ?? (byNs ? [...byNs.values()][0] : undefined);
    const l = subsets?.get(subset);
    if (!l) return undefined;
    labels = l;
  }
  // A Service without a selector has no endpoints managed for it.
  if (Object.keys(service.selector).length === 0) return { service, endpoints: [] };
  const endpoints = (table.endpoints.get(service.namespace) ?? []).filter(
    (e) => labelsMatch(service.selector, e.labels) && labelsMatch(labels, e.labels),
  );
  return { service, endpoints };
}

/** Round robin over a cluster; `avoid` are pods a retry already tried (Envoy's previous_hosts). */
export function pickEndpoint(
  table: RouteTable,
  key: string,
  cluster: readonly Endpoint[],
  avoid: ReadonlySet<string> = new Set(),
): Endpoint {
  const fresh = cluster.filter((e) => !avoid.has(e.pod));
  const from = fresh.length > 0 ? fresh : cluster;
  const i = table.cursors.get(key) ?? 0;
  table.cursors.set(key, (i + 1) % 1_000_000_000);
  return from[i % from.length]!;
}

/**
 * Routes one request: VirtualService by Host in the caller's namespace, first matching http route,
 * a destination by relative weight (`random` in [0, 1)), then host + subset → ready pods (round
 * robin). Without a VirtualService, round robin over the Service's ready pods.
 */
export function route(table: RouteTable, req: RouteRequest, random: number): RouteResult {
  const callerNs = req.namespace ?? 'default';
  const { name } = splitHost(req.host);
  const fqdn = qualifyHost(name, callerNs);
  const vs = findVirtualService(table, fqdn, callerNs);
  let host = fqdn;
  let subset: string | undefined;
  let chosen: CompiledRoute | undefined;
  const vsRef = vs ? { namespace: vs.namespace, name: vs.name } : undefined;
  if (vs) {
    chosen = firstMatchingRoute(vs, req);
    if (!chosen)
      return {
        kind: 'failure',
        status: 404,
        flags: 'NR',
        message: `no route matched in VirtualService ${vs.namespace}/${vs.name}`,
        host: fqdn,
        service: table.services.get(fqdn),
        virtualService: vsRef,
      };
    if (chosen.local)
      return {
        kind: 'local',
        host: fqdn,
        service: table.services.get(fqdn),
        route: chosen,
        answer: chosen.local,
        virtualService: vsRef!,
      };
    const d = pickWeighted(chosen.destinations, random);
    host = d.host;
    subset = d.subset;
  } else if (!table.services.has(fqdn)) {
    return {
      kind: 'failure',
      status: 404,
      flags: 'NR',
      message: `no VirtualService or Service for host ${fqdn}`,
      host: fqdn,
    };
  }
  const base = {
    host,
    ...(subset ? { subset } : {}),
    ...(chosen ? { route: chosen } : {}),
    ...(vsRef ? { virtualService: vsRef } : {}),
  };
  const cluster = resolveCluster(table, host, subset, callerNs);
  if (!cluster)
    return {
      kind: 'failure',
      status: 503,
      flags: 'NC',
      message: table.services.has(host)
        ? `no cluster for ${host} subset ${subset}: no DestinationRule of the host defines that subset`
        : `no cluster for ${host}: no Service of that name`,
      service: table.services.get(host),
      ...base,
    };
  if (cluster.endpoints.length === 0)
    return {
      kind: 'failure',
      status: 503,
      flags: 'UH',
      message: 'no healthy upstream',
      service: cluster.service,
      ...base,
    };
  const clusterKey = `${host}|${subset ?? ''}`;
  return {
    kind: 'route',
    ...base,
    service: cluster.service,
    cluster: cluster.endpoints,
    clusterKey,
    endpoint: pickEndpoint(table, clusterKey, cluster.endpoints),
  };
}
