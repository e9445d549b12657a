import { createRoute, z } from '@hono/zod-openapi';
import type { DomainContext } from '../../rollouts/context.ts';
import { publicView } from '../../rollouts/model.ts';
import { PHASES } from '../../rollouts/phases.ts';
import { listRollouts } from '../../rollouts/verbs.ts';
import type { App } from '../app.ts';
import { assertNamespace, principalOf } from '../auth/require-scope.ts';
import { scoped } from '../auth/scoped.ts';
import { errorResponses } from '../errors.ts';
import { RolloutSchema } from './schema.ts';

const Query = z.object({
  namespace: z.string().optional(),
  phase: z.enum(PHASES).optional(),
  active: z.enum(['true', 'false']).optional().openapi({ description: 'Only rollouts that have not ended' }),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  before: z.coerce
    .number()
    .int()
    .optional()
    .openapi({ description: 'Only rollouts created before this time (ms), for paging' }),
});

const route = createRoute({
  ...scoped('read'),
  method: 'get',
  path: '/api/v1/rollouts',
  summary: 'List rollouts, newest first',
  request: { query: Query },
  responses: {
    200: {
      description: 'Rollouts',
      content: { 'application/json': { schema: z.object({ rollouts: z.array(RolloutSchema) }) } },
    },
    ...errorResponses('BAD_REQUEST', 'UNAUTHORIZED', 'FORBIDDEN', 'UNAVAILABLE'),
  },
});

export function registerListRollouts(app: App, ctx: DomainContext): void {
  app.openapi(route, async (c) => {
    const q = c.req.valid('query');
    const principal = principalOf(c);
    if (q.namespace) assertNamespace(principal, q.namespace);
    const rollouts = await listRollouts({
      ctx,
      query: {
        limit: q.limit,
        ...(q.namespace ? { namespace: q.namespace } : {}),
        ...(q.phase ? { phase: q.phase } : {}),
        ...(q.active === 'true' ? { active: true } : {}),
        ...(q.before !== undefined ? { before: q.before } : {}),
      },
    });
    // A token limited to namespaces sees only their rollouts.
    const visible = principal.namespaces
      ? rollouts.filter((r) => principal.namespaces!.includes(r.spec.target.namespace))
      : rollouts;
    return c.json({ rollouts: visible.map(publicView) }, 200);
  });
}
