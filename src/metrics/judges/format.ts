/** How values appear in messages: few digits, the unit glued on where people write it so. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return Number.isNaN(v) ? 'NaN' : v > 0 ? '+Inf' : '-Inf';
  const a = Math.abs(v);
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  return String(Number(v.toFixed(digits)));
}

export function formatValue(v: number, unit: string): string {
  const n = formatNumber(v);
  if (unit === '%' || unit === 'ms') return `${n}${unit}`;
  return unit ? `${n} ${unit}` : n;
}

/** A difference of two values: percentages differ by points, not percent. */
export function formatDelta(v: number, unit: string): string {
  if (unit === '%') return `${formatNumber(v)} points`;
  return formatValue(v, unit);
}

export function formatRatio(r: number): string {
  if (!Number.isFinite(r)) return r > 0 ? '+Inf%' : '-Inf%';
  return `${r >= 0 ? '+' : ''}${formatNumber(r * 100)}%`;
}

/** What every judge gives back. */
export interface JudgeOutcome {
  verdict: 'pass' | 'fail' | 'inconclusive';
  message: string;
  bounds: Record<string, number | string>;
  details?: Record<string, number | string>;
}

/** How the judged value is named in messages. */
export interface Describe {
  /** e.g. "success rate" */
  label: string;
  /** e.g. "%", "ms", "" */
  unit: string;
}
