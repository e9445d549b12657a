import type { App } from '../app.ts';
import type { ApiDeps } from '../context.ts';

/** Prometheus exposition of the service's own metrics (plain text, so not part of the JSON OpenAPI routes). */
export function registerMetrics(app: App, deps: ApiDeps): void {
  app.get('/metrics', async (c) => {
    c.header('Content-Type', deps.recorder.registry.contentType);
    return c.body(await deps.recorder.metrics());
  });
}
