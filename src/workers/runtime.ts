import { type Processor, Worker } from 'bullmq';
import type { Logger } from '../observability/logger.ts';
import type { Redis } from '../redis.ts';

/** A queue a worker process serves, with the function that runs its jobs. */
export interface QueueProcessor {
  queue: string;
  processor: Processor;
  /** Jobs run at once. */
  concurrency: number;
  /** How long a job stays locked to a worker that stops renewing it (a killed process), ms. Default BullMQ's 30s. */
  lockDuration?: number;
  /** How often stalled jobs (locks expired) are handed to another worker, ms. Default BullMQ's 30s. */
  stalledInterval?: number;
}

export interface WorkerPool {
  workers: Worker[];
  /** Stops taking jobs, waits for the running ones (they finish or are released), then returns. */
  close(): Promise<void>;
}

/**
 * Starts one BullMQ Worker per queue on a shared blocking connection. The caller owns the
 * connection and quits it after close(): BullMQ does not close connections handed to it.
 */
export function startWorkers(opts: {
  connection: Redis;
  prefix: string;
  processors: QueueProcessor[];
  logger: Logger;
}): WorkerPool {
  const workers = opts.processors.map(({ queue, processor, concurrency, lockDuration, stalledInterval }) => {
    const w = new Worker(queue, processor, {
      connection: opts.connection,
      prefix: opts.prefix,
      concurrency,
      autorun: true,
      ...(lockDuration ? { lockDuration } : {}),
      ...(stalledInterval ? { stalledInterval, maxStalledCount: 1_000 } : {}),
    });
    w.on('failed', (job, err) =>
      opts.logger.warn(
        { queue, jobId: job?.id, attempts: job?.attemptsMade, err: err.message },
        'job failed',
      ),
    );
    w.on('error', (err) => opts.logger.error({ queue, err: err.message }, 'worker error'));
    return w;
  });
  return {
    workers,
    async close() {
      await Promise.all(workers.map((w) => w.close()));
    },
  };
}
