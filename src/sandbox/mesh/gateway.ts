import { randomUUID } from 'node:crypto';
import {
  Agent,
  type ClientRequest,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import { createMeshMetrics, type MeshMetrics } from './metrics.ts';
import {
  type CompiledRoute,
  DEFAULT_RETRIES,
  type Endpoint,
  type HeaderOps,
  pickEndpoint,
  type RouteHit,
  type RouteRequest,
  type RouteTable,
  resolveCluster,
  route,
} from './routes.ts';
import { type MeshWatch, watchMesh } from './watch.ts';

/** The caller's namespace (Host names resolve in it). Absent: `default`. */
export const NAMESPACE_HEADER = 'x-sandbox-namespace';
/** The caller's workload name, reported as source_workload. Absent: `unknown`. */
export const SOURCE_WORKLOAD_HEADER = 'x-sandbox-source-workload';
/** Set on every answer the gateway makes or forwards: Envoy's response flags, `-` for none. */
export const RESPONSE_FLAGS_HEADER = 'x-sandbox-response-flags';

/** Idle keep-alive connections to pods are closed after this long. */
const IDLE_UPSTREAM_MS = 4_000;

/** How long start-up waits for the first list of every watched kind. */
const SYNC_TIMEOUT_MS = 15_000;

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'content-length',
]);

export interface MeshGatewayOptions {
  /** Where to watch VirtualServices, DestinationRules, Services and Pods (the simulator's `kubeConfig()`). */
  kubeConfig: KubeConfig;
  /** Default: a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Upper bound of a request when its route sets no timeout (Istio has none; the gateway keeps one). Default 60s. */
  maxTimeoutMs?: number;
  /** Largest request or response body it buffers. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Source of randomness for weights, faults and mirror percentages. Default Math.random. */
  random?: () => number;
}

export interface MeshGateway {
  /** http://host:port — send requests here with the service as Host header. */
  readonly url: string;
  readonly port: number;
  /** host:port, a Prometheus scrape target. */
  readonly hostPort: string;
  readonly metrics: MeshMetrics;
  readonly watch: MeshWatch;
  table(): RouteTable;
  close(): Promise<void>;
}

interface Outcome {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

type AttemptError = 'connect-failure' | 'reset' | 'timeout' | 'too-large';

function isAdminHost(host: string): boolean {
  const name = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return name === 'localhost' || name === '::1' || /^\d+\.\d+\.\d+\.\d+$/.test(name);
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) over = true;
      else chunks.push(c);
    });
    req.on('end', () => resolve(over ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}

function forwardHeaders(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

/** Istio's header operations, in Envoy's order: remove, then set (replace), then add (append). */
function applyHeaderOps(h: OutgoingHttpHeaders, ops: HeaderOps | undefined): void {
  if (!ops) return;
  for (const k of ops.remove) delete h[k];
  for (const [k, v] of ops.set) h[k] = v;
  for (const [k, v] of ops.add) {
    const old = h[k];
    h[k] = old === undefined ? v : [...(Array.isArray(old) ? old : [String(old)]), v];
  }
}

/** Whether Envoy's retryOn conditions cover this attempt's result. */
export function retriable(retryOn: readonly string[], r: Outcome | AttemptError): boolean {
  for (const cond of retryOn) {
    if (typeof r === 'string') {
      if (r === 'too-large') return false;
      if (cond === '5xx' || cond === 'gateway-error') return true; // both include timeouts and resets
      if (cond === 'connect-failure' && r === 'connect-failure') return true;
      if ((cond === 'reset' || cond === 'refused-stream') && r !== 'timeout') return true;
    } else {
      const s = r.status;
      if (cond === '5xx' && s >= 500) return true;
      if (cond === 'gateway-error' && (s === 502 || s === 503 || s === 504)) return true;
      if (cond === 'unavailable' && s === 503) return true;
      if (/^\d{3}$/.test(cond) && Number(cond) === s) return true;
    }
  }
  return false;
}

/**
 * The sandbox's mesh gateway: an HTTP proxy that routes each request as a client's Envoy sidecar
 * would (Host → VirtualService → weighted destination → DestinationRule subset → ready pod), with
 * the route's timeout, retries, faults and mirrors, and reports Istio's request metrics for both
 * reporters. Requests addressed to the gateway itself (an IP or localhost as Host) reach its own
 * endpoints: `/metrics`, `/healthz`, `/routes`.
 */
export async function startMeshGateway(opts: MeshGatewayOptions): Promise<MeshGateway> {
  const maxTimeoutMs = opts.maxTimeoutMs ?? 60_000;
  const maxBody = opts.maxBodyBytes ?? 1024 * 1024;
  const random = opts.random ?? Math.random;
  const metrics = createMeshMetrics();
  const watch = watchMesh(opts.kubeConfig);
  // Idle connections to pods close before Node servers' 5 s keep-alive does, so a request never
  // races a server closing the socket it picked (a spurious reset).
  const agent = new Agent({ keepAlive: true, maxSockets: 512, timeout: IDLE_UPSTREAM_MS });
  const pending = new Set<ClientRequest>();

  /** One request to one pod; never throws. */
  const attempt = (
    ep: Endpoint,
    req: RouteRequest & { body: Buffer },
    headers: OutgoingHttpHeaders,
    timeoutMs: number,
  ): Promise<Outcome | AttemptError> =>
    new Promise((resolve) => {
      let settled = false;
      let gotResponse = false;
      const done = (v: Outcome | AttemptError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        pending.delete(out);
        resolve(v);
      };
      const out = httpRequest(
        {
          host: ep.ip,
          port: ep.port,
          method: req.method,
          path: req.path,
          headers: { ...headers, 'content-length': String(req.body.length) },
          agent,
        },
        (res) => {
          gotResponse = true;
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > maxBody) {
              done('too-large');
              res.destroy();
            } else chunks.push(c);
          });
          res.on('end', () =>
            done({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on('error', () => done('reset'));
        },
      );
      pending.add(out);
      const timer = setTimeout(() => {
        done('timeout');
        out.destroy();
      }, timeoutMs);
      out.on('error', (e: NodeJS.ErrnoException) => {
        const connect =
          !gotResponse && (e.code === 'ECONNREFUSED' || e.code === 'EHOSTUNREACH' || e.code === 'ENOTFOUND');
        done(connect ? 'connect-failure' : 'reset');
      });
      out.end(req.body);
    });

  const source = (req: IncomingMessage) => ({
    workload: String(req.headers[SOURCE_WORKLOAD_HEADER] ?? 'unknown'),
    namespace: String(req.headers[NAMESPACE_HEADER] ?? 'default'),
  });

  const reply = (res: ServerResponse, status: number, flags: string, body: string) => {
    if (res.headersSent) return;
    res.writeHead(status, {
      'content-type': 'text/plain',
      'content-length': Buffer.byteLength(body),
      [RESPONSE_FLAGS_HEADER]: flags,
    });
    res.end(body);
  };

  const mirror = (
    hit: RouteHit,
    r: CompiledRoute,
    req: RouteRequest & { body: Buffer },
    headers: OutgoingHttpHeaders,
  ) => {
    for (const m of r.mirrors) {
      if (random() * 100 >= m.percentage) continue;
      const table = watch.table();
      const cluster = resolveCluster(table, m.host, m.subset, req.namespace ?? 'default');
      if (!cluster || cluster.endpoints.length === 0) continue;
      const ep = pickEndpoint(table, `${m.host}|${m.subset ?? ''}|mirror`, cluster.endpoints);
      const started = performance.now();
      // Envoy marks the copy's authority with -shadow; its answer is dropped.
      const h = { ...headers, host: `${String(headers.host ?? hit.host)}-shadow` };
      void attempt(ep, req, h, maxTimeoutMs).then((o) => {
        metrics.report({
          reporter: 'destination',
          source: {
            workload: String(headers[SOURCE_WORKLOAD_HEADER] ?? 'unknown'),
            namespace: req.namespace ?? 'default',
          },
          host: m.host,
          service: cluster.service,
          endpoint: ep,
          status: typeof o === 'string' ? 0 : o.status,
          flags: typeof o === 'string' ? 'DC' : '-',
          durationMs: performance.now() - started,
        });
      });
    }
  };

  const proxy = async (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    const src = source(req);
    const body = await readBody(req, maxBody);
    if (!body) return reply(res, 413, '-', `request body over ${maxBody} bytes`);
    const rr: RouteRequest & { body: Buffer } = {
      host: req.headers.host ?? '',
      path: req.url ?? '/',
      method: req.method ?? 'GET',
      headers: req.headers,
      namespace: src.namespace,
      body,
    };
    const result = route(watch.table(), rr, random());
    const sourceReport = (status: number, flags: string, endpoint?: Endpoint) =>
      metrics.report({
        reporter: 'source',
        source: src,
        host: result.host,
        service: result.service,
        endpoint,
        status,
        flags,
        durationMs: performance.now() - started,
      });
    if (result.kind === 'failure') {
      sourceReport(result.status, result.flags);
      return reply(res, result.status, result.flags, result.message);
    }
    const r = result.route;
    const flags: string[] = [];
    if (r?.fault?.delay && random() * 100 < r.fault.delay.percentage) {
      flags.push('DI');
      await sleep(r.fault.delay.fixedDelayMs);
    }
    if (r?.fault?.abort && random() * 100 < r.fault.abort.percentage) {
      flags.push('FI');
      sourceReport(r.fault.abort.httpStatus, flags.join(','));
      return reply(res, r.fault.abort.httpStatus, flags.join(','), 'fault filter abort');
    }

    if (result.kind === 'local') {
      const a = result.answer;
      const h: OutgoingHttpHeaders = { [RESPONSE_FLAGS_HEADER]: flags.join(',') || '-' };
      if (a.redirect) {
        const x = a.redirect;
        const host = x.authority ?? rr.host;
        const authority = x.port ? `${host.replace(/:\d+$/, '')}:${x.port}` : host;
        h.location = `${x.scheme ?? 'http'}://${authority}${x.uri ?? rr.path}`;
      }
      const body = a.body ?? '';
      h['content-length'] = Buffer.byteLength(body);
      if (a.body !== undefined) h['content-type'] = 'text/plain';
      applyHeaderOps(h, result.route.responseHeaders);
      sourceReport(a.status, flags.join(',') || '-');
      res.writeHead(a.status, h);
      return res.end(body);
    }

    const headers = forwardHeaders(req.headers);
    headers['x-request-id'] ??= randomUUID();
    applyHeaderOps(headers, r?.requestHeaders);
    if (r) mirror(result, r, rr, headers);

    const deadline = performance.now() + Math.min(r?.timeoutMs ?? maxTimeoutMs, maxTimeoutMs);
    // Without a VirtualService Istio still applies its default retry policy.
    const retries = r?.retries ?? DEFAULT_RETRIES;
    const tried = new Set<string>();
    let ep = result.endpoint;
    let last: Outcome | AttemptError = 'timeout';
    let n = 0;
    for (;;) {
      n++;
      tried.add(ep.pod);
      const remaining = deadline - performance.now();
      const perTry = Math.min(retries.perTryTimeoutMs ?? remaining, remaining);
      const t0 = performance.now();
      last = await attempt(ep, rr, { ...headers, 'x-envoy-attempt-count': String(n) }, Math.max(1, perTry));
      if (last !== 'connect-failure')
        metrics.report({
          reporter: 'destination',
          source: src,
          host: result.host,
          service: result.service,
          endpoint: ep,
          status: typeof last === 'string' ? 0 : last.status,
          flags: typeof last === 'string' ? 'DC' : '-',
          durationMs: performance.now() - t0,
        });
      const globalTimeout = performance.now() >= deadline - 1;
      if (globalTimeout || n > retries.attempts || !retriable(retries.retryOn, last)) break;
      // Envoy's backoff: 25ms base, doubling, jittered, within the route's timeout.
      await sleep(Math.min(random() * 25 * 2 ** (n - 1), deadline - performance.now()));
      if (performance.now() >= deadline) break;
      const cluster = resolveCluster(watch.table(), result.host, result.subset, src.namespace);
      if (!cluster || cluster.endpoints.length === 0) break;
      ep = pickEndpoint(watch.table(), result.clusterKey, cluster.endpoints, tried);
    }
    const exhausted = n > 1 && n > retries.attempts && retriable(retries.retryOn, last);
    if (exhausted) flags.push('URX');
    if (typeof last === 'string') {
      const timedOut = last === 'timeout';
      const status = timedOut ? 504 : 503;
      flags.push(timedOut ? 'UT' : last === 'connect-failure' ? 'UF' : 'UC');
      sourceReport(status, flags.join(','), ep);
      return reply(
        res,
        status,
        flags.join(','),
        timedOut ? 'upstream request timeout' : 'upstream connect error or disconnect/reset before headers',
      );
    }
    const f = flags.join(',') || '-';
    sourceReport(last.status, f, ep);
    const out = forwardHeaders(last.headers);
    applyHeaderOps(out, r?.responseHeaders);
    out['content-length'] = String(last.body.length);
    out[RESPONSE_FLAGS_HEADER] = f;
    res.writeHead(last.status, out);
    res.end(last.body);
  };

  const admin = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      const text = await metrics.registry.metrics();
      res.writeHead(200, { 'content-type': metrics.registry.contentType });
      return res.end(text);
    }
    if (path === '/healthz') return reply(res, 200, '-', 'ok');
    if (path === '/routes') {
      const t = watch.table();
      const body = JSON.stringify({
        virtualServices: t.virtualServices.map((v) => ({
          namespace: v.namespace,
          name: v.name,
          hosts: v.hosts,
          routes: v.http.map((h) => ({ name: h.name, destinations: h.destinations })),
        })),
        services: [...t.services.keys()],
        endpoints: [...t.endpoints.values()].flat().map((e) => `${e.namespace}/${e.pod} ${e.ip}:${e.port}`),
        problems: t.problems,
        watchErrors: watch.errors(),
      });
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(body);
    }
    reply(
      res,
      404,
      'NR',
      'the gateway serves /metrics, /healthz and /routes; send mesh requests with a service as Host',
    );
  };

  const server: Server = createServer((req, res) => {
    const handle = isAdminHost(req.headers.host ?? '') ? admin : proxy;
    handle(req, res).catch((e: Error) => reply(res, 500, '-', `gateway error: ${e.message}`));
  });
  server.keepAliveTimeout = 30_000;
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  let syncTimer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      watch.synced,
      new Promise((_, reject) => {
        syncTimer = setTimeout(
          () =>
            reject(
              new Error(
                `the mesh gateway could not list mesh objects within ${SYNC_TIMEOUT_MS}ms: ${watch.errors().join('; ') || 'no answer'}`,
              ),
            ),
          SYNC_TIMEOUT_MS,
        );
      }),
    ]);
  } catch (e) {
    await watch.stop();
    server.close();
    throw e;
  } finally {
    clearTimeout(syncTimer);
  }
  return {
    url: `http://${host}:${port}`,
    port,
    hostPort: `${host}:${port}`,
    metrics,
    watch,
    table: () => watch.table(),
    async close() {
      for (const r of pending) r.destroy();
      await watch.stop();
      agent.destroy();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
