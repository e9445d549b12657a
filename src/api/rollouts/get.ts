import { createRoute, z } from '@hono/zod-openapi';
import type { DomainContext } from '../../rollouts/context.ts';
import { publicView } from '../../rollouts/model.ts';
import type { StoredReads } from '../../rollouts/read-cache.ts';
import { parseStored, type StoredRollout } from '../../rollouts/store.ts';
import { getStoredRollout } from '../../rollouts/verbs.ts';
import type { App } from '../app.ts';
import { scoped } from '../auth/scoped.ts';
import { errorResponses } from '../errors.ts';
import { rolloutNamespace } from './namespace.ts';
import { RolloutIdParam, RolloutSchema } from './schema.ts';
import { RolloutViewCache } from './view-cache.ts';

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

/** The answer's body: the client's view of the stored rollout. */
function answerOf(stored: StoredRollout): string {
  return JSON.stringify({ rollout: publicView(parseStored(stored)) });
}

/**
 * reads: where the stored rollout comes from. Default the store (Redis on every request); the
 * service passes a RolloutReadCache, whose copy is kept fresh by Redis's client-side caching.
 */
export function registerGetRollout(
  app: App,
  ctx: DomainContext,
  reads?: StoredReads,
  views = new RolloutViewCache(),
): void {
  app.openapi(route(ctx), async (c) => {
    const { id } = c.req.valid('param');
    const stored = await getStoredRollout({ ctx, id, ...(reads ? { reads } : {}) });
    // Only the work of turning an unchanged document into JSON is reused here.
    const body = views.answer(id, stored, answerOf);
    // The body is JSON text already (the route's 200 schema); c.json() would
    // serialize it a second time.
    return c.body(body, 200, { 'Content-Type': 'application/json' }) as never;
  });
}
