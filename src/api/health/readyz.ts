import { createRoute, z } from '@hono/zod-openapi';
import { withTimeout } from '../../redis.ts';
import type { App } from '../app.ts';
import type { ApiDeps } from '../context.ts';

const Check = z.object({ name: z.string(), ok: z.boolean(), error: z.string().optional() });
const Body = z
  .object({ status: z.enum(['ready', 'unavailable']), checks: z.array(Check) })
  .openapi('Readiness');

const route = createRoute({
  method: 'get',
  path: '/readyz',
  summary: 'Readiness: every dependency answers',
  responses: {
    200: { description: 'Ready', content: { 'application/json': { schema: Body } } },
    503: {
      description: 'A dependency is not answering; `checks` names it',
      content: { 'application/json': { schema: Body } },
    },
  },
});

export function registerReadyz(app: App, deps: ApiDeps): void {
  app.openapi(route, async (c) => {
    const checks = await Promise.all(
      deps.readiness.map(async ({ name, check }) => {
        try {
          await withTimeout(check(), 2_000, name);
          return { name, ok: true };
        } catch (e) {
          return { name, ok: false, error: (e as Error).message };
        }
      }),
    );
    const ok = checks.every((x) => x.ok);
    return c.json({ status: ok ? ('ready' as const) : ('unavailable' as const), checks }, ok ? 200 : 503);
  });
}
