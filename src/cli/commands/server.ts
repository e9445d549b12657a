import type { Command } from 'commander';
import type { Config } from '../../config.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Role } from '../../service.ts';
import { examples } from '../common.ts';
import { CliError } from '../errors.ts';

/** main.ts's runServer: runs until SIGTERM/SIGINT and resolves with the exit code. */
export type ServerRunner = (
  config: Config,
  role: Role,
  logger: Logger,
  privateRedis: boolean,
  noDemo?: boolean,
) => Promise<number>;

const SETTINGS_HELP = `
Settings come from environment variables (PORT, HOST, REDIS_URL, KUBECONFIG, LOG_LEVEL, ...) and
the YAML file named by VANE_CONFIG; they are read when the command runs, never for --help.
It runs until SIGTERM or Ctrl-C, then shuts down gracefully and exits 0.`;

export function registerServer(program: Command, run: ServerRunner): void {
  const serve = (name: string, role: Role, privateRedis: boolean, description: string, example: string) => {
    const cmd = program
      .command(name)
      .description(description)
      .addHelpText('after', SETTINGS_HELP)
      .action(async (o: { demo?: boolean }) => {
        // Settings are read only here: --help never gets this far.
        const { ConfigError, loadConfig } = await import('../../config.ts');
        const { createLogger } = await import('../../observability/logger.ts');
        let config: Config;
        try {
          config = loadConfig();
        } catch (e) {
          if (e instanceof ConfigError) throw new CliError(e.message);
          throw e;
        }
        const logger = createLogger({ level: config.logLevel, format: config.logFormat });
        process.exitCode = await run(config, role, logger, privateRedis, o.demo === false);
      });
    examples(cmd, example);
    return cmd;
  };
  const start = serve(
    'start',
    'all',
    true,
    'run vane for a newcomer: a private redis-server when REDIS_URL is unset; with no cluster configured, the whole sandbox (see vane sandbox) and its demo; API and workers',
    'PORT=9090 vane start',
  );
  start.option('--no-demo', 'without a cluster configured: run the sandbox without the demo rollouts');
  serve(
    'all',
    'all',
    false,
    'API and workers in one process (needs REDIS_URL)',
    'REDIS_URL=redis://localhost:6379 vane all',
  );
  serve(
    'api',
    'api',
    false,
    'the HTTP API only (needs REDIS_URL); scale it horizontally',
    'REDIS_URL=redis://redis:6379 PORT=8080 vane api',
  );
  serve(
    'worker',
    'worker',
    false,
    'the workers only (needs REDIS_URL); scale it horizontally',
    'REDIS_URL=redis://redis:6379 vane worker',
  );
}
