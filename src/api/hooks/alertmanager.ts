import { createRoute, z } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { actOnAlerts } from '../../rollouts/alerts.ts';
import type { DomainContext } from '../../rollouts/context.ts';
import type { App } from '../app.ts';
import { errorResponses } from '../errors.ts';

/** Largest webhook body accepted: Alertmanager sends every alert of a group in one POST. */
export const ALERTMANAGER_MAX_BODY = 1024 * 1024;

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
   * Who may call: the API's bearer check (Alertmanager's `http_config.authorization` sends the
   * token), and once scopes exist the `operate` scope. Required: the hook never runs unauthenticated.
   */
  auth: MiddlewareHandler;
  /** Who the events name as acting. Default alertmanager. */
  by?: string;
}

const route = (auth: MiddlewareHandler) =>
  createRoute({
    method: 'post',
    path: '/api/v1/hooks/alertmanager',
    summary:
      "Alertmanager's webhook (payload version 4): a firing alert that matches an active rollout rolls it back or pauses it at once (the rollout's analysis.alerts policy)",
    middleware: [
      auth,
      bodyLimit({
        maxSize: ALERTMANAGER_MAX_BODY,
        onError: () => {
          throw new HTTPException(413, { message: `the body is larger than ${ALERTMANAGER_MAX_BODY} bytes` });
        },
      }),
    ] as const,
    security: [{ bearerAuth: [] }],
    request: {
      body: { required: true, content: { 'application/json': { schema: AlertmanagerPayloadSchema } } },
    },
    responses: {
      200: {
        description:
          'What each firing alert did to each rollout it matched (empty: none matched, or all resolved)',
        content: { 'application/json': { schema: z.object({ outcomes: z.array(OutcomeSchema) }) } },
      },
      ...errorResponses('BAD_REQUEST', 'UNAUTHORIZED', 'FORBIDDEN'),
    },
  });

export function registerAlertmanagerHook(app: App, ctx: DomainContext, opts: AlertmanagerHookOptions): void {
  app.openapi(route(opts.auth), async (c) => {
    const payload = c.req.valid('json');
    const outcomes = await actOnAlerts({ ctx, alerts: payload.alerts, by: opts.by ?? 'alertmanager' });
    const log = c.get('logger');
    for (const o of outcomes)
      log?.info({ rollout: o.rolloutId, action: o.action, result: o.result }, o.alert);
    return c.json({ outcomes }, 200);
  });
}
