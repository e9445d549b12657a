import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { overallVerdict, runAnalysis } from './analysis.ts';
import { MetricError } from './errors.ts';
import { createPrometheusProvider } from './prometheus.ts';
import { compileChecks, type MetricCheckInput } from './spec.ts';
import type { AnalysisContext, MetricProvider, MetricResult, QueryResult } from './types.ts';

const ctx: AnalysisContext = {
  namespace: 'shop',
  host: 'cart',
  service: 'cart',
  stable: { subset: 'v1', labels: { version: 'v1' } },
  canary: { subset: 'v2', labels: { version: 'v2' } },
  intervalSeconds: 60,
};

/**
 * Answers a custom query from a table keyed by the PromQL text; `bad` throws Prometheus's own
 * bad-query error, `down` an unreachable one, `hang` never answers (until the signal aborts).
 */
class TableProvider implements MetricProvider {
  constructor(private readonly table: Record<string, number | 'bad' | 'down' | 'hang'>) {}
  async query(promql: string, opts: { signal?: AbortSignal } = {}): Promise<QueryResult> {
    const v = this.table[promql] ?? this.table[promql.split('{')[0]!];
    if (v === undefined) return { type: 'vector', series: [], warnings: [] };
    if (v === 'bad')
      throw new MetricError('bad-query', `bad query: parse error in ${promql}`, { query: promql });
    if (v === 'down') throw new MetricError('unreachable', 'Prometheus is unreachable: connect ECONNREFUSED');
    if (v === 'hang')
      return new Promise((_, reject) =>
        opts.signal?.addEventListener('abort', () => reject(opts.signal?.reason)),
      );
    return { type: 'vector', series: [{ labels: {}, value: v }], warnings: [] };
  }
  async queryRange(): Promise<QueryResult> {
    throw new Error('not used');
  }
  async isOnline(): Promise<boolean> {
    return true;
  }
}

const check = (name: string, query: string, over: Partial<MetricCheckInput> = {}): MetricCheckInput => ({
  name,
  query,
  thresholdRange: { max: 10 },
  ...over,
});

describe('dry-run metrics', () => {
  it('defaults to false and is carried into the compiled check', () => {
    const [a, b] = compileChecks([check('a', 'q_a'), check('b', 'q_b', { dryRun: true })]);
    expect(a!.dryRun).toBe(false);
    expect(b!.dryRun).toBe(true);
  });

  it('refuses a dryRun that is not a boolean, naming the field', () => {
    expect(() => compileChecks([check('a', 'q_a', { dryRun: 'yes' as unknown as boolean })])).toThrow(
      /analysis\.metrics\[0\]\.dryRun/,
    );
  });

  it('a failing dry-run check is judged and shown as failed, and the analysis passes', async () => {
    const report = await runAnalysis({
      provider: new TableProvider({ q_ok: 1, q_new: 99 }),
      checks: [check('errors', 'q_ok'), check('new-query', 'q_new', { dryRun: true })],
      ctx,
    });
    expect(report.verdict).toBe('pass');
    const dry = report.results.find((r) => r.name === 'new-query')!;
    expect(dry).toMatchObject({ verdict: 'fail', dryRun: true, value: 99 });
    expect(dry.message).toMatch(/99/);
    expect(report.results.find((r) => r.name === 'errors')!.dryRun).toBeUndefined();
  });

  it('a failing counted check still fails next to a passing dry-run one', async () => {
    const report = await runAnalysis({
      provider: new TableProvider({ q_bad: 50, q_new: 1 }),
      checks: [check('errors', 'q_bad'), check('new-query', 'q_new', { dryRun: true })],
      ctx,
    });
    expect(report.verdict).toBe('fail');
  });

  it('when every check is dry-run the verdict is pass, failing and inconclusive ones included', async () => {
    const report = await runAnalysis({
      provider: new TableProvider({ q_a: 99 }),
      checks: [check('a', 'q_a', { dryRun: true }), check('b', 'q_missing', { dryRun: true })],
      ctx,
    });
    expect(report.results.map((r) => [r.name, r.verdict])).toEqual([
      ['a', 'fail'],
      ['b', 'inconclusive'],
    ]);
    expect(report.verdict).toBe('pass');
  });

  it('every check dry-run with too little traffic still passes: the gate marks them inconclusive, nothing waits', async () => {
    const report = await runAnalysis({
      provider: new TableProvider({ q_a: 1, istio_requests_total: 0 }),
      checks: [check('a', 'q_a', { dryRun: true })],
      ctx,
      minRequests: 50,
      requestCountQuery: 'istio_requests_total{x="y"}',
    });
    expect(report.results[0]).toMatchObject({
      verdict: 'inconclusive',
      reason: 'insufficient-traffic',
      dryRun: true,
    });
    expect(report.verdict).toBe('pass');
  });

  it('an inconclusive dry-run check does not make a passing analysis inconclusive (no waiting on it)', async () => {
    const report = await runAnalysis({
      provider: new TableProvider({ q_ok: 1 }),
      checks: [check('errors', 'q_ok'), check('new-query', 'q_nothing', { dryRun: true })],
      ctx,
    });
    expect(report.results[1]).toMatchObject({ verdict: 'inconclusive', reason: 'no-data', dryRun: true });
    expect(report.verdict).toBe('pass');
  });

  // Argo Rollouts #2151 and #2399: an erroring dry-run metric failed or stalled the whole analysis.
  it.each([
    ['a bad query', 'bad', 'bad-query'],
    ['an unreachable provider', 'down', 'unreachable'],
  ] as const)(
    'a dry-run check erroring with %s neither fails nor holds the analysis',
    async (_, kind, reason) => {
      const report = await runAnalysis({
        provider: new TableProvider({ q_ok: 1, q_err: kind }),
        checks: [check('errors', 'q_ok'), check('new-query', 'q_err', { dryRun: true })],
        ctx,
      });
      expect(report.results[1]).toMatchObject({ verdict: 'inconclusive', reason, dryRun: true });
      expect(report.verdict).toBe('pass');
    },
  );

  it('a dry-run check whose spec is broken (unknown variable) is reported and does not count', async () => {
    const report = await runAnalysis({
      provider: new TableProvider({ q_ok: 1 }),
      checks: [check('errors', 'q_ok'), check('new-query', 'q{x="{{ nope }}"}', { dryRun: true })],
      ctx,
    });
    expect(report.results[1]).toMatchObject({ verdict: 'inconclusive', reason: 'config', dryRun: true });
    expect(report.verdict).toBe('pass');
  });

  it('a dry-run check that never answers is cut at its budget and the analysis passes', async () => {
    const started = Date.now();
    const report = await runAnalysis({
      provider: new TableProvider({ q_ok: 1, q_slow: 'hang' }),
      checks: [check('errors', 'q_ok'), check('new-query', 'q_slow', { dryRun: true })],
      ctx,
      checkTimeoutMs: 300,
    });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(report.results[1]).toMatchObject({ verdict: 'inconclusive', reason: 'timeout', dryRun: true });
    expect(report.verdict).toBe('pass');
  });

  it('a dry-run check against a Prometheus that accepts and never answers ends at its budget', async () => {
    const silent = createServer(() => {});
    await new Promise<void>((res) => silent.listen(0, '127.0.0.1', res));
    try {
      const provider = createPrometheusProvider({
        url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`,
        timeout: '30s',
      });
      const report = await runAnalysis({
        provider,
        checks: [check('new-query', 'q_slow', { dryRun: true, critical: true })],
        ctx,
        only: 'critical',
        checkTimeoutMs: 500,
      });
      expect(report.results[0]).toMatchObject({ dryRun: true, critical: true, verdict: 'inconclusive' });
      expect(report.verdict).toBe('pass');
    } finally {
      silent.closeAllConnections();
      await new Promise((r) => silent.close(r));
    }
  });

  it('the critical guard runs a critical dry-run check and its failure does not fail the guard', async () => {
    const report = await runAnalysis({
      provider: new TableProvider({ q_ok: 1, q_new: 99 }),
      checks: [
        check('errors', 'q_ok', { critical: true }),
        check('new-query', 'q_new', { critical: true, dryRun: true }),
        check('other', 'q_new'),
      ],
      ctx,
      only: 'critical',
    });
    expect(report.results.map((r) => r.name)).toEqual(['errors', 'new-query']);
    expect(report.results[1]).toMatchObject({ verdict: 'fail', dryRun: true });
    expect(report.verdict).toBe('pass');
  });

  it('overallVerdict leaves dry-run results out', () => {
    const r = (verdict: MetricResult['verdict'], dryRun?: boolean): MetricResult => ({
      name: 'x',
      verdict,
      critical: false,
      message: '',
      ...(dryRun ? { dryRun } : {}),
    });
    expect(overallVerdict([r('fail', true), r('inconclusive', true)])).toBe('pass');
    expect(overallVerdict([r('fail', true), r('inconclusive')])).toBe('inconclusive');
    expect(overallVerdict([r('pass', true), r('fail')])).toBe('fail');
  });
});
