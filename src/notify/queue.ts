import { type Job, Queue, UnrecoverableError } from 'bullmq';
import type { Logger } from '../observability/logger.ts';
import type { Recorder } from '../observability/recorder.ts';
import type { Redis } from '../redis.ts';
import type { Rollout, RolloutEvent } from '../rollouts/model.ts';
import type { RolloutStore } from '../rollouts/store.ts';
import type { QueueProcessor } from '../workers/runtime.ts';
import { type DeliveryResult, deliver, isRetryable } from './deliver.ts';
import { type NotifyJob, planDeliveries } from './plan.ts';
import { MissingSecretError, type SecretLookup, secretFor, secretResolver } from './signing.ts';

export const NOTIFY_QUEUE = 'notify';

export interface NotifyQueueOptions {
  /** First retry delay in ms; each next one doubles. Default 1000. */
  backoffMs?: number;
  /** How long finished jobs are kept, in seconds, so a re-enqueue of the same id is a no-op. Default 86400. */
  keepSeconds?: number;
}

/**
 * The queue of outgoing deliveries. Its own queue and worker, so a slow or dead receiver holds a
 * notify worker slot, never a rollout tick. Producers fail fast: hand it a client connection.
 */
export class NotifyQueue {
  readonly queue: Queue<NotifyJob>;
  private readonly backoffMs: number;
  constructor(
    connection: Redis,
    prefix: string,
    { backoffMs = 1_000, keepSeconds = 86_400 }: NotifyQueueOptions = {},
  ) {
    this.backoffMs = backoffMs;
    this.queue = new Queue<NotifyJob>(NOTIFY_QUEUE, {
      connection,
      prefix,
      defaultJobOptions: {
        removeOnComplete: { age: keepSeconds, count: 10_000 },
        removeOnFail: { age: keepSeconds, count: 10_000 },
      },
    });
  }

  /** Adds one delivery; the same job id twice (while the first is kept) adds it once. */
  async enqueue(job: NotifyJob): Promise<void> {
    if (job.id.includes(':'))
      throw new Error(`notify job id '${job.id}' must not contain ':' (BullMQ keys use it)`);
    await this.queue.add(job.type, job, {
      jobId: job.id,
      attempts: job.retries + 1,
      backoff: { type: 'exponential', delay: this.backoffMs },
    });
  }

  async depth(): Promise<Record<string, number>> {
    const counts = await this.queue.getJobCounts('wait', 'active', 'delayed', 'failed');
    return Object.fromEntries(Object.entries(counts).map(([state, n]) => [`${NOTIFY_QUEUE}/${state}`, n]));
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}

export interface NotifyProcessorDeps {
  store: RolloutStore;
  recorder: Recorder;
  logger: Logger;
  /** Resolves a `secretEnv` name to its secret; memoized. Default: vane's environment, read once per name. */
  secrets?: SecretLookup;
  /** Deliveries in flight at once per worker process. */
  concurrency: number;
}

/**
 * Runs one delivery per job. A failed attempt throws so BullMQ retries it with backoff; a 4xx
 * other than 408/429 (or a missing secret) is an UnrecoverableError, since resending cannot fix it.
 * After the last attempt, sent or failed, the rollout gets a 'notification' event saying what went
 * where and how it ended (never the secret, never the URL's query string), and the metric is counted.
 */
export function notifyProcessor(deps: NotifyProcessorDeps): QueueProcessor {
  const secrets = secretResolver(deps.secrets);
  return {
    queue: NOTIFY_QUEUE,
    concurrency: deps.concurrency,
    async processor(job: Job<NotifyJob>) {
      const d = job.data;
      const attempts = job.opts.attempts ?? 1;
      const attempt = job.attemptsMade + 1;
      let secret: string | undefined;
      try {
        secret = secretFor(d, secrets, d.label);
      } catch (e) {
        if (!(e instanceof MissingSecretError)) throw e;
        await finish(deps, d, { ok: false, error: e.message, ms: 0 }, attempt, attempts);
        throw new UnrecoverableError(e.message);
      }
      const res = await deliver({ url: d.url, event: d.type }, d.body, {
        timeoutMs: d.timeoutMs,
        deliveryId: job.id ?? d.id,
        attempt,
        ...(secret ? { secret } : {}),
      });
      const retryable = isRetryable(res);
      if (res.ok || !retryable || attempt >= attempts) await finish(deps, d, res, attempt, attempts);
      if (res.ok) return { status: res.status, ms: res.ms };
      const message = `${d.label}: ${res.error ?? 'failed'}`;
      if (!retryable) throw new UnrecoverableError(message);
      throw new Error(message);
    },
  };
}

async function finish(
  deps: NotifyProcessorDeps,
  d: NotifyJob,
  res: DeliveryResult,
  attempt: number,
  attempts: number,
): Promise<void> {
  const metric = d.channel === 'slack' ? 'slack' : d.type;
  deps.recorder.notification(metric, res.ok ? 'sent' : 'failed');
  const tries = `attempt ${attempt} of ${attempts}`;
  const reason = res.ok
    ? `${d.label} for ${d.about}: sent (${res.status} in ${res.ms}ms, ${tries})`
    : `${d.label} for ${d.about}: failed after ${attempt} ${attempt === 1 ? 'attempt' : 'attempts'}: ${res.error ?? 'failed'}`;
  const event: RolloutEvent = {
    time: Date.now(),
    type: 'notification',
    reason,
    verdict: res.ok ? 'sent' : 'failed',
  };
  try {
    await deps.store.appendEvents(d.rolloutId, [event]);
  } catch (e) {
    // The delivery itself happened (or definitely failed); a lost history line must not resend it.
    deps.logger.warn(
      { rollout: d.rolloutId, err: (e as Error).message },
      'could not record notification event',
    );
  }
  const log = { rollout: d.rolloutId, job: d.id, type: d.type, status: res.status, ms: res.ms, attempt };
  if (res.ok) deps.logger.debug(log, 'notification sent');
  else deps.logger.warn({ ...log, err: res.error }, 'notification failed');
}

/**
 * The engine's `onEvents` listener: plans the deliveries for the new events and enqueues them
 * without being awaited, so a tick never waits on the notify queue; a failed enqueue is logged
 * (the rollout goes on, the delivery is lost, the log says which).
 */
export function notifyOnEvents(
  queue: Pick<NotifyQueue, 'enqueue'>,
  logger: Logger,
): (rollout: Rollout, events: RolloutEvent[]) => void {
  return (rollout, events) => {
    let jobs: NotifyJob[];
    try {
      jobs = planDeliveries(rollout, events);
    } catch (e) {
      logger.error({ rollout: rollout.id, err: (e as Error).message }, 'could not plan notifications');
      return;
    }
    for (const job of jobs) {
      queue
        .enqueue(job)
        .catch((e: Error) =>
          logger.warn({ rollout: rollout.id, job: job.id, err: e.message }, 'could not enqueue notification'),
        );
    }
  };
}
