import { promqlFor } from './analysis.ts';
import { promDuration } from './duration.ts';
import { isMetricError, MetricError } from './errors.ts';
import { formatValue } from './judges/format.ts';
import { judgeRelative } from './judges/relative.ts';
import { judgeThreshold } from './judges/threshold.ts';
import { compileQuery, renderQuery } from './render.ts';
import { type CompiledCheck, compileChecks, type MetricCheck, type MetricCheckInput } from './spec.ts';
import { BUILTIN_TEMPLATES, istioSelector, type Reporter } from './templates.ts';
import type { AnalysisContext, MetricProvider, QueryResult } from './types.ts';

/** Prometheus refuses a range query of more than 11,000 points per series. */
export const PROMETHEUS_MAX_POINTS = 11_000;

const WINDOW_UNITS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** "7d", "36h", "90m" → milliseconds; at most 31 days. */
export function parseBacktestWindow(s: string): number {
  const m = /^(\d{1,4})(m|h|d)$/.exec(s);
  if (!m) throw new MetricError('config', `window: '${s}' is not a window; use e.g. 7d, 36h or 90m`);
  const ms = Number(m[1]) * WINDOW_UNITS[m[2] as keyof typeof WINDOW_UNITS];
  if (ms <= 0 || ms > 31 * 86_400_000) {
    throw new MetricError('config', `window: '${s}' must be more than 0 and at most 31d`);
  }
  return ms;
}

export interface BacktestOptions {
  provider: MetricProvider;
  checks: readonly (MetricCheckInput | MetricCheck)[];
  /** The target; its stable subset is measured, and stands for the canary too. */
  ctx: AnalysisContext;
  /** First and last evaluation time. */
  start: Date;
  end: Date;
  /** Time between evaluations: the rollout's step interval (each step ends with a full analysis). */
  stepSeconds: number;
  /**
   * Prometheus's scrape interval: the step is never shorter. Default: measured from the stable's
   * istio_requests_total samples in the window's last hour, else 15 (Prometheus's default).
   */
  scrapeIntervalSeconds?: number;
  minRequests?: number;
  reporter?: Reporter;
  requestCountQuery?: string;
  /** Failed analyses in a row that roll back. Default 1. */
  failureThreshold?: number;
  /** How long an analysis may stay inconclusive before the engine rolls back. Default 10 minutes. */
  inconclusiveDeadlineMs?: number;
  /** Points per range query. Default 11,000 (Prometheus's limit). */
  maxPoints?: number;
  /** Deadline of each range query. Default 30 s. */
  callTimeoutMs?: number;
  signal?: AbortSignal;
  /** Time zone of the dates in the verdict sentence. Default UTC. */
  timeZone?: string;
}

export interface BacktestEvent {
  /** ms since epoch */
  at: number;
  when: string;
  message: string;
}

export interface BacktestMetric {
  name: string;
  critical: boolean;
  dryRun: boolean;
  passed: number;
  failed: number;
  inconclusive: number;
  /** The passing evaluation closest to the bound: the value, the bound and how far (in the metric's unit). */
  closest?: { at: number; when: string; value: number; bound: number; margin: number; message: string };
  /** The first failures (at most 20). */
  failures: BacktestEvent[];
  /** Why the check was not replayed (e.g. Mann-Whitney: two identical series always pass). */
  notReplayed?: string;
  query?: string;
}

export interface BacktestGap {
  from: number;
  to: number;
  evaluations: number;
  /** The most requests any evaluation in the gap saw. */
  maxRequests: number;
}

export interface BacktestReport {
  start: number;
  end: number;
  stepSeconds: number;
  evaluations: number;
  metrics: BacktestMetric[];
  /** Evaluations in a row with fewer requests than minRequests (every check inconclusive). */
  gaps: BacktestGap[];
  /** When an identical release would have been rolled back for failed checks (once per episode). */
  rollbacks: BacktestEvent[];
  /** When it would have been rolled back for staying inconclusive past the deadline. */
  stalls: BacktestEvent[];
  /** Adjustments and warnings (a step raised to the scrape interval, a window too short for rate()). */
  notes: string[];
  /** Range queries sent to Prometheus. */
  queries: number;
  verdict: string;
}

/** The points of a range query's single series by timestamp (seconds); no series is an empty map. */
function pointsOf(result: QueryResult, query: string): Map<number, number> {
  if (result.type !== 'matrix') {
    throw new MetricError(
      'unexpected-type',
      `expected a range of values, got a ${result.type} (query: ${query})`,
      {
        query,
      },
    );
  }
  if (result.series.length > 1) {
    throw new MetricError(
      'multiple-series',
      `the query gives ${result.series.length} series, one was expected; aggregate it, e.g. sum(...) (query: ${query})`,
      { query },
    );
  }
  return new Map(result.series[0]?.values ?? []);
}

/**
 * One series over [start, end] at `step`, split in range queries of at most `maxPoints` points each
 * (Prometheus refuses more than 11,000), each with its own deadline.
 */
async function rangeInChunks(
  provider: MetricProvider,
  query: string,
  startS: number,
  endS: number,
  step: number,
  maxPoints: number,
  callTimeoutMs: number,
  signal: AbortSignal | undefined,
  counter: { n: number },
): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (let from = startS; from <= endS; from += maxPoints * step) {
    const to = Math.min(from + (maxPoints - 1) * step, endS);
    const timeout = AbortSignal.timeout(callTimeoutMs);
    counter.n++;
    const r = await provider.queryRange(query, {
      start: new Date(from * 1000),
      end: new Date(to * 1000),
      stepSeconds: step,
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    for (const [t, v] of pointsOf(r, query)) out.set(t, v);
  }
  return out;
}

const COMMON_INTERVALS = [1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600];

/**
 * The interval between the stable's samples, from how many istio_requests_total samples its busiest
 * series has in the last hour of the window; undefined when there are none (or no Istio labels).
 */
async function sampleInterval(o: BacktestOptions): Promise<number | undefined> {
  let q: string;
  try {
    q = `max(count_over_time(istio_requests_total{${istioSelector(o.ctx, o.ctx.stable, o.reporter ?? 'source')}}[1h]))`;
  } catch {
    return undefined;
  }
  try {
    const timeout = AbortSignal.timeout(o.callTimeoutMs ?? 30_000);
    const r = await o.provider.query(q, {
      time: o.end,
      signal: o.signal ? AbortSignal.any([o.signal, timeout]) : timeout,
    });
    const n = r.type === 'vector' ? r.series[0]?.value : undefined;
    if (n === undefined || n < 2) return undefined;
    // A range includes both its ends, and scrapes jitter: snap to the usual intervals.
    const raw = 3600 / n;
    return COMMON_INTERVALS.reduce((best, c) =>
      Math.abs(c - raw) / c < Math.abs(best - raw) / best ? c : best,
    );
  } catch (e) {
    if (o.signal?.aborted) throw e;
    return undefined; // the range queries will say what is wrong with Prometheus
  }
}

/** "Tuesday 14:05" (UTC unless told): a reader's way to name a time in the last weeks. */
export function whenOf(ms: number, timeZone = 'UTC'): string {
  const f = new Intl.DateTimeFormat('en-GB', {
    weekday: 'long',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
    timeZone,
  });
  const parts = Object.fromEntries(f.formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
  return `${parts.weekday} ${parts.hour}:${parts.minute}`;
}

function windowName(ms: number): string {
  const d = ms / 86_400_000;
  if (Number.isInteger(d)) return `${d} day${d === 1 ? '' : 's'}`;
  const h = ms / 3_600_000;
  if (Number.isInteger(h)) return `${h} hour${h === 1 ? '' : 's'}`;
  return `${Math.round(ms / 60_000)} minutes`;
}

/** "p99-latency > 500ms": the check and the bound it crossed. */
function crossed(check: CompiledCheck, value: number): string {
  const j = check.judge;
  if (j.type === 'threshold') {
    if (j.max !== undefined && value > j.max) return `${check.name} > ${formatValue(j.max, check.unit)}`;
    if (j.min !== undefined) return `${check.name} < ${formatValue(j.min, check.unit)}`;
  }
  return `${check.name} failed`;
}

/**
 * Replays a spec's analysis over a past window, with the stable version on both sides: what the
 * checks would have said about a release identical to the stable, at every step interval. Each
 * check's PromQL runs as range queries (the window split to Prometheus's point limit); each point
 * is judged as the analysis would judge it, the sample-size gate included; then the engine's rules
 * (critical checks roll back alone, failureThreshold failures in a row, the inconclusive deadline)
 * say when an identical release would have been rolled back — once per episode: the next release
 * is assumed to start when the checks pass again. Dry-run checks are judged and never roll back.
 */
export async function backtest(o: BacktestOptions): Promise<BacktestReport> {
  const notes: string[] = [];
  const measured = o.scrapeIntervalSeconds === undefined ? await sampleInterval(o) : undefined;
  const scrape = o.scrapeIntervalSeconds ?? measured ?? 15;
  const source =
    o.scrapeIntervalSeconds !== undefined
      ? ''
      : measured !== undefined
        ? ', measured from the data'
        : ', assumed';
  let step = Math.max(1, Math.round(o.stepSeconds));
  if (step < scrape) {
    notes.push(
      `step raised from ${step}s to the scrape interval (${scrape}s${source}): a shorter step repeats samples`,
    );
    step = scrape;
  }
  const maxPoints = Math.min(o.maxPoints ?? PROMETHEUS_MAX_POINTS, PROMETHEUS_MAX_POINTS);
  const callTimeoutMs = o.callTimeoutMs ?? 30_000;
  const reporter = o.reporter ?? 'source';
  const minRequests = o.minRequests ?? 0;
  const failureThreshold = o.failureThreshold ?? 1;
  const deadlineMs = o.inconclusiveDeadlineMs ?? 600_000;
  const tz = o.timeZone ?? 'UTC';
  // The stable stands for the canary: every query of the spec measures the stable.
  const ctx: AnalysisContext = { ...o.ctx, canary: o.ctx.stable };
  if (ctx.intervalSeconds < 2 * scrape) {
    notes.push(
      `the analysis interval (${ctx.intervalSeconds}s) holds fewer than two scrapes (${scrape}s): rate() over it is often empty`,
    );
  }
  const checks = compileChecks(o.checks, {
    vars: ctx.vars ?? {},
    stableLabels: Object.keys(ctx.stable.labels),
    canaryLabels: Object.keys(ctx.stable.labels),
  });
  // Evaluation times on whole multiples of the step, as Prometheus aligns nothing for us.
  const startS = Math.ceil(o.start.getTime() / 1000 / step) * step;
  const endS = Math.floor(o.end.getTime() / 1000 / step) * step;
  if (endS < startS) throw new MetricError('config', 'window: shorter than one step');
  const times: number[] = [];
  for (let t = startS; t <= endS; t += step) times.push(t);
  const counter = { n: 0 };
  const range = (q: string) =>
    rangeInChunks(o.provider, q, startS, endS, step, maxPoints, callTimeoutMs, o.signal, counter);

  let counts: Map<number, number> | undefined;
  if (minRequests > 0) {
    let q: string;
    if (o.requestCountQuery) {
      const c = compileQuery(o.requestCountQuery, { vars: Object.keys(ctx.vars ?? {}) });
      if (c.errors.length) throw new MetricError('config', `requestCountQuery: ${c.errors.join('; ')}`);
      q = renderQuery(c.query, ctx, 'canary');
    } else {
      q = BUILTIN_TEMPLATES.get('request-count')!.promql(ctx, ctx.stable, ctx.intervalSeconds, {
        quantile: 0.99,
        reporter,
      });
    }
    counts = await range(q);
  }

  const series = new Map<string, Map<number, number>>();
  const metrics: BacktestMetric[] = [];
  for (const check of checks) {
    const m: BacktestMetric = {
      name: check.name,
      critical: check.critical,
      dryRun: check.dryRun,
      passed: 0,
      failed: 0,
      inconclusive: 0,
      failures: [],
    };
    metrics.push(m);
    if (check.judge.type === 'mann-whitney') {
      m.notReplayed = 'Mann-Whitney compares two series; with the stable on both sides they are the same';
      continue;
    }
    const q = promqlFor(check, ctx, 'canary', reporter, check.intervalSeconds ?? ctx.intervalSeconds);
    m.query = q;
    series.set(check.name, await range(q));
  }

  const gaps: BacktestGap[] = [];
  const rollbacks: BacktestEvent[] = [];
  const stalls: BacktestEvent[] = [];
  let failures = 0;
  let inconclusiveSince: number | undefined;
  let blocked = false; // after a would-be rollback, until the checks pass again
  for (const t of times) {
    const ms = t * 1000;
    const requests = counts ? (counts.get(t) ?? 0) : undefined;
    const starved = requests !== undefined && requests < minRequests;
    if (starved) {
      const last = gaps.at(-1);
      if (last && last.to === ms - step * 1000) {
        last.to = ms;
        last.evaluations++;
        last.maxRequests = Math.max(last.maxRequests, Math.round(requests));
      } else gaps.push({ from: ms, to: ms, evaluations: 1, maxRequests: Math.round(requests) });
    }
    let worst: 'pass' | 'fail' | 'inconclusive' = 'pass';
    let criticalFail: string | undefined;
    let firstFail: string | undefined;
    checks.forEach((check, i) => {
      const m = metrics[i]!;
      if (m.notReplayed) return;
      const v = series.get(check.name)!.get(t);
      let verdict: 'pass' | 'fail' | 'inconclusive';
      if (starved || v === undefined || !Number.isFinite(v)) {
        verdict = 'inconclusive';
        m.inconclusive++;
      } else {
        const d = { label: check.label, unit: check.unit };
        const j = check.judge;
        const out =
          j.type === 'threshold'
            ? judgeThreshold(v, j, d)
            : judgeRelative(v, v, j as Parameters<typeof judgeRelative>[2], d);
        verdict = out.verdict;
        if (verdict === 'fail') {
          m.failed++;
          if (m.failures.length < 20) m.failures.push({ at: ms, when: whenOf(ms, tz), message: out.message });
        } else if (verdict === 'pass') {
          m.passed++;
          if (j.type === 'threshold') {
            const bound =
              j.max !== undefined && (j.min === undefined || j.max - v <= v - j.min) ? j.max : j.min!;
            const margin = Math.abs(bound - v);
            if (!m.closest || margin < m.closest.margin) {
              m.closest = { at: ms, when: whenOf(ms, tz), value: v, bound, margin, message: out.message };
            }
          }
        } else m.inconclusive++;
      }
      if (check.dryRun) return;
      if (verdict === 'fail') {
        worst = 'fail';
        const why = `${crossed(check, v!)} on ${whenOf(ms, tz)}`;
        firstFail ??= why;
        if (check.critical) criticalFail ??= why;
      } else if (verdict === 'inconclusive' && worst === 'pass') worst = 'inconclusive';
    });
    if (worst === 'pass') {
      failures = 0;
      inconclusiveSince = undefined;
      blocked = false;
      continue;
    }
    if (blocked) continue;
    if (worst === 'inconclusive') {
      inconclusiveSince ??= ms;
      if (ms - inconclusiveSince >= deadlineMs) {
        stalls.push({
          at: ms,
          when: whenOf(ms, tz),
          message: `inconclusive since ${whenOf(inconclusiveSince, tz)}${starved ? ` (too little traffic: ${Math.round(requests!)} of ${minRequests} requests)` : ''}`,
        });
        blocked = true;
        inconclusiveSince = undefined;
        failures = 0;
      }
      continue;
    }
    inconclusiveSince = undefined;
    failures++;
    if (criticalFail || failures >= failureThreshold) {
      rollbacks.push({ at: ms, when: whenOf(ms, tz), message: criticalFail ?? firstFail! });
      blocked = true;
      failures = 0;
    }
  }

  const report: BacktestReport = {
    start: startS * 1000,
    end: endS * 1000,
    stepSeconds: step,
    evaluations: times.length,
    metrics,
    gaps,
    rollbacks,
    stalls,
    notes,
    queries: counter.n,
    verdict: '',
  };
  report.verdict = verdictOf(report, endS * 1000 - startS * 1000, minRequests);
  return report;
}

/** The one-paragraph answer: how often an identical release would have been rolled back, and when. */
function verdictOf(r: BacktestReport, spanMs: number, minRequests: number): string {
  const span = windowName(Math.round(spanMs / 60_000) * 60_000);
  const list = (events: BacktestEvent[]) =>
    events.length > 5
      ? `${events
          .slice(0, 5)
          .map((e) => e.message)
          .join(', ')} and ${events.length - 5} more`
      : events.map((e) => e.message).join(', ');
  const parts: string[] = [];
  if (r.rollbacks.length === 0) parts.push(`would not have rolled back an identical release in ${span}`);
  else {
    const n = r.rollbacks.length;
    parts.push(
      `would have rolled back an identical release ${n === 1 ? 'once' : `${n} times`} in ${span}: ${list(r.rollbacks)}`,
    );
  }
  if (r.stalls.length) {
    const n = r.stalls.length;
    const starved = r.stalls.every((x) => x.message.includes('too little traffic'));
    const at = r.stalls.slice(0, 3).map((x) => x.when);
    parts.push(
      `it would have waited past the inconclusive deadline ${n === 1 ? 'once' : `${n} times`}${starved ? ' (too little traffic)' : ''}: ${at.join(', ')}${n > 3 ? ` and ${n - 3} more` : ''}`,
    );
  }
  const counted = r.metrics.filter((m) => !m.dryRun && m.closest);
  // Across metrics, margins compare as a share of their bound (2.5ms of 500ms is nearer than 0.9 of 99%).
  const rel = (m: BacktestMetric) => m.closest!.margin / Math.max(Math.abs(m.closest!.bound), 1e-9);
  const closest = counted.sort((a, b) => rel(a) - rel(b))[0];
  if (closest?.closest) {
    const c = closest.closest;
    parts.push(`closest pass: ${c.message} on ${c.when} (${closest.name})`);
  }
  if (r.gaps.length) {
    const longest = [...r.gaps].sort((a, b) => b.to - b.from - (a.to - a.from))[0]!;
    const minutes = Math.round((longest.to - longest.from) / 60_000) + Math.round(r.stepSeconds / 60);
    parts.push(
      `${r.gaps.length} gap${r.gaps.length === 1 ? '' : 's'} below minRequests (${minRequests}), the longest ${promDuration(minutes * 60)} from ${whenOf(longest.from)}`,
    );
  }
  const dry = r.metrics.filter((m) => m.dryRun && m.failed > 0);
  if (dry.length) {
    parts.push(`dry run, not counted: ${dry.map((m) => `${m.name} failed ${m.failed} times`).join(', ')}`);
  }
  return `${parts.join('; ')}.`;
}

/** True when an error from the backtest is the user's to fix (a bad spec or window), not Prometheus's. */
export function isConfigError(e: unknown): boolean {
  return isMetricError(e, 'config');
}
