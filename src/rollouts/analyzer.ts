import { isDeepStrictEqual } from 'node:util';
import { runAnalysis } from '../metrics/analysis.ts';
import { CheckSpecError } from '../metrics/errors.ts';
import { compileChecks } from '../metrics/spec.ts';
import type { AnalysisContext, AnalysisReport, MetricProvider } from '../metrics/types.ts';
import type { RolloutAnalyzer } from './context.ts';
import { RolloutError } from './errors.ts';
import type { Rollout } from './model.ts';
import type { RolloutSpec } from './spec.ts';

/** What the analysis needs to know of the target beyond the spec: the service's host and the stable subset's labels. */
export interface TargetFacts {
  /** The destination host (the DestinationRule's host unless the spec names one). */
  host: string;
  /** Pod labels of the stable subset, as the DestinationRule says. */
  stableLabels: Record<string, string>;
}

export type TargetFactsReader = (r: Rollout) => Promise<TargetFacts>;

/** Checks a spec's metric checks up front (templates, options, variables, labels) with their field paths. */
export function validateMetricChecks(spec: RolloutSpec): { path: string; message: string }[] {
  try {
    compileChecks(spec.analysis.metrics, {
      vars: spec.analysis.vars,
      canaryLabels: Object.keys(spec.canary.labels),
    });
    return [];
  } catch (e) {
    if (e instanceof CheckSpecError) return e.issues;
    throw e;
  }
}

/** The Kubernetes Service name of a host: the first label of a cluster-local name. */
function serviceOf(host: string): string {
  return host.split('.')[0] ?? host;
}

/** The analysis context of a rollout for one scope: the guard's window or the full analysis's interval. */
export function analysisContext(r: Rollout, facts: TargetFacts, scope: 'critical' | 'full'): AnalysisContext {
  const a = r.spec.analysis;
  const windowMs = scope === 'critical' ? (a.guardWindow ?? a.interval) : a.interval;
  return {
    namespace: r.spec.target.namespace,
    host: facts.host,
    service: serviceOf(facts.host),
    stable: { subset: r.spec.stable.subset, labels: facts.stableLabels },
    canary: {
      subset: r.spec.canary.subset,
      labels: r.spec.canary.labels,
      ...(r.spec.canary.workload ? { workload: r.spec.canary.workload.name } : {}),
    },
    intervalSeconds: Math.max(1, Math.round(windowMs / 1000)),
    vars: a.vars,
  };
}

/**
 * The engine's analyzer over a MetricProvider: the guard runs the critical checks over the guard
 * window, the full analysis every check over the interval. Target facts are read once per rollout
 * and kept while the spec's target stays the same.
 */
export function createRolloutAnalyzer(opts: {
  /** Undefined when no Prometheus is configured: a rollout with metric checks then fails with the fix. */
  provider: MetricProvider | undefined;
  facts: TargetFactsReader;
  /** Budget of one check. Default 10s. */
  checkTimeoutMs?: number;
}): RolloutAnalyzer {
  const cache = new Map<string, { target: unknown; facts: TargetFacts }>();
  async function factsOf(r: Rollout): Promise<TargetFacts> {
    const hit = cache.get(r.id);
    if (hit && isDeepStrictEqual(hit.target, r.spec.target)) return hit.facts;
    const facts = await opts.facts(r);
    if (cache.size > 10_000) cache.clear();
    cache.set(r.id, { target: r.spec.target, facts });
    return facts;
  }
  return {
    async analyze(r, scope, now, signal): Promise<AnalysisReport> {
      const a = r.spec.analysis;
      const checks = scope === 'critical' ? a.metrics.filter((m) => m.critical) : a.metrics;
      if (checks.length === 0) return { verdict: 'pass', results: [], at: now };
      if (!opts.provider) {
        throw new RolloutError(
          'BAD_REQUEST',
          'analysis.metrics: no Prometheus is configured; set PROMETHEUS_URL (or prometheus in the VANE_CONFIG file)',
        );
      }
      const facts = await factsOf(r);
      return runAnalysis({
        provider: opts.provider,
        checks,
        ctx: analysisContext(r, facts, scope),
        minRequests: a.minRequests,
        reporter: a.reporter,
        ...(a.requestCountQuery ? { requestCountQuery: a.requestCountQuery } : {}),
        now: new Date(now),
        only: scope === 'critical' ? 'critical' : 'all',
        checkTimeoutMs: opts.checkTimeoutMs ?? 10_000,
        ...(signal ? { signal } : {}),
      });
    },
  };
}
