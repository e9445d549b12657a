import { clusterTargetFacts } from '../../src/domain.ts';
import { createKubeClients, createKubeRouters } from '../../src/mesh/kube-router.ts';
import { MetricError } from '../../src/metrics/errors.ts';
import type { MetricProvider, QueryResult } from '../../src/metrics/types.ts';
import { createGateKeeper } from '../../src/notify/gatekeeper.ts';
import { GateStore } from '../../src/notify/gates.ts';
import { NotifyQueue, notifyOnEvents, notifyProcessor } from '../../src/notify/queue.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { connectRedis } from '../../src/redis.ts';
import { createRolloutAnalyzer } from '../../src/rollouts/analyzer.ts';
import type { RolloutAnalyzer } from '../../src/rollouts/context.ts';
import type { Rollout } from '../../src/rollouts/model.ts';
import { isTerminal } from '../../src/rollouts/phases.ts';
import {
  type KubeSimulator,
  type KubeSimulatorOptions,
  startKubeSimulator,
} from '../../src/sandbox/kube/index.ts';
import { startWorkers, type WorkerPool } from '../../src/workers/runtime.ts';
import { tickProcessor } from '../../src/workers/ticks.ts';
import { buildTestDomain, type TestDomain } from './domain.ts';
import { eventually } from './services.ts';

export const VS = 'networking.istio.io/v1';

/** A VirtualService and DestinationRule for service `name` in `namespace` (one default route to subset v1, plus an unmanaged route), and a pod of each version. */
export function seedTarget(sim: KubeSimulator, name: string, namespace = 'shop'): void {
  sim.putObject({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
  sim.putObject({
    apiVersion: VS,
    kind: 'VirtualService',
    metadata: { name, namespace },
    spec: {
      hosts: [name],
      http: [
        {
          name: 'testers',
          match: [{ headers: { 'x-tester': { exact: 'yes' } } }],
          route: [{ destination: { host: name, subset: 'v1' } }],
          timeout: '3s',
        },
        {
          name: 'default',
          retries: { attempts: 2, perTryTimeout: '1s' },
          route: [{ destination: { host: name, subset: 'v1' } }],
        },
      ],
    },
  });
  for (const version of ['v1', 'v2']) {
    sim.putObject({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `${name}-${version}-0`, namespace, labels: { app: name, version } },
      spec: { containers: [{ name: 'app', image: `${name}:${version}` }] },
    });
  }
  sim.putObject({
    apiVersion: VS,
    kind: 'DestinationRule',
    metadata: { name, namespace },
    spec: {
      host: name,
      trafficPolicy: { loadBalancer: { simple: 'LEAST_REQUEST' } },
      subsets: [{ name: 'v1', labels: { app: name, version: 'v1' } }],
    },
  });
}

/** A rollout spec for a target made by seedTarget. */
export function canarySpec(name: string, over: Record<string, unknown> = {}, namespace = 'shop') {
  return {
    target: { namespace, virtualService: name, destinationRule: name, routes: ['default'] },
    stable: { subset: 'v1' },
    canary: { subset: 'v2', labels: { app: name, version: 'v2' } },
    strategy: { type: 'canary', steps: [10, 20, 30, 40, 50], stepInterval: '1s' },
    analysis: {
      guardInterval: '250ms',
      minRequests: 0,
      failureThreshold: 1,
      metrics: [
        {
          name: 'success-rate',
          template: 'request-success-rate',
          critical: true,
          thresholdRange: { min: 99 },
        },
      ],
    },
    ...over,
  };
}

/**
 * A MetricProvider that answers the success-rate template from a table the test sets:
 * success rate (percent) per service and version; 100 unless told otherwise. `down` makes every query fail.
 */
export class FakeSuccessRate implements MetricProvider {
  rates = new Map<string, number>();
  down = false;
  queries = 0;
  set(service: string, version: string, percent: number): void {
    this.rates.set(`${service}/${version}`, percent);
  }
  async query(promql: string): Promise<QueryResult> {
    this.queries++;
    if (this.down) throw new MetricError('unreachable', 'Prometheus is unreachable: connect ECONNREFUSED');
    const service = /destination_service_name="([^"]+)"/.exec(promql)?.[1] ?? '';
    const version = /destination_version="([^"]+)"/.exec(promql)?.[1] ?? '';
    const value = this.rates.get(`${service}/${version}`) ?? 100;
    return { type: 'vector', series: [{ labels: {}, value }], warnings: [] };
  }
  async queryRange(): Promise<QueryResult> {
    throw new Error('not used');
  }
  async isOnline(): Promise<boolean> {
    return !this.down;
  }
}

export interface EngineHarness {
  sim: KubeSimulator;
  domain: TestDomain;
  pool: WorkerPool;
  /** Waits until the rollout is in a terminal phase and returns it. */
  settle(id: string, timeoutMs?: number): Promise<Rollout>;
  /** The canary weight of the managed route of each VirtualService write, in order (undefined: no canary destination). */
  weightWrites(name: string, namespace?: string): (number | undefined)[];
  close(): Promise<void>;
}

/** The canary's weight in the route named `default` of a VirtualService body. */
export function canaryWeightOf(vs: unknown, canary = 'v2'): number | undefined {
  const spec = (
    vs as {
      spec?: { http?: { name?: string; route?: { destination: { subset?: string }; weight?: number }[] }[] };
    }
  ).spec;
  const route = spec?.http?.find((h) => h.name === 'default')?.route ?? [];
  const d = route.find((r) => r.destination.subset === canary);
  return d ? (d.weight ?? (route.length === 1 ? 100 : 0)) : undefined;
}

/** The kube simulator, a domain on a real Redis, and one in-process worker running ticks. */
export async function startEngineHarness(opts: {
  redisUrl: string;
  provider?: MetricProvider;
  analyzer?: RolloutAnalyzer;
  concurrency?: number;
  /** Run no worker in this process (the test starts worker processes). Default false. */
  noWorker?: boolean;
  /** Options of the kube simulator (e.g. `pods: true` for the sandbox's pod runtime). Default none. */
  sim?: Omit<KubeSimulatorOptions, 'log'>;
  /** Gates, approvals and notifications (webhooks and their queue) as in production. Default false. */
  notify?: { secrets?: Record<string, string> };
}): Promise<EngineHarness> {
  const sim = await startKubeSimulator({ ...opts.sim, log: () => {} });
  const kubeConfig = sim.kubeConfig();
  const router = createKubeRouters({ kubeConfig, timeoutMs: 5_000, backoffMs: 20 });
  const clients = createKubeClients({ kubeConfig, timeoutMs: 5_000 });
  const domain = buildTestDomain({
    redisUrl: opts.redisUrl,
    router,
    workloads: clients,
    analyzer:
      opts.analyzer ??
      createRolloutAnalyzer({
        provider: opts.provider,
        facts: clusterTargetFacts(router),
        checkTimeoutMs: 2_000,
      }),
  });
  const logger = createLogger({ level: 'silent' });
  const processors: Parameters<typeof startWorkers>[0]['processors'] = opts.noWorker
    ? []
    : [tickProcessor(domain.ctx, opts.concurrency ?? 20)];
  let notifyQueue: NotifyQueue | undefined;
  if (opts.notify) {
    const secrets = opts.notify.secrets ?? {};
    const store = new GateStore(domain.redis, domain.prefix);
    notifyQueue = new NotifyQueue(domain.redis, domain.prefix, { backoffMs: 100 });
    domain.ctx.gates = createGateKeeper({ store, secrets: (n) => secrets[n] });
    domain.ctx.approvals = store;
    domain.ctx.onEvents = notifyOnEvents(notifyQueue, logger);
    processors.push(
      notifyProcessor({
        store: domain.ctx.store,
        recorder: domain.ctx.recorder,
        logger,
        secrets: (n) => secrets[n],
        concurrency: 10,
      }),
    );
  }
  const blocking = connectRedis(opts.redisUrl, { role: 'worker' });
  const pool = startWorkers({ connection: blocking, prefix: domain.prefix, processors, logger });
  return {
    sim,
    domain,
    pool,
    settle: (id, timeoutMs = 30_000) =>
      eventually(async () => {
        const r = await domain.ctx.store.get(id);
        return r && isTerminal(r.phase) ? r : undefined;
      }, timeoutMs),
    weightWrites(name, namespace = 'shop') {
      return sim
        .writeLog()
        .filter((w) => w.resource === 'virtualservices' && w.name === name && w.namespace === namespace)
        .map((w) => canaryWeightOf(w.body));
    },
    async close() {
      await pool.close();
      await notifyQueue?.close();
      await blocking.quit();
      await domain.close();
      await router.close();
      await sim.close();
    },
  };
}
