import { promDuration } from './duration.ts';
import { MetricError } from './errors.ts';
import { escapePromString } from './render.ts';
import type { AnalysisContext, SubsetRef } from './types.ts';

export type Reporter = 'source' | 'destination';

/** Options a check may pass to a built-in template. */
export interface TemplateOptions {
  /** For request-duration: the quantile, 0 < q < 1. Default 0.99. */
  quantile?: number;
  /** Which proxy's report to use: source (the ingress gateway and callers) or destination (the subset's own sidecar). Default: the analysis's reporter (source). */
  reporter?: Reporter;
}

export interface BuiltinTemplate {
  name: string;
  description: string;
  /** The options this template accepts. */
  options: readonly (keyof TemplateOptions)[];
  /** How a human names the value: "success rate", "p99 latency". */
  label(opts: TemplateOptions): string;
  unit: '%' | 'ms' | 'req/s' | 'requests';
  promql(
    ctx: AnalysisContext,
    subset: SubsetRef,
    windowSeconds: number,
    opts: Required<TemplateOptions>,
  ): string;
}

/**
 * Pod labels as Istio reports them on its standard metrics. Istio has no label for arbitrary pod
 * labels, so a subset must carry one of these (or name its workload) to be told apart.
 */
export const ISTIO_SUBSET_LABELS: Readonly<Record<string, string>> = {
  version: 'destination_version',
  'app.kubernetes.io/version': 'destination_version',
  'service.istio.io/canonical-revision': 'destination_canonical_revision',
};

/** The Istio label matchers that select one subset of the service, e.g. `reporter="source",destination_version="v2"`. */
export function istioSelector(ctx: AnalysisContext, subset: SubsetRef, reporter: Reporter): string {
  const m: [string, string][] = [
    ['reporter', reporter],
    ['destination_service_namespace', ctx.namespace],
    ['destination_service_name', ctx.service],
  ];
  const used = new Set<string>();
  for (const [podLabel, istioLabel] of Object.entries(ISTIO_SUBSET_LABELS)) {
    const v = subset.labels[podLabel];
    if (v !== undefined && !used.has(istioLabel)) {
      used.add(istioLabel);
      m.push([istioLabel, v]);
    }
  }
  if (subset.workload) m.push(['destination_workload', subset.workload]);
  if (used.size === 0 && !subset.workload) {
    throw new MetricError(
      'config',
      `subset ${subset.subset} has no pod label Istio reports (${Object.keys(ISTIO_SUBSET_LABELS).join(', ')}) and no workload; add a version label to its pods or use a custom query`,
    );
  }
  return m.map(([k, v]) => `${k}="${escapePromString(v, '"')}"`).join(',');
}

function quantileLabel(q: number): string {
  const pct = q * 100;
  return `p${Number.isInteger(pct) ? pct : Number(pct.toFixed(2))}`;
}

const TEMPLATES: BuiltinTemplate[] = [
  {
    name: 'request-success-rate',
    description: 'percent of requests not answered with a 5xx',
    options: ['reporter'],
    label: () => 'success rate',
    unit: '%',
    promql: (ctx, s, w, o) => {
      const sel = istioSelector(ctx, s, o.reporter);
      const d = promDuration(w);
      return `sum(rate(istio_requests_total{${sel},response_code!~"5.*"}[${d}])) / sum(rate(istio_requests_total{${sel}}[${d}])) * 100`;
    },
  },
  {
    name: 'request-duration',
    description:
      'a quantile of request duration in ms from istio_request_duration_milliseconds_bucket (p99 by default)',
    options: ['quantile', 'reporter'],
    label: (o) => `${quantileLabel(o.quantile ?? 0.99)} latency`,
    unit: 'ms',
    promql: (ctx, s, w, o) =>
      `histogram_quantile(${o.quantile}, sum(rate(istio_request_duration_milliseconds_bucket{${istioSelector(ctx, s, o.reporter)}}[${promDuration(w)}])) by (le))`,
  },
  {
    name: 'request-rate',
    description: 'requests per second',
    options: ['reporter'],
    label: () => 'request rate',
    unit: 'req/s',
    promql: (ctx, s, w, o) =>
      `sum(rate(istio_requests_total{${istioSelector(ctx, s, o.reporter)}}[${promDuration(w)}]))`,
  },
  {
    name: 'request-count',
    description: 'requests in the window (the sample size)',
    options: ['reporter'],
    label: () => 'request count',
    unit: 'requests',
    promql: (ctx, s, w, o) =>
      `sum(increase(istio_requests_total{${istioSelector(ctx, s, o.reporter)}}[${promDuration(w)}]))`,
  },
];

/** The built-in templates by name. */
export const BUILTIN_TEMPLATES: ReadonlyMap<string, BuiltinTemplate> = new Map(
  TEMPLATES.map((t) => [t.name, t]),
);

export const TEMPLATE_NAMES: readonly string[] = TEMPLATES.map((t) => t.name);
