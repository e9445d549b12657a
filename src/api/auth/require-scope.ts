import type { Context, MiddlewareHandler, Next } from 'hono';
import type { AppEnv } from '../context.ts';
import { ApiError } from '../errors.ts';
import type { Principal, Scope } from './tokens.ts';

/** The namespace a request acts on, or undefined when it names none (or the object does not exist: the route answers 404). */
export type NamespaceOf = (c: Context<AppEnv>) => Promise<string | undefined> | string | undefined;

/** The caller, set by authenticate(); a route outside it has none and answers 401. */
export function principalOf(c: Context<AppEnv>): Principal {
  const p = c.get('principal');
  if (!p) throw new ApiError('UNAUTHORIZED', 'send Authorization: Bearer <token> with an API token');
  return p;
}

/** 403 unless the principal may act in `namespace`. */
export function assertNamespace(principal: Principal, namespace: string): void {
  if (principal.namespaces && !principal.namespaces.includes(namespace)) {
    throw new ApiError(
      'FORBIDDEN',
      `token '${principal.name}' may not act in namespace '${namespace}'; its namespaces are: ${principal.namespaces.join(', ')}`,
      { namespace, allowed: principal.namespaces },
    );
  }
}

/** 403 unless the principal has `scope`. */
export function assertScope(principal: Principal, scope: Scope): void {
  if (!principal.scopes.includes(scope)) {
    throw new ApiError(
      'FORBIDDEN',
      `token '${principal.name}' lacks the '${scope}' scope (it has: ${principal.scopes.join(', ')})`,
      { requiredScope: scope },
    );
  }
}

/**
 * A route's guard: the caller needs `scope`, and, when its token is limited to namespaces and
 * `namespaceOf` names one, that namespace. Runs before the body is validated.
 */
export function requireScope(scope: Scope, namespaceOf?: NamespaceOf): MiddlewareHandler<AppEnv> {
  const inNamespace = async (c: Context<AppEnv>, next: Next, principal: Principal, of: NamespaceOf) => {
    const ns = await of(c);
    if (ns !== undefined) assertNamespace(principal, ns);
    return next();
  };
  // Not async: a token that sees every namespace passes on without a promise of its own.
  return function requireScopeMiddleware(c, next) {
    const principal = principalOf(c);
    assertScope(principal, scope);
    if (principal.namespaces && namespaceOf) return inNamespace(c, next, principal, namespaceOf);
    return next();
  };
}
