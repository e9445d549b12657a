import { createRoute, z } from '@hono/zod-openapi';
import type { DomainContext } from '../../rollouts/context.ts';
import { rolloutEvents } from '../../rollouts/verbs.ts';
import type { App } from '../app.ts';
import { errorResponses } from '../errors.ts';
import { EventSchema, RolloutIdParam } from './schema.ts';

const route = createRoute({
  method: 'get',
  path: '/api/v1/rollouts/{id}/events',
  summary: "A rollout's history: every transition and weight change with its time, reason and metric values",
  request: {
    params: RolloutIdParam,
    query: z.object({
      after: z.string().optional().openapi({ description: 'Only events after this event id (for polling)' }),
      limit: z.coerce.number().int().min(1).max(1000).default(500),
    }),
  },
  responses: {
    200: {
      description: 'Events, oldest first',
      content: { 'application/json': { schema: z.object({ events: z.array(EventSchema) }) } },
    },
    ...errorResponses('UNAUTHORIZED', 'NOT_FOUND'),
  },
});

export function registerRolloutEvents(app: App, ctx: DomainContext): void {
  app.openapi(route, async (c) => {
    const { after, limit } = c.req.valid('query');
    const events = await rolloutEvents({
      ctx,
      id: c.req.valid('param').id,
      limit,
      ...(after ? { after } : {}),
    });
    return c.json({ events }, 200);
  });
}
