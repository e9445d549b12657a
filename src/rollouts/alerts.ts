import type { AlertPolicy } from './alert-policy.ts';
import type { DomainContext } from './context.ts';
import { RolloutError } from './errors.ts';
import type { Rollout } from './model.ts';
import { sendCommand } from './verbs.ts';

/** One alert as Alertmanager's webhook (version 4) sends it. */
export interface Alert {
  status: 'firing' | 'resolved';
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt?: string;
  fingerprint?: string;
}

/** Labels that name the service an alert is about, as Istio's metrics and common alert rules spell them. */
const SERVICE_LABELS = ['destination_service_name', 'service', 'virtualservice'] as const;

/**
 * Whether an alert is about a rollout: an explicit `vane_rollout` label naming its id, or its
 * namespace (`namespace`, else Istio's `destination_service_namespace`) plus one of
 * destination_service_name / service / virtualservice naming the rollout's VirtualService,
 * DestinationRule or host.
 */
export function alertMatches(alert: Alert, r: Rollout): boolean {
  const l = alert.labels;
  if (l.vane_rollout !== undefined) return l.vane_rollout === r.id;
  const t = r.spec.target;
  const ns = l.namespace ?? l.destination_service_namespace;
  if (ns !== t.namespace) return false;
  const names = new Set([t.virtualService, t.destinationRule]);
  if (t.host) names.add(t.host.split('.')[0]!);
  return SERVICE_LABELS.some((k) => l[k] !== undefined && names.has(l[k]));
}

export type AlertAction = 'rollback' | 'pause' | 'ignore';

/** The action a firing alert takes on a rollout under its policy, and why when it is ignored. */
export function alertAction(
  alert: Alert,
  policy: AlertPolicy | undefined,
): { action: AlertAction; why?: string } {
  const p = policy ?? { action: 'rollback' as const };
  const name = alert.labels.alertname ?? '';
  if (p.alertnames && !p.alertnames.includes(name)) {
    return { action: 'ignore', why: `alert ${name || '(no name)'} is not in analysis.alerts.alertnames` };
  }
  if (p.severity !== undefined && alert.labels.severity !== p.severity) {
    return {
      action: 'ignore',
      why: `severity ${alert.labels.severity ?? '(none)'} is not ${p.severity} (analysis.alerts.severity)`,
    };
  }
  return p.action === 'ignore'
    ? { action: 'ignore', why: 'analysis.alerts.action is ignore' }
    : { action: p.action };
}

/** `HighErrorRate {namespace="shop", service="cart", severity="critical"}: canary errors above 5%` */
export function describeAlert(alert: Alert): string {
  const { alertname, ...rest } = alert.labels;
  const labels = Object.entries(rest)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v}"`)
    .join(', ');
  const text = alert.annotations.summary ?? alert.annotations.description ?? alert.annotations.message;
  const line = `${alertname ?? '(unnamed alert)'} {${labels}}${text ? `: ${text}` : ''}`;
  return line.length > 900 ? `${line.slice(0, 899)}…` : line;
}

export interface AlertOutcome {
  alert: string;
  rolloutId: string;
  action: AlertAction;
  /** done: the command was stored and the tick woken; skipped: it no longer applied (e.g. already rolling back). */
  result: 'done' | 'skipped' | 'ignored';
  message: string;
}

/**
 * Acts on firing alerts at once: each one that matches an active rollout aborts or pauses it
 * through the same verb an operator's command uses (which wakes its tick, so a rollback is written
 * in the next tick, not at the next guard check), or is recorded as ignored. Resolved alerts do
 * nothing. Events name the alert, its labels and its summary.
 */
export async function actOnAlerts({
  ctx,
  alerts,
  by = 'alertmanager',
}: {
  ctx: DomainContext;
  alerts: readonly Alert[];
  by?: string;
}): Promise<AlertOutcome[]> {
  const firing = alerts.filter((a) => a.status === 'firing');
  if (firing.length === 0) return [];
  const active = await ctx.store.list({ active: true, limit: 500 });
  const out: AlertOutcome[] = [];
  for (const alert of firing) {
    const what = describeAlert(alert);
    for (const r of active.filter((x) => alertMatches(alert, x))) {
      const { action, why } = alertAction(alert, r.spec.analysis.alerts);
      if (action === 'ignore') {
        await ctx.store.appendEvents(r.id, [
          { time: ctx.now(), type: 'command', reason: `alert firing, ignored (${why}): ${what}`, by },
        ]);
        out.push({ alert: what, rolloutId: r.id, action, result: 'ignored', message: why ?? 'ignored' });
        continue;
      }
      try {
        await sendCommand({
          ctx,
          id: r.id,
          type: action === 'rollback' ? 'abort' : 'pause',
          by,
          reason: `alert firing: ${what}`,
        });
        out.push({ alert: what, rolloutId: r.id, action, result: 'done', message: `${action} requested` });
      } catch (e) {
        // Already rolling back, paused or ended: a repeated notification must not fail the others.
        if (!(e instanceof RolloutError) || (e.code !== 'CONFLICT' && e.code !== 'NOT_FOUND')) throw e;
        out.push({ alert: what, rolloutId: r.id, action, result: 'skipped', message: e.message });
      }
    }
  }
  return out;
}
