import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { apiBinding } from '../api/auth/binding.ts';
import type { Config } from '../config.ts';
import { loadKubeConfig } from '../domain.ts';
import type { Logger } from '../observability/logger.ts';
import { type ManagedProcess, startRedisServer } from '../sandbox/processes.ts';
import { type Role, startService } from '../service.ts';

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
      pods: true,
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

// The command line (program.ts) loads this module only for start, all, api and worker.
export { runServer };
