import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { type AnalysisReport, analyzeTarget } from '../mesh/analyzer.ts';
import { objectName } from '../mesh/findings.ts';
import { createKubeClients, createKubeTrafficRouter } from '../mesh/kube-router.ts';
import { analyzeLive } from '../mesh/live-analyzer.ts';
import { inputFromObjects, objectsFromYaml, YamlError } from '../mesh/offline.ts';
import { MeshError, type MeshTarget } from '../mesh/types.ts';

export const ANALYZE_USAGE = `usage: vane analyze [-f FILE ...] --virtual-service NAME --stable SUBSET --canary SUBSET [options]

Checks a rollout target before a rollout starts, like istioctl analyze: the VirtualService and
DestinationRule exist, the managed routes and subsets are there, weights add up, no other
VirtualService claims the host, the canary labels select pods. With -f it reads YAML files;
without, the cluster of the kubeconfig (KUBECONFIG, ~/.kube/config or in-cluster).

options:
  -f, --file FILE            YAML file with VirtualServices, DestinationRules (and Pods or Deployments); repeatable
      --context NAME         kubeconfig context of the cluster (default: VANE_KUBE_CONTEXT, else the current one)
  -n, --namespace NS         namespace of the target (default: default)
      --virtual-service NAME the VirtualService vane edits
      --destination-rule NAME the DestinationRule vane edits (default: the VirtualService's name)
      --stable SUBSET        the stable subset
      --canary SUBSET        the canary subset
      --canary-labels K=V,.. pod labels of the canary (checked against pods in the files)
      --route NAME           an http route to manage; repeatable (default: every route to the stable subset)
      --host HOST            destination host of the routes (default: the DestinationRule's host)
  -o, --output text|json     default text

exit status: 0 no errors (warnings allowed), 1 errors found, 2 bad usage or the objects could not be read.`;

class UsageError extends Error {}

function parseLabels(s: string | undefined): Record<string, string> {
  if (!s) return {};
  const out: Record<string, string> = {};
  for (const pair of s.split(',')) {
    const m = /^\s*([^=\s]+)\s*=\s*([^=\s]*)\s*$/.exec(pair);
    if (!m)
      throw new UsageError(`--canary-labels: '${pair}' is not KEY=VALUE (e.g. version=v2,track=canary)`);
    out[m[1]!] = m[2]!;
  }
  return out;
}

function parse(argv: string[]) {
  const values = (() => {
    try {
      return parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }).values;
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  })();
  for (const key of ['virtual-service', 'stable', 'canary'] as const) {
    if (!values[key]) throw new UsageError(`--${key} is required`);
  }
  const output = values.output ?? 'text';
  if (output !== 'text' && output !== 'json')
    throw new UsageError(`--output must be text or json, not '${output}'`);
  const target: MeshTarget = {
    namespace: values.namespace ?? 'default',
    virtualService: values['virtual-service']!,
    destinationRule: values['destination-rule'] ?? values['virtual-service']!,
    stableSubset: values.stable!,
    canarySubset: values.canary!,
    canaryLabels: parseLabels(values['canary-labels']),
    ...(values.route?.length ? { routes: values.route } : {}),
    ...(values.host ? { host: values.host } : {}),
  };
  return { target, files: values.file ?? [], output, context: values.context };
}

const OPTIONS = {
  file: { type: 'string', short: 'f', multiple: true },
  namespace: { type: 'string', short: 'n' },
  'virtual-service': { type: 'string' },
  'destination-rule': { type: 'string' },
  stable: { type: 'string' },
  canary: { type: 'string' },
  'canary-labels': { type: 'string' },
  route: { type: 'string', multiple: true },
  host: { type: 'string' },
  output: { type: 'string', short: 'o' },
  context: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Readable text: one block per finding, errors first, and a summary line. */
export function formatReport(r: AnalysisReport): string {
  const t = r.target;
  const head = `VirtualService ${t.namespace}/${t.virtualService}, DestinationRule ${t.namespace}/${t.destinationRule}`;
  if (!r.findings.length) return `${head}: no findings\n`;
  const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
  const infos = r.findings.length - r.errors - r.warnings;
  const lines = [
    `${head}: ${plural(r.errors, 'error')}, ${plural(r.warnings, 'warning')}${infos ? `, ${infos} info` : ''}`,
  ];
  for (const f of r.findings) {
    lines.push(
      '',
      `${f.severity.padEnd(7)} ${f.code} ${f.name}`,
      `  ${objectName(f.object)}${f.field ? `  ${f.field}` : ''}`,
      `  ${f.message}`,
      `  fix: ${f.fix}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Where the live mode finds the cluster (the service's settings). */
export interface AnalyzeSettings {
  kubeconfig?: string;
  kubeContext?: string;
}

function loadKubeConfig(settings: AnalyzeSettings): KubeConfig {
  const kc = new KubeConfig();
  if (settings.kubeconfig) kc.loadFromFile(settings.kubeconfig);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else if (existsSync(join(homedir(), '.kube', 'config'))) kc.loadFromDefault();
  else throw new UsageError('no cluster to read: give the objects with -f FILE, or set KUBECONFIG');
  return kc;
}

/** `vane analyze ...`: resolves with the exit code. */
export async function runAnalyze(argv: string[], settings: AnalyzeSettings = {}): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    console.log(ANALYZE_USAGE);
    return 0;
  }
  let report: AnalysisReport;
  let output: string;
  try {
    const parsed = parse(argv);
    output = parsed.output;
    if (parsed.files.length) {
      const files = parsed.files.map((name) => {
        try {
          return { name, text: readFileSync(name, 'utf8') };
        } catch (e) {
          throw new UsageError(
            `cannot read ${name}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
          );
        }
      });
      const objects = objectsFromYaml(files, parsed.target.namespace);
      report = await analyzeTarget(inputFromObjects(objects, parsed.target));
    } else {
      const kubeConfig = loadKubeConfig(settings);
      const context = parsed.context ?? settings.kubeContext;
      const policy = { kubeConfig, timeoutMs: 10_000, maxRetries: 2 };
      const router = createKubeTrafficRouter({ ...policy, ...(context ? { context } : {}) });
      const clients = createKubeClients(policy);
      report = await analyzeLive(
        { router: () => router, clients },
        { ...parsed.target, ...(context ? { cluster: context } : {}) },
      );
    }
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`vane analyze: ${e.message}\n\n${ANALYZE_USAGE}`);
      return 2;
    }
    if (e instanceof YamlError || e instanceof MeshError) {
      console.error(`vane analyze: ${e.message}`);
      return 2;
    }
    throw e;
  }
  process.stdout.write(output === 'json' ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  return report.errors > 0 ? 1 : 0;
}
