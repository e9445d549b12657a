/**
 * The contract between the rollout engine and metric analysis. The zod schema of a metric check
 * (`MetricCheckSchema`) lives in src/metrics/spec.ts; the rollout spec embeds it.
 */

/** Prometheus (or any provider) behind one interface. */
export interface MetricProvider {
  /** Instant query at `time` (default now). */
  query(promql: string, opts?: { time?: Date; signal?: AbortSignal }): Promise<QueryResult>;
  /** Range query. */
  queryRange(
    promql: string,
    opts: { start: Date; end: Date; stepSeconds: number; signal?: AbortSignal },
  ): Promise<QueryResult>;
  /** True when the provider answers a trivial query in time. */
  isOnline(): Promise<boolean>;
}

export type QueryResult =
  | { type: 'scalar'; value: number; warnings: string[] }
  | { type: 'vector'; series: { labels: Record<string, string>; value: number }[]; warnings: string[] }
  | {
      type: 'matrix';
      series: { labels: Record<string, string>; values: [number, number][] }[];
      warnings: string[];
    }
  | { type: 'string'; value: string; warnings: string[] };

/** One subset as the templates select it. */
export interface SubsetRef {
  subset: string;
  labels: Record<string, string>;
  /** Name of the subset's workload (Deployment), matched as destination_workload when given. */
  workload?: string;
}

/** What templates may refer to. */
export interface AnalysisContext {
  namespace: string;
  /** The destination host (short name or FQDN). */
  host: string;
  /** Kubernetes Service name (default: first label of host). */
  service: string;
  stable: SubsetRef;
  canary: SubsetRef;
  /** Query window in seconds. */
  intervalSeconds: number;
  /** User variables. */
  vars?: Record<string, string>;
}

export type Verdict = 'pass' | 'fail' | 'inconclusive';

/** The result of one metric check, with everything a human needs to see why. */
export interface MetricResult {
  name: string;
  verdict: Verdict;
  critical: boolean;
  /** A dry-run check: judged and shown, never counted in the report's verdict. */
  dryRun?: boolean;
  /** The canary's value (when one was measured). */
  value?: number;
  /** The stable's value for relative judges. */
  stableValue?: number;
  /** Bounds as applied, e.g. { min: 99 } or { maxIncrease: 0.2 }. */
  bounds?: Record<string, number | string>;
  /** A sentence: "success rate 91.2% < 99% (stable 99.9%)". */
  message: string;
  /** The PromQL run, for the on-call engineer. */
  query?: string;
  /** The PromQL run for the stable side, when there was one. */
  stableQuery?: string;
  /**
   * Why the verdict is inconclusive: a MetricError code (no-data, nan, infinite, multiple-series,
   * unreachable, timeout, bad-query, unauthorized, http, unexpected-type, config),
   * insufficient-traffic, or error (a bug).
   */
  reason?: string;
  /** Judge-specific figures, e.g. pValue and medians of Mann-Whitney. */
  details?: Record<string, number | string>;
}

export interface AnalysisReport {
  verdict: Verdict;
  results: MetricResult[];
  /** When it was evaluated (ms since epoch). */
  at: number;
  /** Canary requests in the window, when the sample-size gate ran and could count them. */
  requests?: number;
  /** The gate's minimum (0: no gate). */
  minRequests?: number;
  /** Wall-clock time the evaluation took. */
  durationMs?: number;
}
