import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for Istio's sidecars that a test controls: serves `istio_requests_total` and
 * `istio_request_duration_milliseconds` with Istio's label names and buckets, for any number of
 * subsets (told apart by destination_version). Counters advance with real time at the configured
 * rate, computed at each scrape, so rate() and histogram_quantile() over them give known values.
 */

/** Istio's default buckets of istio_request_duration_milliseconds. */
export const ISTIO_DURATION_BUCKETS = [
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000,
  3600000,
] as const;

export interface SubsetTraffic {
  /** Requests per second. */
  rps: number;
  /** Share of requests answered with `errorCode`, 0..1. Default 0. */
  errorRate?: number;
  /** Duration of every request. Default 20. */
  latencyMs?: number;
  /** HTTP code of the errors. Default 500. */
  errorCode?: string;
  /** destination_workload. Default `${service}-${version}`. */
  workload?: string;
}

export interface IstioExporterOptions {
  /** destination_service_namespace. Default bookinfo. */
  namespace?: string;
  /** destination_service_name. Default reviews. */
  service?: string;
  /** Which proxies report each request. Default both, as in a mesh where the caller has a sidecar. */
  reporters?: ('source' | 'destination')[];
  /** Default: a free port. */
  port?: number;
  /** More services with the same subsets and traffic (e.g. one per rollout of a capacity benchmark). Default: only `service`. */
  services?: string[];
  /** Export istio_request_duration_milliseconds too. Default true. */
  histograms?: boolean;
}

export interface IstioExporter {
  /** http://127.0.0.1:port/metrics */
  url: string;
  /** 127.0.0.1:port, a Prometheus scrape target. */
  hostPort: string;
  /** Starts or changes a subset's traffic (counters so far are kept). */
  setSubset(version: string, traffic: SubsetTraffic): void;
  /** With `services`: gives one service's subset its own traffic (and counters), apart from the others'. */
  setServiceSubset(service: string, version: string, traffic: SubsetTraffic): void;
  /** Stops exporting a subset's series. */
  removeSubset(version: string): void;
  /** Number of scrapes served. */
  scrapes(): number;
  stop(): Promise<void>;
}

/**
 * What histogram_quantile(q, ...) answers when every request takes `latencyMs`: Prometheus
 * interpolates linearly inside the bucket holding the rank, (lower, upper], so the answer is
 * lower + (upper - lower) * q — not latencyMs itself.
 */
export function expectedQuantile(q: number, latencyMs: number): number {
  let lower = 0;
  for (const upper of ISTIO_DURATION_BUCKETS) {
    if (latencyMs <= upper) return lower + (upper - lower) * q;
    lower = upper;
  }
  return lower; // +Inf bucket: Prometheus answers the highest finite bound
}

interface State {
  traffic: Required<Omit<SubsetTraffic, 'workload'>> & { workload: string };
  /** per response code: requests, and cumulative buckets */
  codes: Map<string, { count: number; sum: number; buckets: number[] }>;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labels(l: Record<string, string>): string {
  return Object.entries(l)
    .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
    .join(',');
}

export async function startIstioExporter({
  namespace = 'bookinfo',
  service = 'reviews',
  reporters = ['source', 'destination'],
  port = 0,
  services,
  histograms = true,
}: IstioExporterOptions = {}): Promise<IstioExporter> {
  const names = services ?? [service];
  /** Per service and version, where a service has traffic of its own. */
  const own = new Map<string, State>();
  const subsets = new Map<string, State>();
  let last = Date.now();

  let scrapes = 0;

  const advance = () => {
    const now = Date.now();
    if (now <= last) return last;
    const dt = (now - last) / 1000;
    last = now;
    for (const s of [...subsets.values(), ...own.values()]) {
      const n = s.traffic.rps * dt;
      const errors = n * s.traffic.errorRate;
      for (const [code, k] of [
        ['200', n - errors],
        [s.traffic.errorCode, errors],
      ] as const) {
        let c = s.codes.get(code);
        if (!c) {
          c = { count: 0, sum: 0, buckets: ISTIO_DURATION_BUCKETS.map(() => 0) };
          s.codes.set(code, c);
        }
        c.count += k;
        c.sum += k * s.traffic.latencyMs;
        ISTIO_DURATION_BUCKETS.forEach((le, i) => {
          if (s.traffic.latencyMs <= le) c.buckets[i]! += k;
        });
      }
    }
    return now;
  };

  // Each sample carries the time its value was computed for: under CPU load the gap between
  // Prometheus's scrape timestamp and our clock would otherwise skew rate() by several percent.
  const render = (at: number): string => {
    const ts = ` ${at}`;
    const req: string[] = [
      '# HELP istio_requests_total Total requests.',
      '# TYPE istio_requests_total counter',
    ];
    const dur: string[] = [
      '# HELP istio_request_duration_milliseconds Request duration.',
      '# TYPE istio_request_duration_milliseconds histogram',
    ];
    for (const name of names) {
      for (const [version, shared] of subsets) {
        const s = own.get(`${name}/${version}`) ?? shared;
        for (const reporter of reporters) {
          for (const [code, c] of s.codes) {
            const l = {
              reporter,
              source_workload: 'istio-ingressgateway',
              source_workload_namespace: 'istio-system',
              source_app: 'istio-ingressgateway',
              destination_service: `${name}.${namespace}.svc.cluster.local`,
              destination_service_name: name,
              destination_service_namespace: namespace,
              destination_workload: names.length > 1 ? `${name}-${version}` : s.traffic.workload,
              destination_workload_namespace: namespace,
              destination_app: name,
              destination_version: version,
              destination_canonical_service: name,
              destination_canonical_revision: version,
              request_protocol: 'http',
              response_code: code,
              response_flags: '-',
              connection_security_policy: reporter === 'destination' ? 'mutual_tls' : 'unknown',
            };
            const ls = labels(l);
            req.push(`istio_requests_total{${ls}} ${c.count}${ts}`);
            if (!histograms) continue;
            ISTIO_DURATION_BUCKETS.forEach((le, i) => {
              dur.push(`istio_request_duration_milliseconds_bucket{${ls},le="${le}"} ${c.buckets[i]}${ts}`);
            });
            dur.push(`istio_request_duration_milliseconds_bucket{${ls},le="+Inf"} ${c.count}${ts}`);
            dur.push(`istio_request_duration_milliseconds_sum{${ls}} ${c.sum}${ts}`);
            dur.push(`istio_request_duration_milliseconds_count{${ls}} ${c.count}${ts}`);
          }
        }
      }
    }
    return `${[...req, ...(histograms ? dur : [])].join('\n')}\n`;
  };

  const server: Server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.statusCode = 404;
      res.end();
      return;
    }
    scrapes++;
    const at = advance();
    res.setHeader('Content-Type', 'text/plain; version=0.0.4');
    res.end(render(at));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const p = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${p}/metrics`,
    hostPort: `127.0.0.1:${p}`,
    setServiceSubset(name, version, t) {
      advance();
      const traffic = {
        rps: t.rps,
        errorRate: t.errorRate ?? 0,
        latencyMs: t.latencyMs ?? 20,
        errorCode: t.errorCode ?? '500',
        workload: t.workload ?? `${name}-${version}`,
      };
      const prev = own.get(`${name}/${version}`);
      const s: State = prev ? { ...prev, traffic } : { traffic, codes: new Map() };
      for (const code of ['200', traffic.errorCode]) {
        if (!s.codes.has(code))
          s.codes.set(code, { count: 0, sum: 0, buckets: ISTIO_DURATION_BUCKETS.map(() => 0) });
      }
      own.set(`${name}/${version}`, s);
    },
    setSubset(version, t) {
      advance();
      const traffic = {
        rps: t.rps,
        errorRate: t.errorRate ?? 0,
        latencyMs: t.latencyMs ?? 20,
        errorCode: t.errorCode ?? '500',
        workload: t.workload ?? `${service}-${version}`,
      };
      const prev = subsets.get(version);
      const s: State = prev ? { ...prev, traffic } : { traffic, codes: new Map() };
      // Series exist from the start (at 0), as Istio's do once a proxy has seen a request.
      for (const code of ['200', traffic.errorCode]) {
        if (!s.codes.has(code))
          s.codes.set(code, { count: 0, sum: 0, buckets: ISTIO_DURATION_BUCKETS.map(() => 0) });
      }
      subsets.set(version, s);
    },
    removeSubset(version) {
      advance();
      subsets.delete(version);
    },
    scrapes: () => scrapes,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
