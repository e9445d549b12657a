// biome-ignore-all lint/suspicious/noExplicitAny: rendered manifests and the dashboard are arbitrary YAML/JSON; the tests check their shape.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { freePort, type ManagedProcess } from '../../src/sandbox/processes.ts';
import { eventually, startTestPrometheus, startTestRedis } from '../helpers/services.ts';
import { find, kustomize, ROOT } from './render.ts';

const base = kustomize('deploy/base');
const monitoring = kustomize('deploy/monitoring');
const rule = find(monitoring.objects, 'PrometheusRule', 'vane');
const dashboard = JSON.parse(
  find(monitoring.objects, 'ConfigMap', 'vane-grafana-dashboard').data['vane-dashboard.json'],
);

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

/** The metric names a PromQL expression selects (strings, matchers, ranges and grouping clauses removed; functions skipped). */
function metricNames(expr: string): string[] {
  const s = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const out: string[] = [];
  for (const m of s.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    if (KEYWORDS.has(m[0].toLowerCase())) continue;
    if (
      s
        .slice(m.index + m[0].length)
        .trimStart()
        .startsWith('(')
    )
      continue;
    out.push(m[0]);
  }
  return out;
}

/** Every PromQL expression of the dashboard's panels, with Grafana's variables given values Prometheus accepts. */
function dashboardQueries(): { title: string; expr: string }[] {
  const out: { title: string; expr: string }[] = [];
  const walk = (panels: any[]) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) out.push({ title: p.title, expr: t.expr });
      if (p.panels) walk(p.panels);
    }
  };
  walk(dashboard.panels);
  return out;
}

const grafana = (expr: string) =>
  expr.replace(/\$__rate_interval|\$__interval/g, '1m').replace(/\$(namespace|target)\b/g, '.*');

/** Metric names in a Prometheus text exposition: every sample, and every family its TYPE line declares (with _bucket/_sum/_count). */
function exportedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\w+)/.exec(line);
    if (type) {
      names.add(type[1]!);
      if (type[2] === 'histogram' || type[2] === 'summary')
        for (const s of ['_bucket', '_sum', '_count']) names.add(type[1]! + s);
    } else if (line && !line.startsWith('#')) names.add(/^[^{\s]+/.exec(line)![0]);
  }
  return names;
}

describe('deploy/monitoring', () => {
  it('scrapes both vane Services on their http port', () => {
    const sm = find(monitoring.objects, 'ServiceMonitor', 'vane');
    const services = base.objects.filter((o) => o.kind === 'Service');
    expect(services.map((s) => s.metadata.name).sort()).toEqual(['vane-api', 'vane-worker']);
    for (const svc of services) {
      expect(svc.metadata.labels).toMatchObject(sm.spec.selector.matchLabels);
      expect(sm.spec.namespaceSelector.matchNames).toContain(svc.metadata.namespace);
      expect(svc.spec.ports.map((p: any) => p.name)).toContain(sm.spec.endpoints[0].port);
    }
  });

  it('has alert rules promtool accepts, one per condition the issue names', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vane-rules-'));
    const file = join(dir, 'rules.yaml');
    writeFileSync(file, stringify({ groups: rule.spec.groups }));
    const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const alerts = rule.spec.groups.flatMap((g: any) => g.rules.map((x: any) => x.alert));
    for (const a of ['VaneRolloutStuck', 'VaneTicksLate', 'VaneQueueBackingUp', 'VaneWebhookFailures'])
      expect(alerts).toContain(a);
  });

  it('finds metric names in PromQL (so an unknown one cannot slip through)', () => {
    expect(metricNames('sum by (le) (rate(vane_nope_bucket{a="b"}[5m])) > 0.9 unless on (x) up')).toEqual([
      'vane_nope_bucket',
      'up',
    ]);
  });
});

describe('the dashboard and the alerts against a real scrape of vane api and vane worker', () => {
  const procs: ChildProcess[] = [];
  let redis: ManagedProcess;
  let prometheus: ManagedProcess | undefined;
  let ports: { api: number; worker: number };
  let output = '';

  beforeAll(async () => {
    redis = await startTestRedis();
    // Started with the config file the ConfigMap ships; the environment points it at the test's Redis.
    const dir = mkdtempSync(join(tmpdir(), 'vane-scrape-'));
    const config = join(dir, 'vane.yaml');
    writeFileSync(config, base.objects.find((o) => o.kind === 'ConfigMap').data['vane.yaml']);
    ports = { api: await freePort(), worker: await freePort() };
    for (const role of ['api', 'worker'] as const) {
      const child = spawn('node', [join(ROOT, 'bin', 'vane.mjs'), role], {
        env: {
          ...process.env,
          VANE_CONFIG: config,
          REDIS_URL: redis.url,
          PORT: String(ports[role]),
          HOST: '127.0.0.1',
          VANE_DATA_DIR: dir,
          VANE_KEY_PREFIX: `scrape${process.pid}`,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout!.on('data', (b) => {
        output += b;
      });
      child.stderr!.on('data', (b) => {
        output += b;
      });
      procs.push(child);
    }
    for (const port of Object.values(ports))
      await eventually(async () => {
        const r = await fetch(`http://127.0.0.1:${port}/readyz`);
        return r.status === 200 ? true : undefined;
      }, 30_000).catch((e) => {
        throw new Error(`${(e as Error).message}\n${output.slice(-3000)}`);
      });
  }, 60_000);

  afterAll(async () => {
    await prometheus?.stop();
    await Promise.all(
      procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null) return resolve();
            p.once('exit', () => resolve());
            p.kill('SIGTERM');
          }),
      ),
    );
    await redis?.stop();
  });

  it('names only metrics that vane exports, in queries Prometheus accepts', async () => {
    const scraped = new Set<string>();
    for (const port of Object.values(ports))
      for (const n of exportedNames(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()))
        scraped.add(n);
    // The worker exports the tick and queue metrics the dashboard is about.
    expect(scraped).toContain('vane_tick_lateness_seconds_bucket');
    expect(scraped).toContain('vane_queue_jobs');

    const queries = [
      ...dashboardQueries().map((q) => ({ where: `dashboard panel "${q.title}"`, expr: q.expr })),
      ...rule.spec.groups.flatMap((g: any) =>
        g.rules.map((r: any) => ({ where: `alert ${r.alert}`, expr: r.expr as string })),
      ),
    ];
    expect(queries.length).toBeGreaterThan(15);
    const variables = dashboard.templating.list.filter((v: any) => v.type === 'query');
    const named: { where: string; name: string }[] = [
      ...queries.flatMap((q) => metricNames(grafana(q.expr)).map((name) => ({ where: q.where, name }))),
      ...variables.map((v: any) => ({
        where: `dashboard variable ${v.name}`,
        name: /^label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(v.query.query)![1]!,
      })),
    ];
    const unknown = named.filter((n) => !scraped.has(n.name));
    expect(unknown, `metrics vane does not export: ${JSON.stringify(unknown)}`).toEqual([]);
    // Every family the dashboard is asked to show is named somewhere.
    const used = new Set(named.map((n) => n.name));
    for (const m of [
      'vane_rollouts',
      'vane_rollout_weight',
      'vane_rollout_transitions_total',
      'vane_analysis_results_total',
      'vane_tick_lateness_seconds_bucket',
      'vane_queue_jobs',
      'vane_kube_requests_total',
      'vane_prometheus_queries_total',
      'vane_notifications_total',
    ])
      expect(used, m).toContain(m);

    // A real Prometheus scraping both processes: every query parses and runs.
    prometheus = await startTestPrometheus([
      { job: 'vane-api', target: `127.0.0.1:${ports.api}` },
      { job: 'vane-worker', target: `127.0.0.1:${ports.worker}` },
    ]);
    const query = async (expr: string) =>
      (await (
        await fetch(`${prometheus!.url}/api/v1/query`, {
          method: 'POST',
          body: new URLSearchParams({ query: expr }),
          signal: AbortSignal.timeout(10_000),
        })
      ).json()) as { status: string; error?: string; data?: { result: unknown[] } };
    const up = await eventually(async () => {
      const r = await query('vane_build_info');
      return r.data && r.data.result.length === 2 ? r : undefined;
    }, 30_000);
    expect(up.status).toBe('success');
    for (const q of queries) {
      const r = await query(grafana(q.expr));
      expect(r, `${q.where}: ${q.expr}`).toMatchObject({ status: 'success' });
    }
    // The workers are scraped, so the alert on their absence is silent.
    const absent = rule.spec.groups[0].rules.find((r: any) => r.alert === 'VaneWorkersAbsent');
    expect((await query(absent.expr)).data?.result).toEqual([]);
  }, 90_000);
});
