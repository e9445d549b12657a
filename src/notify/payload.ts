import type { MetricResult } from '../metrics/types.ts';
import type { Rollout, RolloutEvent } from '../rollouts/model.ts';
import type { WEBHOOK_TYPES } from '../rollouts/spec.ts';
import { stagesOf } from '../strategies/index.ts';

export type WebhookType = (typeof WEBHOOK_TYPES)[number];
/** What a delivery is about: a webhook of one of the spec's types, or a notification. */
export type PayloadType = WebhookType | 'notification';

/** One metric check as a receiver sees it: value, stable value, bounds and the sentence. */
export interface PayloadMetric {
  name: string;
  verdict: MetricResult['verdict'];
  critical: boolean;
  /** A dry-run check: judged and shown, never counted. */
  dryRun?: true;
  value: number | null;
  stableValue: number | null;
  thresholds: Record<string, number | string>;
  message: string;
}

export interface PayloadEvent {
  type: RolloutEvent['type'];
  reason: string;
  time: string;
  from?: string;
  to?: string;
  weights?: { stable: number; canary: number };
  verdict?: string;
  by?: string;
  id?: string;
}

/**
 * The JSON body of every webhook and generic notification. `name`, `namespace`, `phase` and
 * `metadata` sit at the top level with the meaning Flagger gives them, so a receiver written for
 * Flagger's webhooks (a load tester, a gate) reads it unchanged; the rest is vane's.
 */
export interface NotifyPayload {
  /** The rollout's id. */
  id: string;
  type: PayloadType;
  /** Flagger-compatible: the VirtualService's name. */
  name: string;
  /** Flagger-compatible: the target's namespace. */
  namespace: string;
  phase: Rollout['phase'];
  /** Why the rollout is in its phase. */
  reason: string;
  target: {
    namespace: string;
    virtualService: string;
    destinationRule: string;
    host: string | null;
    routes: string[] | null;
    cluster: string | null;
  };
  stable: { subset: string };
  canary: { subset: string; labels: Record<string, string> };
  weights: { stable: number; canary: number };
  /** 0-based index of the current step (-1 before the first one) and the number of steps. */
  step: { index: number; count: number };
  analysis: {
    verdict: string;
    at: string;
    results: PayloadMetric[];
    /** Consecutive failed analyses and how many roll back. */
    failures: number;
    failureThreshold: number;
  } | null;
  /** commit, pipelineUrl, triggeredBy and any other metadata of the rollout, plus the webhook's own. */
  metadata: Record<string, string>;
  /** The event that caused this delivery, when one did. */
  event: PayloadEvent | null;
  /** The gate asked, for gate webhooks (e.g. `confirm-traffic-increase:3`). */
  gate: string | null;
  /** When the payload was built (ISO 8601). */
  timestamp: string;
}

export interface PayloadExtra {
  event?: RolloutEvent;
  gate?: string;
  /** Merged over the rollout's metadata (a webhook's `metadata` field). */
  metadata?: Record<string, string>;
  /** Clock for the timestamp (ms). Default Date.now(). */
  now?: number;
}

function metric(m: MetricResult): PayloadMetric {
  return {
    name: m.name,
    verdict: m.verdict,
    critical: m.critical,
    ...(m.dryRun ? { dryRun: true as const } : {}),
    value: m.value ?? null,
    stableValue: m.stableValue ?? null,
    thresholds: m.bounds ?? {},
    message: m.message,
  };
}

function eventOf(e: RolloutEvent): PayloadEvent {
  return {
    type: e.type,
    reason: e.reason,
    time: new Date(e.time).toISOString(),
    ...(e.from ? { from: e.from } : {}),
    ...(e.to ? { to: e.to } : {}),
    ...(e.weights ? { weights: e.weights } : {}),
    ...(e.verdict ? { verdict: e.verdict } : {}),
    ...(e.by ? { by: e.by } : {}),
    ...(e.id ? { id: e.id } : {}),
  };
}

/** Number of steps of a rollout's strategy; 0 when the strategy cannot be expanded (never throws). */
export function stepCount(r: Rollout): number {
  try {
    return stagesOf(r.spec.strategy).length;
  } catch {
    return 0;
  }
}

/** The payload for a webhook of `type` (or a notification) about `rollout` as it is now. */
export function buildPayload(rollout: Rollout, type: PayloadType, extra: PayloadExtra = {}): NotifyPayload {
  const s = rollout.spec;
  const t = s.target;
  const a = rollout.lastAnalysis;
  // The metadata the spec allows is string-valued; drop anything else a hand-built rollout might carry.
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...s.metadata, ...extra.metadata })) {
    if (typeof v === 'string') metadata[k] = v;
  }
  return {
    id: rollout.id,
    type,
    name: t.virtualService,
    namespace: t.namespace,
    phase: rollout.phase,
    reason: rollout.reason,
    target: {
      namespace: t.namespace,
      virtualService: t.virtualService,
      destinationRule: t.destinationRule,
      host: t.host ?? null,
      routes: t.routes ?? null,
      cluster: t.cluster ?? null,
    },
    stable: { subset: s.stable.subset },
    canary: { subset: s.canary.subset, labels: { ...s.canary.labels } },
    weights: { stable: rollout.weights.stable, canary: rollout.weights.canary },
    step: { index: rollout.progress.stageIndex, count: stepCount(rollout) },
    analysis: a
      ? {
          verdict: a.verdict,
          at: new Date(a.at).toISOString(),
          results: a.results.map(metric),
          failures: rollout.progress.failures,
          failureThreshold: s.analysis.failureThreshold,
        }
      : null,
    metadata,
    event: extra.event ? eventOf(extra.event) : null,
    gate: extra.gate ?? null,
    timestamp: new Date(extra.now ?? Date.now()).toISOString(),
  };
}
