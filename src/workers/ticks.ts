import { DelayedError, type Job, Queue } from 'bullmq';
import type { Redis } from '../redis.ts';
import type { DomainContext, TickScheduler } from '../rollouts/context.ts';
import { TICK_LEASE_MS, tick } from '../rollouts/engine.ts';
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
}

/** Enqueues and wakes rollout ticks. Producers fail fast: a client connection, not a blocking one. */
export class TickQueue implements TickScheduler {
  readonly queue: Queue<TickData>;
  constructor(connection: Redis, prefix: string) {
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
 * the next tick is due. A worker killed mid-tick leaves the job stalled; BullMQ hands it to another
 * worker, which finds the state in Redis and the weights in the cluster.
 */
export function tickProcessor(ctx: DomainContext, concurrency: number): QueueProcessor {
  return {
    queue: TICK_QUEUE,
    concurrency,
    // A tick lasts well under its lease; a killed worker's rollouts move on within seconds.
    lockDuration: TICK_LEASE_MS,
    stalledInterval: 2_000,
    async processor(job: Job<TickData>, token?: string) {
      const { id, dueAt } = job.data;
      if (dueAt !== undefined) ctx.recorder.tickLate((Date.now() - dueAt) / 1000);
      const outcome = await tick(ctx, id);
      if (outcome.done) return { done: true };
      let nextAt = outcome.nextAt;
      // A command stored while this tick ran (its wake found the job active): look again at once.
      if (((await ctx.store.get(id))?.commands.length ?? 0) > 0) nextAt = Date.now();
      await job.updateData({ id, dueAt: Math.max(nextAt, Date.now()) });
      await job.moveToDelayed(Math.max(nextAt, Date.now()), token);
      throw new DelayedError();
    },
  };
}
