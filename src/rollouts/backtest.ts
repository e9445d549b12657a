import { type BacktestReport, backtest, parseBacktestWindow } from '../metrics/backtest.ts';
import { isMetricError } from '../metrics/errors.ts';
import type { MetricProvider } from '../metrics/types.ts';
import {
  analysisContext,
  type TargetFacts,
  type TargetFactsReader,
  validateMetricChecks,
} from './analyzer.ts';
import type { DomainContext } from './context.ts';
import { RolloutError } from './errors.ts';
import type { Rollout } from './model.ts';
import { describeZodError, type RolloutSpec, RolloutSpecSchema } from './spec.ts';
import { mergeUnder } from './templates.ts';

export interface BacktestRun {
  start: Date;
  end: Date;
  /** Pod labels of the stable subset; default: read from the DestinationRule in the cluster. */
  stableLabels?: Record<string, string>;
  /** Prometheus's scrape interval in seconds (the step is never shorter). Default: measured from the stable's samples, else 15. */
  scrapeIntervalSeconds?: number;
  signal?: AbortSignal;
}

/** Replays a validated spec's analysis over a past window (built once per process, beside the analyzer). */
export type BacktestRunner = (spec: RolloutSpec, run: BacktestRun) => Promise<BacktestReport>;

/** The runner over the process's Prometheus and the cluster's target facts. */
export function createBacktestRunner(opts: {
  provider: MetricProvider;
  facts: TargetFactsReader;
  /** Deadline of each range query. Default 10 s (the whole request has the API's deadline). */
  callTimeoutMs?: number;
}): BacktestRunner {
  return async (spec, run) => {
    const r = { id: 'backtest', spec } as Rollout;
    let facts: TargetFacts;
    if (run.stableLabels) {
      facts = { host: spec.target.host ?? spec.target.virtualService, stableLabels: run.stableLabels };
    } else {
      try {
        facts = await opts.facts(r);
      } catch (e) {
        throw new RolloutError(
          'BAD_REQUEST',
          `stableLabels: the stable subset's labels could not be read from the cluster (${(e as Error).message}); give them, e.g. { "version": "v1" }`,
        );
      }
    }
    const a = spec.analysis;
    return backtest({
      provider: opts.provider,
      checks: a.metrics,
      ctx: analysisContext(r, facts, 'full'),
      start: run.start,
      end: run.end,
      stepSeconds: spec.strategy.stepInterval / 1000,
      ...(run.scrapeIntervalSeconds !== undefined
        ? { scrapeIntervalSeconds: run.scrapeIntervalSeconds }
        : {}),
      minRequests: a.minRequests,
      reporter: a.reporter,
      ...(a.requestCountQuery ? { requestCountQuery: a.requestCountQuery } : {}),
      failureThreshold: a.failureThreshold,
      inconclusiveDeadlineMs: a.deadlines.inconclusive,
      callTimeoutMs: opts.callTimeoutMs ?? 10_000,
      ...(run.signal ? { signal: run.signal } : {}),
    });
  };
}

export interface BacktestInput {
  /** A rollout spec (the canary may be left out: the stable stands for it). */
  spec?: Record<string, unknown>;
  /** Or the name of a template. */
  template?: string;
  /** How far back: 7d, 36h, 90m. */
  window: string;
  /** End of the window. Default now. */
  end?: Date;
  stableLabels?: Record<string, string>;
  scrapeIntervalSeconds?: number;
  signal?: AbortSignal;
  /** Called with the validated spec before any query (the API's namespace check); throws to refuse. */
  authorize?: (spec: RolloutSpec) => void;
}

/**
 * The verb behind POST /api/v1/analyze/backtest: resolves the spec (or template), validates it
 * like a new rollout's (every field path named), and replays its analysis over the window.
 */
export async function backtestSpec({
  ctx,
  input,
}: {
  ctx: DomainContext;
  input: BacktestInput;
}): Promise<{ spec: RolloutSpec; report: BacktestReport }> {
  if (!ctx.backtest) {
    throw new RolloutError(
      'BAD_REQUEST',
      'no Prometheus is configured in vane: set PROMETHEUS_URL (or prometheus in the VANE_CONFIG file)',
    );
  }
  if ((input.spec === undefined) === (input.template === undefined)) {
    throw new RolloutError('BAD_REQUEST', 'spec: give either spec or template');
  }
  let raw = input.spec ?? {};
  if (input.template !== undefined) {
    const t = await ctx.templates.get(input.template);
    if (!t) {
      const known = (await ctx.templates.list()).map((x) => x.name);
      throw new RolloutError(
        'BAD_REQUEST',
        `template: no template named '${input.template}'; templates are: ${known.join(', ') || '(none)'}`,
      );
    }
    raw = mergeUnder(t.spec, {});
  }
  // The canary plays no part (the stable stands for both sides); a template usually leaves it out.
  if (raw.canary === undefined)
    raw = { ...raw, canary: { subset: 'backtest', labels: { version: 'backtest' } } };
  const parsed = RolloutSpecSchema.safeParse(raw);
  const issues = parsed.success ? validateMetricChecks(parsed.data) : describeZodError(parsed.error);
  if (!parsed.success || issues.length) {
    const first = issues[0]!;
    throw new RolloutError('BAD_REQUEST', `spec.${first.path || ''}: ${first.message}`.replace(/\.:/, ':'), {
      issues,
    });
  }
  if (parsed.data.analysis.metrics.length === 0) {
    throw new RolloutError('BAD_REQUEST', 'spec.analysis.metrics: the spec has no metric checks to replay');
  }
  input.authorize?.(parsed.data);
  let windowMs: number;
  try {
    windowMs = parseBacktestWindow(input.window);
  } catch (e) {
    throw new RolloutError('BAD_REQUEST', (e as Error).message);
  }
  const end = input.end ?? new Date(ctx.now());
  if (end.getTime() > ctx.now() + 60_000)
    throw new RolloutError('BAD_REQUEST', 'end: must not be in the future');
  try {
    const report = await ctx.backtest(parsed.data, {
      start: new Date(end.getTime() - windowMs),
      end,
      ...(input.stableLabels ? { stableLabels: input.stableLabels } : {}),
      ...(input.scrapeIntervalSeconds !== undefined
        ? { scrapeIntervalSeconds: input.scrapeIntervalSeconds }
        : {}),
      ...(input.signal ? { signal: input.signal } : {}),
    });
    return { spec: parsed.data, report };
  } catch (e) {
    if (isMetricError(e, 'config')) throw new RolloutError('BAD_REQUEST', e.message);
    if (isMetricError(e))
      throw new RolloutError('UNPROCESSABLE', `Prometheus could not answer the backtest: ${e.message}`);
    throw e;
  }
}
