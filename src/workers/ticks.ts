import { DelayedError, type Job, Queue } from 'bullmq';
import type { Redis } from '../redis.ts';
import type { DomainContext, TickScheduler } from '../rollouts/context.ts';
import { TICK_LEASE_MS, type TickOutcome, tick } from '../rollouts/engine.ts';
import type { RolloutStore } from '../rollouts/store.ts';
import type { QueueProcessor } from './runtime.ts';

export const TICK_QUEUE = 'ticks';

/** One job per rollout for its whole life; a deterministic id makes every enqueue idempotent. */
export function tickJobId(rolloutId: string): string {
  return `tick-${rolloutId}`;
}

interface TickData {
  id: string;
  /** When this run was due (ms), to measure lateness. */
  dueAt?: number;
  /** Ticks in a row that threw (a Redis error outside the engine's own handling): their backoff. */
  errors?: number;
}

/** How often each worker looks for active rollouts without a live tick job. */
export const SWEEP_INTERVAL_MS = 5_000;

// Of the given job keys, the ones with no live job (missing, or finished: completed or failed).
const MISSING_JOBS = `
local out = {}
for i, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 0 or redis.call('HEXISTS', k, 'finishedOn') == 1 then
    out[#out + 1] = ARGV[i]
  end
end
return out
`;

/** Enqueues and wakes rollout ticks. Producers fail fast: a client connection, not a blocking one. */
export class TickQueue implements TickScheduler {
  readonly queue: Queue<TickData>;
  constructor(
    private readonly connection: Redis,
    prefix: string,
  ) {
    this.queue = new Queue<TickData>(TICK_QUEUE, {
      connection,
      prefix,
      defaultJobOptions: { removeOnComplete: true, removeOnFail: 1000, attempts: 1 },
    });
  }

  async wake(rolloutId: string): Promise<void> {
    const jobId = tickJobId(rolloutId);
    const job = await this.queue.getJob(jobId);
    if (!job) {
      await this.queue.add('tick', { id: rolloutId, dueAt: Date.now() }, { jobId });
      return;
    }
    const state = await job.getState();
    if (state === 'delayed') {
      await job.changeDelay(0).catch(() => {});
      await job.promote().catch(() => {
        // It left the delayed set in the meantime: it is running or waiting, and will see the change.
      });
    } else if (state === 'completed' || state === 'failed') {
      await job.remove().catch(() => {});
      await this.queue.add('tick', { id: rolloutId, dueAt: Date.now() }, { jobId });
    }
    // waiting or active: the tick will read the new state (an active one checks the version before it sleeps).
  }

  /** Adds the rollout's tick when it has none (completed or failed ones are replaced); leaves a live one alone. */
  async ensure(rolloutId: string): Promise<boolean> {
    const jobId = tickJobId(rolloutId);
    const job = await this.queue.getJob(jobId);
    if (job) {
      const state = await job.getState();
      if (state !== 'completed' && state !== 'failed' && state !== 'unknown') return false;
      await job.remove().catch(() => {});
    }
    await this.queue.add('tick', { id: rolloutId, dueAt: Date.now() }, { jobId });
    return true;
  }

  /** Of these rollouts, the ones whose tick job is missing or finished (one script call per batch). */
  async missing(rolloutIds: string[]): Promise<string[]> {
    if (rolloutIds.length === 0) return [];
    const keys = rolloutIds.map((id) => this.queue.toKey(tickJobId(id)));
    return (await this.connection.eval(MISSING_JOBS, keys.length, ...keys, ...rolloutIds)) as string[];
  }

  /**
   * Gives every active rollout without a live tick a new one. Reads the active ids in batches and
   * checks their jobs with one script per batch; only the missing ones cost more round trips.
   */
  async sweep(store: RolloutStore): Promise<number> {
    let added = 0;
    for await (const ids of store.activeIds()) {
      for (const id of await this.missing(ids)) if (await this.ensure(id)) added++;
    }
    return added;
  }

  async depth(): Promise<Record<string, number>> {
    const counts = await this.queue.getJobCounts('wait', 'active', 'delayed', 'failed');
    return Object.fromEntries(Object.entries(counts).map(([state, n]) => [`${TICK_QUEUE}/${state}`, n]));
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}

/**
 * The processor of tick jobs: runs one tick, then moves the same job back to the delayed set until
 * the next tick is due. A tick that throws (a Redis read failing) is retried with a backoff, never
 * at once and never dropped. A worker killed mid-tick leaves the job stalled; BullMQ hands it to
 * another worker, which finds the state in Redis and the weights in the cluster. Every worker also
 * sweeps, every `sweepIntervalMs`, for active rollouts whose tick job went missing and re-adds it.
 */
export function tickProcessor(
  ctx: DomainContext,
  concurrency: number,
  opts: { sweepIntervalMs?: number } = {},
): QueueProcessor {
  const ticks = ctx.scheduler instanceof TickQueue ? ctx.scheduler : undefined;
  return {
    queue: TICK_QUEUE,
    concurrency,
    // A tick lasts well under its lease; a killed worker's rollouts move on within seconds.
    lockDuration: TICK_LEASE_MS,
    stalledInterval: 2_000,
    ...(ticks
      ? {
          background: {
            intervalMs: opts.sweepIntervalMs ?? SWEEP_INTERVAL_MS,
            async run() {
              const added = await ticks.sweep(ctx.store);
              if (added) ctx.logger.warn({ added }, 'active rollouts without a tick got one');
            },
          },
        }
      : {}),
    async processor(job: Job<TickData>, token?: string) {
      const { id, dueAt } = job.data;
      if (dueAt !== undefined) ctx.recorder.tickLate((Date.now() - dueAt) / 1000);
      let outcome: TickOutcome;
      let errors = 0;
      try {
        outcome = await tick(ctx, id);
      } catch (e) {
        errors = (job.data.errors ?? 0) + 1;
        const backoff = Math.min(250 * 2 ** Math.min(errors, 7), 30_000);
        ctx.logger.warn(
          { rollout: id, err: (e as Error).message, errors },
          'tick threw; retrying with backoff',
        );
        outcome = { done: false, nextAt: Date.now() + backoff, backoff: true };
      }
      if (outcome.done) return { done: true };
      // A command stored while the tick ran is seen by the tick itself (it compares the version as it
      // gives the lease back) and brings nextAt forward.
      const at = Math.max(outcome.nextAt, Date.now());
      await job.updateData({ id, dueAt: at, ...(errors ? { errors } : {}) });
      await job.moveToDelayed(at, token);
      throw new DelayedError();
    },
  };
}
