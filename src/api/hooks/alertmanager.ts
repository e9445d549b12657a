import { createRoute, z } from '@hono/zod-openapi';
import { actOnAlerts } from '../../rollouts/alerts.ts';
import type { DomainContext } from '../../rollouts/context.ts';
import type { App } from '../app.ts';
import { authenticate } from '../auth/authenticate.ts';
import { requireScope } from '../auth/require-scope.ts';
import type { TokenTable } from '../auth/tokens.ts';
import { errorResponses } from '../errors.ts';
import { jsonDepth } from '../middleware/limits.ts';

/**
 * The body's size is bounded by the API's limit on every /api/* request (1 MB, 413 before it is
 * read); here, the number of alerts and the size of every label and annotation.
 */

const LabelSet = z
  .record(z.string().max(256), z.string().max(4096))
  .refine((l) => Object.keys(l).length <= 128, 'at most 128 labels or annotations');

const AlertSchema = z.strictObject({
  status: z.enum(['firing', 'resolved']),
  labels: LabelSet,
  annotations: LabelSet,
  startsAt: z.string().max(64),
  endsAt: z.string().max(64),
  generatorURL: z.string().max(4096),
  fingerprint: z.string().max(64),
});

/** Alertmanager's webhook payload, version 4 (every field Alertmanager sends; any other is refused). */
export const AlertmanagerPayloadSchema = z
  .strictObject({
    version: z.literal('4', { error: "version: vane understands Alertmanager's webhook payload version 4" }),
    groupKey: z.string().max(8192),
    truncatedAlerts: z.number().int().min(0),
    status: z.enum(['firing', 'resolved']),
    receiver: z.string().max(1024),
    groupLabels: LabelSet,
    commonLabels: LabelSet,
    commonAnnotations: LabelSet,
    externalURL: z.string().max(4096),
    alerts: z.array(AlertSchema).max(1000),
  })
  .openapi('AlertmanagerWebhook');

const OutcomeSchema = z.object({
  alert: z.string(),
  rolloutId: z.string(),
  action: z.enum(['rollback', 'pause', 'ignore']),
  result: z.enum(['done', 'skipped', 'ignored']),
  message: z.string(),
});

export interface AlertmanagerHookOptions {
  /**
   * The API's tokens. Unlike the signed doors under /api/v1/hooks/, this hook takes a bearer token
   * (Alertmanager's `http_config.authorization` sends it) with the `operate` scope.
   */
  tokens: TokenTable;
}

const route = (tokens: TokenTable) =>
  createRoute({
    method: 'post',
    path: '/api/v1/hooks/alertmanager',
    summary:
      "Alertmanager's webhook (payload version 4): a firing alert that matches an active rollout rolls it back or pauses it at once (the rollout's analysis.alerts policy)",
    middleware: [
      // The /api/* authentication leaves /api/v1/hooks/ to the hooks: this one asks for a bearer token.
      authenticate({ tokens, selfAuthenticated: () => false }),
      requireScope('operate'),
      // The signed doors skip the API's depth scan (they verify raw bytes first); this hook is not signed.
      jsonDepth(),
    ] as const,
    security: [{ bearerAuth: [] }],
    'x-vane-scope': 'operate',
    request: {
      body: { required: true, content: { 'application/json': { schema: AlertmanagerPayloadSchema } } },
    },
    responses: {
      200: {
        description:
          'What each firing alert did to each rollout it matched (empty: none matched, or all resolved)',
        content: { 'application/json': { schema: z.object({ outcomes: z.array(OutcomeSchema) }) } },
      },
      ...errorResponses('BAD_REQUEST', 'UNAUTHORIZED', 'FORBIDDEN', 'PAYLOAD_TOO_LARGE'),
    },
  });

export function registerAlertmanagerHook(app: App, ctx: DomainContext, opts: AlertmanagerHookOptions): void {
  app.openapi(route(opts.tokens), async (c) => {
    const payload = c.req.valid('json');
    // The acting identity is the token's name (e.g. alertmanager), never a field of the body.
    const by = c.get('principal')?.name ?? 'alertmanager';
    const outcomes = await actOnAlerts({ ctx, alerts: payload.alerts, by });
    const log = c.get('logger');
    for (const o of outcomes)
      log?.info({ rollout: o.rolloutId, action: o.action, result: o.result }, o.alert);
    return c.json({ outcomes }, 200);
  });
}
