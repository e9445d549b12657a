import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ServerType, serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { type App, newApp } from '../../src/api/app.ts';
import type { BacktestReport } from '../../src/metrics/backtest.ts';
import { createPrometheusProvider } from '../../src/metrics/prometheus.ts';
import { createBacktestRunner } from '../../src/rollouts/backtest.ts';
import { freePort, type ManagedProcess } from '../../src/sandbox/processes.ts';
import { vane } from '../cli/harness.ts';
import { buildTestDomain, type TestDomain } from '../helpers/domain.ts';
import { END, HISTORY_CHECKS, START, startHistoryPrometheus, weekday } from '../helpers/history.ts';
import { startTestRedis } from '../helpers/services.ts';

/** POST /api/v1/analyze/backtest and `vane analyze --backtest`, on a real Redis and a real Prometheus holding a week. */
const TOKEN = 'backtest-reader-0123456789';
const SHOP_ONLY = 'backtest-other-ns-0123456789';
const sha = (t: string) => createHash('sha256').update(t).digest('hex');

const spec = {
  target: {
    namespace: 'shop',
    virtualService: 'cart',
    destinationRule: 'cart',
    host: 'cart.shop.svc.cluster.local',
  },
  stable: { subset: 'v1' },
  strategy: { type: 'canary', steps: [10, 50], stepInterval: '5m' },
  analysis: { interval: '5m', minRequests: 50, failureThreshold: 2, metrics: HISTORY_CHECKS },
};
const stableLabels = { app: 'cart', version: 'v1' };

let redis: ManagedProcess;
let prom: ManagedProcess;
let domain: TestDomain;
let app: App;
let server: ServerType;
let url: string;
let dir: string;

beforeAll(async () => {
  [redis, prom] = await Promise.all([startTestRedis(), startHistoryPrometheus()]);
  domain = buildTestDomain({ redisUrl: redis.url, templates: { cart: spec } });
  domain.ctx.backtest = createBacktestRunner({
    provider: createPrometheusProvider({ url: prom.url, timeout: '20s' }),
    facts: async () => {
      throw new Error('no cluster in this test');
    },
  });
  app = newApp({
    logger: domain.ctx.logger,
    recorder: domain.ctx.recorder,
    readiness: [],
    scopedTokens: [
      { name: 'ci', sha256: sha(TOKEN), scopes: ['read'] },
      { name: 'other', sha256: sha(SHOP_ONLY), scopes: ['read'], namespaces: ['payments'] },
    ],
    domain: domain.ctx,
  });
  const port = await freePort();
  server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: app.fetch, port, hostname: '127.0.0.1' }, () => resolve(s));
  });
  url = `http://127.0.0.1:${port}`;
  dir = mkdtempSync(join(tmpdir(), 'vane-backtest-cli-'));
}, 150_000);
afterAll(async () => {
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  await domain?.close();
  await prom?.stop();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const post = (body: unknown, token = TOKEN) =>
  app.request('/api/v1/analyze/backtest', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
const base = { window: '7d', end: new Date(END).toISOString(), stableLabels, scrapeInterval: '1m' };
const expectedStart = `would have rolled back an identical release 3 times in 7 days: ${[1, 3, 5]
  .map((d) => `p99-latency > 500ms on ${weekday(START + d * 86_400_000)} 14:10`)
  .join(', ')}; `;

describe('POST /api/v1/analyze/backtest', () => {
  it('replays a spec over the week and answers the counts and the verdict', async () => {
    const res = await post({ spec, ...base });
    expect(res.status).toBe(200);
    const r = (await res.json()) as BacktestReport;
    expect(r.evaluations).toBe(2017);
    expect(r.stepSeconds).toBe(300);
    expect(r.metrics.find((m) => m.name === 'p99-latency')).toMatchObject({ failed: 9, inconclusive: 42 });
    expect(r.rollbacks).toHaveLength(3);
    expect(r.verdict.startsWith(expectedStart)).toBe(true);
  });

  it('takes a template instead of a spec', async () => {
    const res = await post({ template: 'cart', ...base });
    expect(res.status).toBe(200);
    expect(((await res.json()) as BacktestReport).verdict.startsWith(expectedStart)).toBe(true);
  });

  it.each([
    [{ spec, ...base, extra: 1 }, /extra/],
    [{ spec, ...base, window: '1w' }, /window: '1w' is not a window; use e\.g\. 7d/],
    [{ ...base }, /give either spec or template/],
    [{ spec, template: 'cart', ...base }, /give either spec or template/],
    [{ template: 'nope', ...base }, /template: no template named 'nope'; templates are: cart/],
    [{ spec: { ...spec, analysis: { metrics: [] } }, ...base }, /no metric checks to replay/],
    [
      {
        spec: {
          ...spec,
          analysis: { metrics: [{ name: 'x', template: 'nope', thresholdRange: { max: 1 } }] },
        },
        ...base,
      },
      /analysis\.metrics\[0\]\.template/,
    ],
    [{ spec, ...base, end: '2999-01-01T00:00:00Z' }, /end: must not be in the future/],
    [{ spec, ...base, scrapeInterval: 'often' }, /scrapeInterval: 'often' is not a duration/],
  ])('refuses bad input with 400 naming the field (%#)', async (body, message) => {
    const res = await post(body);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(message);
  });

  it("needs the read scope in the spec's namespace", async () => {
    const res = await post({ spec, ...base }, SHOP_ONLY);
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/namespace 'shop'/);
  });

  it('without the stable labels and no cluster, says which field to give', async () => {
    const { stableLabels: _, ...noLabels } = base;
    const res = await post({ spec, ...noLabels });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/^stableLabels: /);
  });
});

describe('vane analyze --backtest', () => {
  const flags = [
    '--end',
    new Date(END).toISOString(),
    '--stable-labels',
    'app=cart,version=v1',
    '--scrape-interval',
    '1m',
  ];
  const env = { VANE_URL: url, VANE_TOKEN: TOKEN, NO_COLOR: '1' };

  it('-f spec.yaml prints the table and the verdict, exit 1 (an identical release would have been rolled back)', async () => {
    const file = join(dir, 'spec.yaml');
    writeFileSync(file, stringify(spec));
    const r = await vane(['analyze', '--backtest', '7d', '-f', file, ...flags], {
      env: { ...env, VANE_URL: url },
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/p99-latency\s+1966\s+9\s+42\s+p99 latency 498ms <= 500ms on \w+ 14:\d\d/);
    expect(r.stdout).toMatch(/p50-latency \(dry run\)\s+1954\s+21\s+42/);
    expect(r.stdout).toContain(expectedStart);
  });

  it('--template NAME -o json prints the report', async () => {
    const r = await vane(['analyze', '--backtest', '7d', '--template', 'cart', '-o', 'json', ...flags], {
      env: { ...env, VANE_URL: url },
    });
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as BacktestReport;
    expect(report.rollbacks.map((e) => e.when)).toEqual(
      [1, 3, 5].map((d) => `${weekday(START + d * 86_400_000)} 14:10`),
    );
  });

  it('refuses -f and --template together, exit 2', async () => {
    const r = await vane(['analyze', '--backtest', '7d', '--template', 'cart', '-f', 'x.yaml'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/give the spec with one -f <file> or --template <name>/);
  });
});
