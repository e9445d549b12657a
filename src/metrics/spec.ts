import { z } from 'zod';
import { DurationSchema } from './duration.ts';
import { CheckSpecError } from './errors.ts';
import { type CompiledQuery, compileQuery } from './render.ts';
import {
  BUILTIN_TEMPLATES,
  type BuiltinTemplate,
  ISTIO_SUBSET_LABELS,
  type Reporter,
  TEMPLATE_NAMES,
  type TemplateOptions,
} from './templates.ts';

export const ReporterSchema = z.enum(['source', 'destination']);

/** Options of a built-in template. */
export const TemplateOptionsSchema = z.strictObject({
  /** request-duration only: the quantile, 0 < q < 1. Default 0.99. */
  quantile: z.number().gt(0).lt(1).optional(),
  /** source (the gateway and callers) or destination (the subset's sidecar). Default: the analysis's reporter. */
  reporter: ReporterSchema.optional(),
});

/** Fixed bounds on the canary's value. */
export const ThresholdRangeSchema = z
  .strictObject({ min: z.number().optional(), max: z.number().optional() })
  .refine((r) => r.min !== undefined || r.max !== undefined, { error: 'give min, max or both' })
  .refine((r) => r.min === undefined || r.max === undefined || r.min <= r.max, { error: 'min is above max' });

/** The canary against the stable in the same window. */
export const CompareSchema = z
  .strictObject({
    to: z.literal('stable').default('stable'),
    /** Largest allowed rise over the stable: a ratio (0.2 = 20%) or, with kind absolute, in the metric's unit. */
    maxIncrease: z.number().min(0).optional(),
    /** Largest allowed fall below the stable (a positive number). */
    maxDecrease: z.number().min(0).optional(),
    /** ratio (default) or absolute. */
    kind: z.enum(['ratio', 'absolute']).default('ratio'),
  })
  .refine((c) => c.maxIncrease !== undefined || c.maxDecrease !== undefined, {
    error: 'give maxIncrease, maxDecrease or both',
  });

/** Mann-Whitney U over the canary's and the stable's series from a range query (Kayenta style). */
export const MannWhitneyJudgeSchema = z.strictObject({
  type: z.literal('mann-whitney'),
  /** Which change is bad: increase (latency, errors; default), decrease (success rate) or either. */
  direction: z.enum(['increase', 'decrease', 'either']).default('increase'),
  /** A change counts when p < 1 - confidence. Default 0.95. */
  confidence: z.number().gt(0.5).lt(1).default(0.95),
  /** Relative shift of the median allowed even when significant (0.1 = 10%). Default 0.1. */
  effectSize: z.number().min(0).default(0.1),
  /** Absolute shift of the median, in the metric's unit, that never fails. Default 0. */
  tolerance: z.number().min(0).default(0),
  /** Fewer finite points than this on either side is inconclusive. Default 5. */
  minPoints: z.number().int().min(3).default(5),
  /** Distance between points of the range query. Default 10s. */
  step: DurationSchema.default(10_000),
  /** Rate window of each point ({{ interval }} of a custom query). Default 30s. */
  window: DurationSchema.default(30_000),
  /** Length of the series. Default: the analysis interval. */
  range: DurationSchema.optional(),
});

/** One entry of a rollout's `analysis.metrics`. */
export const MetricCheckSchema = z
  .strictObject({
    /** Unique within the analysis; shown in every result. */
    name: z
      .string()
      .regex(
        /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/,
        'letters, digits, -, _ and ., at most 63, e.g. success-rate',
      ),
    /** A failed critical check fails the analysis alone, and is run by the guard between steps. Default false. */
    critical: z.boolean().default(false),
    /**
     * Queried, judged, stored and shown like any other check, but never moves the verdict: not the
     * analysis's, not the failure count, not the guard's (even when critical). Default false.
     */
    dryRun: z.boolean().default(false),
    /** A built-in template (request-success-rate, request-duration, request-rate, request-count). */
    template: z.string().optional(),
    /** Options of the template. */
    options: TemplateOptionsSchema.optional(),
    /** Custom PromQL returning one number, with {{ variables }}. */
    query: z.string().min(1).optional(),
    /** Unit of a custom query's value in messages (e.g. %, ms). Default none. */
    unit: z.string().max(16).optional(),
    /** Query window of this check. Default: the analysis interval. */
    interval: DurationSchema.optional(),
    thresholdRange: ThresholdRangeSchema.optional(),
    compare: CompareSchema.optional(),
    judge: MannWhitneyJudgeSchema.optional(),
  })
  .superRefine((c, ctx) => {
    if ((c.template === undefined) === (c.query === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['template'], message: 'give either template or query' });
    }
    if (c.template !== undefined && !BUILTIN_TEMPLATES.has(c.template)) {
      ctx.addIssue({
        code: 'custom',
        path: ['template'],
        message: `unknown template '${c.template}'; known: ${TEMPLATE_NAMES.join(', ')}`,
      });
    }
    const t = c.template ? BUILTIN_TEMPLATES.get(c.template) : undefined;
    if (c.options) {
      if (!c.template)
        ctx.addIssue({ code: 'custom', path: ['options'], message: 'options apply to a template only' });
      for (const k of Object.keys(c.options) as (keyof TemplateOptions)[]) {
        if (t && !t.options.includes(k)) {
          ctx.addIssue({
            code: 'custom',
            path: ['options', k],
            message: `template ${t.name} takes no ${k}; it takes: ${t.options.join(', ')}`,
          });
        }
      }
    }
    const judges = [c.thresholdRange, c.compare, c.judge].filter((j) => j !== undefined).length;
    if (judges !== 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['thresholdRange'],
        message: 'give exactly one of thresholdRange, compare or judge',
      });
    }
  });

export type MetricCheck = z.infer<typeof MetricCheckSchema>;
export type MetricCheckInput = z.input<typeof MetricCheckSchema>;

/** The analysis settings the engine passes; the rollout spec may extend this with its own fields. */
export const AnalysisSpecSchema = z.strictObject({
  /** Query window. Default 1m. */
  interval: DurationSchema.default(60_000),
  /** Fewer canary requests than this in the window make every check inconclusive. Default 50. */
  minRequests: z.number().int().min(0).default(50),
  /** Default reporter of the built-in templates and of the request count. Default source. */
  reporter: ReporterSchema.default('source'),
  metrics: z
    .array(MetricCheckSchema)
    .default([])
    .superRefine((ms, ctx) => {
      const seen = new Set<string>();
      ms.forEach((m, i) => {
        if (seen.has(m.name)) {
          ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate metric name '${m.name}'` });
        }
        seen.add(m.name);
      });
    }),
});
export type AnalysisSpec = z.infer<typeof AnalysisSpecSchema>;

export type CompiledJudge =
  | { type: 'threshold'; min?: number; max?: number }
  | { type: 'relative'; maxIncrease?: number; maxDecrease?: number; kind: 'ratio' | 'absolute' }
  | (z.infer<typeof MannWhitneyJudgeSchema> & { type: 'mann-whitney' });

/** A check validated and ready to run. */
export interface CompiledCheck {
  name: string;
  critical: boolean;
  /** Judged and shown, never counted in a verdict. */
  dryRun: boolean;
  /** Field path in the rollout spec, e.g. analysis.metrics[2]. */
  path: string;
  source:
    | { kind: 'template'; template: BuiltinTemplate; quantile: number; reporter?: Reporter }
    | { kind: 'query'; query: CompiledQuery };
  /** How messages name the value. */
  label: string;
  unit: string;
  /** Query window override in seconds. */
  intervalSeconds?: number;
  judge: CompiledJudge;
}

export interface CompileOptions {
  /** User variables (names, or the variables themselves). */
  vars?: Record<string, string> | readonly string[];
  /** Pod label keys of the stable subset, when known; then {{ stable.labels.KEY }} is checked. */
  stableLabels?: readonly string[];
  /** Pod label keys of the canary subset, when known. */
  canaryLabels?: readonly string[];
  /** Field path of the list, for messages. Default analysis.metrics. */
  path?: string;
}

/**
 * Validates every check up front (schema, template names and options, variables) so a bad spec is
 * refused when the rollout is created. Throws CheckSpecError listing every problem with its field path.
 */
export function compileChecks(
  checks: readonly (MetricCheckInput | MetricCheck)[],
  opts: CompileOptions = {},
): CompiledCheck[] {
  const issues: { path: string; message: string }[] = [];
  const out: CompiledCheck[] = [];
  const names = new Set<string>();
  checks.forEach((input, i) => {
    const r = compileCheck(input, i, opts);
    issues.push(...r.issues);
    if (!r.check) return;
    if (names.has(r.check.name)) {
      issues.push({ path: `${r.check.path}.name`, message: `duplicate metric name '${r.check.name}'` });
    }
    names.add(r.check.name);
    out.push(r.check);
  });
  if (issues.length) throw new CheckSpecError(issues);
  return out;
}

/** One check: the compiled check when it has no problem, and every problem with its field path. */
export function compileCheck(
  input: MetricCheckInput | MetricCheck,
  index: number,
  opts: CompileOptions = {},
): { check?: CompiledCheck; issues: { path: string; message: string }[] } {
  const path = `${opts.path ?? 'analysis.metrics'}[${index}]`;
  const vars = Array.isArray(opts.vars) ? opts.vars : Object.keys(opts.vars ?? {});
  const issues: { path: string; message: string }[] = [];
  const parsed = MetricCheckSchema.safeParse(input);
  if (!parsed.success) {
    for (const iss of parsed.error.issues) {
      issues.push({ path: `${path}${iss.path.map((p) => `.${String(p)}`).join('')}`, message: iss.message });
    }
    return { issues };
  }
  const c = parsed.data;
  const judge: CompiledJudge = c.thresholdRange
    ? { type: 'threshold', ...c.thresholdRange }
    : c.compare
      ? {
          type: 'relative',
          maxIncrease: c.compare.maxIncrease,
          maxDecrease: c.compare.maxDecrease,
          kind: c.compare.kind,
        }
      : { ...c.judge!, type: 'mann-whitney' };
  let source: CompiledCheck['source'];
  let label: string;
  let unit: string;
  if (c.template) {
    const template = BUILTIN_TEMPLATES.get(c.template)!;
    const quantile = c.options?.quantile ?? 0.99;
    source = { kind: 'template', template, quantile, reporter: c.options?.reporter };
    label = template.label({ quantile });
    unit = template.unit;
    if (opts.canaryLabels && !opts.canaryLabels.some((l) => l in ISTIO_SUBSET_LABELS)) {
      issues.push({
        path: `${path}.template`,
        message: `the canary's labels (${opts.canaryLabels.join(', ') || 'none'}) include none Istio reports (${Object.keys(ISTIO_SUBSET_LABELS).join(', ')}); add a version label or use a custom query`,
      });
    }
  } else {
    const { query, errors } = compileQuery(c.query!, {
      vars,
      stableLabels: opts.stableLabels,
      canaryLabels: opts.canaryLabels,
    });
    for (const e of errors) issues.push({ path: `${path}.query`, message: e });
    if (judge.type !== 'threshold' && !query.usesSubject) {
      issues.push({
        path: `${path}.query`,
        message:
          'a query compared with the stable must select the measured subset with {{ subject.labels.KEY }} or {{ subject.subset }}, so vane can run it for each side',
      });
    }
    source = { kind: 'query', query };
    label = c.name;
    unit = '';
  }
  if (issues.length) return { issues };
  return {
    issues,
    check: {
      name: c.name,
      critical: c.critical,
      dryRun: c.dryRun,
      path,
      source,
      label,
      unit: c.unit ?? unit,
      intervalSeconds: c.interval !== undefined ? c.interval / 1000 : undefined,
      judge,
    },
  };
}

/** The same schema under the name the engine's brief used. */
export const AnalysisSettingsSchema = AnalysisSpecSchema;
