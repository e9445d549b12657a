import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from '../context.ts';
import { ApiError } from '../errors.ts';
import { LOCAL_PRINCIPAL, type TokenTable } from './tokens.ts';

export interface AuthenticateOptions {
  /** The configured tokens; with none, every caller is the `local` principal with every scope. */
  tokens: TokenTable;
  /**
   * Paths that authenticate themselves (signed webhooks): no bearer token is asked for there.
   * Default: /api/v1/hooks/ and /api/v1/chatops/.
   */
  selfAuthenticated?: (path: string) => boolean;
}

const SELF_AUTHENTICATED = /^\/api\/v1\/(hooks|chatops)\//;

/** Sets `c.get('principal')` from `Authorization: Bearer <token>`; 401 without a known token. */
export function authenticate({
  tokens,
  selfAuthenticated = (p) => SELF_AUTHENTICATED.test(p),
}: AuthenticateOptions): MiddlewareHandler<AppEnv> {
  // Not async: nothing here waits, so no promise of its own.
  return function authenticateMiddleware(c, next) {
    if (tokens.size === 0) {
      c.set('principal', LOCAL_PRINCIPAL);
      return next();
    }
    if (selfAuthenticated(c.req.path)) return next();
    const header = c.req.header('Authorization') ?? '';
    const m = /^Bearer[ \t]+([^\s]{1,4096})[ \t]*$/i.exec(header);
    if (!m) {
      c.header('WWW-Authenticate', 'Bearer realm="vane"');
      throw new ApiError(
        'UNAUTHORIZED',
        'send Authorization: Bearer <token> with an API token (VANE_API_TOKENS or apiTokens in VANE_CONFIG)',
      );
    }
    const principal = tokens.find(m[1]!);
    if (!principal) {
      c.header('WWW-Authenticate', 'Bearer realm="vane", error="invalid_token"');
      throw new ApiError('UNAUTHORIZED', 'the bearer token is not one of the API tokens');
    }
    c.set('principal', principal);
    return next();
  };
}
