import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { SCOPES } from '../config.ts';
import type { App } from './app.ts';
import { scoped } from './auth/scoped.ts';
import type { Principal } from './auth/tokens.ts';
import type { AppEnv } from './context.ts';
import { errorResponses } from './errors.ts';

const WhoamiSchema = z
  .object({
    name: z.string().openapi({ description: "The token's name; `local` when no token is configured" }),
    scopes: z.array(z.enum(SCOPES)),
    namespaces: z
      .array(z.string())
      .optional()
      .openapi({ description: 'The namespaces the token is limited to; absent: every namespace' }),
  })
  .openapi('Whoami');

const route = createRoute({
  ...scoped('read'),
  method: 'get',
  path: '/api/v1/whoami',
  summary:
    "The caller's token: its name, scopes and namespaces (the dashboard shows only the actions they allow)",
  responses: {
    200: { description: 'The caller', content: { 'application/json': { schema: WhoamiSchema } } },
    ...errorResponses('UNAUTHORIZED', 'FORBIDDEN'),
  },
});

/** GET /api/v1/whoami; `callerOf` reads the principal the authentication middleware set. */
export function registerWhoami(app: App, callerOf: (c: Context<AppEnv>) => Principal): void {
  app.openapi(route, (c) => {
    const p = callerOf(c);
    return c.json(
      { name: p.name, scopes: [...p.scopes], ...(p.namespaces ? { namespaces: [...p.namespaces] } : {}) },
      200,
    );
  });
}
