import { existsSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import type { Config } from './config.ts';
import { KubeConnections } from './mesh/kube-connections.ts';
import { createKubeClients, createKubeRouters, type KubeTrafficRouter } from './mesh/kube-router.ts';
import { createKubeEventSink, createWorkloadScaler } from './mesh/kube-workloads.ts';
import { analyzeLive, createPreflight } from './mesh/live-analyzer.ts';
import { MeshError, type MeshTarget } from './mesh/types.ts';
import { createBatchingProvider } from './metrics/batch.ts';
import { createPrometheusProvider, type PrometheusProvider } from './metrics/prometheus.ts';
import type { MetricProvider, QueryResult } from './metrics/types.ts';
import { createGateKeeper } from './notify/gatekeeper.ts';
import { GateStore } from './notify/gates.ts';
import { NotifyQueue, notifyOnEvents } from './notify/queue.ts';
import type { Logger } from './observability/logger.ts';
import type { Recorder } from './observability/recorder.ts';
import type { Redis } from './redis.ts';
import { AfterVerdictService } from './rollouts/after-verdict.ts';
import { createRolloutAnalyzer, type TargetFactsReader } from './rollouts/analyzer.ts';
import { createBacktestRunner } from './rollouts/backtest.ts';
import type { DomainContext } from './rollouts/context.ts';
import { allListeners, kubeEventsOnEvents } from './rollouts/kube-events.ts';
import type { RolloutSpec } from './rollouts/spec.ts';
import { RolloutStore } from './rollouts/store.ts';
import { TemplateStore } from './rollouts/templates.ts';
import { AfterQueue } from './workers/after-verdict.ts';
import { TickQueue } from './workers/ticks.ts';

const IN_CLUSTER_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** Where vane finds its cluster: the kubeconfig setting, else the pod's service account, else none. */
export function loadKubeConfig(config: Pick<Config, 'kubeconfig' | 'kubeContext'>): KubeConfig | undefined {
  const kc = new KubeConfig();
  if (config.kubeconfig) {
    kc.loadFromFile(config.kubeconfig);
    if (config.kubeContext) kc.setCurrentContext(config.kubeContext);
    return kc;
  }
  if (existsSync(IN_CLUSTER_TOKEN)) {
    kc.loadFromCluster();
    return kc;
  }
  return undefined;
}

/** Reads the host and the stable subset's labels from the target's DestinationRule. */
export function clusterTargetFacts(router: (cluster?: string) => KubeTrafficRouter): TargetFactsReader {
  return async (r) => {
    const t = r.spec.target;
    const dr = await router(t.cluster).getDestinationRule(t.namespace, t.destinationRule);
    if (!dr) {
      throw new MeshError('NotFound', `DestinationRule ${t.namespace}/${t.destinationRule} not found`, false);
    }
    const subset = dr.spec?.subsets?.find((s) => s.name === r.spec.stable.subset);
    return {
      host: t.host ?? dr.spec?.host ?? t.virtualService,
      stableLabels: (subset?.labels as Record<string, string> | undefined) ?? {},
    };
  };
}

/** The provider with every query counted in vane_prometheus_queries_total{result}. */
function countedProvider(p: MetricProvider, recorder: Recorder): MetricProvider {
  const count = async (run: () => Promise<QueryResult>): Promise<QueryResult> => {
    try {
      const r = await run();
      const empty = (r.type === 'vector' || r.type === 'matrix') && r.series.length === 0;
      recorder.prometheusQuery(empty ? 'no_data' : 'ok');
      return r;
    } catch (e) {
      recorder.prometheusQuery('error');
      throw e;
    }
  };
  return {
    query: (q, o) => count(() => p.query(q, o)),
    queryRange: (q, o) => count(() => p.queryRange(q, o)),
    isOnline: () => p.isOnline(),
  };
}

/** Everything one process builds once: the domain context and the queues it owns. */
export interface Domain {
  ctx: DomainContext;
  ticks: TickQueue;
  notify: NotifyQueue;
  /** Scale-downs and undos (src/workers/after-verdict.ts). */
  after: AfterQueue;
  gates: GateStore;
  provider?: PrometheusProvider;
  close(): Promise<void>;
}

export interface DomainOptions {
  config: Config;
  /** A client connection (fails fast); the caller owns and closes it. */
  redis: Redis;
  /**
   * A client connection for the BullMQ queues; the caller owns and closes it. Default: `redis`.
   * BullMQ defines its Lua scripts (about 60) on the connection it is given, and ioredis copies
   * every defined script onto each pipeline it builds, auto-pipelined batches included: on a
   * connection of its own, the API's reads do not pay for that on every batch.
   */
  queueRedis?: Redis;
  logger: Logger;
  recorder: Recorder;
  /** The cluster; default from the settings (KUBECONFIG, in-cluster). Undefined: no cluster. */
  kubeConfig?: KubeConfig;
  /** Deadline of one Kubernetes call. Default 10s. */
  kubeTimeoutMs?: number;
}

/** Builds the domain of a process from its settings: store, templates, router, analyzer, queues. */
export function buildDomain(opts: DomainOptions): Domain {
  const { config, redis, logger, recorder } = opts;
  const prefix = config.keyPrefix;
  const kubeConfig = opts.kubeConfig ?? loadKubeConfig(config);
  const policy = {
    timeoutMs: opts.kubeTimeoutMs ?? 10_000,
    logger,
    onResult: (method: string, status: number | 'error') =>
      recorder.kubeRequest(method.toLowerCase(), status),
  };

  // One keep-alive pool per cluster for every Kubernetes call of the process (routers and clients).
  const connections = new KubeConnections();
  const routers = kubeConfig ? createKubeRouters({ ...policy, kubeConfig, connections }) : undefined;
  const clients = kubeConfig ? createKubeClients({ ...policy, kubeConfig, connections }) : undefined;
  const router = (cluster?: string): KubeTrafficRouter => {
    if (!routers) {
      throw new MeshError(
        'Unavailable',
        'no Kubernetes cluster is configured: set KUBECONFIG (and VANE_KUBE_CONTEXT), or run vane in a pod',
        false,
      );
    }
    return routers(cluster);
  };

  const prometheusInput = {
    ...(config.prometheus ?? {}),
    ...(config.prometheusUrl ? { url: config.prometheusUrl } : {}),
  };
  const provider =
    'url' in prometheusInput ? createPrometheusProvider(prometheusInput as { url: string }) : undefined;
  const counted = provider ? countedProvider(provider, recorder) : undefined;

  const facts = clusterTargetFacts(router);

  const ticks = new TickQueue(opts.queueRedis ?? redis, prefix);
  const notify = new NotifyQueue(opts.queueRedis ?? redis, prefix);
  const gates = new GateStore(redis, prefix);
  const after = new AfterQueue(redis, prefix);
  const scaler = kubeConfig ? createWorkloadScaler({ ...policy, kubeConfig, connections }) : undefined;
  const kubeEvents = kubeConfig
    ? createKubeEventSink({
        ...policy,
        timeoutMs: 3_000,
        kubeConfig,
        connections,
        uidOf: async (ns, name, cluster) =>
          (await router(cluster).getVirtualService(ns, name))?.metadata?.uid,
        onOutcome: (o) => recorder.kubeEvent(o),
      })
    : undefined;
  const ctx: DomainContext = {
    store: new RolloutStore(redis, prefix, { retentionSeconds: config.retention }),
    templates: new TemplateStore(redis, prefix, config.templates),
    router,
    ...(clients
      ? {
          workloads: {
            readWorkload: (ns, kind, name, cluster) => clients.readWorkload(ns, kind, name, cluster),
          },
          preflight: createPreflight({ router, clients }),
          analyzeTarget: (target: MeshTarget) => analyzeLive({ router, clients }, target),
        }
      : {}),
    // Guard checks due within 100 ms share one grouped query per template and namespace.
    analyzer: createRolloutAnalyzer({
      provider: counted ? createBatchingProvider(counted) : undefined,
      facts,
    }),
    ...(counted ? { backtest: createBacktestRunner({ provider: counted, facts }) } : {}),
    scheduler: ticks,
    recorder,
    logger,
    now: () => Date.now(),
    onEvents: allListeners(
      notifyOnEvents(notify, logger),
      kubeEvents && kubeEventsOnEvents(kubeEvents, { onDropped: () => recorder.kubeEvent('error') }),
    ),
    ...(scaler
      ? {
          after: new AfterVerdictService({
            redis,
            prefix,
            scheduler: after,
            cluster: (c) => {
              const r = router(c);
              return {
                scaler,
                stableLabels: (t) => r.stableLabels(t),
                undoPromotion: (t, m, l) => r.undoPromotion(t, m, l),
              };
            },
          }),
        }
      : {}),
    gates: createGateKeeper({
      store: gates,
      onError: (e) =>
        logger.warn({ err: e.message }, 'a gate webhook answer could not be stored; asking again'),
    }),
    approvals: gates,
    validateSpec: (spec: RolloutSpec) => {
      const issues: { path: string; message: string }[] = [];
      if (!kubeConfig) {
        issues.push({
          path: 'target',
          message: 'no Kubernetes cluster is configured in vane: set KUBECONFIG, or run vane in a pod',
        });
      }
      if (!provider && spec.analysis.metrics.length > 0) {
        issues.push({
          path: 'analysis.metrics',
          message: 'no Prometheus is configured in vane: set PROMETHEUS_URL, or remove the metric checks',
        });
      }
      return issues;
    },
  };
  return {
    ctx,
    ticks,
    notify,
    after,
    gates,
    ...(provider ? { provider } : {}),
    async close() {
      await Promise.all([ticks.close(), notify.close(), after.close()]);
      provider?.close();
      await routers?.close();
      await connections.close();
    },
  };
}
