import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { ApiClient } from '../cli/client.ts';
import { type EventView, followEvents, TERMINAL } from '../cli/events.ts';
import { paint, phaseColour } from '../cli/output.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../observability/logger.ts';
import { type RunningService, startService } from '../service.ts';
import { applyDemoService, type DemoServiceOptions } from './demo-service.ts';
import { type KubeSimulator, startKubeSimulator } from './kube/index.ts';
import {
  type LoadGenerator,
  type SandboxMesh,
  startLoad,
  startSandboxMesh,
  waitForGatewayScrape,
  writeSandboxFile,
} from './mesh/index.ts';
import { freePort, type ManagedProcess, startRedisServer } from './processes.ts';

/** The bookinfo-like service of the demo: v1 stable, v2 good, v3 failing 30% of its requests. */
export const BOOKINFO: DemoServiceOptions = {
  namespace: 'bookinfo',
  name: 'reviews',
  versions: [
    { version: 'v1', latencyMs: 20 },
    { version: 'v2', latencyMs: 15 },
    { version: 'v3', latencyMs: 25, errorRate: 0.3 },
  ],
};

/** The named template the demo registers: everything but the versions, so a start names only those. */
export const DEMO_TEMPLATE = 'reviews';
export const DEMO_TEMPLATE_SPEC = {
  target: { namespace: 'bookinfo', virtualService: 'reviews', destinationRule: 'reviews' },
  strategy: { type: 'canary', steps: [20, 50], stepInterval: '10s' },
  analysis: {
    interval: '15s',
    guardInterval: '2s',
    guardWindow: '10s',
    failureThreshold: 1,
    minRequests: 20,
    metrics: [
      { name: 'success-rate', template: 'request-success-rate', critical: true, thresholdRange: { min: 99 } },
      { name: 'p99-latency', template: 'request-duration', thresholdRange: { max: 5000 } },
    ],
  },
};

export interface SandboxOptions {
  config: Config;
  /** The logger of vane's API and workers. */
  logger: Logger;
  /** PORT was given: a busy port is an error. Otherwise a busy one is replaced by a free one. Default false. */
  portExplicit?: boolean;
  /** Keep the cluster's objects in `<dataDir>/kube.json` across restarts. Default true. */
  persist?: boolean;
  /** Apply the bookinfo-like `reviews` service and send it steady load. Default true. */
  bookinfo?: boolean;
  /** Requests per second of the load to `reviews`. Default 30. */
  loadRate?: number;
  /** Istio CRDs to validate against (tests). Default none: the Istio models only. */
  crdsFile?: string;
  /** Where progress notes go. Default: nowhere. */
  note?: (line: string) => void;
}

/** Every part of a running sandbox. */
export interface Sandbox {
  apiUrl: string;
  kubeUrl: string;
  gatewayUrl: string;
  prometheusUrl: string;
  /** Path of the kubeconfig written for the simulator. */
  kubeconfig: string;
  /** Path of sandbox.json. */
  sandboxFile: string;
  sim: KubeSimulator;
  mesh: SandboxMesh;
  service: RunningService;
  /** The private redis-server, when REDIS_URL was not set. */
  redis?: ManagedProcess;
  /** The load to bookinfo's reviews (undefined without bookinfo). */
  load?: LoadGenerator;
  /** Stops everything it started: workers and API, load, Prometheus, gateway, pods, simulator, Redis. */
  close(): Promise<void>;
}

function portBusy(port: number, host: string): Promise<boolean> {
  return new Promise((done) => {
    const srv = createServer();
    srv.once('error', () => done(true));
    srv.listen(port, host, () => srv.close(() => done(false)));
  });
}

/**
 * Brings up the whole sandbox: Redis (private unless REDIS_URL), the kube simulator with pods, the
 * mesh gateway, a real Prometheus scraping it every second, vane's API and workers pointed at both,
 * and (by default) the bookinfo-like `reviews` service with steady load; writes `<dataDir>/kubeconfig`
 * and `<dataDir>/sandbox.json`.
 */
export async function startSandbox(opts: SandboxOptions): Promise<Sandbox> {
  const { config, logger } = opts;
  const note = opts.note ?? (() => {});
  const dataDir = resolve(config.dataDir);
  const stack: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    for (const stop of stack.splice(0).reverse()) await stop().catch(() => {});
  };
  try {
    let redis: ManagedProcess | undefined;
    let redisUrl = config.redisUrl;
    if (!redisUrl) {
      redis = await startRedisServer({ dir: join(dataDir, 'redis'), persist: true });
      stack.push(() => redis!.stop());
      redisUrl = redis.url;
    }
    const sim = await startKubeSimulator({
      ...(opts.persist === false ? {} : { snapshotFile: join(dataDir, 'kube.json') }),
      ...(opts.crdsFile ? { crdsFile: opts.crdsFile } : {}),
      pods: true,
      log: (m) => logger.warn(m),
    });
    stack.push(() => sim.close());
    const kubeconfig = join(dataDir, 'kubeconfig');
    writeFileSync(kubeconfig, sim.kubeconfigYaml({ namespace: 'default' }));
    note(`kube simulator with pods  ${sim.url}`);

    const mesh = await startSandboxMesh({ sim, dataDir });
    stack.push(() => mesh.close());
    const prometheusUrl = mesh.prometheusUrl!;
    note(`mesh gateway              ${mesh.gatewayUrl}`);
    note(`Prometheus                ${prometheusUrl} (scraping the gateway every 1 s)`);

    const host = config.host ?? '127.0.0.1';
    let port = config.port;
    if (!opts.portExplicit && (await portBusy(port, host))) {
      port = await freePort();
      note(`port ${config.port} is busy; the API takes ${port} (set PORT to choose)`);
    }
    const service = await startService(
      { ...config, port, redisUrl, kubeconfig, prometheusUrl },
      'all',
      logger,
    );
    stack.push(() => service.shutdown('sandbox stopped'));
    const apiHost =
      host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
    const apiUrl = `http://${apiHost}:${service.port ?? port}`;
    note(`vane API and workers      ${apiUrl}`);

    let load: LoadGenerator | undefined;
    if (opts.bookinfo !== false) {
      const api = new ApiClient({
        server: apiUrl,
        ...(config.apiTokens[0] ? { token: config.apiTokens[0] } : {}),
      });
      await endActiveRollouts(api, BOOKINFO.namespace);
      await putTemplate(api);
      await applyDemoService(sim, BOOKINFO);
      load = startLoad({
        gatewayUrl: mesh.gatewayUrl,
        targets: [{ host: BOOKINFO.name, namespace: BOOKINFO.namespace }],
        rate: opts.loadRate ?? 30,
        sourceWorkload: 'productpage-v1',
      });
      stack.push(() => load!.stop());
      note(
        `bookinfo/reviews          v1 stable, v2 good, v3 bad (30% errors); ${opts.loadRate ?? 30} req/s from productpage`,
      );
    }
    const sandboxFile = writeSandboxFile(dataDir, {
      apiUrl,
      kubeconfig,
      kubeUrl: sim.url,
      gatewayUrl: mesh.gatewayUrl,
      prometheusUrl,
    });
    // Analysis on an empty TSDB would wait; Prometheus takes seconds to its first scrape.
    await waitForGatewayScrape(prometheusUrl, 60_000);
    let closing: Promise<void> | undefined;
    return {
      apiUrl,
      kubeUrl: sim.url,
      gatewayUrl: mesh.gatewayUrl,
      prometheusUrl,
      kubeconfig,
      sandboxFile,
      sim,
      mesh,
      service,
      ...(redis ? { redis } : {}),
      ...(load ? { load } : {}),
      close: () => {
        closing ??= closeAll();
        return closing;
      },
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

/**
 * A second start finds the rollouts of a run stopped midway in Redis: abort them (vane puts the
 * objects back) and wait until they end, so the demo's objects can be reset.
 */
async function endActiveRollouts(api: ApiClient, namespace: string): Promise<void> {
  const { data } = await api.call<{ rollouts: { id: string; phase: string }[] }>(
    'GET',
    `/api/v1/rollouts?active=true&namespace=${namespace}`,
  );
  for (const r of data.rollouts) {
    await api
      .call('POST', `/api/v1/rollouts/${r.id}/abort`, { reason: 'the sandbox restarted' })
      .catch(() => {});
  }
  const deadline = Date.now() + 60_000;
  for (const r of data.rollouts) {
    while (Date.now() < deadline) {
      const { data: one } = await api.call<{ rollout: { phase: string } }>('GET', `/api/v1/rollouts/${r.id}`);
      if (TERMINAL.has(one.rollout.phase)) break;
      await new Promise((res) => setTimeout(res, 250));
    }
  }
}

// ── The demo ────────────────────────────────────────────────────────────────────────────────────

interface RolloutView {
  id: string;
  phase: string;
  reason: string;
  weights: { stable: number; canary: number };
}

export interface DemoOptions {
  /** One line of the story. Default console.log. */
  print?: (line: string) => void;
  /** API token, when the API requires one. */
  token?: string;
  /** Colour (default: when stdout is a terminal). */
  colour?: boolean;
}

export interface DemoResult {
  promoted: RolloutView;
  rolledBack: RolloutView;
}

/** A path as a user types it: relative to the working folder when inside it. */
function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const clock = (t: number) => new Date(t).toISOString().slice(11, 19);

/** The version of a demo pod from its name (`reviews-v2-7c9d8f-x4k2p` → v2). */
function versionOf(pod: string, service: string): string {
  return pod.startsWith(`${service}-`) ? (pod.slice(service.length + 1).split('-')[0] ?? '?') : '?';
}

/**
 * Runs the demo in a started sandbox: reviews v1 → v2 (promoted), then v2 → v3 (rolled back on v3's
 * errors, seen by Prometheus at the gateway), printing every step as it happens: weights, the share
 * the gateway really sent, each metric against its threshold, the verdicts.
 */
export async function runDemo(sb: Sandbox, opts: DemoOptions = {}): Promise<DemoResult> {
  const print = opts.print ?? ((l: string) => console.log(l));
  const on = opts.colour ?? Boolean(process.stdout.isTTY);
  const api = new ApiClient({ server: sb.apiUrl, ...(opts.token ? { token: opts.token } : {}) });

  // The split the gateway really made since the last weight change, from the load's answers.
  let seen: Record<string, number> = {};
  const load = sb.load;
  let lastStats = load?.stats().byPod ?? {};
  const takeSplit = () => {
    const now = load?.stats().byPod ?? {};
    seen = {};
    for (const [pod, n] of Object.entries(now)) {
      const d = n - (lastStats[pod] ?? 0);
      if (d > 0) seen[versionOf(pod, BOOKINFO.name)] = (seen[versionOf(pod, BOOKINFO.name)] ?? 0) + d;
    }
    lastStats = now;
    return seen;
  };
  const splitText = (split: Record<string, number>) => {
    const total = Object.values(split).reduce((a, b) => a + b, 0);
    if (!total) return '';
    return Object.entries(split)
      .sort()
      .map(([v, n]) => `${v} ${((100 * n) / total).toFixed(0)}%`)
      .join(', ')
      .concat(` of ${total} requests`);
  };

  const one = async (title: string, stable: string, canary: string): Promise<RolloutView> => {
    print('');
    print(paint(`── ${title} ──`, 'bold', on));
    const { data } = await api.call<{ rollout: RolloutView }>('POST', '/api/v1/rollouts', {
      template: DEMO_TEMPLATE,
      stable: { subset: stable },
      canary: {
        subset: canary,
        labels: { app: BOOKINFO.name, version: canary },
        workload: { name: `${BOOKINFO.name}-${canary}` },
      },
      metadata: { triggeredBy: 'vane sandbox demo' },
    });
    const r = data.rollout;
    print(
      `${clock(Date.now())}  started ${r.id}: canary steps 20% → 50%, 10 s each; success rate ≥ 99% (critical, checked every 2 s), p99 latency ≤ 5 s`,
    );
    takeSplit();
    const result = await followEvents(api, r.id, {
      deadline: Date.now() + 5 * 60_000,
      onEvent: (e) => {
        for (const l of describeEvent(e, on, splitText, takeSplit)) print(l);
      },
    });
    if (result.timedOut) throw new Error(`the demo rollout ${r.id} did not end within 5 minutes`);
    const { data: end } = await api.call<{ rollout: RolloutView }>('GET', `/api/v1/rollouts/${r.id}`);
    return end.rollout;
  };

  const outcome = (r: RolloutView, stable: string, canary: string) =>
    `${paint(r.phase, phaseColour(r.phase), on)}: ${
      r.phase === 'succeeded'
        ? `${BOOKINFO.name} ${canary} takes all the traffic`
        : `${r.reason}; every request goes to ${stable} again`
    }`;
  const promoted = await one('rollout 1: reviews v1 → v2 (a good version)', 'v1', 'v2');
  print(outcome(promoted, 'v1', 'v2'));
  // v3 follows whatever the first rollout left as stable (v2 when it was promoted).
  const stable = currentStable(sb);
  const rolledBack = await one(
    `rollout 2: reviews ${stable} → v3 (v3 fails 30% of its requests)`,
    stable,
    'v3',
  );
  print(outcome(rolledBack, stable, 'v3'));
  // Judge by the traffic, not by the object: what users get now.
  await new Promise((r) => setTimeout(r, 2_000));
  takeSplit();
  await new Promise((r) => setTimeout(r, 2_000));
  print(`gateway, the last 2 s: ${splitText(takeSplit())}`);
  return { promoted, rolledBack };
}

function describeEvent(
  e: EventView,
  on: boolean,
  splitText: (s: Record<string, number>) => string,
  takeSplit: () => Record<string, number>,
): string[] {
  const t = clock(e.time);
  switch (e.type) {
    case 'transition':
      return [`${t}  ${e.from ?? '?'} → ${paint(e.to ?? '?', phaseColour(e.to ?? ''), on)}  ${e.reason}`];
    case 'weight': {
      // Only a period in which both versions had traffic says something about the weights.
      const split = takeSplit();
      const total = Object.values(split).reduce((a, b) => a + b, 0);
      const before = Object.keys(split).length > 1 && total >= 50 ? splitText(split) : '';
      const out = [
        `${t}  ${paint('weight', 'cyan', on)}  stable ${e.weights?.stable}% / canary ${e.weights?.canary}%  ${e.reason}`,
      ];
      if (before) out.unshift(`          gateway since the last change: ${before}`);
      return out;
    }
    case 'analysis': {
      const out = [
        `${t}  ${e.reason.replace(/: (pass|fail|inconclusive)/, (_, v) => `: ${paint(v, phaseColour(v), on)}`)}`,
      ];
      for (const m of (e.results ?? []) as { name: string; verdict: string; message: string }[])
        out.push(
          `          ${paint(pad(m.verdict, 12), phaseColour(m.verdict), on)} ${pad(m.name, 13)} ${m.message}`,
        );
      return out;
    }
    case 'subset':
    case 'gate':
    case 'drift':
    case 'command':
    case 'error':
      return [`${t}  ${e.type}  ${e.reason}`];
    default:
      return [];
  }
}

async function putTemplate(api: ApiClient): Promise<void> {
  const put = await api.raw(`/api/v1/templates/${DEMO_TEMPLATE}`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ spec: DEMO_TEMPLATE_SPEC }),
  });
  if (put.status === 404) {
    await api.call('POST', '/api/v1/templates', { name: DEMO_TEMPLATE, spec: DEMO_TEMPLATE_SPEC });
  } else if (!put.ok) {
    throw new Error(`registering the demo template failed: HTTP ${put.status} ${await put.text()}`);
  }
}

/** The `vane rollout start` line that works in the sandbox as it is now (its current stable version). */
/** The subset bookinfo's reviews route sends to now. */
function currentStable(sb: Sandbox): string {
  const vs = sb.sim.getObject('networking.istio.io/v1', 'VirtualService', BOOKINFO.namespace, BOOKINFO.name);
  const routes: { destination?: { subset?: string }; weight?: number }[] = vs?.spec?.http?.[0]?.route ?? [];
  const top = [...routes].sort((a, b) => (b.weight ?? 100) - (a.weight ?? 100))[0];
  return top?.destination?.subset ?? 'v1';
}

export function startLine(sb: Sandbox): string[] {
  const stable = currentStable(sb);
  const next = stable === 'v1' ? 'v2' : 'v3';
  const lines: string[] = [];
  if (next === 'v3')
    lines.push(
      `kubectl --kubeconfig ${shown(sb.kubeconfig)} -n bookinfo annotate deployment reviews-v3 sandbox.vane.dev/error-rate=0 --overwrite   # fix v3 first (or leave it, to see it rolled back)`,
    );
  lines.push(
    `vane rollout start --server ${sb.apiUrl} --template ${DEMO_TEMPLATE} --stable ${stable} --canary ${next} --canary-labels app=reviews,version=${next} --wait`,
  );
  return lines;
}

export interface RunSandboxOptions {
  demo: boolean;
  portExplicit?: boolean;
}

/** `vane sandbox` and `vane start` without a cluster: everything up, the demo, then serve until Ctrl-C. */
export async function runSandbox(config: Config, logger: Logger, opts: RunSandboxOptions): Promise<number> {
  const print = (l: string) => console.log(l);
  const on = Boolean(process.stdout.isTTY);
  print(
    paint(
      'vane sandbox: a Kubernetes API, pods, an Istio-like mesh, Prometheus and load, on this machine',
      'bold',
      on,
    ),
  );
  let sb: Sandbox | undefined;
  let stopping = false;
  const stopped = new Promise<string>((done) => {
    process.once('SIGINT', () => done('SIGINT'));
    process.once('SIGTERM', () => done('SIGTERM'));
  });
  const stopAll = async (why: string): Promise<number> => {
    stopping = true;
    print(`\n${why}: stopping vane, the load, Prometheus, the gateway, the pods and the simulator`);
    const timer = setTimeout(() => {
      logger.error({ timeoutMs: config.shutdownTimeout }, 'shutdown took too long; exiting anyway');
      process.exit(1);
    }, config.shutdownTimeout + 10_000);
    timer.unref();
    await sb?.close();
    clearTimeout(timer);
    print('stopped');
    return 0;
  };
  try {
    const up = startSandbox({
      config,
      logger,
      ...(opts.portExplicit !== undefined ? { portExplicit: opts.portExplicit } : {}),
      note: (l) => print(`  ${l}`),
    });
    const first = await Promise.race([up, stopped]);
    if (typeof first === 'string') {
      sb = await up.catch(() => undefined);
      return stopAll(first);
    }
    sb = first;
    print(`  kubeconfig                ${shown(sb.kubeconfig)}`);
    print(`  every address             ${shown(sb.sandboxFile)}`);
    if (opts.demo) {
      const demo = runDemo(sb, {
        ...(config.apiTokens[0] ? { token: config.apiTokens[0] } : {}),
        colour: on,
      });
      // Stopped midway, the demo's event stream fails once the API is gone: that is expected.
      demo.catch(() => {});
      const r = await Promise.race([demo, stopped]);
      if (typeof r === 'string') return stopAll(r);
    }
    print('');
    print(paint('The sandbox is up. Ctrl-C stops it.', 'bold', on));
    print(`  API        ${sb.apiUrl}`);
    print(`  API docs   ${sb.apiUrl}/docs`);
    print(`  dashboard  ${sb.apiUrl}/ui`);
    print(
      `  kubectl    kubectl --kubeconfig ${shown(sb.kubeconfig)} -n bookinfo get pods,virtualservices,destinationrules`,
    );
    print('Try a rollout of your own:');
    for (const l of startLine(sb)) print(`  ${l}`);
    return stopAll(await stopped);
  } catch (e) {
    if (!stopping) {
      console.error(`vane: the sandbox failed: ${(e as Error).message}`);
      await sb?.close();
    }
    return 1;
  }
}
