#!/usr/bin/env node
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { apiBinding } from '../api/auth/binding.ts';
import { type Config, ConfigError, loadConfig } from '../config.ts';
import { loadKubeConfig } from '../domain.ts';
import { createLogger, type Logger } from '../observability/logger.ts';
import { type ManagedProcess, startRedisServer } from '../sandbox/processes.ts';
import { type Role, startService } from '../service.ts';
import { rolloutCommand } from './rollout.ts';

const USAGE = `usage: vane <command>

commands:
  start            run vane for a newcomer: a private redis-server when REDIS_URL is unset, the sandbox
                   cluster when no cluster is configured, API and workers
  all              API and workers in one process (needs REDIS_URL unless started through 'start')
  analyze          check a rollout target before starting it ('vane analyze --help')
  api              the HTTP API only (needs REDIS_URL)
  worker           the workers only (needs REDIS_URL)
  rollout ...      start, watch and steer rollouts through the API ('vane rollout --help')
  sandbox kube     a Kubernetes API simulator for kubectl and tests: [--port N] [--crds FILE] [--snapshot FILE] [--token T]

settings come from environment variables (PORT, REDIS_URL, LOG_LEVEL, ...) and VANE_CONFIG (a YAML file).`;

async function main(argv: string[]): Promise<number> {
  const [command = 'all'] = argv;
  if (command === 'help' || command === '--help' || command === '-h') {
    console.log(USAGE);
    return 0;
  }
  // Client commands talk to a running vane; they do not need the server's settings.
  if (command === 'rollout') return rolloutCommand(argv.slice(1));
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
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });

  switch (command) {
    case 'start':
      return runServer(config, 'all', logger, true);
    case 'analyze':
      return (await import('./analyze.ts')).runAnalyze(argv.slice(1), config);
    case 'all':
    case 'api':
    case 'worker':
      return runServer(config, command, logger, false);
    case 'sandbox':
      if (argv[1] === 'kube')
        return (await import('../sandbox/kube/cli.ts')).runKubeSimulatorCli(argv.slice(2));
      console.error(`vane: unknown sandbox part '${argv[1] ?? ''}'; try 'vane sandbox kube'`);
      return 2;
    default:
      console.error(`vane: unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

/** Runs until SIGTERM/SIGINT, then shuts down gracefully and resolves with the exit code. */
async function runServer(config: Config, role: Role, logger: Logger, privateRedis: boolean): Promise<number> {
  const tokens = config.apiTokens.length + config.scopedTokens.length;
  const bind = apiBinding({ host: config.host, tokens, auth: config.auth, role });
  if (bind.error) {
    console.error(`vane: ${bind.error}`);
    return 2;
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
  let kube: { close(): Promise<void> } | undefined;
  let kubeconfig = config.kubeconfig;
  if (privateRedis && !kubeconfig && !loadKubeConfig(config)) {
    // No cluster: the local sandbox cluster, kept under the data folder across restarts.
    const { startKubeSimulator } = await import('../sandbox/kube/index.ts');
    mkdirSync(resolve(config.dataDir), { recursive: true });
    const sim = await startKubeSimulator({
      snapshotFile: resolve(join(config.dataDir, 'kube.json')),
      log: (m) => logger.warn(m),
    });
    kubeconfig = resolve(join(config.dataDir, 'kubeconfig'));
    writeFileSync(kubeconfig, sim.kubeconfigYaml({ namespace: 'default' }));
    kube = sim;
    logger.info(
      { url: sim.url, kubeconfig },
      'no cluster configured: started the sandbox cluster (kubectl --kubeconfig <that file> works against it; set KUBECONFIG to use a real cluster)',
    );
  }
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
      await kube?.close();
      clearTimeout(timer);
      done(0);
    };
    process.once('SIGTERM', () => void stop('SIGTERM'));
    process.once('SIGINT', () => void stop('SIGINT'));
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    console.error(`vane: ${(e as Error).message}`);
    process.exit(1);
  },
);
