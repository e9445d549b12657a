/** The exit codes of every `vane` client command (documented in --help and README). */
export const EXIT = {
  /** the command did what it was asked; a waited-for rollout succeeded */
  ok: 0,
  /** a waited-for rollout failed or was aborted; analyze found errors */
  failed: 1,
  /** bad usage, an unreadable file, an API error or an unreachable API */
  usage: 2,
  /** --wait or --follow timed out */
  timeout: 3,
} as const;

export const EXIT_CODES_HELP = `Exit codes:
  0  succeeded (or the command was carried out)
  1  the rollout failed or was aborted (analyze: errors found)
  2  bad usage, a missing or unreadable file, or an API error
  3  --wait timed out`;

/** An error the CLI reports as one line `vane: <message>` and exits with `code`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly code: number = EXIT.usage,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** An error answer of vane's API, shown as `<CODE>: <message>`. */
export class ApiCallError extends CliError {
  constructor(
    readonly apiCode: string,
    readonly apiMessage: string,
    readonly status: number,
    extra = '',
  ) {
    super(`${apiCode}: ${apiMessage}${extra}`);
    this.name = 'ApiCallError';
  }
}
