import type { Command } from 'commander';
import type { BacktestReport } from '../../metrics/backtest.ts';
import { clientOf } from '../common.ts';
import { CliError, EXIT } from '../errors.ts';
import { emit, paint, table } from '../output.ts';
import { parseLabels, readMappingFile } from '../spec-input.ts';

export interface BacktestFlags {
  backtest?: string;
  file?: string[];
  template?: string;
  end?: string;
  stableLabels?: string;
  scrapeInterval?: string;
}

/** The flags `vane analyze` takes for --backtest. */
export function withBacktestOptions(cmd: Command): Command {
  return cmd
    .option(
      '--backtest <window>',
      "replay the spec's analysis over the past window (7d, 36h, 90m) with the stable on both sides; the spec comes from -f or --template",
    )
    .option('--template <name>', '--backtest: a template of vane instead of -f')
    .option('--end <time>', '--backtest: end of the window, an ISO time (default now)')
    .option(
      '--stable-labels <k=v,...>',
      "--backtest: the stable's pod labels (default: read from the DestinationRule in the cluster)",
    )
    .option(
      '--scrape-interval <duration>',
      "--backtest: Prometheus's scrape interval (default: measured from the data, else 15s)",
    );
}

/** Readable text: the verdict, then one row per metric. */
export function formatBacktest(r: BacktestReport): string {
  const rows = r.metrics.map((m) => [
    `${m.name}${m.dryRun ? ' (dry run)' : ''}${m.critical ? ' (critical)' : ''}`,
    String(m.passed),
    m.failed ? paint(String(m.failed), 'red') : '0',
    String(m.inconclusive),
    m.notReplayed ?? (m.closest ? `${m.closest.message} on ${m.closest.when}` : '-'),
  ]);
  const lines = [
    `${new Date(r.start).toISOString()} … ${new Date(r.end).toISOString()}, every ${r.stepSeconds}s: ${r.evaluations} evaluations`,
    '',
    table(['metric', 'passed', 'failed', 'inconclusive', 'closest pass'], rows),
    '',
    paint(r.verdict, r.rollbacks.length ? 'red' : 'green'),
  ];
  for (const n of r.notes) lines.push(paint(`note: ${n}`, 'yellow'));
  return `${lines.join('\n')}\n`;
}

/** `vane analyze --backtest 7d -f spec.yaml | --template NAME` through the API. Exit 1 when a rollback would have happened. */
export async function runBacktest(o: BacktestFlags, cmd: Command): Promise<void> {
  const files = o.file ?? [];
  if (files.length > 0 === (o.template !== undefined) || files.length > 1) {
    throw new CliError('vane analyze --backtest: give the spec with one -f <file> or --template <name>');
  }
  let end: string | undefined;
  if (o.end !== undefined) {
    const t = new Date(o.end);
    if (Number.isNaN(t.getTime()))
      throw new CliError(`--end ${o.end}: expected an ISO time such as 2026-11-20T00:00:00Z`);
    end = t.toISOString();
  }
  const stableLabels = parseLabels('--stable-labels', o.stableLabels);
  const body = {
    ...(files[0] ? { spec: readMappingFile(files[0]) } : { template: o.template }),
    window: o.backtest,
    ...(end ? { end } : {}),
    ...(stableLabels ? { stableLabels } : {}),
    ...(o.scrapeInterval ? { scrapeInterval: o.scrapeInterval } : {}),
  };
  const { api, settings } = clientOf(cmd);
  const { data } = await api.call<BacktestReport>('POST', '/api/v1/analyze/backtest', body);
  emit(settings.output, data, () => formatBacktest(data));
  process.exitCode = data.rollbacks.length > 0 ? EXIT.failed : EXIT.ok;
}
