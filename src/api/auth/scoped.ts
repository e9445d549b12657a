import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from '../context.ts';
import { type NamespaceOf, requireScope } from './require-scope.ts';
import type { Scope } from './tokens.ts';

/**
 * What a route spreads into its createRoute(): the scope guard as route middleware, and the
 * bearer security requirement plus `x-vane-scope` in the OpenAPI document, from one place.
 */
export function scoped(
  scope: Scope,
  namespaceOf?: NamespaceOf,
): {
  middleware: MiddlewareHandler<AppEnv>;
  security: { bearerAuth: string[] }[];
  'x-vane-scope': Scope;
} {
  return {
    middleware: requireScope(scope, namespaceOf),
    security: [{ bearerAuth: [] }],
    'x-vane-scope': scope,
  };
}
