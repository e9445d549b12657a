/**
 * Why a query gave no usable number. Each code is a sentinel the engine and the judges can switch
 * on; none of them is ever turned into 0.
 */
export type MetricErrorCode =
  /** Connection refused, DNS failure, TLS failure: Prometheus could not be reached. */
  | 'unreachable'
  /** No answer within the per-query timeout. */
  | 'timeout'
  /** Prometheus rejected the PromQL (400 bad_data, 422 execution); carries Prometheus's message. */
  | 'bad-query'
  /** 401/403 from Prometheus or the gateway in front of it. */
  | 'unauthorized'
  /** Any other non-success answer (a 5xx after the retries, an unexpected 4xx, a body that is not JSON). */
  | 'http'
  /** The query returned no series. */
  | 'no-data'
  /** The single value is NaN (typically 0/0: no requests in the window). */
  | 'nan'
  /** The single value is +Inf or -Inf. */
  | 'infinite'
  /** Several series where one was expected (a missing sum() or a label that matches more than one subset). */
  | 'multiple-series'
  /** A result type the caller cannot use (a string, or a matrix for an instant check). */
  | 'unexpected-type'
  /** The check cannot be rendered: a variable without a value, a label Istio does not report. */
  | 'config';

/** A typed failure of one metric query. `message` is a sentence a human can act on. */
export class MetricError extends Error {
  override readonly name = 'MetricError';
  constructor(
    readonly code: MetricErrorCode,
    message: string,
    readonly details: { query?: string; status?: number; errorType?: string } = {},
  ) {
    super(message);
  }
}

export function isMetricError(e: unknown, code?: MetricErrorCode): e is MetricError {
  return e instanceof MetricError && (code === undefined || e.code === code);
}

/** A check spec that cannot run: every problem with the field path that holds it. */
export class CheckSpecError extends Error {
  override readonly name = 'CheckSpecError';
  constructor(readonly issues: { path: string; message: string }[]) {
    super(issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  }
}
