import type { MeshTarget, TrafficRouter } from '../../src/mesh/types.ts';
import type { AnalysisReport } from '../../src/metrics/types.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Recorder } from '../../src/observability/recorder.ts';
import { connectRedis, type Redis } from '../../src/redis.ts';
import type { DomainContext, RolloutAnalyzer, WorkloadReader } from '../../src/rollouts/context.ts';
import type { Rollout } from '../../src/rollouts/model.ts';
import { RolloutStore } from '../../src/rollouts/store.ts';
import { TemplateStore } from '../../src/rollouts/templates.ts';
import { TickQueue } from '../../src/workers/ticks.ts';

export interface TestDomain {
  ctx: DomainContext;
  redis: Redis;
  ticks: TickQueue;
  prefix: string;
  close(): Promise<void>;
}

let n = 0;

/** A domain on a real Redis with its own key prefix; pieces not under test may be left out (they throw when used). */
export function buildTestDomain(opts: {
  redisUrl: string;
  router?: (cluster?: string) => TrafficRouter;
  analyzer?: RolloutAnalyzer;
  workloads?: WorkloadReader;
  templates?: Record<string, Record<string, unknown>>;
  /** Key prefix; default one of this process's own. Processes sharing a prefix share the rollouts and the queue. */
  prefix?: string;
}): TestDomain {
  const prefix = opts.prefix ?? `t${process.pid}x${n++}`;
  const redis = connectRedis(opts.redisUrl, { role: 'client' });
  const ticks = new TickQueue(redis, prefix);
  const unused = (what: string) => () => {
    throw new Error(`${what} is not part of this test`);
  };
  const ctx: DomainContext = {
    store: new RolloutStore(redis, prefix),
    templates: new TemplateStore(redis, prefix, opts.templates ?? {}),
    router: opts.router ?? (unused('the traffic router') as () => TrafficRouter),
    ...(opts.workloads ? { workloads: opts.workloads } : {}),
    analyzer: opts.analyzer ?? { analyze: unused('the analyzer') as () => Promise<AnalysisReport> },
    scheduler: ticks,
    recorder: new Recorder({ defaultMetrics: false }),
    logger: createLogger({ level: 'silent' }),
    now: () => Date.now(),
  };
  return {
    ctx,
    redis,
    ticks,
    prefix,
    async close() {
      await ticks.close();
      await redis.quit();
    },
  };
}

/** A minimal valid spec for a bookinfo-like target, with overrides merged shallowly. */
export function specFor(name: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    target: { namespace: 'bookinfo', virtualService: name, destinationRule: name },
    stable: { subset: 'v1' },
    canary: { subset: 'v2', labels: { version: 'v2' } },
    strategy: { type: 'canary', steps: [10, 20, 30, 40, 50], stepInterval: '1s' },
    analysis: { guardInterval: '500ms', minRequests: 0 },
    ...over,
  };
}

export type { MeshTarget, Rollout };
