/** The public surface of metric analysis: what the rollout engine and the API import. */
export { decisive, overallVerdict, type RunAnalysisOptions, runAnalysis } from './analysis.ts';
export { DurationSchema, promDuration } from './duration.ts';
export { CheckSpecError, isMetricError, MetricError, type MetricErrorCode } from './errors.ts';
export { mannWhitneyU } from './judges/mann-whitney.ts';
export {
  createPrometheusProvider,
  type PrometheusConfig,
  type PrometheusConfigInput,
  PrometheusConfigSchema,
  type PrometheusProvider,
} from './prometheus.ts';
export { compileQuery, escapePromString, renderQuery } from './render.ts';
export {
  AnalysisSettingsSchema,
  type AnalysisSpec,
  AnalysisSpecSchema,
  type CompiledCheck,
  compileCheck,
  compileChecks,
  type MetricCheck,
  type MetricCheckInput,
  MetricCheckSchema,
} from './spec.ts';
export { BUILTIN_TEMPLATES, istioSelector, TEMPLATE_NAMES } from './templates.ts';
export type * from './types.ts';
export { singleSeries, singleValue } from './values.ts';
