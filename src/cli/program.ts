import { Command, CommanderError } from 'commander';
import { VERSION } from '../version.ts';
import { registerAnalyze } from './commands/analyze.ts';
import { registerCompletion } from './commands/completion.ts';
import { registerRollout } from './commands/rollout.ts';
import { registerSandbox } from './commands/sandbox.ts';
import { registerServer, type ServerRunner } from './commands/server.ts';
import { registerTemplates } from './commands/templates.ts';
import { registerVersion } from './commands/version.ts';
import { CliError, EXIT, EXIT_CODES_HELP } from './errors.ts';

export interface CliDeps {
  runServer: ServerRunner;
}

/**
 * The whole command tree. Building it and --help or --version read nothing and start nothing:
 * settings, config files and connections are touched only inside a command's action.
 */
export function buildProgram(deps: CliDeps): Command {
  const program = new Command('vane');
  // Set before any subcommand is added: subcommands inherit these.
  program
    .exitOverride()
    .configureOutput({
      outputError: (text, write) => write(`vane: ${text.replace(/^error: /, '')}`),
    })
    .showHelpAfterError('(add --help for usage)')
    .version(VERSION, '-V, --version', "print vane's version")
    .description('canary releases for Istio, driven by an HTTP API')
    .addHelpText(
      'after',
      `
${EXIT_CODES_HELP}

Client commands (rollout, templates, analyze) find vane through --server and --token, else
VANE_URL and VANE_TOKEN, else $XDG_CONFIG_HOME/vane/config.yaml (default ~/.config/vane/config.yaml):
  server: https://vane.example.com
  token: ...
  output: table          # or json, yaml

Examples:
  vane start
  vane rollout start -f rollout.yaml --wait
  vane rollout list --active -o json`,
    );
  registerServer(program, deps.runServer);
  registerRollout(program);
  registerTemplates(program);
  registerAnalyze(program);
  registerSandbox(program);
  registerVersion(program);
  registerCompletion(program);
  return program;
}

/** Parses argv, runs the command, and resolves with the exit code; errors become one `vane: ...` line. */
export async function runCli(argv: string[], deps: CliDeps): Promise<number> {
  const program = buildProgram(deps);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (e instanceof CliError) {
      console.error(e.message.startsWith('vane ') ? e.message : `vane: ${e.message}`);
      return e.code;
    }
    console.error(`vane: ${(e as Error)?.message ?? String(e)}`);
    return EXIT.usage;
  }
}
