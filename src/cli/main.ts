import { join, resolve } from 'node:path';
import { apiBinding } from '../api/auth/binding.ts';
import { type Config, ConfigError, loadConfig } from '../config.ts';
import { loadKubeConfig } from '../domain.ts';
import { createLogger, type Logger } from '../observability/logger.ts';
import { type ManagedProcess, startRedisServer } from '../sandbox/processes.ts';
import { type Role, startService } from '../service.ts';

/** Runs until SIGTERM/SIGINT, then shuts down gracefully and resolves with the exit code. */
async function runServer(
  config: Config,
  role: Role,
  logger: Logger,
  privateRedis: boolean,
  noDemo = false,
): Promise<number> {
  const tokens = config.apiTokens.length + config.scopedTokens.length;
  const bind = apiBinding({ host: config.host, tokens, auth: config.auth, role });
  if (bind.error) {
    console.error(`vane: ${bind.error}`);
    return 2;
  }
  if (privateRedis && !config.kubeconfig && !loadKubeConfig(config)) {
    // No cluster: the whole sandbox (cluster, pods, mesh, Prometheus, load) and the demo in it.
    const { runSandbox } = await import('../sandbox/run.ts');
    return runSandbox(config, sandboxLogger(config, logger), {
      demo: !noDemo,
      portExplicit: process.env.PORT !== undefined,
    });
  }
  let redis: ManagedProcess | undefined;
  let redisUrl = config.redisUrl;
  if (!redisUrl) {
    if (!privateRedis) {
      console.error(
        `vane: REDIS_URL is not set; set it to redis://host:port, or run 'vane start' for a private redis-server`,
      );
      return 2;
    }
    const dir = resolve(join(config.dataDir, 'redis'));
    redis = await startRedisServer({ dir, persist: true });
    redisUrl = redis.url;
    logger.info({ url: redisUrl, dir }, 'started a private redis-server (set REDIS_URL to use your own)');
  }
  const kubeconfig = config.kubeconfig;
  const service = await startService(
    { ...config, redisUrl, ...(kubeconfig ? { kubeconfig } : {}) },
    role,
    logger,
  );
  return new Promise<number>((done) => {
    const stop = async (signal: string) => {
      const timer = setTimeout(() => {
        logger.error({ timeoutMs: config.shutdownTimeout }, 'shutdown took too long; exiting anyway');
        done(1);
      }, config.shutdownTimeout);
      timer.unref();
      await service.shutdown(signal);
      await redis?.stop();
      clearTimeout(timer);
      done(0);
    };
    process.once('SIGTERM', () => void stop('SIGTERM'));
    process.once('SIGINT', () => void stop('SIGINT'));
  });
}

/**
 * The sandbox's story is printed on stdout; vane's own logs there would bury it, so below warn they
 * are kept off unless LOG_LEVEL asks for them.
 */
function sandboxLogger(config: Config, logger: Logger): Logger {
  if (process.env.LOG_LEVEL) return logger;
  return createLogger({ level: 'warn', format: config.logFormat });
}

/** `vane sandbox [--no-demo]`: settings read here, never for --help. */
async function sandboxAction(opts: { demo: boolean }): Promise<number> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`vane: ${e.message}`);
      return 2;
    }
    throw e;
  }
  const { runSandbox } = await import('../sandbox/run.ts');
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  return runSandbox(config, sandboxLogger(config, logger), {
    demo: opts.demo,
    portExplicit: process.env.PORT !== undefined,
  });
}

// The command line (program.ts) loads this module only for start, all, api, worker and sandbox.
export { runServer, sandboxAction };
