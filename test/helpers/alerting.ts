import { createHash } from 'node:crypto';
import { type ServerType, serve } from '@hono/node-server';
import { newApp } from '../../src/api/app.ts';
import { createPrometheusProvider, type PrometheusProvider } from '../../src/metrics/prometheus.ts';
import type { MetricProvider } from '../../src/metrics/types.ts';
import { rolloutEvents, startRollout } from '../../src/rollouts/verbs.ts';
import {
  type LoadGenerator,
  type MeshGateway,
  type Sample,
  sampleTraffic,
  startLoad,
  startMeshGateway,
} from '../../src/sandbox/mesh/index.ts';
import { freePort, type ManagedProcess } from '../../src/sandbox/processes.ts';
import { canaryWeightOf, type EngineHarness, startEngineHarness, VS } from './engine.ts';
import { eventually, startTestAlertmanager, startTestPrometheus, startTestRedis } from './services.ts';

/**
 * The alert path on the sandbox, for the end-to-end test and bench/alert-reaction.ts: Deployments
 * run as demo-app pods, the mesh gateway routes load by the weights vane writes and exports Istio's
 * metrics → a real Prometheus with a real alerting rule (evaluated every 1 s over 10 s) → a real
 * Alertmanager (group_wait 1 s) → POST /api/v1/hooks/alertmanager over HTTP with a bearer token of
 * scope operate → the engine (kube simulator with the pod runtime, real Redis, one worker).
 */
export const ALERT_NS = 'shop';
/** The rule's rate window; the guard path uses the same as its guardWindow. */
export const ALERT_WINDOW = '10s';
const TOKEN = 'am-token-0123456789abcdef';
const BY = 'destination_service_namespace, destination_service_name, destination_version';

const RULES = `groups:
  - name: canary
    interval: 1s
    rules:
      - alert: CanaryHighErrorRate
        expr: >-
          sum by (${BY}) (rate(istio_requests_total{reporter="destination",response_code=~"5.."}[${ALERT_WINDOW}]))
          / sum by (${BY}) (rate(istio_requests_total{reporter="destination"}[${ALERT_WINDOW}])) > 0.05
        labels:
          severity: critical
          namespace: '{{ $labels.destination_service_namespace }}'
        annotations:
          summary: '{{ $labels.destination_service_name }} {{ $labels.destination_version }} answers {{ $value | humanizePercentage }} errors'
`;

export interface AlertSandbox {
  h: EngineHarness;
  gateway: MeshGateway;
  prometheus: ManagedProcess;
  alertmanager: ManagedProcess;
  /** Starts a rollout held at 20% (a 5-minute step), breaks its canary pod, and times stable 100. */
  badCanary(service: string, analysis: Record<string, unknown>): Promise<BadCanary>;
  /** The canary pod answers without errors again. */
  heal(service: string): Promise<void>;
  close(): Promise<void>;
}

export interface BadCanary {
  rollout: Awaited<ReturnType<EngineHarness['settle']>>;
  /** Canary pod told to fail → VirtualService at stable 100. */
  seconds: number;
  /** Canary pod told to fail → the alert's command stored (alert path only). */
  deliveredSeconds?: number;
  events: Awaited<ReturnType<typeof rolloutEvents>>;
  /** 200 requests through the gateway after the rollback. */
  sample: Sample;
}

/** A service of the sandbox: a Service, v1 and v2 Deployments (demo-app pods), a DestinationRule and a VirtualService to v1. */
function seedService(h: EngineHarness, name: string): void {
  const sim = h.sim;
  sim.putObject({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ALERT_NS } });
  sim.putObject({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ALERT_NS },
    spec: { selector: { app: name }, ports: [{ name: 'http', port: 9080 }] },
  });
  for (const version of ['v1', 'v2']) {
    const labels = { app: name, version };
    sim.putObject({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: `${name}-${version}`, namespace: ALERT_NS, labels },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels, annotations: { 'sandbox.vane.dev/latency-ms': '5' } },
          spec: { containers: [{ name: 'app', image: `example.com/${name}:${version}` }] },
        },
      },
    });
  }
  sim.putObject({
    apiVersion: VS,
    kind: 'DestinationRule',
    metadata: { name, namespace: ALERT_NS },
    spec: { host: name, subsets: [{ name: 'v1', labels: { app: name, version: 'v1' } }] },
  });
  sim.putObject({
    apiVersion: VS,
    kind: 'VirtualService',
    metadata: { name, namespace: ALERT_NS },
    spec: {
      hosts: [name],
      http: [{ name: 'default', route: [{ destination: { host: name, subset: 'v1' } }] }],
    },
  });
}

/** Sets the error rate of a service's v2 pod in place (the demo app takes the annotation without a restart). */
async function setCanaryErrorRate(h: EngineHarness, name: string, rate: number): Promise<void> {
  const pods = h.sim.listObjects('v1', 'Pod', ALERT_NS) as {
    metadata: { name: string; labels?: Record<string, string> };
  }[];
  const pod = pods.find((p) => p.metadata.labels?.app === name && p.metadata.labels?.version === 'v2');
  if (!pod) throw new Error(`no v2 pod of ${name}`);
  const res = await fetch(`${h.sim.url}/api/v1/namespaces/${ALERT_NS}/pods/${pod.metadata.name}`, {
    method: 'PATCH',
    headers: { 'Content-Type': 'application/merge-patch+json' },
    body: JSON.stringify({ metadata: { annotations: { 'sandbox.vane.dev/error-rate': String(rate) } } }),
    signal: AbortSignal.timeout(5_000),
  });
  if (!res.ok) throw new Error(`patch of pod ${pod.metadata.name}: HTTP ${res.status} ${await res.text()}`);
}

export async function startAlertSandbox(opts: {
  services: string[];
  /** Requests per second through the gateway, over all services. Default 100. */
  rate?: number;
}): Promise<AlertSandbox> {
  const redis = await startTestRedis();
  const apiPort = await freePort();
  const alertmanager = await startTestAlertmanager(`route:
  receiver: vane
  group_by: [alertname, namespace, destination_service_name]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: vane
    webhook_configs:
      - url: http://127.0.0.1:${apiPort}/api/v1/hooks/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: ${TOKEN}
`);
  // The engine's provider is filled in once Prometheus is up (it scrapes the gateway, which follows the simulator).
  let real: PrometheusProvider | undefined;
  const provider: MetricProvider = {
    query: (q, o) => real!.query(q, o),
    queryRange: (q, o) => real!.queryRange(q, o),
    isOnline: async () => real !== undefined,
  };
  const h = await startEngineHarness({ redisUrl: redis.url, provider, sim: { pods: true } });
  for (const s of opts.services) seedService(h, s);
  const gateway = await startMeshGateway({ kubeConfig: h.sim.kubeConfig() });
  const prometheus = await startTestPrometheus([{ job: 'sandbox-mesh', target: gateway.hostPort }], '1s', {
    rules: RULES,
    alertmanagers: [`127.0.0.1:${alertmanager.port}`],
  });
  real = createPrometheusProvider({ url: prometheus.url, timeout: '5s' });
  const load: LoadGenerator = startLoad({
    gatewayUrl: gateway.url,
    targets: opts.services.map((host) => ({ host, namespace: ALERT_NS })),
    rate: opts.rate ?? 100,
  });
  const app = newApp({
    logger: h.domain.ctx.logger,
    recorder: h.domain.ctx.recorder,
    readiness: [],
    scopedTokens: [
      { name: 'alertmanager', sha256: createHash('sha256').update(TOKEN).digest('hex'), scopes: ['operate'] },
    ],
    domain: h.domain.ctx,
  });
  const server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: app.fetch, port: apiPort, hostname: '127.0.0.1' }, () => resolve(s));
  });
  // Every service answers through the gateway and Prometheus has a few scrapes of each.
  await eventually(
    async () => {
      const r = await real!.query(
        'count(count_over_time(istio_requests_total{reporter="destination",destination_version="v1",response_code="200"}[1m]) >= 5)',
      );
      return r.type === 'vector' && (r.series[0]?.value ?? 0) >= opts.services.length ? true : undefined;
    },
    60_000,
    250,
  );
  const vsOf = (name: string) => h.sim.getObject(VS, 'VirtualService', ALERT_NS, name);

  return {
    h,
    gateway,
    prometheus,
    alertmanager,
    async badCanary(service, analysis) {
      const { rollout } = await startRollout({
        ctx: h.domain.ctx,
        input: {
          target: {
            namespace: ALERT_NS,
            virtualService: service,
            destinationRule: service,
            routes: ['default'],
          },
          stable: { subset: 'v1' },
          canary: {
            subset: 'v2',
            labels: { app: service, version: 'v2' },
            workload: { kind: 'Deployment', name: `${service}-v2` },
          },
          strategy: { type: 'canary', steps: [20, 40], stepInterval: '5m' },
          analysis,
        },
      });
      await eventually(async () => (canaryWeightOf(vsOf(service)) === 20 ? true : undefined), 30_000, 20);
      await new Promise((r) => setTimeout(r, 2_000 + Math.random() * 5_000)); // healthy at 20%, then a random moment
      const bad = Date.now();
      await setCanaryErrorRate(h, service, 0.5);
      await eventually(
        async () => (canaryWeightOf(vsOf(service)) === undefined ? true : undefined),
        45_000,
        5,
      );
      const seconds = (Date.now() - bad) / 1000;
      const done = await h.settle(rollout.id, 20_000);
      const events = await rolloutEvents({ ctx: h.domain.ctx, id: rollout.id });
      const cmd = events.find((e) => e.type === 'command' && e.reason.includes('CanaryHighErrorRate'));
      // Judged by traffic: every request through the gateway now reaches a stable pod.
      const sample = await sampleTraffic(gateway.url, { host: service, namespace: ALERT_NS, n: 200 });
      return {
        rollout: done,
        seconds,
        ...(cmd ? { deliveredSeconds: (cmd.time - bad) / 1000 } : {}),
        events,
        sample,
      };
    },
    heal: (service) => setCanaryErrorRate(h, service, 0),
    async close() {
      await new Promise((r) => server.close(r));
      await load.stop();
      await prometheus.stop();
      await gateway.close();
      await h.close();
      await alertmanager.stop();
      await redis.stop();
    },
  };
}

/** True when every answer of the sample came from a pod of the service's v1 Deployment. */
export function allStable(sample: Sample, service: string): boolean {
  return Object.keys(sample.byPod).every((pod) => pod.startsWith(`${service}-v1-`));
}
