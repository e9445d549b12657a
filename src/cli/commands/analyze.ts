import type { Command } from 'commander';
import type { AnalysisReport } from '../../mesh/analyzer.ts';
import type { MeshTarget } from '../../mesh/types.ts';
import { clientOf, collect, examples, withClientOptions } from '../common.ts';
import { CliError, EXIT } from '../errors.ts';
import { emit, paint } from '../output.ts';
import { parseLabels, readInputFile } from '../spec-input.ts';
import { type BacktestFlags, runBacktest, withBacktestOptions } from './backtest.ts';

interface AnalyzeFlags extends BacktestFlags {
  file?: string[];
  namespace: string;
  virtualService?: string;
  destinationRule?: string;
  stable?: string;
  canary?: string;
  canaryLabels?: string;
  route?: string[];
  host?: string;
}

interface FindingView {
  code: string;
  name?: string;
  severity: string;
  object?: { kind: string; namespace: string; name: string };
  field?: string;
  message: string;
  fix: string;
}

interface ReportView {
  target: Pick<MeshTarget, 'namespace' | 'virtualService' | 'destinationRule'>;
  findings: FindingView[];
  errors: number;
  warnings: number;
}

const sevColour = (s: string) => (s === 'error' ? 'red' : s === 'warning' ? 'yellow' : 'cyan');

/** Readable text: one block per finding, errors first, and a summary line. */
export function formatReport(r: ReportView): string {
  const t = r.target;
  const head = `VirtualService ${t.namespace}/${t.virtualService}, DestinationRule ${t.namespace}/${t.destinationRule}`;
  if (!r.findings.length) return `${head}: no findings\n`;
  const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
  const infos = r.findings.length - r.errors - r.warnings;
  const lines = [
    `${head}: ${plural(r.errors, 'error')}, ${plural(r.warnings, 'warning')}${infos ? `, ${infos} info` : ''}`,
  ];
  for (const f of r.findings) {
    const obj = f.object ? `${f.object.kind} ${f.object.namespace}/${f.object.name}` : '';
    lines.push(
      '',
      `${paint(f.severity.padEnd(7), sevColour(f.severity))} ${f.code}${f.name ? ` ${f.name}` : ''}`,
      ...(obj || f.field ? [`  ${obj}${f.field ? `  ${f.field}` : ''}`] : []),
      `  ${f.message}`,
      `  fix: ${f.fix}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

function targetOf(o: AnalyzeFlags): MeshTarget {
  for (const [key, flag] of [
    ['virtualService', '--virtual-service'],
    ['stable', '--stable'],
    ['canary', '--canary'],
  ] as const) {
    if (!o[key]) throw new CliError(`vane analyze: ${flag} is required`);
  }
  return {
    namespace: o.namespace,
    virtualService: o.virtualService!,
    destinationRule: o.destinationRule ?? o.virtualService!,
    stableSubset: o.stable!,
    canarySubset: o.canary!,
    canaryLabels: parseLabels('--canary-labels', o.canaryLabels) ?? {},
    ...(o.route?.length ? { routes: o.route } : {}),
    ...(o.host ? { host: o.host } : {}),
  };
}

/** Offline: the objects of YAML files, no API and no cluster. */
async function offline(files: string[], target: MeshTarget): Promise<AnalysisReport> {
  const { analyzeTarget } = await import('../../mesh/analyzer.ts');
  const { inputFromObjects, objectsFromYaml, YamlError } = await import('../../mesh/offline.ts');
  const texts = files.map((name) => ({ name, text: readInputFile(name) }));
  try {
    return await analyzeTarget(inputFromObjects(objectsFromYaml(texts, target.namespace), target));
  } catch (e) {
    if (e instanceof YamlError) throw new CliError(`vane analyze: ${e.message}`);
    throw e;
  }
}

export function registerAnalyze(program: Command): void {
  const analyze = withBacktestOptions(withClientOptions(program.command('analyze')))
    .description('check a rollout target before a rollout: through the API, or offline on YAML files with -f')
    .option(
      '-f, --file <file>',
      'offline: a YAML file with VirtualServices, DestinationRules (and Pods or Deployments); repeatable',
      collect,
    )
    .option('-n, --namespace <ns>', 'namespace of the target', 'default')
    .option('--virtual-service <name>', 'the VirtualService vane edits (required)')
    .option(
      '--destination-rule <name>',
      "the DestinationRule vane edits (default: the VirtualService's name)",
    )
    .option('--stable <subset>', 'the stable subset (required)')
    .option('--canary <subset>', 'the canary subset (required)')
    .option('--canary-labels <k=v,...>', 'pod labels of the canary, checked against the pods')
    .option(
      '--route <name>',
      'an http route to manage; repeatable (default: every route to the stable subset)',
      collect,
    )
    .option('--host <host>', "destination host of the routes (default: the DestinationRule's host)")
    .addHelpText(
      'after',
      `
Like istioctl analyze, for one rollout target: the VirtualService and DestinationRule exist, the
managed routes and subsets are there, weights add up, no other VirtualService claims the host, the
canary labels select pods. Without -f the API checks the cluster vane works on (POST /api/v1/analyze).

With --backtest, the rollout spec's metric checks are replayed over past traffic with the stable
version on both sides (POST /api/v1/analyze/backtest): how often would they have failed a release
identical to stable? Exit 1 when an identical release would have been rolled back.

Exit codes:
  0  no errors (warnings allowed)
  1  errors found
  2  bad usage, an unreadable file, or an API error`,
    )
    .action(async (o: AnalyzeFlags, cmd: Command) => {
      if (o.backtest !== undefined) return runBacktest(o, cmd);
      const target = targetOf(o);
      let report: ReportView;
      let output: 'table' | 'json' | 'yaml';
      if (o.file?.length) {
        output = cmd.opts<{ output?: 'table' | 'json' | 'yaml' }>().output ?? 'table';
        report = await offline(o.file, target);
      } else {
        if (!Object.keys(target.canaryLabels).length)
          throw new CliError(
            'vane analyze: --canary-labels is required without -f (the API checks them against the pods)',
          );
        const { api, settings } = clientOf(cmd);
        output = settings.output;
        const spec = {
          target: {
            namespace: target.namespace,
            virtualService: target.virtualService,
            destinationRule: target.destinationRule,
            ...(target.routes ? { routes: target.routes } : {}),
            ...(target.host ? { host: target.host } : {}),
          },
          stable: { subset: target.stableSubset },
          canary: { subset: target.canarySubset, labels: target.canaryLabels },
          strategy: { type: 'canary', steps: [100] },
        };
        const { data } = await api.call<Omit<ReportView, 'target'>>('POST', '/api/v1/analyze', spec);
        report = { target, ...data };
      }
      emit(output, report, () => formatReport(report));
      process.exitCode = report.errors > 0 ? EXIT.failed : EXIT.ok;
    });
  examples(
    analyze,
    'vane analyze -n bookinfo --virtual-service reviews --stable v1 --canary v2 --canary-labels version=v2',
    'vane analyze -f vs.yaml -f dr.yaml -f deploy.yaml -n bookinfo --virtual-service reviews --stable v1 --canary v2',
    'vane analyze --backtest 7d -f rollout.yaml',
    'vane analyze --backtest 7d --template reviews',
  );
}
