import { createRoute, z } from '@hono/zod-openapi';
import type { DomainContext } from '../../rollouts/context.ts';
import { publicView } from '../../rollouts/model.ts';
import { getRollout } from '../../rollouts/verbs.ts';
import type { App } from '../app.ts';
import { scoped } from '../auth/scoped.ts';
import { errorResponses } from '../errors.ts';
import { rolloutNamespace } from './namespace.ts';
import { RolloutIdParam, RolloutSchema } from './schema.ts';

const route = (ctx: DomainContext) =>
  createRoute({
    ...scoped('read', rolloutNamespace(ctx)),
    method: 'get',
    path: '/api/v1/rollouts/{id}',
    summary:
      'A rollout: phase, weights, progress and the last analysis with every value against its threshold',
    request: { params: RolloutIdParam },
    responses: {
      200: {
        description: 'The rollout',
        content: { 'application/json': { schema: z.object({ rollout: RolloutSchema }) } },
      },
      ...errorResponses('UNAUTHORIZED', 'FORBIDDEN', 'NOT_FOUND', 'UNAVAILABLE'),
    },
  });

export function registerGetRollout(app: App, ctx: DomainContext): void {
  app.openapi(route(ctx), async (c) => {
    const rollout = await getRollout({ ctx, id: c.req.valid('param').id });
    return c.json({ rollout: publicView(rollout) }, 200);
  });
}
