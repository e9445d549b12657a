import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { overallVerdict, runAnalysis } from '../../src/metrics/analysis.ts';
import { promDuration } from '../../src/metrics/duration.ts';
import { CheckSpecError } from '../../src/metrics/errors.ts';
import { judgeRelative } from '../../src/metrics/judges/relative.ts';
import { judgeThreshold } from '../../src/metrics/judges/threshold.ts';
import { createPrometheusProvider } from '../../src/metrics/prometheus.ts';
import { compileQuery, escapePromString, renderQuery } from '../../src/metrics/render.ts';
import {
  AnalysisSpecSchema,
  compileChecks,
  type MetricCheckInput,
  MetricCheckSchema,
} from '../../src/metrics/spec.ts';
import { BUILTIN_TEMPLATES } from '../../src/metrics/templates.ts';
import type { AnalysisContext, MetricResult } from '../../src/metrics/types.ts';

const ctx: AnalysisContext = {
  namespace: 'bookinfo',
  host: 'reviews',
  service: 'reviews',
  stable: { subset: 'v1', labels: { version: 'v1' } },
  canary: { subset: 'v2', labels: { version: 'v2' } },
  intervalSeconds: 60,
};

function specError(fn: () => unknown): CheckSpecError {
  try {
    fn();
  } catch (e) {
    if (e instanceof CheckSpecError) return e;
    throw e;
  }
  throw new Error('expected a CheckSpecError');
}

describe('the metric check spec', () => {
  it('accepts the documented forms', () => {
    const checks: MetricCheckInput[] = [
      { name: 'success-rate', template: 'request-success-rate', thresholdRange: { min: 99 }, critical: true },
      { name: 'p99-latency', template: 'request-duration', thresholdRange: { max: 500 } },
      {
        name: 'p95',
        template: 'request-duration',
        options: { quantile: 0.95, reporter: 'destination' },
        thresholdRange: { max: 300 },
      },
      {
        name: 'latency-vs-stable',
        template: 'request-duration',
        compare: { to: 'stable', maxIncrease: 0.2 },
      },
      { name: 'errors-abs', template: 'request-success-rate', compare: { maxDecrease: 1, kind: 'absolute' } },
      {
        name: 'x',
        query:
          'sum(rate(istio_requests_total{destination_version="{{ canary.labels.version }}"}[{{ interval }}]))',
        thresholdRange: { min: 1 },
      },
      {
        name: 'mw',
        template: 'request-duration',
        judge: { type: 'mann-whitney', direction: 'increase', confidence: 0.99 },
      },
    ];
    const compiled = compileChecks(checks, { canaryLabels: ['version'] });
    expect(compiled.map((c) => c.label)).toEqual([
      'success rate',
      'p99 latency',
      'p95 latency',
      'p99 latency',
      'success rate',
      'x',
      'p99 latency',
    ]);
    expect(compiled[0]).toMatchObject({
      critical: true,
      judge: { type: 'threshold', min: 99 },
      path: 'analysis.metrics[0]',
    });
    expect(compiled[6]!.judge).toMatchObject({
      type: 'mann-whitney',
      confidence: 0.99,
      effectSize: 0.1,
      step: 10_000,
      window: 30_000,
    });
    expect(MetricCheckSchema.parse(checks[1]).critical).toBe(false);
  });

  it('rejects an unknown template at parse time, listing the known ones', () => {
    const e = specError(() =>
      compileChecks([{ name: 'a', template: 'request-latency', thresholdRange: { max: 1 } }]),
    );
    expect(e.message).toBe(
      "analysis.metrics[0].template: unknown template 'request-latency'; known: request-success-rate, request-duration, request-rate, request-count",
    );
  });

  it('names each problem by its field path', () => {
    const e = specError(() =>
      compileChecks(
        [
          { name: 'ok', template: 'request-rate', thresholdRange: { min: 1 } },
          { name: 'two', template: 'request-rate', query: 'up', thresholdRange: { min: 1 } },
          {
            name: 'typo',
            query: 'sum(rate(x{v="{{ canary.labels.versoin }}"}[{{ interval }}])) + {{ vars.nope }}',
            thresholdRange: { min: 1 },
          },
          { name: 'q', template: 'request-rate', options: { quantile: 0.5 }, thresholdRange: { min: 1 } },
          { name: 'none', template: 'request-rate' },
          { name: 'rel', query: 'sum(x{v="{{ canary.labels.version }}"})', compare: { maxIncrease: 0.1 } },
          { name: 'ok', template: 'request-rate', thresholdRange: { min: 1 } },
          { name: 'bad range', template: 'request-rate', thresholdRange: { min: 5, max: 1 } },
        ],
        { canaryLabels: ['app', 'version'], stableLabels: ['app', 'version'], vars: { team: 'a' } },
      ),
    );
    const byPath = e.issues.map((i) => `${i.path}: ${i.message}`);
    expect(byPath).toContain('analysis.metrics[1].template: give either template or query');
    expect(byPath).toContain(
      'analysis.metrics[2].query: unknown variable {{ canary.labels.versoin }}; known: namespace, host, service, interval, stable.subset, stable.labels.app, stable.labels.version, canary.subset, canary.labels.app, canary.labels.version, subject.subset, subject.labels.app, subject.labels.version, vars.team',
    );
    expect(
      byPath.some((m) => m.startsWith('analysis.metrics[2].query: unknown variable {{ vars.nope }}')),
    ).toBe(true);
    expect(byPath).toContain(
      'analysis.metrics[3].options.quantile: template request-rate takes no quantile; it takes: reporter',
    );
    expect(byPath).toContain(
      'analysis.metrics[4].thresholdRange: give exactly one of thresholdRange, compare or judge',
    );
    expect(
      byPath.some((m) =>
        m.startsWith('analysis.metrics[5].query: a query compared with the stable must select'),
      ),
    ).toBe(true);
    expect(byPath).toContain("analysis.metrics[6].name: duplicate metric name 'ok'");
    expect(byPath.some((m) => m.startsWith('analysis.metrics[7].name: letters, digits'))).toBe(true);
    expect(byPath).toContain('analysis.metrics[7].thresholdRange: min is above max');
  });

  it('refuses a template when the canary carries no label Istio reports', () => {
    const e = specError(() =>
      compileChecks([{ name: 'a', template: 'request-rate', thresholdRange: { min: 1 } }], {
        canaryLabels: ['app', 'track'],
      }),
    );
    expect(e.message).toMatch(/the canary's labels \(app, track\) include none Istio reports \(version, /);
  });

  it('the analysis settings have defaults and refuse duplicate names', () => {
    expect(AnalysisSpecSchema.parse({})).toEqual({
      interval: 60_000,
      minRequests: 50,
      reporter: 'source',
      metrics: [],
    });
    const r = AnalysisSpecSchema.safeParse({
      metrics: [
        { name: 'a', template: 'request-rate', thresholdRange: { min: 1 } },
        { name: 'a', template: 'request-rate', thresholdRange: { min: 1 } },
      ],
    });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]).toMatchObject({
      path: ['metrics', 1, 'name'],
      message: "duplicate metric name 'a'",
    });
  });
});

/** Go-style unquoting of a PromQL string (what Prometheus's lexer accepts), written independently. */
function unquote(lit: string): string {
  const q = lit[0]!;
  expect(lit.at(-1)).toBe(q);
  const body = lit.slice(1, -1);
  if (q === '`') return body;
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    expect(c).not.toBe('\n');
    if (c === q) throw new Error(`unescaped quote at ${i}`);
    if (c !== '\\') {
      out += c;
      continue;
    }
    const n = body[++i]!;
    const map: Record<string, string> = { n: '\n', r: '\r', t: '\t', '\\': '\\', [q]: q };
    if (!(n in map)) throw new Error(`bad escape \\${n}`);
    out += map[n];
  }
  return out;
}

describe('variables', () => {
  it('escape values for the quotes they stand in, so no value leaves its string', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 30 }),
        fc.constantFrom('"' as const, "'" as const),
        (v, q) => {
          expect(unquote(`${q}${escapePromString(v, q)}${q}`)).toBe(v);
        },
      ),
      { numRuns: 200 },
    );
    expect(() => escapePromString('a`b', '`')).toThrow(/backtick/);
  });

  it('render a query for either subset, with the interval as a PromQL duration', () => {
    const { query, errors } = compileQuery(
      'sum(rate(m{ns="{{ namespace }}",v=~"{{ subject.labels.version }}", c=\'{{canary.subset}}\', x="a\\"{{ vars.x }}"}[{{ interval }}]))',
      { vars: ['x'] },
    );
    expect(errors).toEqual([]);
    const hostile = { ...ctx, vars: { x: 'x"}) or vector(1) #' } };
    expect(renderQuery(query, hostile, 'canary')).toBe(
      'sum(rate(m{ns="bookinfo",v=~"v2", c=\'v2\', x="a\\"x\\"}) or vector(1) #"}[1m]))',
    );
    expect(renderQuery(query, hostile, 'stable', 90)).toContain('v=~"v1"');
    expect(renderQuery(query, hostile, 'stable', 90)).toContain('[90s]');
  });

  it('refuse a value outside quotes unless it is a plain name', () => {
    const { query } = compileQuery('{{ vars.metric }}{job="x"}', { vars: ['metric'] });
    expect(renderQuery(query, { ...ctx, vars: { metric: 'up' } }, 'canary')).toBe('up{job="x"}');
    expect(() => renderQuery(query, { ...ctx, vars: { metric: 'up or vector(1)' } }, 'canary')).toThrow(
      /stands outside quotes but its value "up or vector\(1\)" is not a plain name/,
    );
  });

  it('a stable label unknown at creation is reported when the query runs', () => {
    const { query, errors } = compileQuery('x{v="{{ stable.labels.track }}"}', { canaryLabels: ['version'] });
    expect(errors).toEqual([]);
    expect(() => renderQuery(query, ctx, 'canary')).toThrow(
      'variable {{ stable.labels.track }} has no value for this rollout',
    );
    expect(compileQuery('{{ foo | upper }} {{ x', {}).errors).toEqual([
      '{{ foo | upper }} is not a variable name (write e.g. {{ canary.labels.version }})',
      'unclosed {{ at character 19',
    ]);
  });

  it('promDuration', () => {
    expect([1, 30, 60, 90, 3600, 5400, 0.2].map(promDuration)).toEqual([
      '1s',
      '30s',
      '1m',
      '90s',
      '1h',
      '90m',
      '1s',
    ]);
  });

  it('built-in templates select the subset by the labels Istio reports, escaped', () => {
    const q = BUILTIN_TEMPLATES.get('request-success-rate')!.promql(
      { ...ctx, canary: { subset: 'c', labels: { version: 'v"2', app: 'x' }, workload: 'reviews-v2' } },
      { subset: 'c', labels: { version: 'v"2', app: 'x' }, workload: 'reviews-v2' },
      60,
      { quantile: 0.99, reporter: 'destination' },
    );
    expect(q).toBe(
      'sum(rate(istio_requests_total{reporter="destination",destination_service_namespace="bookinfo",destination_service_name="reviews",destination_version="v\\"2",destination_workload="reviews-v2",response_code!~"5.*"}[1m])) / sum(rate(istio_requests_total{reporter="destination",destination_service_namespace="bookinfo",destination_service_name="reviews",destination_version="v\\"2",destination_workload="reviews-v2"}[1m])) * 100',
    );
    expect(
      BUILTIN_TEMPLATES.get('request-duration')!.promql(ctx, ctx.canary, 30, {
        quantile: 0.95,
        reporter: 'source',
      }),
    ).toBe(
      'histogram_quantile(0.95, sum(rate(istio_request_duration_milliseconds_bucket{reporter="source",destination_service_namespace="bookinfo",destination_service_name="reviews",destination_version="v2"}[30s])) by (le))',
    );
  });
});

describe('threshold and relative judges', () => {
  const sr = { label: 'success rate', unit: '%' };
  const lat = { label: 'p99 latency', unit: 'ms' };

  it('write the sentence a human reads', () => {
    expect(judgeThreshold(91.2, { min: 99 }, sr, 99.9).message).toBe(
      'success rate 91.2% < 99% (stable 99.9%)',
    );
    expect(judgeThreshold(612, { max: 500 }, lat).message).toBe('p99 latency 612ms > 500ms');
    expect(judgeThreshold(412.4, { min: 1, max: 500 }, lat)).toEqual({
      verdict: 'pass',
      bounds: { min: 1, max: 500 },
      message: 'p99 latency 412ms >= 1ms and <= 500ms',
    });
    expect(judgeRelative(612, 493, { maxIncrease: 0.2 }, lat)).toMatchObject({
      verdict: 'fail',
      message: 'p99 latency 612ms is 24.1% above stable 493ms (max +20%)',
    });
    expect(judgeRelative(97.1, 99.9, { maxDecrease: 1, kind: 'absolute' }, sr)).toMatchObject({
      verdict: 'fail',
      message: 'success rate 97.1% is 2.8 points below stable 99.9% (max -1 points)',
    });
    expect(judgeRelative(5, 0, { maxIncrease: 10 }, lat).verdict).toBe('fail');
    expect(judgeRelative(0, 0, { maxIncrease: 0 }, lat).verdict).toBe('pass');
  });

  it('threshold: fails exactly outside [min, max]', () => {
    fc.assert(
      fc.property(
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        (v, a, b) => {
          const [min, max] = a <= b ? [a, b] : [b, a];
          expect(judgeThreshold(v, { min, max }, lat).verdict).toBe(v < min || v > max ? 'fail' : 'pass');
          expect(judgeThreshold(v, { min }, lat).verdict).toBe(v < min ? 'fail' : 'pass');
          expect(judgeThreshold(v, { max }, lat).verdict).toBe(v > max ? 'fail' : 'pass');
        },
      ),
    );
  });

  it('relative: a canary equal to the stable always passes; the verdict follows the ratio', () => {
    const pos = fc.double({ min: 0.001, max: 1e6, noNaN: true });
    fc.assert(
      fc.property(pos, pos, fc.double({ min: 0, max: 2, noNaN: true }), (c, s, limit) => {
        expect(judgeRelative(s, s, { maxIncrease: 0, maxDecrease: 0 }, lat).verdict).toBe('pass');
        const ratio = (c - s) / s;
        expect(judgeRelative(c, s, { maxIncrease: limit }, lat).verdict).toBe(
          ratio > limit ? 'fail' : 'pass',
        );
        expect(judgeRelative(c, s, { maxDecrease: limit }, lat).verdict).toBe(
          -ratio > limit ? 'fail' : 'pass',
        );
      }),
    );
  });
});

describe('the overall verdict', () => {
  const r = (verdict: MetricResult['verdict'], critical = false): MetricResult => ({
    name: 'x',
    verdict,
    critical,
    message: '',
  });
  it('fail beats inconclusive beats pass', () => {
    expect(overallVerdict([r('pass'), r('inconclusive'), r('fail')])).toBe('fail');
    expect(overallVerdict([r('pass'), r('inconclusive')])).toBe('inconclusive');
    expect(overallVerdict([r('pass'), r('pass', true)])).toBe('pass');
    expect(overallVerdict([r('fail', true), r('pass')])).toBe('fail');
  });

  it('a check that takes too long is inconclusive within its budget', async () => {
    const silent = createServer(() => {});
    await new Promise<void>((res) => silent.listen(0, '127.0.0.1', res));
    const provider = createPrometheusProvider({
      url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`,
      timeout: '30s',
    });
    const t0 = Date.now();
    const report = await runAnalysis({
      provider,
      ctx,
      checkTimeoutMs: 300,
      minRequests: 10,
      checks: [{ name: 'sr', template: 'request-success-rate', thresholdRange: { min: 99 } }],
    });
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(report.verdict).toBe('inconclusive');
    expect(report.results[0]!.verdict).toBe('inconclusive');
    provider.close();
    silent.closeAllConnections();
    silent.close();
  });

  it('a check whose variables cannot be filled at run time is inconclusive, not thrown', async () => {
    const provider = createPrometheusProvider({ url: 'http://127.0.0.1:9' });
    const report = await runAnalysis({
      provider,
      ctx,
      checks: [{ name: 'typo', query: 'x{v="{{ canary.labels.versoin }}"}', thresholdRange: { min: 1 } }],
    });
    expect(report.results[0]).toMatchObject({ verdict: 'inconclusive', reason: 'config' });
    expect(report.results[0]!.message).toMatch(
      /^analysis\.metrics\[0\]\.query: unknown variable \{\{ canary\.labels\.versoin \}\}/,
    );
  });
});
