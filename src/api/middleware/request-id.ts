import { randomUUID } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';

export interface RequestIdOptions {
  /** Header read from the caller and echoed back. Default X-Request-Id. */
  header?: string;
  /** Builds a new id when the caller sent none or an unusable one. Default: a random UUID. */
  generate?: () => string;
}

/** What is used of node:http's ServerResponse (c.env.outgoing under @hono/node-server). */
interface NodeResponse {
  setHeader(name: string, value: string): unknown;
  headersSent: boolean;
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
    // On Node's HTTP server (@hono/node-server), the header goes straight onto the response object:
    // a header set through Hono builds a fetch Headers object for every response, which costs more
    // than the rest of this middleware; Node merges it with the response's own headers.
    const outgoing = (c.env as { outgoing?: NodeResponse } | undefined)?.outgoing;
    if (typeof outgoing?.setHeader === 'function' && !outgoing.headersSent) outgoing.setHeader(header, id);
    else c.header(header, id);
    return next();
  };
}
