import { z } from 'zod';
import { Duration } from '../duration.ts';
import { MetricCheckSchema, ReporterSchema } from '../metrics/spec.ts';
import { outboundPolicy, refusedUrl } from '../notify/url-guard.ts';
import { describeIssues } from '../zod-issues.ts';

/** Metadata: at most 50 keys, each value at most 1 KB. */
const METADATA_KEYS_MAX = 50;
const METADATA_VALUE_MAX = 1024;

/** Only variables meant for it: a secretEnv naming VANE_API_TOKENS would make deliveries an oracle for vane's own token. */
const SecretEnv = z
  .string()
  .regex(
    /^VANE_SECRET_[A-Z0-9_]{1,100}$/,
    'must name an environment variable starting with VANE_SECRET_, e.g. VANE_SECRET_GATE',
  );

/** An http(s) URL the outbound guard accepts (no link-local or metadata address, no loopback unless allowed). */
const OutboundUrl = z.url({ protocol: /^https?$/ }).superRefine((url, ctx) => {
  const why = refusedUrl(url, outboundPolicy());
  if (why) ctx.addIssue({ code: 'custom', message: `vane does not send to this URL: ${why}` });
});

import { AlertPolicySchema } from './alert-policy.ts';

const Name = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'a Kubernetes name: lower-case letters, digits, - and .');
const Labels = z.record(z.string().min(1), z.string());
const HttpMatch = z.record(z.string(), z.unknown());

export const TargetSchema = z.strictObject({
  namespace: Name,
  virtualService: Name,
  destinationRule: Name,
  /** Names of the http routes to manage; default: every http route that sends to the stable subset of `host`. */
  routes: z.array(z.string().min(1)).min(1).optional(),
  /** Destination host inside those routes; default: the DestinationRule's host. */
  host: z.string().min(1).optional(),
  /** Kubeconfig context; default: the current one. */
  cluster: z.string().min(1).optional(),
});

const Step = z.union([
  z.number().int().min(0).max(100),
  z.strictObject({
    weight: z.number().int().min(0).max(100),
    /** A manual gate: `{}` waits for resume/promote, `{ duration: 10m }` waits that long. */
    pause: z.strictObject({ duration: Duration.optional() }).optional(),
  }),
]);

/** The longest scaleDownDelay: the undo window is kept in the queue, not forever. */
const SCALE_DOWN_DELAY_MAX_MS = 30 * 24 * 3_600_000;

const Common = {
  /** How long each step is analysed before the next. Default 1m. */
  stepInterval: Duration.default(60_000),
  /** shift: route 100% to the canary subset; relabel: give the stable subset the canary's labels. Default shift. */
  promotion: z.enum(['shift', 'relabel']).default('shift'),
  /** Hold at max weight until someone (or a confirm-promotion webhook) approves. Default false. */
  confirmPromotion: z.boolean().default(false),
  /**
   * After a promotion, how long the old version's workload (stable.workload) keeps running before
   * it is scaled to 0; undo is instant within it. A duration, `0` (at once) or `never`. Default 30m.
   */
  scaleDownDelay: z
    .union(
      [
        z.literal('never'),
        z.literal(0),
        z.literal('0').transform(() => 0),
        Duration.refine((ms) => ms <= SCALE_DOWN_DELAY_MAX_MS, 'at most 720h (30 days); or never'),
      ],
      { error: 'a duration such as 30m, 0 (at once) or never' },
    )
    .default(1_800_000),
};

export const StrategySchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('canary'),
    steps: z.array(Step).min(1).max(100).optional(),
    stepWeight: z.number().int().min(1).max(100).optional(),
    maxWeight: z.number().int().min(1).max(100).optional(),
    /** Also mirror this percent of the stable's traffic to the canary. */
    mirror: z.strictObject({ percent: z.number().min(0).max(100) }).optional(),
    ...Common,
  }),
  z.strictObject({
    type: z.literal('blue-green'),
    /** Preview traffic for analysis before the switch; default mirror 100%. */
    preview: z
      .strictObject({
        mirrorPercent: z.number().min(0).max(100).optional(),
        match: z.array(HttpMatch).min(1).optional(),
      })
      .optional(),
    iterations: z.number().int().min(1).max(1000).default(1),
    ...Common,
  }),
  z.strictObject({
    type: z.literal('ab-test'),
    /** Istio HTTPMatchRequest entries (headers, queryParams, a cookie via the cookie header). */
    match: z.array(HttpMatch).min(1),
    iterations: z.number().int().min(1).max(1000).default(10),
    ...Common,
  }),
]);

export const AnalysisSchema = z.strictObject({
  /** The query window. Default 1m. */
  interval: Duration.default(60_000),
  /** How often critical metrics are checked between steps. Default 5s. */
  guardInterval: Duration.default(5_000),
  /** Query window of the guard checks; default: the interval. A short one reacts faster (it needs a few scrapes). */
  guardWindow: Duration.optional(),
  /** Failed analyses that roll back. Default 2. */
  failureThreshold: z.number().int().min(1).max(100).default(2),
  /** Below this many canary requests in the window a check is inconclusive. Default 50. */
  minRequests: z.number().int().min(0).default(50),
  /** Reporter of the built-in templates (source or destination). Default source. */
  reporter: ReporterSchema.default('source'),
  /** Variables for custom queries ({{ name }}). */
  vars: z
    .record(
      z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'a variable name: letters, digits and _'),
      z.string(),
    )
    .default({}),
  /** PromQL counting the canary's requests in the window, instead of the request-count template. */
  requestCountQuery: z.string().min(1).optional(),
  metrics: z.array(MetricCheckSchema).max(50).default([]),
  /** What a firing Alertmanager alert about this rollout does (POST /api/v1/hooks/alertmanager). Default: roll back. */
  alerts: AlertPolicySchema.optional(),
  /** How long each wait may last before rollback. */
  deadlines: z
    .strictObject({
      workloadReady: Duration.default(600_000),
      inconclusive: Duration.default(600_000),
      gate: Duration.default(86_400_000),
    })
    .prefault({}),
});

export const WEBHOOK_TYPES = [
  'confirm-rollout',
  'pre-rollout',
  'rollout',
  'confirm-traffic-increase',
  'confirm-promotion',
  'post-rollout',
  'rollback',
  'event',
] as const;

/** The longest a webhook call may take. */
export const WEBHOOK_TIMEOUT_MAX_MS = 30_000;

export const WebhookSchema = z.strictObject({
  name: z.string().min(1).optional(),
  type: z.enum(WEBHOOK_TYPES),
  url: OutboundUrl,
  /** At most 30s: a webhook is asked off the tick, but an answer older than that says little. */
  timeout: Duration.refine((ms) => ms <= WEBHOOK_TIMEOUT_MAX_MS, 'at most 30s (default 10s)').default(10_000),
  retries: z.number().int().min(0).max(10).default(3),
  /** Name of an environment variable of vane's holding the HMAC secret (VANE_SECRET_*). */
  secretEnv: SecretEnv.optional(),
  metadata: z
    .record(z.string().max(100), z.string().max(METADATA_VALUE_MAX))
    .refine((m) => Object.keys(m).length <= METADATA_KEYS_MAX, `at most ${METADATA_KEYS_MAX} keys`)
    .optional(),
});

export const NotificationSchema = z.strictObject({
  type: z.enum(['slack', 'webhook']),
  url: OutboundUrl,
  /** Lowest severity sent. Default info. */
  severity: z.enum(['info', 'warn', 'error']).default('info'),
  /** Event types sent; default all. */
  events: z.array(z.string().min(1)).optional(),
  /** type webhook: name of an environment variable of vane's holding the HMAC secret, VANE_SECRET_* (Slack messages are not signed). */
  secretEnv: SecretEnv.optional(),
});

export const RolloutSpecSchema = z
  .strictObject({
    target: TargetSchema,
    stable: z.strictObject({
      subset: z.string().min(1),
      /** The old version's workload: scaled to 0 after a promotion (strategy.scaleDownDelay), scaled up again by undo. */
      workload: z
        .strictObject({ kind: z.literal('Deployment').default('Deployment'), name: Name })
        .optional(),
    }),
    canary: z.strictObject({
      subset: z.string().min(1),
      labels: Labels.refine((l) => Object.keys(l).length > 0, 'at least one label, e.g. { version: v2 }'),
      workload: z
        .strictObject({ kind: z.literal('Deployment').default('Deployment'), name: Name })
        .optional(),
      /** After a rollback, scale canary.workload to 0 (default false: the CI system that deployed it owns it). */
      scaleDownOnFailure: z.boolean().default(false),
    }),
    strategy: StrategySchema,
    analysis: AnalysisSchema.prefault({}),
    /** When someone else edits the managed weights: pause (default), reassert vane's weights, or abort. */
    drift: z.enum(['pause', 'reassert', 'abort']).default('pause'),
    webhooks: z.array(WebhookSchema).max(20).default([]),
    notifications: z.array(NotificationSchema).max(20).default([]),
    /** The same key returns the same rollout: a retried CI job does not start a second one. */
    idempotencyKey: z.string().min(1).max(200).optional(),
    metadata: z
      .object({
        commit: z.string().max(200).optional(),
        pipelineUrl: z.string().max(METADATA_VALUE_MAX).optional(),
        triggeredBy: z.string().max(200).optional(),
      })
      .catchall(z.string().max(METADATA_VALUE_MAX))
      .refine((m) => Object.keys(m).length <= METADATA_KEYS_MAX, `at most ${METADATA_KEYS_MAX} keys`)
      .default({}),
  })
  .superRefine((spec, ctx) => {
    if (spec.canary.subset === spec.stable.subset) {
      ctx.addIssue({
        code: 'custom',
        path: ['canary', 'subset'],
        message: `must differ from stable.subset ('${spec.stable.subset}')`,
      });
    }
    const s = spec.strategy;
    if (s.type === 'canary') {
      if (s.steps && (s.stepWeight !== undefined || s.maxWeight !== undefined)) {
        ctx.addIssue({
          code: 'custom',
          path: ['strategy', 'steps'],
          message: 'give either steps or stepWeight/maxWeight, not both',
        });
      }
      if (s.steps) {
        const weights = s.steps.map((x) => (typeof x === 'number' ? x : x.weight));
        weights.forEach((w, i) => {
          if (i > 0 && w <= weights[i - 1]!) {
            ctx.addIssue({
              code: 'custom',
              path: ['strategy', 'steps', i],
              message: `steps must ascend: ${w} follows ${weights[i - 1]}`,
            });
          }
        });
      } else if ((s.stepWeight ?? 10) > (s.maxWeight ?? 50)) {
        ctx.addIssue({
          code: 'custom',
          path: ['strategy', 'stepWeight'],
          message: `must not exceed maxWeight (${s.maxWeight ?? 50})`,
        });
      }
    }
    if (s.stepInterval < spec.analysis.guardInterval) {
      ctx.addIssue({
        code: 'custom',
        path: ['strategy', 'stepInterval'],
        message: `must be at least analysis.guardInterval (${spec.analysis.guardInterval}ms)`,
      });
    }
    const names = new Set<string>();
    spec.analysis.metrics.forEach((m, i) => {
      if (names.has(m.name))
        ctx.addIssue({
          code: 'custom',
          path: ['analysis', 'metrics', i, 'name'],
          message: `duplicate metric name '${m.name}'`,
        });
      names.add(m.name);
    });
  });

/** The request body before defaults (what a user sends). */
export type RolloutSpecInput = z.input<typeof RolloutSpecSchema>;
/** A validated spec with every default filled in. */
export type RolloutSpec = z.output<typeof RolloutSpecSchema>;

/** A zod error as "field.path: message" lines, the path in the spec's own notation (metrics[2].name). */
/** Unknown fields get the nearest known one: "strategy.stepIntervl: unknown field; did you mean stepInterval?". */
export function describeZodError(error: z.ZodError, prefix = ''): { path: string; message: string }[] {
  return describeIssues(error, prefix);
}
