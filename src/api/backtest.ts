import { createRoute, z } from '@hono/zod-openapi';
import { parseDuration } from '../duration.ts';
import { backtestSpec } from '../rollouts/backtest.ts';
import type { DomainContext } from '../rollouts/context.ts';
import { RolloutError } from '../rollouts/errors.ts';
import type { App } from './app.ts';
import { assertNamespace, principalOf } from './auth/require-scope.ts';
import { scoped } from './auth/scoped.ts';
import { errorResponses } from './errors.ts';

const BacktestBodySchema = z
  .strictObject({
    spec: z
      .record(z.string(), z.unknown())
      .optional()
      .openapi({ description: 'A rollout spec; the canary may be left out' }),
    template: z.string().min(1).max(100).optional().openapi({ description: 'Or the name of a template' }),
    window: z
      .string()
      .max(16)
      .default('7d')
      .openapi({ description: 'How far back: 7d, 36h, 90m (at most 31d)', example: '7d' }),
    end: z.iso
      .datetime({ offset: true })
      .optional()
      .openapi({ description: 'End of the window (default now)' }),
    stableLabels: z
      .record(z.string().max(253), z.string().max(253))
      .refine((l) => Object.keys(l).length <= 32, 'at most 32 labels')
      .optional()
      .openapi({ description: "The stable subset's pod labels; default: read from the DestinationRule" }),
    scrapeInterval: z.string().max(16).optional().openapi({
      description:
        "Prometheus's scrape interval; the step is never shorter (default: measured from the stable's samples, else 15s)",
      example: '30s',
    }),
  })
  .openapi('BacktestRequest');

const EventSchema = z.object({ at: z.number(), when: z.string(), message: z.string() });
const ReportSchema = z
  .object({
    start: z.number(),
    end: z.number(),
    stepSeconds: z.number(),
    evaluations: z.number(),
    metrics: z.array(
      z.object({
        name: z.string(),
        critical: z.boolean(),
        dryRun: z.boolean(),
        passed: z.number(),
        failed: z.number(),
        inconclusive: z.number(),
        closest: z
          .object({
            at: z.number(),
            when: z.string(),
            value: z.number(),
            bound: z.number(),
            margin: z.number(),
            message: z.string(),
          })
          .optional(),
        failures: z.array(EventSchema),
        notReplayed: z.string().optional(),
        query: z.string().optional(),
      }),
    ),
    gaps: z.array(
      z.object({ from: z.number(), to: z.number(), evaluations: z.number(), maxRequests: z.number() }),
    ),
    rollbacks: z.array(EventSchema),
    stalls: z.array(EventSchema),
    notes: z.array(z.string()),
    queries: z.number(),
    verdict: z.string().openapi({
      example:
        'would have rolled back an identical release 3 times in 7 days: p99-latency > 500ms on Tuesday 14:10, …',
    }),
  })
  .openapi('BacktestReport');

const route = createRoute({
  ...scoped('read'),
  method: 'post',
  path: '/api/v1/analyze/backtest',
  summary:
    "Replay a spec's analysis over past traffic, the stable version on both sides: how often would checks have failed a release identical to stable?",
  request: {
    body: { required: true, content: { 'application/json': { schema: BacktestBodySchema } } },
  },
  responses: {
    200: {
      description:
        'Per metric: passes, failures, inconclusive evaluations and the closest pass; gaps; the verdict',
      content: { 'application/json': { schema: ReportSchema } },
    },
    ...errorResponses('BAD_REQUEST', 'UNAUTHORIZED', 'FORBIDDEN', 'UNPROCESSABLE', 'PAYLOAD_TOO_LARGE'),
  },
});

export function registerBacktest(app: App, ctx: DomainContext): void {
  app.openapi(route, async (c) => {
    const body = c.req.valid('json');
    let scrapeIntervalSeconds: number | undefined;
    if (body.scrapeInterval !== undefined) {
      try {
        scrapeIntervalSeconds = parseDuration(body.scrapeInterval) / 1000;
      } catch {
        throw new RolloutError(
          'BAD_REQUEST',
          `scrapeInterval: '${body.scrapeInterval}' is not a duration; use e.g. 15s or 1m`,
        );
      }
    }
    const { report } = await backtestSpec({
      ctx,
      input: {
        ...(body.spec ? { spec: body.spec } : {}),
        ...(body.template ? { template: body.template } : {}),
        window: body.window,
        ...(body.end ? { end: new Date(body.end) } : {}),
        ...(body.stableLabels ? { stableLabels: body.stableLabels } : {}),
        ...(scrapeIntervalSeconds !== undefined ? { scrapeIntervalSeconds } : {}),
        signal: c.req.raw.signal,
        authorize: (spec) => assertNamespace(principalOf(c), spec.target.namespace),
      },
    });
    return c.json(report, 200);
  });
}
