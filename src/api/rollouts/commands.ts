import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { DomainContext } from '../../rollouts/context.ts';
import { RolloutError } from '../../rollouts/errors.ts';
import { publicView } from '../../rollouts/model.ts';
import { approveGate, getRollout, retryRollout, sendCommand } from '../../rollouts/verbs.ts';
import type { App } from '../app.ts';
import { principalOf } from '../auth/require-scope.ts';
import { scoped } from '../auth/scoped.ts';
import type { AppEnv } from '../context.ts';
import { errorResponses } from '../errors.ts';
import { rolloutNamespace } from './namespace.ts';
import { CommandBodySchema, RolloutIdParam, RolloutSchema } from './schema.ts';

const COMMANDS = {
  promote: 'Open the current gate, or move on one step now',
  'promote-full': 'Skip the remaining steps and promote',
  abort: 'Roll back to stable and end as aborted',
  pause: 'Hold the rollout where it is',
  resume: 'Continue a paused rollout (after drift: reassert vane’s weights)',
} as const;

/** A command's route: POST /api/v1/rollouts/{id}/<path>, scope operate, 202 with the rollout as updated. */
function commandRoute(
  path: string,
  summary: string,
  ctx: DomainContext,
  accepted = 'Accepted; the rollout as updated by the command (in pendingCommands until a tick, woken at once, carries it out)',
) {
  return createRoute({
    ...scoped('operate', rolloutNamespace(ctx)),
    method: 'post',
    path: `/api/v1/rollouts/{id}/${path}`,
    summary,
    request: {
      params: RolloutIdParam,
      body: { required: false, content: { 'application/json': { schema: CommandBodySchema } } },
    },
    responses: {
      202: {
        description: accepted,
        content: { 'application/json': { schema: z.object({ rollout: RolloutSchema }) } },
      },
      ...errorResponses(
        'BAD_REQUEST',
        'UNAUTHORIZED',
        'FORBIDDEN',
        'NOT_FOUND',
        'CONFLICT',
        'RATE_LIMITED',
        'UNAVAILABLE',
      ),
    },
  });
}

const undo = (ctx: DomainContext) =>
  commandRoute(
    'undo',
    'Undo a succeeded rollout: route 100% back to the old version (stable.workload), scaling it up first when it was scaled down',
    ctx,
    'Accepted; the rollout with after.state undoing (the after-verdict worker carries it out at once; undone when done)',
  );

const retry = (ctx: DomainContext) =>
  createRoute({
    ...scoped('trigger', rolloutNamespace(ctx)),
    method: 'post',
    path: '/api/v1/rollouts/{id}/retry',
    summary: 'Start a new rollout with the spec of a failed or aborted one',
    request: {
      params: RolloutIdParam,
      body: { required: false, content: { 'application/json': { schema: CommandBodySchema } } },
    },
    responses: {
      201: {
        description: 'The new rollout',
        content: { 'application/json': { schema: z.object({ rollout: RolloutSchema }) } },
      },
      ...errorResponses('UNAUTHORIZED', 'FORBIDDEN', 'NOT_FOUND', 'CONFLICT', 'TARGET_BUSY', 'RATE_LIMITED'),
    },
  });

const ApproveBodySchema = z
  .strictObject({
    gate: z.string().max(100).optional().openapi({
      description:
        'confirm-rollout, confirm-promotion, confirm-traffic-increase (the next step) or confirm-traffic-increase:N; default: the gate the rollout waits at',
    }),
    by: z
      .string()
      .max(200)
      .optional()
      .openapi({ description: 'A note of who approves; the token name is the actor' }),
    reason: z.string().max(1000).optional(),
  })
  .openapi('ApproveBody');

const approve = (ctx: DomainContext) =>
  createRoute({
    ...scoped('operate', rolloutNamespace(ctx)),
    method: 'post',
    path: '/api/v1/rollouts/{id}/approve',
    summary: 'Open a gate of this rollout once (bound to this rollout and this gate)',
    request: {
      params: RolloutIdParam,
      body: { required: false, content: { 'application/json': { schema: ApproveBodySchema } } },
    },
    responses: {
      202: {
        description: 'Stored; the next tick uses it',
        content: {
          'application/json': { schema: z.object({ rollout: RolloutSchema, gate: z.string() }) },
        },
      },
      ...errorResponses('BAD_REQUEST', 'UNAUTHORIZED', 'FORBIDDEN', 'NOT_FOUND', 'CONFLICT', 'RATE_LIMITED'),
    },
  });

/**
 * Who acts is the token's name; what the client says in `by` is kept only as a note in the reason.
 */
function actor(
  c: Context<AppEnv>,
  body: { by?: string | undefined; reason?: string | undefined } | undefined,
) {
  const by = principalOf(c).name;
  const note = body?.by && body.by !== by ? `(says: ${body.by})` : '';
  const reason = [body?.reason, note].filter(Boolean).join(' ');
  return { by, ...(reason ? { reason } : {}) };
}

export function registerRolloutCommands(app: App, ctx: DomainContext): void {
  for (const type of Object.keys(COMMANDS) as (keyof typeof COMMANDS)[]) {
    app.openapi(commandRoute(type, COMMANDS[type], ctx), async (c) => {
      const body = c.req.header('content-type')?.includes('json') ? c.req.valid('json') : {};
      const rollout = await sendCommand({ ctx, id: c.req.valid('param').id, type, ...actor(c, body) });
      return c.json({ rollout: publicView(rollout) }, 202);
    });
  }
  app.openapi(undo(ctx), async (c) => {
    const body = c.req.header('content-type')?.includes('json') ? c.req.valid('json') : {};
    const id = c.req.valid('param').id;
    if (!ctx.after) {
      throw new RolloutError(
        'UNPROCESSABLE',
        'undo needs a Kubernetes cluster configured in vane (KUBECONFIG)',
      );
    }
    const rollout = await ctx.after.requestUndo(ctx, { id, ...actor(c, body) });
    return c.json({ rollout: publicView(rollout) }, 202);
  });
  app.openapi(approve(ctx), async (c) => {
    const body = c.req.header('content-type')?.includes('json') ? c.req.valid('json') : {};
    const id = c.req.valid('param').id;
    const { gate } = await approveGate({
      ctx,
      id,
      ...(body?.gate ? { gate: body.gate } : {}),
      ...actor(c, body),
    });
    // The rollout as it is now, after the approval was stored.
    const rollout = await getRollout({ ctx, id });
    return c.json({ rollout: publicView(rollout), gate }, 202);
  });
  app.openapi(retry(ctx), async (c) => {
    const body = c.req.header('content-type')?.includes('json') ? c.req.valid('json') : {};
    const { rollout } = await retryRollout({ ctx, id: c.req.valid('param').id, by: actor(c, body).by });
    c.header('Location', `/api/v1/rollouts/${rollout.id}`);
    return c.json({ rollout: publicView(rollout) }, 201);
  });
}
