// Pure formatting of times, ages, weights and thresholds.

/** "42s", "3m 12s", "2h 5m", "3d 4h". */
export function formatAge(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** Local wall-clock time, with the date when it is not today. */
export function formatTime(ms, now = Date.now()) {
  const d = new Date(ms);
  const time = d.toLocaleTimeString([], {
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hour12: false,
  });
  return new Date(now).toDateString() === d.toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
}

/** A metric value with at most 3 decimals; '—' when there is none. */
export function formatValue(v) {
  if (v === undefined || v === null || Number.isNaN(v)) return '—';
  return Number.isInteger(v) ? String(v) : String(Math.round(v * 1000) / 1000);
}

/** A check's bounds as a person reads them: "≥ 99", "≤ 500", "≥ 1 and ≤ 5", "+20% of stable at most". */
export function formatBounds(bounds) {
  if (!bounds) return '—';
  const parts = [];
  if (typeof bounds.min === 'number') parts.push(`≥ ${bounds.min}`);
  if (typeof bounds.max === 'number') parts.push(`≤ ${bounds.max}`);
  if (typeof bounds.maxIncrease === 'number') parts.push(`at most +${pct(bounds.maxIncrease)} of stable`);
  if (typeof bounds.maxDecrease === 'number') parts.push(`at most −${pct(bounds.maxDecrease)} of stable`);
  if (parts.length === 0) {
    return Object.entries(bounds)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
  }
  return parts.join(' and ');
}

const pct = (f) => `${Math.round(f * 1000) / 10}%`;

/** "namespace/virtualService". */
export function targetName(rollout) {
  const t = rollout.spec?.target ?? {};
  return `${t.namespace ?? '?'}/${t.virtualService ?? '?'}`;
}
