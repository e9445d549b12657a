import { handle, type LambdaContext, type LambdaEvent } from 'hono/aws-lambda';
import { ConfigError, loadConfig } from '../config.ts';
import { buildDomain } from '../domain.ts';
import { createLogger } from '../observability/logger.ts';
import { Recorder } from '../observability/recorder.ts';
import { connectRedis, pingRedis } from '../redis.ts';
import { type App, newApp } from './app.ts';
import { doorsFromConfig } from './hooks/index.ts';

/**
 * vane's API as a serverless function: a fetch handler (Workers-style runtimes, Node's own
 * servers) and an AWS Lambda handler (API Gateway v1/v2, ALB, function URLs). The domain is built
 * from the settings once per cold start and reused by every invocation of that instance; ticks
 * are enqueued for workers that run elsewhere. SSE streams need a long-lived server: use `vane api`.
 */
export interface ServerlessEntry {
  /** The app, built on first use. */
  app(): Promise<App>;
  fetch(request: Request): Promise<Response>;
  handler(event: LambdaEvent, context?: LambdaContext): ReturnType<ReturnType<typeof handle>>;
  /** Closes the queues and the Redis connection (a runtime's shutdown hook; tests). */
  close(): Promise<void>;
}

export function createServerlessEntry(env: NodeJS.ProcessEnv = process.env): ServerlessEntry {
  let built: Promise<App> | undefined;
  let closeAll: (() => Promise<void>) | undefined;
  const app = (): Promise<App> => {
    built ??= (async () => {
      const config = loadConfig(env);
      if (!config.redisUrl) {
        throw new ConfigError(
          'REDIS_URL: required when vane runs as a function (it keeps no Redis of its own there)',
        );
      }
      const logger = createLogger({ level: config.logLevel, format: 'json' });
      const recorder = new Recorder();
      const redis = connectRedis(config.redisUrl, { role: 'client', name: 'vane-fn' });
      const domain = buildDomain({ config, redis, logger, recorder });
      closeAll = async () => {
        await domain.close();
        await redis.quit().catch(() => redis.disconnect());
      };
      logger.info({ keyPrefix: config.keyPrefix }, 'vane function ready');
      return newApp({
        logger,
        recorder,
        apiTokens: config.apiTokens,
        readiness: [{ name: 'redis', check: () => pingRedis(redis) }],
        domain: domain.ctx,
        doors: doorsFromConfig(config),
      });
    })();
    // A failed start is tried again by the next invocation rather than cached.
    built.catch(() => {
      built = undefined;
    });
    return built;
  };
  let lambda: ReturnType<typeof handle> | undefined;
  return {
    app,
    fetch: async (request) => (await app()).fetch(request),
    handler: async (event, context) => {
      lambda ??= handle(await app());
      return lambda(event, context);
    },
    async close() {
      await closeAll?.();
      built = undefined;
      lambda = undefined;
      closeAll = undefined;
    },
  };
}

/** The process's entry, built from process.env on first use. */
export const serverless = createServerlessEntry();
const entry = serverless;

/** AWS Lambda handler (API Gateway REST or HTTP API, ALB, function URL). */
export const handler = entry.handler;
/** Fetch handler. */
export const fetch = entry.fetch;
export default { fetch };
