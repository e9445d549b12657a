import { randomUUID } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';

export interface RequestIdOptions {
  /** Header read from the caller and echoed back. Default X-Request-Id. */
  header?: string;
  /** Builds a new id when the caller sent none or an unusable one. Default: a random UUID. */
  generate?: () => string;
}

const SAFE = /^[A-Za-z0-9._:-]{1,128}$/;

/** Gives every request an id (the caller's own when it is safe to log), echoed in a response header. */
export function requestId({
  header = 'X-Request-Id',
  generate = randomUUID,
}: RequestIdOptions = {}): MiddlewareHandler {
  return function requestIdMiddleware(c, next) {
    const given = c.req.header(header);
    const id = given && SAFE.test(given) ? given : generate();
    c.set('requestId', id);
    c.header(header, id);
    return next();
  };
}
