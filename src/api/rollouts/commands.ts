import { createRoute, z } from '@hono/zod-openapi';
import type { DomainContext } from '../../rollouts/context.ts';
import { publicView } from '../../rollouts/model.ts';
import { approveGate, retryRollout, sendCommand } from '../../rollouts/verbs.ts';
import type { App } from '../app.ts';
import { errorResponses } from '../errors.ts';
import { CommandBodySchema, RolloutIdParam, RolloutSchema } from './schema.ts';

const COMMANDS = {
  promote: 'Open the current gate, or move on one step now',
  'promote-full': 'Skip the remaining steps and promote',
  abort: 'Roll back to stable and end as aborted',
  pause: 'Hold the rollout where it is',
  resume: 'Continue a paused rollout (after drift: reassert vane’s weights)',
} as const;

function commandRoute(type: keyof typeof COMMANDS) {
  return createRoute({
    method: 'post',
    path: `/api/v1/rollouts/{id}/${type}`,
    summary: COMMANDS[type],
    request: {
      params: RolloutIdParam,
      body: { required: false, content: { 'application/json': { schema: CommandBodySchema } } },
    },
    responses: {
      202: {
        description: 'Accepted; a tick carries it out at once',
        content: { 'application/json': { schema: z.object({ rollout: RolloutSchema }) } },
      },
      ...errorResponses('BAD_REQUEST', 'UNAUTHORIZED', 'NOT_FOUND', 'CONFLICT'),
    },
  });
}

const retry = createRoute({
  method: 'post',
  path: '/api/v1/rollouts/{id}/retry',
  summary: 'Start a new rollout with the spec of an ended one',
  request: {
    params: RolloutIdParam,
    body: { required: false, content: { 'application/json': { schema: CommandBodySchema } } },
  },
  responses: {
    201: {
      description: 'The new rollout',
      content: { 'application/json': { schema: z.object({ rollout: RolloutSchema }) } },
    },
    ...errorResponses('UNAUTHORIZED', 'NOT_FOUND', 'CONFLICT', 'TARGET_BUSY'),
  },
});

const ApproveBodySchema = z
  .object({
    gate: z.string().max(100).optional().openapi({
      description:
        'confirm-rollout, confirm-promotion, confirm-traffic-increase (the next step) or confirm-traffic-increase:N; default: the gate the rollout waits at',
    }),
    by: z.string().max(200).optional().openapi({ description: 'Who approves (shown in the history)' }),
    reason: z.string().max(1000).optional(),
  })
  .openapi('ApproveBody');

const approve = createRoute({
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
    ...errorResponses('BAD_REQUEST', 'UNAUTHORIZED', 'NOT_FOUND', 'CONFLICT'),
  },
});

export function registerRolloutCommands(app: App, ctx: DomainContext): void {
  for (const type of Object.keys(COMMANDS) as (keyof typeof COMMANDS)[]) {
    app.openapi(commandRoute(type), async (c) => {
      const body = c.req.header('content-type')?.includes('json') ? c.req.valid('json') : {};
      const rollout = await sendCommand({
        ctx,
        id: c.req.valid('param').id,
        type,
        ...(body?.by ? { by: body.by } : {}),
        ...(body?.reason ? { reason: body.reason } : {}),
      });
      return c.json({ rollout: publicView(rollout) }, 202);
    });
  }
  app.openapi(approve, async (c) => {
    const body = c.req.header('content-type')?.includes('json') ? c.req.valid('json') : {};
    const { rollout, gate } = await approveGate({
      ctx,
      id: c.req.valid('param').id,
      ...(body?.gate ? { gate: body.gate } : {}),
      ...(body?.by ? { by: body.by } : {}),
      ...(body?.reason ? { reason: body.reason } : {}),
    });
    return c.json({ rollout: publicView(rollout), gate }, 202);
  });
  app.openapi(retry, async (c) => {
    const body = c.req.header('content-type')?.includes('json') ? c.req.valid('json') : {};
    const { rollout } = await retryRollout({
      ctx,
      id: c.req.valid('param').id,
      ...(body?.by ? { by: body.by } : {}),
    });
    c.header('Location', `/api/v1/rollouts/${rollout.id}`);
    return c.json({ rollout: publicView(rollout) }, 201);
  });
}
