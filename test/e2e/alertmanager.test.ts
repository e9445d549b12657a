import { createHash } from 'node:crypto';
import { type ServerType, serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApp } from '../../src/api/app.ts';
import { createPrometheusProvider } from '../../src/metrics/prometheus.ts';
import { rolloutEvents, startRollout } from '../../src/rollouts/verbs.ts';
import { freePort, type ManagedProcess } from '../../src/sandbox/processes.ts';
import {
  canarySpec,
  canaryWeightOf,
  type EngineHarness,
  seedTarget,
  startEngineHarness,
  VS,
} from '../helpers/engine.ts';
import { type IstioExporter, startIstioExporter } from '../helpers/istio-exporter.ts';
import {
  eventually,
  startTestAlertmanager,
  startTestPrometheus,
  startTestRedis,
} from '../helpers/services.ts';

/**
 * Alert-driven abort end to end: Istio-like series → a real Prometheus with a real alerting rule →
 * a real Alertmanager → vane's webhook over HTTP with a bearer token → the engine on the kube
 * simulator. Next to it, the same failure caught by the guard check, for the reaction times.
 *
 * Figures: `npx vitest run test/e2e/alertmanager.test.ts` prints both reaction times.
 */
const TOKEN = 'am-token-0123456789abcdef';
/** The rule's rate window and the guard's window: the same 10 s, so both see the failure alike. */
const WINDOW = '10s';

const RULES = `groups:
  - name: canary
    interval: 1s
    rules:
      - alert: CanaryHighErrorRate
        expr: >-
          sum by (destination_service_namespace, destination_service_name, destination_version)
            (rate(istio_requests_total{reporter="destination",response_code=~"5.."}[${WINDOW}]))
          / sum by (destination_service_namespace, destination_service_name, destination_version)
            (rate(istio_requests_total{reporter="destination"}[${WINDOW}])) > 0.05
        labels:
          severity: critical
          namespace: '{{ $labels.destination_service_namespace }}'
        annotations:
          summary: '{{ $labels.destination_service_name }} {{ $labels.destination_version }} answers {{ $value | humanizePercentage }} errors'
`;

let redis: ManagedProcess;
let prom: ManagedProcess;
let am: ManagedProcess;
let h: EngineHarness;
let server: ServerType;
const exporters: Record<string, IstioExporter> = {};

beforeAll(async () => {
  redis = await startTestRedis();
  for (const service of ['cart', 'shoes']) {
    const e = await startIstioExporter({ namespace: 'shop', service });
    e.setSubset('v1', { rps: 50 });
    e.setSubset('v2', { rps: 50 });
    exporters[service] = e;
  }
  const apiPort = await freePort();
  am = await startTestAlertmanager(`route:
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
  prom = await startTestPrometheus(
    Object.entries(exporters).map(([job, e]) => ({ job, target: e.hostPort })),
    '1s',
    { rules: RULES, alertmanagers: [`127.0.0.1:${am.port}`] },
  );
  const provider = createPrometheusProvider({ url: prom.url, timeout: '5s' });
  h = await startEngineHarness({ redisUrl: redis.url, provider });
  const app = newApp({
    logger: h.domain.ctx.logger,
    recorder: h.domain.ctx.recorder,
    readiness: [],
    scopedTokens: [
      { name: 'alertmanager', sha256: createHash('sha256').update(TOKEN).digest('hex'), scopes: ['operate'] },
    ],
    domain: h.domain.ctx,
  });
  server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: app.fetch, port: apiPort, hostname: '127.0.0.1' }, () => resolve(s));
  });
  // Both services have a few scrapes and the rule has been evaluated (no alert yet).
  await eventually(
    async () => {
      const r = await provider.query('count(count_over_time(istio_requests_total[1m]) >= 5)');
      return r.type === 'vector' && (r.series[0]?.value ?? 0) >= 8 ? true : undefined;
    },
    40_000,
    250,
  );
}, 120_000);

afterAll(async () => {
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  await h?.close();
  await prom?.stop();
  await am?.stop();
  for (const e of Object.values(exporters)) await e.stop();
  await redis?.stop();
});

const vsOf = (name: string) => h.sim.getObject(VS, 'VirtualService', 'shop', name);

/** Starts a rollout held at 20% (a long step), makes its canary fail half its requests, and times stable 100. */
async function badCanary(service: string, analysis: Record<string, unknown>) {
  seedTarget(h.sim, service);
  const { rollout } = await startRollout({
    ctx: h.domain.ctx,
    input: canarySpec(service, {
      strategy: { type: 'canary', steps: [20, 40], stepInterval: '5m' },
      analysis,
    }),
  });
  await eventually(async () => (canaryWeightOf(vsOf(service)) === 20 ? true : undefined), 20_000, 20);
  await new Promise((r) => setTimeout(r, 3_000)); // a few healthy scrapes and guard checks at 20%
  const bad = Date.now();
  exporters[service]!.setSubset('v2', { rps: 50, errorRate: 0.5 });
  await eventually(async () => (canaryWeightOf(vsOf(service)) === undefined ? true : undefined), 45_000, 20);
  const seconds = (Date.now() - bad) / 1000;
  const done = await h.settle(rollout.id, 20_000);
  return { rollout: done, seconds, events: await rolloutEvents({ ctx: h.domain.ctx, id: rollout.id }) };
}

describe('alert-driven abort: Prometheus rule → Alertmanager → vane (kube simulator, real Redis)', () => {
  const figures: string[] = [];
  afterAll(() => {
    for (const f of figures) console.log(f);
  });

  it('a firing alert about the canary rolls the rollout back at once: stable 100, the alert in the events', async () => {
    // No critical metric: only the alert can stop this rollout before the 5-minute step ends.
    const { rollout, seconds, events } = await badCanary('cart', {
      minRequests: 0,
      metrics: [],
      alerts: { action: 'rollback', severity: 'critical' },
    });
    figures.push(
      `alert path (rule eval 1s, group_wait 1s): canary bad → stable 100 in ${seconds.toFixed(2)} s`,
    );
    expect(rollout.phase, rollout.reason).toBe('aborted');
    expect(rollout.weights).toEqual({ stable: 100, canary: 0 });
    const command = events.find((e) => e.type === 'command' && e.reason.includes('CanaryHighErrorRate'));
    expect(command?.by).toBe('alertmanager');
    expect(command?.reason).toContain('destination_service_name="cart"');
    expect(command?.reason).toContain('namespace="shop"');
    expect(command?.reason).toContain('severity="critical"');
    expect(command?.reason).toMatch(/cart v2 answers \d+(\.\d+)?% errors/);
    const back = events.find((e) => e.type === 'transition' && e.to === 'rolling-back');
    expect(back?.reason).toMatch(/^aborted by alertmanager: alert firing: CanaryHighErrorRate/);
    // Well under the 5-minute step; generous for a loaded machine.
    expect(seconds).toBeLessThan(30);
  });

  it('the guard-check path for the same failure (the alert policy set to ignore, so only the guard acts)', async () => {
    const { rollout, seconds, events } = await badCanary('shoes', {
      minRequests: 0,
      guardInterval: '5s',
      guardWindow: WINDOW,
      failureThreshold: 1,
      metrics: [
        {
          name: 'success-rate',
          template: 'request-success-rate',
          critical: true,
          thresholdRange: { min: 99 },
        },
      ],
      alerts: { action: 'ignore' },
    });
    figures.push(
      `guard path (guardInterval 5s, guardWindow 10s): canary bad → stable 100 in ${seconds.toFixed(2)} s`,
    );
    expect(rollout.phase, rollout.reason).toBe('failed');
    expect(rollout.reason).toMatch(/success rate/);
    // The same rule fires for shoes too; its policy (ignore) leaves the rollback to the guard.
    expect(events.some((e) => e.type === 'transition' && e.reason.startsWith('aborted'))).toBe(false);
  });
});
