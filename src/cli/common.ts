import { type Command, Option } from 'commander';
import { parseDuration } from '../duration.ts';
import { ApiClient } from './client.ts';
import { CliError } from './errors.ts';
import { type ClientFlags, type ClientSettings, OUTPUTS, resolveClientSettings } from './settings.ts';

/** --server, --token and --output, for every command that talks to vane's API. */
export function withClientOptions(cmd: Command): Command {
  return cmd
    .option(
      '--server <url>',
      "vane's API (default: $VANE_URL, the config file's server, http://localhost:8080)",
    )
    .addOption(new Option('--url <url>', 'the same as --server').hideHelp())
    .option('--token <token>', "API token (default: $VANE_TOKEN, the config file's token)")
    .addOption(
      new Option(
        '-o, --output <format>',
        "table, json or yaml (default: the config file's output, table)",
      ).choices(OUTPUTS),
    );
}

/** The settings and API client of a command's action; the config file is read here, never before. */
export function clientOf(cmd: Command): { api: ApiClient; settings: ClientSettings } {
  const settings = resolveClientSettings(cmd.opts<ClientFlags>());
  return { api: new ApiClient(settings), settings };
}

/** A duration flag ("30s", "10m", "1h") in milliseconds. */
export function durationFlag(flag: string, value: string): number {
  try {
    return parseDuration(value);
  } catch {
    throw new CliError(`${flag} ${value}: expected a duration such as 90s, 30m or 1h`);
  }
}

/** Collects a repeatable flag's values. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** The example block every command's --help ends with. */
export function examples(cmd: Command, ...lines: string[]): Command {
  return cmd.addHelpText(
    'after',
    `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((l) => `  ${l}`).join('\n')}`,
  );
}
