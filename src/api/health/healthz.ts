import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app.ts';

const route = createRoute({
  method: 'get',
  path: '/healthz',
  summary: 'Liveness: the process is up',
  responses: {
    200: {
      description: 'Alive',
      content: { 'application/json': { schema: z.object({ status: z.literal('ok') }) } },
    },
  },
});

export function registerHealthz(app: App): void {
  app.openapi(route, (c) => c.json({ status: 'ok' as const }, 200));
}
