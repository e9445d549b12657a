import { createRoute, z } from '@hono/zod-openapi';
import type { DomainContext } from '../../rollouts/context.ts';
import { publicView } from '../../rollouts/model.ts';
import { resolveSpec, startRollout } from '../../rollouts/verbs.ts';
import type { App } from '../app.ts';
import { assertNamespace, principalOf } from '../auth/require-scope.ts';
import { scoped } from '../auth/scoped.ts';
import { errorResponses } from '../errors.ts';
import { RolloutSchema, RolloutSpecInputSchema } from './schema.ts';

const route = createRoute({
  ...scoped('trigger'),
  method: 'post',
  path: '/api/v1/rollouts',
  summary: 'Start a rollout (idempotent with idempotencyKey)',
  request: { body: { required: true, content: { 'application/json': { schema: RolloutSpecInputSchema } } } },
  responses: {
    201: {
      description: 'Started',
      content: { 'application/json': { schema: z.object({ rollout: RolloutSchema }) } },
    },
    200: {
      description: 'A rollout with the same idempotencyKey exists; it is returned',
      content: { 'application/json': { schema: z.object({ rollout: RolloutSchema }) } },
    },
    ...errorResponses(
      'BAD_REQUEST',
      'UNAUTHORIZED',
      'FORBIDDEN',
      'PAYLOAD_TOO_LARGE',
      'TARGET_BUSY',
      'RATE_LIMITED',
      'UNAVAILABLE',
    ),
  },
});

export function registerCreateRollout(app: App, ctx: DomainContext): void {
  app.openapi(route, async (c) => {
    const principal = principalOf(c);
    const input = c.req.valid('json');
    if (principal.namespaces) {
      // The namespace is known only once a template is merged under the request.
      const { spec } = await resolveSpec(ctx, input);
      assertNamespace(principal, spec.target.namespace);
    }
    const { rollout, created } = await startRollout({ ctx, input, by: principal.name });
    c.header('Location', `/api/v1/rollouts/${rollout.id}`);
    return c.json({ rollout: publicView(rollout) }, created ? 201 : 200);
  });
}
