import { MetricError } from './errors.ts';
import type { QueryResult } from './types.ts';

function labelSet(labels: Record<string, string>): string {
  return `{${Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(', ')}}`;
}

function checkFinite(value: number, query: string): number {
  if (Number.isNaN(value)) {
    throw new MetricError(
      'nan',
      `the query returned NaN — usually 0/0, no requests in the window (query: ${query})`,
      { query },
    );
  }
  if (!Number.isFinite(value)) {
    throw new MetricError(
      'infinite',
      `the query returned ${value > 0 ? '+Inf' : '-Inf'} — a division by zero or a quantile above the highest bucket (query: ${query})`,
      { query },
    );
  }
  return value;
}

/** The only series of a result; no series and several series are each their own error. */
function onlySeries<S extends { labels: Record<string, string> }>(series: S[], query: string): S {
  if (series.length === 0) {
    throw new MetricError(
      'no-data',
      `no data: the query returned no series — check the labels (query: ${query})`,
      { query },
    );
  }
  if (series.length > 1) {
    const shown = series.slice(0, 3).map((s) => labelSet(s.labels));
    throw new MetricError(
      'multiple-series',
      `the query returned ${series.length} series where one was expected (${shown.join(', ')}${series.length > 3 ? ', ...' : ''}) — aggregate with sum() or narrow the labels (query: ${query})`,
      { query },
    );
  }
  return series[0]!;
}

/**
 * The one number an instant query should give. Each way of not having one is its own error code;
 * nothing is turned into 0.
 */
export function singleValue(result: QueryResult, query: string): number {
  if (result.type === 'scalar') return checkFinite(result.value, query);
  if (result.type !== 'vector') {
    throw new MetricError('unexpected-type', `expected one number, got a ${result.type} (query: ${query})`, {
      query,
    });
  }
  return checkFinite(onlySeries(result.series, query).value, query);
}

/**
 * The points of the one series a range query should give, without NaN/Inf points (a step with no
 * traffic), which a rank test cannot order meaningfully.
 */
export function singleSeries(result: QueryResult, query: string): number[] {
  if (result.type !== 'matrix') {
    throw new MetricError(
      'unexpected-type',
      `expected a range of values, got a ${result.type} (query: ${query})`,
      {
        query,
      },
    );
  }
  return onlySeries(result.series, query)
    .values.map(([, v]) => v)
    .filter((v) => Number.isFinite(v));
}
