import { timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { ApiError } from '../errors.ts';

export interface BearerAuthOptions {
  /** Accepted tokens; when empty every request passes (local use). Default []. */
  tokens?: string[];
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Requires `Authorization: Bearer <token>` with one of the configured tokens. */
export function bearerAuth({ tokens = [] }: BearerAuthOptions = {}): MiddlewareHandler {
  return async function bearerAuthMiddleware(c, next) {
    if (tokens.length === 0) return next();
    const header = c.req.header('Authorization') ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(header);
    if (!m)
      throw new ApiError(
        'UNAUTHORIZED',
        'send Authorization: Bearer <token> with one of the API tokens (VANE_API_TOKENS)',
      );
    const given = m[1]!.trim();
    if (!tokens.some((t) => same(t, given)))
      throw new ApiError('UNAUTHORIZED', 'the bearer token is not one of the API tokens');
    return next();
  };
}
