/**
 * Reaction time of the alert path next to the guard-check path: from the moment a canary starts
 * failing to the VirtualService back at stable 100.
 * - alert path: a real Prometheus alerting rule (evaluated every 1s, rate over 10s) → a real
 *   Alertmanager (group_wait 1s) → POST /api/v1/hooks/alertmanager over HTTP with a bearer token →
 *   abort, tick woken. The rollout has no critical metric, so only the alert can stop it.
 * - guard path: a critical success-rate check, guardInterval 5s (the default), guardWindow 10s; its
 *   alert policy is ignore.
 * Both: the test Istio exporter scraped every 1s, the kube simulator, a real Redis, one in-process
 * worker; canary held at 20%; a random 0–5 s wait before it starts answering 50% errors.
 * Run: npx tsx bench/alert-reaction.ts [--runs 5]
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type ServerType, serve } from '@hono/node-server';
import { newApp } from '../src/api/app.ts';
import { createPrometheusProvider } from '../src/metrics/prometheus.ts';
import { rolloutEvents, startRollout } from '../src/rollouts/verbs.ts';
import { freePort, startAlertmanager, startPrometheus, startRedisServer } from '../src/sandbox/processes.ts';
import { canarySpec, canaryWeightOf, seedTarget, startEngineHarness, VS } from '../test/helpers/engine.ts';
import { type IstioExporter, startIstioExporter } from '../test/helpers/istio-exporter.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const RUNS = Number(values.runs);
const TOKEN = 'bench-alertmanager-token-0123456789';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(fn: () => boolean, timeoutMs: number, everyMs = 5): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(everyMs);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'vane-bench-alerts-'));
const redis = await startRedisServer({ dir: join(dir, 'redis') });
const services = Array.from({ length: RUNS }, (_, i) => [`alert${i}`, `guard${i}`]).flat();
const exporters = new Map<string, IstioExporter>();
for (const s of services) {
  const e = await startIstioExporter({ namespace: 'shop', service: s });
  e.setSubset('v1', { rps: 50 });
  e.setSubset('v2', { rps: 50 });
  exporters.set(s, e);
}
const apiPort = await freePort();
const am = await startAlertmanager({
  dir: join(dir, 'alertmanager'),
  config: `route:
  receiver: vane
  group_by: [alertname, namespace, destination_service_name]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: vane
    webhook_configs:
      - url: http://127.0.0.1:${apiPort}/api/v1/hooks/alertmanager
        http_config:
          authorization:
            type: Bearer
            credentials: ${TOKEN}
`,
});
const sel = 'destination_service_namespace, destination_service_name, destination_version';
const prom = await startPrometheus({
  dir: join(dir, 'prometheus'),
  targets: [...exporters].map(([job, e]) => ({ job, target: e.hostPort })),
  scrapeInterval: '1s',
  alertmanagers: [`127.0.0.1:${am.port}`],
  rules: `groups:
  - name: canary
    interval: 1s
    rules:
      - alert: CanaryHighErrorRate
        expr: sum by (${sel}) (rate(istio_requests_total{reporter="destination",response_code=~"5.."}[10s])) / sum by (${sel}) (rate(istio_requests_total{reporter="destination"}[10s])) > 0.05
        labels: { severity: critical, namespace: '{{ $labels.destination_service_namespace }}' }
        annotations: { summary: '{{ $labels.destination_service_name }} {{ $labels.destination_version }} errors' }
`,
});
const provider = createPrometheusProvider({ url: prom.url, timeout: 2_000 });
const h = await startEngineHarness({ redisUrl: redis.url, provider });
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
await sleep(8_000); // Prometheus's first samples and a few scrapes of every exporter

const analysis = {
  alert: { minRequests: 0, metrics: [], alerts: { action: 'rollback' } },
  guard: {
    minRequests: 0,
    guardInterval: '5s',
    guardWindow: '10s',
    failureThreshold: 1,
    metrics: [
      { name: 'success-rate', template: 'request-success-rate', critical: true, thresholdRange: { min: 99 } },
    ],
    alerts: { action: 'ignore' },
  },
};

const figures: Record<'alert' | 'guard', number[]> = { alert: [], guard: [] };
const delivered: number[] = [];
for (let i = 0; i < RUNS; i++) {
  for (const path of ['alert', 'guard'] as const) {
    const service = `${path}${i}`;
    seedTarget(h.sim, service, 'shop');
    const weight = () => canaryWeightOf(h.sim.getObject(VS, 'VirtualService', 'shop', service));
    const { rollout } = await startRollout({
      ctx: h.domain.ctx,
      input: canarySpec(service, {
        strategy: { type: 'canary', steps: [20, 40], stepInterval: '10m' },
        analysis: analysis[path],
      }),
    });
    await until(() => weight() === 20, 20_000);
    await sleep(2_000 + Math.random() * 5_000);
    const bad = Date.now();
    exporters.get(service)!.setSubset('v2', { rps: 50, errorRate: 0.5 });
    await until(() => weight() === undefined, 60_000);
    figures[path].push(Date.now() - bad);
    if (path === 'alert') {
      const events = await rolloutEvents({ ctx: h.domain.ctx, id: rollout.id });
      const cmd = events.find((e) => e.type === 'command' && e.reason.includes('CanaryHighErrorRate'));
      if (cmd) delivered.push(cmd.time - bad);
    }
    exporters.get(service)!.setSubset('v2', { rps: 50 });
  }
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const median = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return `median ${Math.round(median).toLocaleString('en')} ms, min ${Math.round(s[0]!).toLocaleString('en')} ms, max ${Math.round(s.at(-1)!).toLocaleString('en')} ms`;
};
console.log(`runs per path: ${RUNS}`);
console.log(`alert path, canary bad → alert delivered to vane: ${stats(delivered)}`);
console.log(`alert path, canary bad → stable 100:             ${stats(figures.alert)}`);
console.log(`guard path, canary bad → stable 100:             ${stats(figures.guard)}`);

await new Promise((r) => server.close(r));
await h.close();
await prom.stop();
await am.stop();
for (const e of exporters.values()) await e.stop();
await redis.stop();
rmSync(dir, { recursive: true, force: true });
