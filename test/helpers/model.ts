// biome-ignore-all lint/suspicious/noExplicitAny: Kubernetes objects are arbitrary JSON read back from the simulator.
/**
 * The model-based test of whole rollouts (issue 11): random sequences of operator commands, cluster
 * faults, metric verdicts, Redis stalls, worker restarts, gate answers and other people's edits,
 * run against the real engine (1–3 in-process worker runtimes) on the kube simulator and a real
 * Redis, with the invariants of a rollout checked after every command and after the run drains.
 * Used by test/engine/model.test.ts (a few dozen seeded runs) and bench/engine-soak.ts (thousands).
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { clusterTargetFacts } from '../../src/domain.ts';
import { createKubeRouters } from '../../src/mesh/kube-router.ts';
import { MetricError } from '../../src/metrics/errors.ts';
import type { MetricProvider, QueryResult } from '../../src/metrics/types.ts';
import { createGateKeeper } from '../../src/notify/gatekeeper.ts';
import { GateStore } from '../../src/notify/gates.ts';
import { outboundPolicy, setOutboundPolicy } from '../../src/notify/url-guard.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Recorder } from '../../src/observability/recorder.ts';
import { connectRedis, type Redis } from '../../src/redis.ts';
import { createRolloutAnalyzer } from '../../src/rollouts/analyzer.ts';
import type { DomainContext } from '../../src/rollouts/context.ts';
import { tick } from '../../src/rollouts/engine.ts';
import { RolloutError } from '../../src/rollouts/errors.ts';
import type { Rollout, RolloutEvent } from '../../src/rollouts/model.ts';
import { isTerminal } from '../../src/rollouts/phases.ts';
import { RolloutStore } from '../../src/rollouts/store.ts';
import { TemplateStore } from '../../src/rollouts/templates.ts';
import { approveGate, retryRollout, sendCommand, startRollout } from '../../src/rollouts/verbs.ts';
import type { FaultRule, KubeSimulator } from '../../src/sandbox/kube/index.ts';
import { startKubeSimulator } from '../../src/sandbox/kube/index.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { startWorkers, type WorkerPool } from '../../src/workers/runtime.ts';
import { TickQueue, tickProcessor } from '../../src/workers/ticks.ts';
import { Receiver } from '../notify/fixtures.ts';
import { seedTarget, VS } from './engine.ts';
import { startTestRedis } from './services.ts';

const NS = 'shop';
const STABLE = 'v1';
const CANARY = 'v2';
const STEP_INTERVAL_MS = 250;
const GUARD_INTERVAL_MS = 100;
/**
 * How long the drain may take before "reaches a terminal phase once faults stop" fails: room for
 * the engine's error backoff (up to 30 s). VANE_MODEL_DRAIN_MS shortens it to shrink a wedge fast.
 */
const DRAIN_MS = Number(process.env.VANE_MODEL_DRAIN_MS ?? 45_000);
const logger = createLogger({ level: 'silent' });
/** How long an accepted abort may take to end the rollout when nothing slows the engine (one tick, on a loaded machine). */
const ABORT_MS = 6_000;
/** The gate webhooks' timeout: longer than ABORT_MS, so a hanging gate that held the tick would be seen. */
const GATE_TIMEOUT = '8s';

// ---------------------------------------------------------------------------------------------
// Parts a run is made of
// ---------------------------------------------------------------------------------------------

/** A MetricProvider whose verdict the test sets: a success rate of 100 (pass), 50 (fail), no series, or unreachable. */
export class VerdictProvider implements MetricProvider {
  verdict: 'pass' | 'fail' | 'nodata' | 'down' = 'pass';
  async query(): Promise<QueryResult> {
    if (this.verdict === 'down')
      throw new MetricError('unreachable', 'Prometheus is unreachable: connect ECONNREFUSED');
    if (this.verdict === 'nodata') return { type: 'vector', series: [], warnings: [] };
    return {
      type: 'vector',
      series: [{ labels: {}, value: this.verdict === 'pass' ? 100 : 50 }],
      warnings: [],
    };
  }
  async queryRange(): Promise<QueryResult> {
    throw new Error('not used');
  }
  async isOnline(): Promise<boolean> {
    return this.verdict !== 'down';
  }
}

/** What lives for the whole test file (or soak): one Redis, one kube simulator, one gate receiver. */
export interface ModelWorld {
  redisUrl: string;
  sim: KubeSimulator;
  rx: Receiver;
  provider: VerdictProvider;
  /** A connection used only to stall Redis (CLIENT PAUSE). */
  admin: Redis;
  runs: number;
  /** Final phase of each run's last rollout, counted. */
  outcomes: Record<string, number>;
  /** Commands run, counted by kind. */
  commands: Record<string, number>;
  close(): Promise<void>;
}

export async function startModelWorld(): Promise<ModelWorld> {
  // The gate receiver listens on loopback: allowed here as in every test (the soak runs outside vitest's setup).
  setOutboundPolicy({ ...outboundPolicy(), allowLoopback: true });
  let redis: ManagedProcess | undefined;
  redis = await startTestRedis();
  const sim = await startKubeSimulator({ log: () => {} });
  const rx = await new Receiver().start();
  const admin = connectRedis(redis.url, { role: 'worker' });
  return {
    redisUrl: redis.url,
    sim,
    rx,
    provider: new VerdictProvider(),
    admin,
    runs: 0,
    outcomes: {},
    commands: {},
    async close() {
      await admin.quit().catch(() => admin.disconnect());
      await rx.stop();
      await sim.close();
      await redis?.stop();
      redis = undefined;
    },
  };
}

/** One engine instance: a worker runtime with its own Redis connections, Kubernetes client and context, as a worker process has. */
interface Instance {
  ctx: DomainContext;
  pool: WorkerPool;
  close(): Promise<void>;
}

function buildContext(world: ModelWorld, prefix: string): { ctx: DomainContext; redis: Redis } {
  const redis = connectRedis(world.redisUrl, { role: 'client' });
  const router = createKubeRouters({ kubeConfig: world.sim.kubeConfig(), timeoutMs: 2_000, backoffMs: 20 });
  const gates = new GateStore(redis, prefix);
  const ctx: DomainContext = {
    store: new RolloutStore(redis, prefix),
    templates: new TemplateStore(redis, prefix, {}),
    router,
    analyzer: createRolloutAnalyzer({
      provider: world.provider,
      facts: clusterTargetFacts(router),
      checkTimeoutMs: 1_000,
    }),
    scheduler: new TickQueue(redis, prefix),
    gates: createGateKeeper({ store: gates }),
    approvals: gates,
    recorder: new Recorder({ defaultMetrics: false }),
    logger,
    now: () => Date.now(),
  };
  return { ctx, redis };
}

async function startInstance(world: ModelWorld, prefix: string): Promise<Instance> {
  const { ctx, redis } = buildContext(world, prefix);
  const blocking = connectRedis(world.redisUrl, { role: 'worker' });
  const pool = startWorkers({
    connection: blocking,
    prefix,
    processors: [tickProcessor(ctx, 10)],
    logger,
  });
  // As a worker process does at start (src/service.ts): an active rollout without a tick gets one.
  const ticks = ctx.scheduler as TickQueue;
  try {
    for (const r of await ctx.store.list({ active: true, limit: 500 })) await ticks.ensure(r.id);
  } catch {
    // the process goes on without it, as the service does
  }
  return {
    ctx,
    pool,
    async close() {
      await pool.close();
      await blocking.quit().catch(() => blocking.disconnect());
      await ticks.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Scenario and commands
// ---------------------------------------------------------------------------------------------

export interface Scenario {
  workers: number;
  promotion: 'shift' | 'relabel';
  confirmPromotion: boolean;
  gate: 'none' | 'confirm-traffic-increase' | 'confirm-promotion';
  /** A canary subset in the DestinationRule before the rollout: none, one with the canary's labels, or one with other labels. */
  canarySubset: 'none' | 'same' | 'other';
  drift: 'pause' | 'reassert' | 'abort';
  steps: number[];
}

export function scenarioArb(): fc.Arbitrary<Scenario> {
  return fc.record({
    workers: fc.integer({ min: 1, max: 3 }),
    promotion: fc.constantFrom('shift' as const, 'relabel' as const),
    confirmPromotion: fc.boolean(),
    gate: fc.constantFrom('none' as const, 'confirm-traffic-increase' as const, 'confirm-promotion' as const),
    canarySubset: fc.constantFrom('none' as const, 'same' as const, 'other' as const),
    drift: fc.constantFrom('pause' as const, 'reassert' as const, 'abort' as const),
    steps: fc.constantFrom([20, 50], [10, 30, 60], [25, 50, 75]),
  });
}

type ApiVerb = 'promote' | 'promote-full' | 'approve' | 'pause' | 'resume' | 'abort' | 'retry';

/** The model: what the test did, for the report; the checks read the real state. */
interface Model {
  log: string[];
}

type Cmd = fc.AsyncCommand<Model, Run, boolean>;

class Api implements Cmd {
  constructor(readonly verb: ApiVerb) {}
  check = () => true;
  async run(m: Model, r: Run) {
    m.log.push(this.toString());
    const stored = await r.api(this.verb);
    if (stored && this.verb === 'abort') await r.checkAbortActs();
    await r.checkNow(this.toString());
  }
  toString = () => `api ${this.verb}`;
}

class Fault implements Cmd {
  constructor(
    readonly rule: FaultRule,
    readonly forMs: number,
  ) {}
  check = () => true;
  async run(m: Model, r: Run) {
    m.log.push(this.toString());
    r.fault(this.rule, this.forMs);
    await r.checkNow(this.toString());
  }
  toString = () => `fault ${JSON.stringify(this.rule)} for ${this.forMs}ms`;
}

class Verdict implements Cmd {
  constructor(readonly verdict: VerdictProvider['verdict']) {}
  check = () => true;
  async run(m: Model, r: Run) {
    m.log.push(this.toString());
    r.world.provider.verdict = this.verdict;
    await r.checkNow(this.toString());
  }
  toString = () => `metrics ${this.verdict}`;
}

class RedisStall implements Cmd {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(m: Model, r: Run) {
    m.log.push(this.toString());
    r.stalledUntil = Date.now() + this.ms;
    await r.world.admin.call('CLIENT', 'PAUSE', String(this.ms));
    await r.checkNow(this.toString());
  }
  toString = () => `redis CLIENT PAUSE ${this.ms}`;
}

class Worker implements Cmd {
  constructor(
    readonly index: number,
    readonly up: boolean,
  ) {}
  check = () => true;
  async run(m: Model, r: Run) {
    m.log.push(this.toString());
    await (this.up ? r.startWorker(this.index) : r.stopWorker(this.index));
    await r.checkNow(this.toString());
  }
  toString = () => `worker ${this.index} ${this.up ? 'start' : 'stop'}`;
}

class Gate implements Cmd {
  constructor(readonly answer: 'open' | 'closed' | 'hang') {}
  check = () => true;
  async run(m: Model, r: Run) {
    m.log.push(this.toString());
    r.gateAnswer = this.answer;
    await r.checkNow(this.toString());
  }
  toString = () => `gate ${this.answer}`;
}

class Edit implements Cmd {
  constructor(
    readonly what: 'weights' | 'header' | 'timeout' | 'dr-policy',
    readonly n: number,
  ) {}
  check = () => true;
  async run(m: Model, r: Run) {
    m.log.push(this.toString());
    r.edit(this.what, this.n);
    await r.checkNow(this.toString());
  }
  toString = () => `someone edits ${this.what} (${this.n})`;
}

/**
 * Issue 11 #5: the rollout's lease is taken from whatever tick holds it (as when a worker stalls
 * past the lease), and another engine ticks the rollout at once. The tick that lost the lease must
 * write nothing more: a stale write shows as a step applied twice or skipped.
 */
class LeaseStolen implements Cmd {
  constructor(readonly index: number) {}
  check = () => true;
  async run(m: Model, r: Run) {
    m.log.push(this.toString());
    await r.stealLease(this.index);
    await r.checkNow(this.toString());
  }
  toString = () => `lease stolen by engine ${this.index}`;
}

class Wait implements Cmd {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(m: Model, r: Run) {
    m.log.push(this.toString());
    await new Promise((res) => setTimeout(res, this.ms));
    await r.checkNow(this.toString());
  }
  toString = () => `wait ${this.ms}ms`;
}

export function commandsArb(maxCommands = 14): fc.Arbitrary<Iterable<Cmd>> {
  const verbs: ApiVerb[] = ['promote', 'promote-full', 'approve', 'pause', 'resume', 'abort', 'retry'];
  // Past the clients' 5 s command timeout: a Redis error must never leave a rollout without a tick.
  const maxStall = 6_500;
  return fc.commands(
    [
      fc.constantFrom(...verbs).map((v) => new Api(v)),
      fc
        .record({
          verb: fc.constantFrom('get', 'update', '*'),
          resource: fc.constantFrom('virtualservices', 'destinationrules', '*'),
          kind: fc.constantFrom('409', '500', 'latency'),
          rate: fc.constantFrom(0.3, 0.7, 1),
          forMs: fc.integer({ min: 100, max: 1_200 }),
          latencyMs: fc.integer({ min: 50, max: 700 }),
        })
        .map(
          (f) =>
            new Fault(
              {
                verb: f.verb,
                resource: f.resource,
                rate: f.rate,
                ...(f.kind === 'latency'
                  ? { latencyMs: f.latencyMs }
                  : { status: Number(f.kind) as 409 | 500 }),
              },
              f.forMs,
            ),
        ),
      fc
        .constantFrom('pass' as const, 'fail' as const, 'nodata' as const, 'down' as const)
        .map((v) => new Verdict(v)),
      fc.integer({ min: 100, max: maxStall }).map((ms) => new RedisStall(ms)),
      fc.tuple(fc.integer({ min: 0, max: 2 }), fc.boolean()).map(([i, up]) => new Worker(i, up)),
      fc.constantFrom('open' as const, 'closed' as const, 'hang' as const).map((a) => new Gate(a)),
      fc
        .tuple(
          fc.constantFrom('weights' as const, 'header' as const, 'timeout' as const, 'dr-policy' as const),
          fc.nat(100),
        )
        .map(([w, n]) => new Edit(w, n)),
      fc.integer({ min: 0, max: 2 }).map((i) => new LeaseStolen(i)),
      fc.integer({ min: 50, max: 700 }).map((ms) => new Wait(ms)),
      fc.integer({ min: 50, max: 700 }).map((ms) => new Wait(ms)),
    ],
    { maxCommands, size: '+1' },
  );
}

// ---------------------------------------------------------------------------------------------
// One run
// ---------------------------------------------------------------------------------------------

/** A change of the managed route seen in the VirtualService's history, by vane (write log) or by someone else. */
interface RouteChange {
  rv: number;
  /** When vane wrote it (write log); undefined for others' edits. */
  time?: number;
  by: 'vane' | 'other';
  route: unknown;
  canary: number | undefined;
  stable: number | undefined;
}

/** An invariant that did not hold; the message names it. */
export class InvariantError extends Error {
  override name = 'InvariantError';
}

const managedRoute = (vs: any): any[] => vs?.spec?.http?.find((h: any) => h.name === 'default')?.route ?? [];

/** The route with a sole destination's weight spelled out (Istio gives a sole destination everything). */
function normalizeRoute(route: any[]): any[] {
  return route.length === 1 ? [{ ...route[0], weight: route[0].weight ?? 100 }] : route;
}

function weightTo(route: any[], subset: string): number | undefined {
  const r = normalizeRoute(route);
  const d = r.find((x) => x.destination?.subset === subset);
  return d ? (d.weight ?? 0) : undefined;
}

/** The VirtualService's spec without what vane manages: the managed route's destinations. */
function vsUnmanaged(vs: any): unknown {
  const spec = structuredClone(vs?.spec ?? {});
  for (const h of spec.http ?? []) if (h.name === 'default') delete h.route;
  return spec;
}

/** The DestinationRule's spec without what vane manages: the stable and canary subsets. */
function drUnmanaged(dr: any): unknown {
  const spec = structuredClone(dr?.spec ?? {});
  spec.subsets = (spec.subsets ?? []).filter((s: any) => s.name !== STABLE && s.name !== CANARY);
  return spec;
}

const vaneAnnotations = (o: any) =>
  Object.keys(o?.metadata?.annotations ?? {}).filter((k) => k.startsWith('vane.dev/'));

/** One rollout of a run, from its start (or retry) to its end, with the objects as they were before it. */
interface Segment {
  id: string;
  /** The simulator's resourceVersion of the VirtualService before this rollout's first write. */
  fromRv: number;
  /** Objects before the rollout, with others' unmanaged edits applied as they happen. */
  expectedVs: any;
  expectedDr: any;
  /** The managed route before the rollout (what a rollback returns to). */
  baseRoute: any[];
  /** Managed-route edits by someone else during this rollout. */
  edits: { rv: number; route: any[] }[];
}

export class Run {
  readonly name: string;
  instances: (Instance | undefined)[] = [undefined, undefined, undefined];
  segments: Segment[] = [];
  /** Carries out an API verb; true when it stored a command on the rollout. */
  api!: (verb: ApiVerb) => Promise<boolean>;
  /** When the last Redis stall ends. */
  stalledUntil = 0;
  gateAnswer: 'open' | 'closed' | 'hang' = 'closed';
  private apiCtx!: DomainContext;
  private apiRedis!: Redis;
  /** The checks read through a connection without a command timeout: a Redis stall slows them, never fails them. */
  private checkRedis!: Redis;
  private checkStore!: RolloutStore;
  private checkTicks!: TickQueue;
  private readonly prefix: string;
  private faults: { rule: FaultRule; until: number }[] = [];
  private faultTimer: NodeJS.Timeout | undefined;
  readonly notes: string[] = [];

  constructor(
    readonly world: ModelWorld,
    readonly scenario: Scenario,
  ) {
    const n = world.runs++;
    this.name = `m${n}`;
    this.prefix = `model${process.pid}x${n}`;
  }

  get current(): Segment {
    return this.segments.at(-1)!;
  }

  /** Seeds the target, starts the workers and the rollout. */
  async begin(): Promise<void> {
    const { sim, rx } = this.world;
    this.world.provider.verdict = 'pass';
    sim.clearFaults();
    seedTarget(sim, this.name, NS);
    if (this.scenario.canarySubset !== 'none') {
      const dr = sim.getObject(VS, 'DestinationRule', NS, this.name);
      dr.spec.subsets.push({
        name: CANARY,
        labels:
          this.scenario.canarySubset === 'same'
            ? { app: this.name, version: CANARY }
            : { app: this.name, version: CANARY, track: 'old' },
      });
      sim.putObject(dr);
    }
    rx.on(`/${this.name}/gate`, () =>
      this.gateAnswer === 'open'
        ? 200
        : this.gateAnswer === 'hang'
          ? 'hang'
          : { status: 403, body: 'closed' },
    );
    const built = buildContext(this.world, this.prefix);
    this.apiCtx = built.ctx;
    this.apiRedis = built.redis;
    this.checkRedis = connectRedis(this.world.redisUrl, { role: 'worker' });
    this.checkStore = new RolloutStore(this.checkRedis, this.prefix);
    this.checkTicks = new TickQueue(this.checkRedis, this.prefix);
    for (let i = 0; i < this.scenario.workers; i++) await this.startWorker(i);
    this.api = (verb) => this.sendApi(verb);
    // The objects before the rollout: read before it starts, since a worker may write before startRollout returns.
    const before = this.objects();
    const { rollout } = await startRollout({ ctx: this.apiCtx, input: this.spec() });
    this.segments.push(this.newSegment(rollout.id, before));
  }

  private spec(): Record<string, unknown> {
    const s = this.scenario;
    return {
      target: { namespace: NS, virtualService: this.name, destinationRule: this.name, routes: ['default'] },
      stable: { subset: STABLE },
      canary: { subset: CANARY, labels: { app: this.name, version: CANARY } },
      strategy: {
        type: 'canary',
        steps: s.steps,
        stepInterval: `${STEP_INTERVAL_MS}ms`,
        promotion: s.promotion,
        confirmPromotion: s.confirmPromotion,
      },
      analysis: {
        guardInterval: `${GUARD_INTERVAL_MS}ms`,
        minRequests: 0,
        failureThreshold: 2,
        deadlines: { inconclusive: '3s', gate: '4s' },
        metrics: [
          {
            name: 'success-rate',
            template: 'request-success-rate',
            critical: true,
            thresholdRange: { min: 99 },
          },
        ],
      },
      drift: s.drift,
      webhooks:
        s.gate === 'none'
          ? []
          : [{ type: s.gate, url: this.world.rx.url(`/${this.name}/gate`), timeout: GATE_TIMEOUT }],
    };
  }

  private objects(): { vs: any; dr: any } {
    return { vs: structuredClone(this.vs()), dr: structuredClone(this.dr()) };
  }

  private newSegment(id: string, { vs, dr }: { vs: any; dr: any }): Segment {
    return {
      id,
      fromRv: Number(vs.metadata.resourceVersion),
      expectedVs: structuredClone(vs),
      expectedDr: structuredClone(dr),
      baseRoute: normalizeRoute(managedRoute(vs)),
      edits: [],
    };
  }

  vs(): any {
    return this.world.sim.getObject(VS, 'VirtualService', NS, this.name);
  }
  dr(): any {
    return this.world.sim.getObject(VS, 'DestinationRule', NS, this.name);
  }
  rollout(id = this.current.id): Promise<Rollout | undefined> {
    return this.checkStore.get(id);
  }

  async startWorker(i: number): Promise<void> {
    if (this.instances[i]) return;
    this.instances[i] = await startInstance(this.world, this.prefix);
  }

  async stopWorker(i: number): Promise<void> {
    const inst = this.instances[i];
    if (!inst) return;
    this.instances[i] = undefined;
    await inst.close();
  }

  /** The same domain verbs the API routes call; a refusal the API would answer with 409 is fine. */
  private async sendApi(verb: ApiVerb): Promise<boolean> {
    const ctx = this.apiCtx;
    const id = this.current.id;
    try {
      if (verb === 'retry') {
        const old = await this.rollout();
        if (!old || !isTerminal(old.phase) || this.segments.length >= 3) return false;
        // Every check of the ended rollout ran already; the new one starts from the objects as they are.
        await this.checkNow('before retry');
        const before = this.objects();
        let started: Rollout;
        try {
          started = (await retryRollout({ ctx, id, by: 'model' })).rollout;
        } catch (e) {
          // A succeeded rollout's canary is the new stable: the one command table refuses its retry.
          if (old.phase === 'succeeded' && e instanceof RolloutError && e.code === 'CONFLICT') return false;
          throw e;
        }
        if (old.phase === 'succeeded')
          this.fail(
            'retry applies only to failed or aborted rollouts',
            `${id} succeeded and was retried as ${started.id}`,
            'api retry',
          );
        this.segments.push(this.newSegment(started.id, before));
        return false;
      }
      if (verb === 'approve') {
        await approveGate({ ctx, id, by: 'model' });
        return false;
      }
      await sendCommand({ ctx, id, type: verb, by: 'model' });
      return true;
    } catch (e) {
      if (e instanceof RolloutError && (e.code === 'CONFLICT' || e.code === 'BAD_REQUEST')) return false;
      // The API's Redis connection gives up after 5 s; during a longer stall the API answers with an error.
      if ((e as Error).message === 'Command timed out') {
        this.notes.push(`api ${verb}: Redis command timed out`);
        return false;
      }
      throw e;
    }
  }

  /**
   * Issue 11 #5 and #7: an abort acts within one tick. A gate webhook that never answers must not
   * hold the tick (the gates' timeout is longer than this bound), and the tick that takes the abort
   * writes the rollback. Checked when nothing else may slow the engine: no cluster fault, no Redis
   * stall, a worker up; the bound leaves room for a loaded machine.
   */
  async checkAbortActs(): Promise<void> {
    const now = Date.now();
    if (this.faults.some((f) => f.until > now) || this.stalledUntil + 1_000 > now) return;
    if (!this.instances.some(Boolean)) return;
    const deadline = now + ABORT_MS;
    for (;;) {
      const r = await this.rollout();
      if (!r || isTerminal(r.phase)) return;
      if (Date.now() > deadline)
        this.fail(
          'an abort acts within one tick',
          `${r.id} still ${r.phase} ${ABORT_MS / 1000}s after the abort (${r.reason}; pending commands: ${r.commands.map((c) => c.type).join(', ') || 'none'}; last error: ${r.lastError ?? 'none'})`,
          'api abort',
        );
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  /** Deletes the rollout's lease (as if it expired under a stalled tick) and runs a tick in engine `i` right away. */
  async stealLease(i: number): Promise<void> {
    const inst = this.instances[i];
    if (!inst) return;
    const id = this.current.id;
    await this.checkRedis.del(`${this.prefix}:r:lease:${id}`);
    try {
      await tick(inst.ctx, id);
    } catch (e) {
      // A tick may throw on a Redis error (its job is retried with a backoff); not this test's to judge here.
      this.notes.push(`tick after a stolen lease: ${(e as Error).message}`);
    }
  }

  /** Adds a fault rule to the simulator for `forMs`. */
  fault(rule: FaultRule, forMs: number): void {
    this.faults.push({ rule, until: Date.now() + forMs });
    this.applyFaults();
  }

  private applyFaults(): void {
    const now = Date.now();
    this.faults = this.faults.filter((f) => f.until > now);
    this.world.sim.setFaults(this.faults.map((f) => f.rule));
    if (this.faultTimer) clearTimeout(this.faultTimer);
    this.faultTimer = undefined;
    if (this.faults.length) {
      const next = Math.min(...this.faults.map((f) => f.until));
      this.faultTimer = setTimeout(() => this.applyFaults(), Math.max(1, next - now));
    }
  }

  /**
   * Someone else edits the target. Read and write happen in one synchronous step on the simulator,
   * so the edit never overwrites a write of vane's that landed in between.
   */
  edit(what: 'weights' | 'header' | 'timeout' | 'dr-policy', n: number): void {
    const seg = this.current;
    const { sim } = this.world;
    if (what === 'dr-policy') {
      const dr = this.dr();
      const policy = {
        loadBalancer: { simple: n % 2 ? 'ROUND_ROBIN' : 'LEAST_REQUEST' },
        connectionPool: { tcp: { maxConnections: n + 1 } },
      };
      dr.spec.trafficPolicy = policy;
      sim.putObject(dr);
      seg.expectedDr.spec.trafficPolicy = structuredClone(policy);
      return;
    }
    const vs = this.vs();
    if (what === 'weights') {
      const route = managedRoute(vs);
      // Only a split between the destinations there are: an edit that points at a subset that does not exist is not the test's to make.
      if (route.length !== 2) return;
      const next = route.map((d: any) => ({ ...d, weight: d.destination.subset === CANARY ? n : 100 - n }));
      vs.spec.http.find((h: any) => h.name === 'default').route = next;
      const stored = sim.putObject(vs);
      seg.edits.push({ rv: Number(stored.metadata.resourceVersion), route: next });
      return;
    }
    const apply = (o: any) => {
      if (what === 'timeout') o.spec.http.find((h: any) => h.name === 'testers').timeout = `${n + 1}s`;
      else
        o.spec.http.find((h: any) => h.name === 'default').headers = {
          request: { set: { 'x-edited-by': `someone-${n}` } },
        };
    };
    apply(vs);
    sim.putObject(vs);
    apply(seg.expectedVs);
  }

  /**
   * The managed route's history since `fromRv`: vane's writes (write log) and others' edits, in
   * resourceVersion order. A write of vane's counts when it changes the route from what vane wrote
   * last (re-asserting its own weights after someone's edit is not a new step); an edit of someone
   * else's counts when it changes the route from what it was.
   */
  private routeChanges(seg: Segment, toRv = Number.POSITIVE_INFINITY): RouteChange[] {
    const vane = this.world.sim
      .writeLog()
      .filter((w) => w.resource === 'virtualservices' && w.name === this.name && w.namespace === NS)
      .map((w) => ({
        rv: Number(w.resourceVersion),
        time: w.time as number | undefined,
        by: 'vane' as const,
        route: managedRoute(w.body),
      }));
    const other = seg.edits.map((e) => ({ rv: e.rv, time: undefined, by: 'other' as const, route: e.route }));
    const all = [...vane, ...other]
      .filter((x) => x.rv > seg.fromRv && x.rv <= toRv)
      .sort((a, b) => a.rv - b.rv);
    const out: RouteChange[] = [];
    let last = seg.baseRoute;
    let lastVane = seg.baseRoute;
    for (const x of all) {
      const route = normalizeRoute(x.route);
      const changed = x.by === 'vane' ? !isDeepStrictEqual(route, lastVane) : !isDeepStrictEqual(route, last);
      last = route;
      if (x.by === 'vane') lastVane = route;
      if (changed)
        out.push({ ...x, route, canary: weightTo(route, CANARY), stable: weightTo(route, STABLE) });
    }
    return out;
  }

  /** Every write of the VirtualService since the current rollout began, for a failure's message. */
  private history(): string {
    const seg = this.current;
    const vane = this.world.sim
      .writeLog()
      .filter((w) => w.resource === 'virtualservices' && w.name === this.name && w.namespace === NS)
      .map((w) => ({
        rv: Number(w.resourceVersion),
        by: 'vane',
        route: normalizeRoute(managedRoute(w.body)),
      }));
    const other = seg.edits.map((e) => ({ rv: e.rv, by: 'other', route: normalizeRoute(e.route) }));
    return [...vane, ...other]
      .filter((x) => x.rv > seg.fromRv)
      .sort((a, b) => a.rv - b.rv)
      .map(
        (x) => `${x.by} ${x.rv} ${x.route.map((d: any) => `${d.destination.subset}=${d.weight}`).join('+')}`,
      )
      .join(', ');
  }

  /** Who changed the managed route last: vane, someone else, or nobody since the rollout began. */
  private lastChangeBy(seg: Segment): 'vane' | 'other' | undefined {
    const log = this.world.sim
      .writeLog()
      .filter((w) => w.resource === 'virtualservices' && w.name === this.name && w.namespace === NS)
      .map((w) => ({ rv: Number(w.resourceVersion), by: 'vane' as const, route: managedRoute(w.body) }));
    const all = [...log, ...seg.edits.map((e) => ({ rv: e.rv, by: 'other' as const, route: e.route }))]
      .filter((x) => x.rv > seg.fromRv)
      .sort((a, b) => a.rv - b.rv);
    let last = seg.baseRoute;
    let by: 'vane' | 'other' | undefined;
    for (const x of all) {
      const route = normalizeRoute(x.route);
      if (!isDeepStrictEqual(route, last)) by = x.by;
      last = route;
    }
    return by;
  }

  private fail(invariant: string, detail: string, when: string): never {
    throw new InvariantError(`invariant "${invariant}" broken ${when}: ${detail}`);
  }

  /** The invariants that hold at any moment. */
  async checkNow(when: string): Promise<void> {
    const vs = this.vs();
    const dr = this.dr();
    const seg = this.current;
    // 1. Unmanaged fields of both objects are never changed by vane (others' edits are in the expectation).
    if (!isDeepStrictEqual(vsUnmanaged(vs), vsUnmanaged(seg.expectedVs)))
      this.fail(
        'unmanaged VirtualService fields unchanged',
        `${JSON.stringify(vsUnmanaged(vs))} ≠ ${JSON.stringify(vsUnmanaged(seg.expectedVs))}`,
        when,
      );
    if (!isDeepStrictEqual(drUnmanaged(dr), drUnmanaged(seg.expectedDr)))
      this.fail(
        'unmanaged DestinationRule fields unchanged',
        `${JSON.stringify(drUnmanaged(dr))} ≠ ${JSON.stringify(drUnmanaged(seg.expectedDr))}`,
        when,
      );
    // 2. Every managed route sums to 100.
    const route = normalizeRoute(managedRoute(vs));
    const sum = route.reduce((a: number, d: any) => a + (d.weight ?? 0), 0);
    if (sum !== 100) this.fail('managed route sums to 100', JSON.stringify(route), when);
    // A destination vane wrote names a subset the DestinationRule has (no request to a subset with no endpoints).
    const changes = this.routeChanges(seg);
    if (this.lastChangeBy(seg) !== 'other') {
      const subsets = new Set((dr.spec.subsets ?? []).map((s: any) => s.name));
      const missing = route.filter((d: any) => (d.weight ?? 0) > 0 && !subsets.has(d.destination.subset));
      if (missing.length)
        this.fail(
          'managed route sends only to existing subsets',
          `${JSON.stringify(route)}; subsets: ${[...subsets].join(', ')}`,
          when,
        );
    }
    // 3. No weight step applied twice or skipped.
    this.checkSteps(changes, when);
    // 4. Every non-terminal rollout has a live tick; the terminal ones left the objects as they must.
    for (const s of this.segments) {
      const r = await this.rollout(s.id);
      if (!r) this.fail('the rollout exists', s.id, when);
      if (isTerminal(r.phase)) await this.checkTerminal(s, r, when);
      else await this.checkLiveTick(s.id, when);
    }
  }

  private checkSteps(changes: RouteChange[], when: string): void {
    const steps = this.scenario.steps;
    let at = -1; // index of the step last applied
    let ended: 'promoted' | 'rolled back' | undefined;
    const vane = changes.filter((c) => c.by === 'vane');
    const what = () =>
      `route changes (by rv canary/stable): ${changes.map((x) => `${x.by} ${x.rv} ${x.canary ?? '-'}/${x.stable ?? '-'}`).join(', ')}; steps ${JSON.stringify(steps)}; every VirtualService write since rv ${this.current.fromRv}: ${this.history()}`;
    for (const c of vane) {
      const stableOnly = c.canary === undefined && c.stable === 100;
      const canaryOnly = c.stable === undefined && c.canary === 100;
      // After a promotion only a rollback may follow (an abort that won the race with the promotion's save); after a rollback nothing.
      if (ended === 'rolled back' || (ended === 'promoted' && !stableOnly))
        this.fail('no weight written after the rollout was promoted or rolled back', what(), when);
      if (stableOnly || canaryOnly) {
        // stable only: a rollback, or a relabel promotion (the stable subset selects the canary's pods then)
        ended = canaryOnly ? 'promoted' : 'rolled back';
        continue;
      }
      if (c.canary === steps[at + 1]) {
        at += 1;
        continue;
      }
      // the split before the first step (a change only when the route had no stable destination)
      if (at < 0 && c.canary === 0) continue;
      const earlier = steps.slice(0, at + 1).includes(c.canary ?? -1);
      this.fail(
        earlier ? 'no weight step applied twice' : 'no weight step skipped',
        `canary ${c.canary}% after step ${at < 0 ? 'none' : `${steps[at]}%`}: ${what()}`,
        when,
      );
    }
  }

  private async checkLiveTick(id: string, when: string): Promise<void> {
    let state = 'unknown';
    // A tick that ends its rollout drops its due time: allow that moment to pass.
    for (let i = 0; i < 10; i++) {
      state = (await this.checkTicks.state(id)).scheduled ? 'scheduled' : 'missing';
      if (state === 'scheduled') return;
      const r = await this.rollout(id);
      if (r && isTerminal(r.phase)) return;
      await new Promise((res) => setTimeout(res, 100));
    }
    const r = await this.rollout(id);
    this.fail(
      'every non-terminal rollout has a live tick',
      `${id} is ${r?.phase} (${r?.reason}; last error: ${r?.lastError ?? 'none'}) and its tick is ${state}`,
      when,
    );
  }

  private async checkTerminal(seg: Segment, r: Rollout, when: string): Promise<void> {
    // A later rollout of the same target owns the objects now; this one was checked when it ended.
    if (seg !== this.current) return;
    const vs = this.vs();
    const dr = this.dr();
    const left = [...vaneAnnotations(vs), ...vaneAnnotations(dr)];
    if (left.length)
      this.fail('an ended rollout leaves no vane annotations', left.join(', '), `${when} (${r.phase})`);
    const changes = this.routeChanges(seg);
    if (r.phase === 'failed' || r.phase === 'aborted') {
      // 5. Failed or aborted: every managed route 100% stable, and both objects as they were before, others' edits apart.
      const route = normalizeRoute(managedRoute(vs));
      const lastVane = changes.filter((c) => c.by === 'vane').at(-1)?.rv ?? seg.fromRv;
      const lastEdit = seg.edits.at(-1);
      const editedAfter =
        lastEdit && lastEdit.rv > lastVane && isDeepStrictEqual(route, normalizeRoute(lastEdit.route));
      if (!editedAfter && !isDeepStrictEqual(route, seg.baseRoute))
        this.fail(
          `${r.phase} ⇒ managed route 100% on stable`,
          `${JSON.stringify(route)}; reason: ${r.reason}`,
          when,
        );
      if (!isDeepStrictEqual(dr.spec, seg.expectedDr.spec))
        this.fail(
          `${r.phase} ⇒ DestinationRule as before the rollout`,
          `${JSON.stringify(dr.spec)} ≠ ${JSON.stringify(seg.expectedDr.spec)}; reason: ${r.reason}`,
          when,
        );
    } else {
      // 6. Succeeded: all of the managed route's traffic goes to pods with the canary's labels.
      const subsets = new Map<string, Record<string, string>>(
        (dr.spec.subsets ?? []).map((s: any) => [s.name, s.labels ?? {}]),
      );
      const pods = [STABLE, CANARY].map((v) =>
        this.world.sim.getObject('v1', 'Pod', NS, `${this.name}-${v}-0`),
      );
      const route = normalizeRoute(managedRoute(vs));
      const lastEdit = seg.edits.at(-1);
      const lastVane = changes.filter((c) => c.by === 'vane').at(-1)?.rv ?? seg.fromRv;
      if (lastEdit && lastEdit.rv > lastVane) return; // someone else's split after vane finished
      for (const d of route) {
        if ((d.weight ?? 0) === 0) continue;
        const labels = subsets.get(d.destination.subset);
        const selected = pods.filter((p) =>
          Object.entries(labels ?? {}).every(([k, v]) => p?.metadata?.labels?.[k] === v),
        );
        const canaryLabels = { app: this.name, version: CANARY };
        const ok =
          labels !== undefined &&
          selected.length > 0 &&
          selected.every((p) => Object.entries(canaryLabels).every(([k, v]) => p.metadata.labels[k] === v));
        if (!ok)
          this.fail(
            'succeeded ⇒ 100% to pods with the canary labels',
            `${d.weight}% to subset ${d.destination.subset} (${JSON.stringify(labels)}) selects ${selected.map((p) => p.metadata.name).join(', ') || 'no pod'}`,
            when,
          );
      }
    }
  }

  /** Faults stop, gates open, metrics pass, a worker runs; the test then acts as an operator until every rollout ends. */
  async drain(): Promise<void> {
    this.faults = [];
    this.applyFaults();
    this.world.sim.clearFaults();
    this.world.provider.verdict = 'pass';
    this.gateAnswer = 'open';
    if (!this.instances.some(Boolean)) await this.startWorker(0);
    const deadline = Date.now() + DRAIN_MS;
    for (;;) {
      const r = await this.rollout();
      if (!r) this.fail('the rollout exists', this.current.id, 'while draining');
      if (isTerminal(r.phase)) break;
      if (Date.now() > deadline) {
        const events = await this.checkStore.events(r.id);
        this.fail(
          'reaches a terminal phase once faults stop',
          `${r.id} still ${r.phase} after ${DRAIN_MS / 1000}s (${r.reason}; last error: ${r.lastError ?? 'none'}; pending commands: ${r.commands.map((c) => c.type).join(', ') || 'none'}); last events: ${events
            .slice(-6)
            .map((e) => `${e.type}: ${e.reason}`)
            .join(' | ')}`,
          'after the drain',
        );
      }
      try {
        if (r.phase === 'paused' && r.commands.length === 0)
          await sendCommand({ ctx: this.apiCtx, id: r.id, type: 'resume', by: 'drain' });
        else if (r.phase === 'awaiting-promotion' && r.commands.length === 0)
          await sendCommand({ ctx: this.apiCtx, id: r.id, type: 'promote', by: 'drain' });
      } catch (e) {
        if (!(e instanceof RolloutError) && (e as Error).message !== 'Command timed out') throw e;
      }
      await new Promise((res) => setTimeout(res, 250));
    }
    await this.checkNow('after the drain');
    await this.checkEvents();
  }

  /** 7. The events explain every change: an unbroken chain of transitions to the phase, and a weight event for every weight vane wrote. */
  async checkEvents(): Promise<void> {
    for (const seg of this.segments) {
      const r = (await this.rollout(seg.id))!;
      const events: RolloutEvent[] = await this.checkStore.events(seg.id, { limit: 1000 });
      let phase: string | undefined;
      for (const e of events) {
        if (e.type === 'created') phase = e.to;
        if (e.type !== 'transition') continue;
        if (e.from !== phase)
          this.fail(
            'the events explain every phase change',
            `transition ${e.from} → ${e.to} follows ${phase}`,
            'after the drain',
          );
        phase = e.to;
      }
      if (phase !== r.phase)
        this.fail(
          'the events explain every phase change',
          `events end at ${phase}, the rollout is ${r.phase}`,
          'after the drain',
        );
      const next = this.segments[this.segments.indexOf(seg) + 1];
      const changes = this.routeChanges(seg, next ? next.fromRv : undefined).filter((c) => c.by === 'vane');
      const weights = events.filter((e) => e.type === 'weight').map((e) => e.weights?.canary);
      for (const c of changes) {
        const canary = c.canary === undefined ? (r.phase === 'succeeded' ? 100 : 0) : c.canary;
        if (!weights.includes(canary))
          this.fail(
            'the events explain every weight change',
            `vane wrote canary ${canary}% (rv ${c.rv}) with no weight event saying so; weight events: ${JSON.stringify(weights)}`,
            'after the drain',
          );
      }
    }
  }

  async end(): Promise<void> {
    if (this.faultTimer) clearTimeout(this.faultTimer);
    this.faults = [];
    this.world.sim.clearFaults();
    this.gateAnswer = 'open';
    await Promise.all(this.instances.map((_, i) => this.stopWorker(i)));
    await (this.apiCtx?.scheduler as TickQueue | undefined)?.close();
    await this.apiRedis?.quit().catch(() => this.apiRedis.disconnect());
    await this.checkTicks?.close();
    await this.checkRedis?.quit().catch(() => this.checkRedis.disconnect());
    this.world.sim.clearWriteLog();
  }
}

/** The property: a scenario and a command sequence run through to the end with every invariant holding. */
export function modelProperty(world: ModelWorld, maxCommands = 14) {
  return fc.asyncProperty(scenarioArb(), commandsArb(maxCommands), async (scenario, cmds) => {
    const run = new Run(world, scenario);
    try {
      await run.begin();
      const model: Model = { log: [] };
      await fc.asyncModelRun(() => ({ model, real: run }), cmds);
      for (const c of model.log) {
        const [a, b] = c.split(' ');
        const kind = a === 'wait' || a === 'fault' || a === 'redis' ? a! : `${a} ${b}`;
        world.commands[kind] = (world.commands[kind] ?? 0) + 1;
      }
      await run.drain();
      const phase = (await run.rollout())?.phase ?? 'missing';
      world.outcomes[phase] = (world.outcomes[phase] ?? 0) + 1;
    } finally {
      await run.end();
    }
  });
}

/** The seed of a run: VANE_MODEL_SEED, or a fixed default so CI is repeatable. */
export function modelSeed(fallback = 20261127): number {
  const s = process.env.VANE_MODEL_SEED;
  if (s === undefined || s === '') return fallback;
  const n = Number(s);
  if (!Number.isInteger(n)) throw new Error(`VANE_MODEL_SEED must be an integer, got '${s}'`);
  return n;
}
