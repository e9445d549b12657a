import type { Rollout, RolloutEvent } from '../rollouts/model.ts';
import { isTerminal } from '../rollouts/phases.ts';
import { describeUrl } from './deliver.ts';
import { buildPayload, type PayloadType } from './payload.ts';
import { type Severity, severityOf, shouldNotify, slackMessage, summarize } from './slack.ts';

/** Timeout and retries of a notification entry (the spec gives them for webhooks only). */
export const NOTIFICATION_DEFAULTS = { timeoutMs: 10_000, retries: 3 } as const;

/** One delivery: everything the notify worker needs, the body built when the event happened. */
export interface NotifyJob {
  /** Deterministic BullMQ job id (no ':'), so enqueueing the same delivery twice sends it once. */
  id: string;
  rolloutId: string;
  /** webhook: a spec webhook; slack / json: a notification entry. */
  channel: 'webhook' | 'slack' | 'json';
  /** The `X-Vane-Event` header and the metric label. */
  type: PayloadType;
  /** How the delivery is named in the rollout's events, e.g. "event webhook 'audit'", "slack notification". */
  label: string;
  url: string;
  timeoutMs: number;
  /** Attempts after the first; the queue makes `retries + 1` attempts with exponential backoff. */
  retries: number;
  /** Name of the environment variable holding the HMAC secret; the secret itself never enters Redis. */
  secretEnv?: string;
  /** The JSON body, built from the rollout as it was at the event. */
  body: unknown;
  /** What caused the delivery, for the recorded event (e.g. "transition → failed"). */
  about: string;
}

/** A stream id ("1700000000000-0") or, before the event is read back, the rollout version and position. */
function eventKey(rollout: Rollout, event: RolloutEvent, index: number): string {
  return event.id ? event.id.replaceAll('-', '.') : `v${rollout.version}.${index}`;
}

function aboutOf(e: RolloutEvent): string {
  return e.type === 'transition' && e.to ? `transition → ${e.to}` : e.type;
}

/**
 * The deliveries due for `events`, just stored on `rollout` (the stored rollout after them):
 * `event` webhooks for every event; a `rollout` webhook for each weight event; `post-rollout`
 * webhooks when a transition ends the rollout; each notification entry whose filter wants the event.
 * Gates (confirm-*, pre-rollout, rollback) are asked by the engine through checkGate, not planned here.
 * Notification events are skipped, so recording a delivery never plans another.
 */
export function planDeliveries(
  rollout: Rollout,
  events: RolloutEvent[],
  opts: { now?: number } = {},
): NotifyJob[] {
  const jobs: NotifyJob[] = [];
  const now = opts.now ?? Date.now();
  events.forEach((event, i) => {
    if (event.type === 'notification') return;
    const key = `n-${rollout.id}-${eventKey(rollout, event, i)}`;
    const about = aboutOf(event);
    rollout.spec.webhooks.forEach((w, k) => {
      const due =
        w.type === 'event' ||
        (w.type === 'rollout' && event.type === 'weight') ||
        (w.type === 'post-rollout' && event.type === 'transition' && !!event.to && isTerminal(event.to));
      if (!due) return;
      jobs.push({
        id: `${key}-w${k}`,
        rolloutId: rollout.id,
        channel: 'webhook',
        type: w.type,
        label: `${w.type} webhook${w.name ? ` '${w.name}'` : ''} to ${describeUrl(w.url)}`,
        url: w.url,
        timeoutMs: w.timeout,
        retries: w.retries,
        ...(w.secretEnv ? { secretEnv: w.secretEnv } : {}),
        body: buildPayload(rollout, w.type, { event, now, ...(w.metadata ? { metadata: w.metadata } : {}) }),
        about,
      });
    });
    rollout.spec.notifications.forEach((n, k) => {
      if (!shouldNotify(n, event)) return;
      const severity: Severity = severityOf(event);
      const slack = n.type === 'slack';
      jobs.push({
        id: `${key}-n${k}`,
        rolloutId: rollout.id,
        channel: slack ? 'slack' : 'json',
        type: 'notification',
        label: slack
          ? `slack notification to ${describeUrl(n.url, { hostOnly: true })}`
          : `notification to ${describeUrl(n.url)}`,
        url: n.url,
        timeoutMs: NOTIFICATION_DEFAULTS.timeoutMs,
        retries: NOTIFICATION_DEFAULTS.retries,
        ...(!slack && n.secretEnv ? { secretEnv: n.secretEnv } : {}),
        body: slack
          ? slackMessage(rollout, event, severity)
          : {
              ...buildPayload(rollout, 'notification', { event, now }),
              severity,
              summary: summarize(rollout, event),
            },
        about,
      });
    });
  });
  return jobs;
}
