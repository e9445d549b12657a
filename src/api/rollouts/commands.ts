import { createRoute, z } from '@hono/zod-openapi';
import type { DomainContext } from '../../rollouts/context.ts';
import { publicView } from '../../rollouts/model.ts';
import { retryRollout, sendCommand } from '../../rollouts/verbs.ts';
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
