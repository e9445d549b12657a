import { type ServerType, serve } from '@hono/node-server';
import { newApp } from './api/app.ts';
import { apiBinding } from './api/auth/binding.ts';
import { doorsFromConfig } from './api/hooks/index.ts';
import { templateIssues } from './api/templates/check.ts';
import { type Config, ConfigError } from './config.ts';
import { buildDomain, type Domain } from './domain.ts';
import { notifyProcessor } from './notify/queue.ts';
import { setOutboundPolicy } from './notify/url-guard.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { Recorder } from './observability/recorder.ts';
import { connectRedis, pingRedis, type Redis } from './redis.ts';
import { RolloutReadCache } from './rollouts/read-cache.ts';
import { afterVerdictProcessor } from './workers/after-verdict.ts';
import { startWorkers, type WorkerPool } from './workers/runtime.ts';
import { tickProcessor } from './workers/ticks.ts';

export type Role = 'api' | 'worker' | 'all';

export interface RunningService {
  logger: Logger;
  /** Port the API listens on (when it runs). */
  port?: number;
  /** Stops taking work, finishes or releases current jobs, closes every connection. */
  shutdown(reason: string): Promise<void>;
}

/** Starts the API and/or the workers of one process, with every dependency built once. */
export async function startService(
  config: Config & { redisUrl: string },
  role: Role,
  logger?: Logger,
): Promise<RunningService> {
  const log = logger ?? createLogger({ level: config.logLevel, format: config.logFormat });
  const binding = apiBinding({
    host: config.host,
    tokens: config.apiTokens.length + config.scopedTokens.length,
    auth: config.auth,
    role,
  });
  if (binding.error) throw new ConfigError(binding.error);
  setOutboundPolicy({ allowLoopback: config.allowLoopbackWebhooks });
  for (const [name, spec] of Object.entries(config.templates)) {
    const issue = templateIssues(spec, `templates.${name}`)[0];
    if (issue) throw new ConfigError(`VANE_CONFIG: ${issue.path}: ${issue.message}`);
  }
  const recorder = new Recorder();
  const connections: Redis[] = [];
  const client = connectRedis(config.redisUrl, { role: 'client', name: `vane-${role}` });
  // The queues get a connection of their own: BullMQ's scripts on the API's connection would be
  // copied onto every auto-pipelined batch of its reads (see DomainOptions.queueRedis).
  const queueClient = connectRedis(config.redisUrl, { role: 'client', name: `vane-${role}-queues` });
  connections.push(client, queueClient);
  const domain: Domain = buildDomain({
    config,
    redis: client,
    queueRedis: queueClient,
    logger: log,
    recorder,
  });
  recorder.observeState({
    rolloutsByPhase: () => domain.ctx.store.countByPhase(),
    queueDepth: async () => ({
      ...(await domain.ticks.depth()),
      ...(await domain.notify.depth()),
      ...(await domain.after.depth()),
    }),
  });

  // The API's GET of one rollout answers from an in-process copy that Redis keeps fresh
  // (client-side caching); a worker-only process serves no such GET.
  const reads =
    role !== 'worker' && config.readCache > 0
      ? new RolloutReadCache({
          redisUrl: config.redisUrl,
          store: domain.ctx.store,
          maxEntries: config.readCache,
          maxLagMs: config.readCacheMaxLag,
          name: `vane-${role}`,
          logger: log,
        }).start()
      : undefined;

  let server: ServerType | undefined;
  // Ends open event streams at shutdown; otherwise they would hold server.close() to the timeout.
  const streams = new AbortController();
  let port: number | undefined;
  // Workers serve /healthz, /readyz and /metrics too, for probes and for queue metrics.
  {
    const app = newApp({
      logger: log,
      recorder,
      apiTokens: config.apiTokens,
      scopedTokens: config.scopedTokens,
      ...(config.metricsToken ? { metricsToken: config.metricsToken } : {}),
      rateLimit: { redis: client, prefix: config.keyPrefix, perMinute: config.rateLimit },
      requestTimeoutMs: config.requestTimeout,
      readiness: [{ name: 'redis', check: () => pingRedis(client) }],
      ...(role === 'worker'
        ? {}
        : {
            domain: domain.ctx,
            ...(reads ? { rolloutReads: reads } : {}),
            doors: doorsFromConfig(config),
            eventStreams: { signal: streams.signal },
          }),
    });
    server = await new Promise<ServerType>((resolve, reject) => {
      const s = serve({ fetch: app.fetch, port: config.port, hostname: binding.host }, (info) => {
        port = info.port;
        resolve(s);
      });
      s.once('error', reject);
    });
    log.info({ port, host: binding.host }, 'API listening');
    if (binding.note) log[binding.level ?? 'info'](binding.note);
  }

  let pool: WorkerPool | undefined;
  if (role === 'worker' || role === 'all') {
    const blocking = connectRedis(config.redisUrl, { role: 'worker', name: 'vane-worker' });
    connections.push(blocking);
    pool = startWorkers({
      connection: blocking,
      prefix: config.keyPrefix,
      processors: [
        tickProcessor(domain.ctx, config.tickConcurrency),
        afterVerdictProcessor(domain.ctx),
        notifyProcessor({
          store: domain.ctx.store,
          recorder,
          logger: log,
          concurrency: Math.max(4, Math.ceil(config.workerConcurrency / 2)),
        }),
      ],
      logger: log,
    });
    // An active rollout whose due time was lost (a Redis restored from an old snapshot) gets one again.
    void resumeActive(domain, log);
    log.info(
      {
        queues: pool.workers.map((w) => w.name),
        concurrency: config.workerConcurrency,
        tickConcurrency: config.tickConcurrency,
      },
      'workers started',
    );
  }

  let stopping: Promise<void> | undefined;
  return {
    logger: log,
    port,
    shutdown(reason) {
      stopping ??= (async () => {
        log.info({ reason }, 'shutting down');
        streams.abort();
        const closeServer = server
          ? new Promise<void>((resolve) => {
              server!.close(() => resolve());
              // Idle keep-alive sockets would hold close() open.
              (server as { closeIdleConnections?: () => void }).closeIdleConnections?.();
            })
          : Promise.resolve();
        await Promise.all([closeServer, pool?.close()]);
        await reads?.close();
        await domain.close().catch(() => {});
        await Promise.all(connections.map((c) => c.quit().catch(() => c.disconnect())));
        log.info('stopped');
      })();
      return stopping;
    },
  };
}

async function resumeActive(domain: Domain, log: Logger): Promise<void> {
  try {
    const active = await domain.ctx.store.list({ active: true, limit: 500 });
    let added = 0;
    for (const r of active) if (await domain.ticks.ensure(r.id)) added++;
    if (added) log.info({ added }, 'active rollouts without a tick got one');
  } catch (e) {
    log.warn({ err: (e as Error).message }, 'could not check active rollouts for missing ticks');
  }
}
