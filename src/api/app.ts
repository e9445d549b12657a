import { OpenAPIHono } from '@hono/zod-openapi';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { RolloutError } from '../rollouts/errors.ts';
import { COMMAND_PHASES } from '../rollouts/verbs.ts';
import { registerAnalyze } from './analyze.ts';
import type { ApiDeps, AppEnv } from './context.ts';
import { ApiError, envelope } from './errors.ts';
import { registerHealthz } from './health/healthz.ts';
import { registerMetrics } from './health/metrics.ts';
import { registerReadyz } from './health/readyz.ts';
import { bearerAuth } from './middleware/bearer-auth.ts';
import { requestId } from './middleware/request-id.ts';
import { registerRolloutCommands } from './rollouts/commands.ts';
import { registerCreateRollout } from './rollouts/create.ts';
import { registerRolloutEvents } from './rollouts/events.ts';
import { registerGetRollout } from './rollouts/get.ts';
import { registerListRollouts } from './rollouts/list.ts';
import { registerTemplates } from './templates/routes.ts';
import { registerUi } from './ui/route.ts';
import { registerWhoami, SCOPE_NAMES } from './whoami.ts';

export type App = OpenAPIHono<AppEnv>;

/** Builds the HTTP API with its error hook, error handler and routes. Tests build their own with the deps they want. */
export function newApp(deps: ApiDeps): App {
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: (result, c) => {
      if (!result.success) {
        const issues = result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
        const first = issues[0];
        const message = first ? `${first.path || 'body'}: ${first.message}` : 'invalid request';
        return c.json(envelope('BAD_REQUEST', message, c.get('requestId'), { issues }), 400);
      }
    },
  });

  app.use(requestId());
  app.use(async function accessLog(c, next) {
    const log = deps.logger.child({ requestId: c.get('requestId') });
    c.set('logger', log);
    const started = performance.now();
    await next();
    const seconds = (performance.now() - started) / 1000;
    const route = c.req.routePath ?? 'unmatched';
    deps.recorder.recordHttp(c.req.method, route, c.res.status, seconds);
    if (route !== '/metrics' && route !== '/healthz' && route !== '/readyz') {
      log.info(
        { method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(seconds * 1000) },
        'request',
      );
    }
  });

  app.onError((err, c) => {
    const id = c.get('requestId') ?? 'unknown';
    if (err instanceof ApiError) {
      return c.json(envelope(err.code, err.message, id, err.details), err.status as ContentfulStatusCode);
    }
    if (err instanceof RolloutError) {
      const mapped = new ApiError(err.code, err.message, err.details);
      return c.json(
        envelope(mapped.code, mapped.message, id, mapped.details),
        mapped.status as ContentfulStatusCode,
      );
    }
    if (err instanceof SyntaxError) {
      return c.json(envelope('BAD_REQUEST', `request body is not valid JSON: ${err.message}`, id), 400);
    }
    if (err instanceof HTTPException && err.status < 500) {
      const code = err.status === 401 ? 'UNAUTHORIZED' : err.status === 404 ? 'NOT_FOUND' : 'BAD_REQUEST';
      return c.json(envelope(code, err.message || 'bad request', id), err.status);
    }
    (c.get('logger') ?? deps.logger).error({ err }, 'unhandled error');
    return c.json(envelope('INTERNAL', 'internal error; quote the request id when reporting it', id), 500);
  });
  app.notFound((c) =>
    c.json(envelope('NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`, c.get('requestId')), 404),
  );

  registerHealthz(app);
  registerReadyz(app, deps);
  registerMetrics(app, deps);

  if (deps.domain) {
    app.use('/api/*', bearerAuth({ tokens: deps.apiTokens ?? [] }));
    registerCreateRollout(app, deps.domain);
    registerListRollouts(app, deps.domain);
    registerGetRollout(app, deps.domain);
    registerRolloutEvents(app, deps.domain);
    registerRolloutCommands(app, deps.domain);
    registerTemplates(app, deps.domain);
    registerAnalyze(app, deps.domain);
    // Every token has every scope until scoped tokens exist.
    registerWhoami(app, () => ({
      name: deps.apiTokens?.length ? 'api-token' : 'local',
      scopes: SCOPE_NAMES,
    }));
    registerUi(app, { commandPhases: COMMAND_PHASES });
  }

  app.doc31('/openapi.json', { openapi: '3.1.0', info: { title: 'vane', version: '1' } });
  return app;
}
