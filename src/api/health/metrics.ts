import { timingSafeEqual } from 'node:crypto';
import type { App } from '../app.ts';
import type { ApiDeps } from '../context.ts';
import { ApiError } from '../errors.ts';

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  // Compare equal-length buffers always; the length check comes after, so timing does not leak it.
  const padded = Buffer.alloc(b.length);
  a.copy(padded, 0, 0, Math.min(a.length, b.length));
  return timingSafeEqual(padded, b) && a.length === b.length;
}

/** Prometheus exposition of the service's own metrics (plain text, so not part of the JSON OpenAPI routes). */
export function registerMetrics(app: App, deps: ApiDeps): void {
  app.get('/metrics', async (c) => {
    if (deps.metricsToken) {
      const m = /^Bearer[ \t]+(\S+)/i.exec(c.req.header('Authorization') ?? '');
      if (!m || !sameToken(m[1]!, deps.metricsToken)) {
        c.header('WWW-Authenticate', 'Bearer realm="vane-metrics"');
        throw new ApiError(
          'UNAUTHORIZED',
          'send Authorization: Bearer <VANE_METRICS_TOKEN> to read /metrics',
        );
      }
    }
    c.header('Content-Type', deps.recorder.registry.contentType);
    return c.body(await deps.recorder.metrics());
  });
}
