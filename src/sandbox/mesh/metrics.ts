import { Counter, Histogram, Registry } from 'prom-client';
import type { Endpoint, ServiceEntry } from './routes.ts';

/** Istio's default buckets of istio_request_duration_milliseconds. */
export const ISTIO_DURATION_BUCKETS: readonly number[] = [
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000,
  3600000,
];

/** The label names of Istio's standard request metrics that the gateway reports. */
export const ISTIO_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_app',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'destination_workload',
  'destination_workload_namespace',
  'destination_version',
  'destination_app',
  'destination_canonical_service',
  'destination_canonical_revision',
  'response_code',
  'response_flags',
  'request_protocol',
  'connection_security_policy',
] as const;

export type IstioLabel = (typeof ISTIO_LABELS)[number];

export interface MeshMetrics {
  registry: Registry;
  /** One report: a request as one proxy (source or destination) saw it. */
  report(r: Report): void;
}

export interface Report {
  reporter: 'source' | 'destination';
  source: { workload: string; namespace: string; app?: string };
  /** The FQDN routed to. */
  host: string;
  service?: ServiceEntry;
  /** The pod that answered (or was tried last); undefined when none was reached. */
  endpoint?: Endpoint;
  /** 0 when no response came back (timeout, reset). */
  status: number;
  /** Envoy's response flags joined by ',', or '-' for none. */
  flags: string;
  durationMs: number;
}

const UNKNOWN = 'unknown';
const MAX_CACHED_LABEL_SETS = 10_000;

function first(e: Endpoint, ...names: string[]): string | undefined {
  for (const n of names) if (e.labels[n]) return e.labels[n];
  return undefined;
}

function podLabel(e: Endpoint | undefined, ...names: string[]): string {
  return (e && first(e, ...names)) || UNKNOWN;
}

/** The label values Istio's telemetry gives one report. */
export function istioLabels(r: Report): Record<IstioLabel, string> {
  const e = r.endpoint;
  const app = podLabel(e, 'app', 'app.kubernetes.io/name');
  const version = podLabel(e, 'version', 'app.kubernetes.io/version');
  return {
    reporter: r.reporter,
    source_workload: r.source.workload,
    source_workload_namespace: r.source.namespace,
    source_app: r.source.app ?? r.source.workload,
    destination_service: r.service?.fqdn ?? r.host,
    destination_service_name: r.service?.name ?? r.host,
    destination_service_namespace: r.service?.namespace ?? UNKNOWN,
    destination_workload: e?.workload ?? UNKNOWN,
    destination_workload_namespace: e?.namespace ?? UNKNOWN,
    destination_version: version,
    destination_app: app,
    destination_canonical_service: e
      ? (first(e, 'service.istio.io/canonical-name', 'app.kubernetes.io/name', 'app') ?? e.workload)
      : UNKNOWN,
    destination_canonical_revision: e
      ? (first(e, 'service.istio.io/canonical-revision', 'app.kubernetes.io/version', 'version') ?? 'latest')
      : UNKNOWN,
    response_code: String(r.status),
    response_flags: r.flags || '-',
    request_protocol: 'http',
    // The client's sidecar cannot tell; the server's sidecar sees mutual TLS (the mesh default).
    connection_security_policy: r.reporter === 'destination' ? 'mutual_tls' : UNKNOWN,
  };
}

/** `istio_requests_total` and `istio_request_duration_milliseconds` in a registry of their own. */
export function createMeshMetrics(): MeshMetrics {
  const registry = new Registry();
  const requests = new Counter({
    name: 'istio_requests_total',
    help: 'Requests through the sandbox mesh, as Istio proxies report them.',
    labelNames: ISTIO_LABELS,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'istio_request_duration_milliseconds',
    help: 'Request duration in milliseconds, as Istio proxies report it.',
    labelNames: ISTIO_LABELS,
    buckets: [...ISTIO_DURATION_BUCKETS],
    registers: [registry],
  });
  // Label sets repeat (a few pods, codes and callers): keep each one's children, so a report costs
  // a map lookup instead of prom-client hashing 17 labels twice. Bounded; cleared when full.
  type Children = { count: { inc(): void }; time: { observe(v: number): void } };
  const children = new Map<string, Children>();
  // An endpoint's identity for the key: its pod, workload and labels (a relabelled pod reports anew).
  const endpointKeys = new WeakMap<Endpoint, string>();
  const endpointKey = (e: Endpoint | undefined) => {
    if (!e) return '';
    let k = endpointKeys.get(e);
    if (k === undefined) {
      k = `${e.namespace}/${e.pod}/${e.workload}/${JSON.stringify(e.labels)}`;
      endpointKeys.set(e, k);
    }
    return k;
  };
  return {
    registry,
    report(r) {
      const key = `${r.reporter}|${r.source.workload}|${r.source.namespace}|${r.source.app ?? ''}|${r.host}|${r.service?.fqdn ?? ''}|${endpointKey(r.endpoint)}|${r.status}|${r.flags}`;
      let c = children.get(key);
      if (!c) {
        const l = istioLabels(r);
        if (children.size >= MAX_CACHED_LABEL_SETS) children.clear();
        c = { count: requests.labels(l), time: duration.labels(l) };
        children.set(key, c);
      }
      c.count.inc();
      c.time.observe(r.durationMs);
    },
  };
}
