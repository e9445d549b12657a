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
  /** A task every worker runs periodically while it serves this queue (e.g. re-adding missing ticks); errors are logged. */
  background?: { intervalMs: number; run(): Promise<void> };
}

/** What a worker serves that is not a BullMQ queue (the tick loop): started once, stopped at close. */
export interface BackgroundRunner {
  name: string;
  start(logger: Logger): RunningService;
}

/** A served queue or loop as the pool hands it out: BullMQ's Worker has this shape too. */
export interface RunningService {
  name: string;
  /** Stops taking new work; what runs goes on. */
  pause(): Promise<void>;
  resume(): void;
  close(): Promise<void>;
}

function isRunner(p: QueueProcessor | BackgroundRunner): p is BackgroundRunner {
  return 'start' in p;
}

export interface WorkerPool {
  workers: RunningService[];
  /** Stops taking jobs, waits for the running ones (they finish or are released), then returns. */
  close(): Promise<void>;
}

/**
 * Starts one BullMQ Worker per queue on a shared blocking connection, and every runner (the tick loop). The caller owns the
 * connection and quits it after close(): BullMQ does not close connections handed to it.
 */
export function startWorkers(opts: {
  connection: Redis;
  prefix: string;
  processors: (QueueProcessor | BackgroundRunner)[];
  logger: Logger;
}): WorkerPool {
  const runners = opts.processors.filter(isRunner).map((r) => r.start(opts.logger));
  const queues = opts.processors.filter((p): p is QueueProcessor => !isRunner(p));
  const timers: NodeJS.Timeout[] = [];
  const running = new Set<Promise<void>>();
  let closing = false;
  for (const { queue, background } of queues) {
    if (!background) continue;
    const every = () => {
      if (closing) return;
      const p = background
        .run()
        .catch((err: Error) => opts.logger.warn({ queue, err: err.message }, 'background task failed'))
        .finally(() => {
          running.delete(p);
          // jittered, so the workers' sweeps spread out
          if (!closing) timers.push(setTimeout(every, background.intervalMs * (0.8 + Math.random() * 0.4)));
        });
      running.add(p);
    };
    timers.push(setTimeout(every, background.intervalMs * Math.random()));
  }
  const workers: RunningService[] = queues.map(
    ({ queue, processor, concurrency, lockDuration, stalledInterval }) => {
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
    },
  );
  workers.push(...runners);
  return {
    workers,
    async close() {
      closing = true;
      for (const t of timers) clearTimeout(t);
      await Promise.all([...workers.map((w) => w.close()), ...running]);
    },
  };
}
