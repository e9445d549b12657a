import { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { RolloutError } from '../rollouts/errors.ts';
import { COMMAND_PHASES } from '../rollouts/phases.ts';
import { describeIssues } from '../zod-issues.ts';
import { registerAnalyze } from './analyze.ts';
import { authenticate } from './auth/authenticate.ts';
import { principalOf, requireScope } from './auth/require-scope.ts';
import { TokenTable } from './auth/tokens.ts';
import { registerBacktest } from './backtest.ts';
import type { ApiDeps, AppEnv } from './context.ts';
import { registerDocs } from './docs.ts';
import { ApiError, type ErrorCode, envelope, isRedisUnavailable } from './errors.ts';
import { registerHealthz } from './health/healthz.ts';
import { registerMetrics } from './health/metrics.ts';
import { registerReadyz } from './health/readyz.ts';
import { registerAlertmanagerHook } from './hooks/alertmanager.ts';
import { isSignedDoor, registerSignedDoors } from './hooks/index.ts';
import { bodySize, jsonDepth, requestTimeout } from './middleware/limits.ts';
import { rateLimit } from './middleware/rate-limit.ts';
import { requestId } from './middleware/request-id.ts';
import { registerRolloutCommands } from './rollouts/commands.ts';
import { registerCreateRollout } from './rollouts/create.ts';
import { registerRolloutEvents } from './rollouts/events.ts';
import { registerGetRollout } from './rollouts/get.ts';
import { registerListRollouts } from './rollouts/list.ts';
import { rolloutNamespace } from './rollouts/namespace.ts';
import { registerTemplates } from './templates/routes.ts';
import { registerUi } from './ui/route.ts';
import { registerWhoami } from './whoami.ts';

export type App = OpenAPIHono<AppEnv>;

/** Seconds a client should wait before retrying while Redis is unreachable. */
const REDIS_RETRY_AFTER = '5';

/** Scopes of routes whose files declare none themselves (added to the OpenAPI document here). */
const EXTRA_SCOPES: Record<string, string> = {
  'get /api/v1/rollouts/{id}/events': 'read',
  'get /api/v1/events': 'read',
};

function answer(c: Context<AppEnv>, code: ErrorCode, message: string, details?: unknown) {
  const { status } = new ApiError(code, message);
  return c.json(
    envelope(code, message, c.get('requestId') ?? 'unknown', details),
    status as ContentfulStatusCode,
  );
}

/** Builds the HTTP API with its error hook, error handler and routes. Tests build their own with the deps they want. */
export function newApp(deps: ApiDeps): App {
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: (result, c) => {
      if (!result.success) {
        const issues = describeIssues(result.error);
        const first = issues[0];
        const where = result.target === 'json' ? 'body' : result.target;
        const message = first ? `${first.path || where}: ${first.message}` : 'invalid request';
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
    if (err instanceof ApiError) {
      for (const [k, v] of Object.entries(err.headers ?? {})) c.header(k, v);
      return answer(c, err.code, err.message, err.details);
    }
    if (err instanceof RolloutError) return answer(c, err.code, err.message, err.details);
    if (isRedisUnavailable(err)) {
      c.header('Retry-After', REDIS_RETRY_AFTER);
      (c.get('logger') ?? deps.logger).warn({ err: (err as Error).message }, 'Redis unavailable');
      return answer(c, 'UNAVAILABLE', 'vane cannot reach its Redis right now; retry shortly');
    }
    if (err instanceof SyntaxError) {
      return answer(c, 'BAD_REQUEST', `request body is not valid JSON: ${err.message}`);
    }
    if (err instanceof HTTPException && err.status < 500) {
      const code: ErrorCode =
        err.status === 401
          ? 'UNAUTHORIZED'
          : err.status === 404
            ? 'NOT_FOUND'
            : err.status === 413
              ? 'PAYLOAD_TOO_LARGE'
              : 'BAD_REQUEST';
      return answer(c, code, err.message || 'bad request');
    }
    (c.get('logger') ?? deps.logger).error({ err }, 'unhandled error');
    return answer(c, 'INTERNAL', 'internal error; quote the request id when reporting it');
  });
  app.notFound((c) => answer(c, 'NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`));

  registerHealthz(app);
  registerReadyz(app, deps);
  registerMetrics(app, deps);

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', {
    type: 'http',
    scheme: 'bearer',
    description:
      'An API token (VANE_API_TOKENS: every scope; apiTokens in VANE_CONFIG: the scopes read, trigger, operate, admin and optional namespaces). Each operation names the scope it needs in x-vane-scope.',
  });

  if (deps.domain) {
    const ctx = deps.domain;
    const tokens = new TokenTable({ plain: deps.apiTokens ?? [], scoped: deps.scopedTokens ?? [] });
    app.use('/api/*', requestTimeout({ ms: deps.requestTimeoutMs ?? 15_000 }));
    app.use('/api/*', authenticate({ tokens }));
    app.use('/api/*', bodySize());
    if (deps.rateLimit) {
      const { redis, prefix, perMinute } = deps.rateLimit;
      app.use('/api/*', rateLimit({ redis, prefix, limit: perMinute }));
    }
    // The signed doors read their raw bytes to verify them before anything parses the body.
    const depth = jsonDepth();
    app.use('/api/*', (c, next) => (isSignedDoor(c.req.path) ? next() : depth(c, next)));
    // The events routes' file declares no scope of its own. On the all-rollouts stream, a token
    // limited to namespaces may name one of its own by ?namespace=; without it, the stream itself
    // keeps to the token's namespaces.
    app.use('/api/v1/rollouts/:id/events', requireScope('read', rolloutNamespace(ctx)));
    app.use(
      '/api/v1/events',
      requireScope('read', (c) => c.req.query('namespace')),
    );
    registerSignedDoors(app, ctx, deps.doors ?? {});
    registerCreateRollout(app, ctx);
    registerListRollouts(app, ctx);
    registerGetRollout(app, ctx, deps.rolloutReads);
    registerRolloutEvents(app, ctx, deps.eventStreams);
    registerRolloutCommands(app, ctx);
    registerTemplates(app, ctx);
    registerAnalyze(app, ctx);
    registerBacktest(app, ctx);
    registerAlertmanagerHook(app, ctx, { tokens });
    registerWhoami(app, principalOf);
    registerUi(app, { commandPhases: COMMAND_PHASES });
  }

  registerDocs(app);
  app.get('/openapi.json', (c) => {
    const doc = app.getOpenAPI31Document({ openapi: '3.1.0', info: { title: 'vane', version: '1' } });
    for (const [key, scope] of Object.entries(EXTRA_SCOPES)) {
      const [method, path] = key.split(' ') as [string, string];
      const op = (doc.paths?.[path] as Record<string, Record<string, unknown>> | undefined)?.[method];
      if (op && !op['x-vane-scope'])
        Object.assign(op, { security: [{ bearerAuth: [] }], 'x-vane-scope': scope });
    }
    return c.json(doc);
  });
  return app;
}
