import { type Job, Queue } from 'bullmq';
import type { Redis } from '../redis.ts';
import type { AfterScheduler } from '../rollouts/after-verdict.ts';
import type { DomainContext } from '../rollouts/context.ts';
import type { QueueProcessor } from './runtime.ts';

export const AFTER_QUEUE = 'after-verdict';

/** Deterministic job ids (no `:`, not all digits): one scale-down and one undo per rollout, so enqueueing is idempotent. */
export const scaleDownJobId = (rolloutId: string) => `scale-down-${rolloutId}`;
export const undoJobId = (rolloutId: string) => `undo-${rolloutId}`;

interface AfterJob {
  kind: 'scale-down' | 'undo';
  id: string;
}

/**
 * The `after-verdict` queue: a scale-down is a delayed job that waits in Redis for the whole
 * scaleDownDelay (a restart of every vane process loses nothing), an undo a job to run at once.
 * Failures that a retry can fix (the API server down, another job holding the rollout) are retried
 * with a backoff.
 */
export class AfterQueue implements AfterScheduler {
  readonly queue: Queue<AfterJob>;
  /** attempts: tries of a job (default 8); backoffMs: the first retry's delay, doubling (default 1 s). */
  constructor(connection: Redis, prefix: string, opts: { attempts?: number; backoffMs?: number } = {}) {
    this.queue = new Queue<AfterJob>(AFTER_QUEUE, {
      connection,
      prefix,
      defaultJobOptions: {
        removeOnComplete: true,
        removeOnFail: 1000,
        attempts: opts.attempts ?? 8,
        backoff: { type: 'exponential', delay: opts.backoffMs ?? 1_000 },
      },
    });
  }

  private async replace(jobId: string, data: AfterJob, delay: number): Promise<void> {
    const old = await this.queue.getJob(jobId);
    if (old) {
      const state = await old.getState();
      // A live one stands (waiting, delayed or running); a finished one is replaced.
      if (state !== 'completed' && state !== 'failed' && state !== 'unknown') return;
      await old.remove().catch(() => {});
    }
    await this.queue.add(data.kind, data, { jobId, delay });
  }

  scaleDownLater(rolloutId: string, delayMs: number): Promise<void> {
    return this.replace(scaleDownJobId(rolloutId), { kind: 'scale-down', id: rolloutId }, delayMs);
  }

  async cancelScaleDown(rolloutId: string): Promise<void> {
    const job = await this.queue.getJob(scaleDownJobId(rolloutId));
    // A running one is left to finish: the undo job waits for its lock, then scales back up.
    if (job && (await job.getState()) !== 'active') await job.remove().catch(() => {});
  }

  undoNow(rolloutId: string): Promise<void> {
    return this.replace(undoJobId(rolloutId), { kind: 'undo', id: rolloutId }, 0);
  }

  async undoQueued(rolloutId: string): Promise<boolean> {
    const job = await this.queue.getJob(undoJobId(rolloutId));
    if (!job) return false;
    const state = await job.getState();
    return state !== 'completed' && state !== 'failed' && state !== 'unknown';
  }

  async depth(): Promise<Record<string, number>> {
    const counts = await this.queue.getJobCounts('wait', 'active', 'delayed', 'failed');
    return Object.fromEntries(Object.entries(counts).map(([state, n]) => [`${AFTER_QUEUE}/${state}`, n]));
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}

/** Runs scale-down and undo jobs through the domain's AfterVerdictService. */
export function afterVerdictProcessor(ctx: DomainContext, concurrency = 4): QueueProcessor {
  return {
    queue: AFTER_QUEUE,
    concurrency,
    // A job of a killed worker runs again within seconds (BullMQ renews the lock of a live one).
    lockDuration: 10_000,
    stalledInterval: 3_000,
    async processor(job: Job<AfterJob>) {
      const after = ctx.after;
      if (!after) throw new Error('this process has no cluster configured for scale-downs and undo');
      try {
        if (job.data.kind === 'scale-down') await after.runScaleDown(ctx, job.data.id);
        else await after.runUndo(ctx, job.data.id);
      } catch (e) {
        // The last attempt: record that it gave up, so the rollout does not say `undoing` forever.
        if (job.attemptsMade + 1 >= (job.opts.attempts ?? 1)) {
          await after
            .gaveUp(ctx, job.data.kind, job.data.id, (e as Error).message)
            .catch((err: Error) =>
              ctx.logger.warn({ rollout: job.data.id, err: err.message }, 'could not record it'),
            );
        }
        throw e;
      }
    },
  };
}
