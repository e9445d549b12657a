import { type Describe, formatDelta, formatRatio, formatValue, type JudgeOutcome } from './format.ts';

export interface RelativeBounds {
  /** Largest allowed rise of the canary over the stable (ratio: 0.2 = 20%; absolute: in the metric's unit). */
  maxIncrease?: number;
  /** Largest allowed fall of the canary below the stable (a positive number, same units as maxIncrease). */
  maxDecrease?: number;
  /** ratio (default) or absolute. */
  kind?: 'ratio' | 'absolute';
}

/** The canary's change against the stable: a ratio of the stable's value, or an absolute difference. */
export function relativeChange(canary: number, stable: number, kind: 'ratio' | 'absolute'): number {
  const delta = canary - stable;
  if (kind === 'absolute') return delta;
  if (stable === 0) return delta === 0 ? 0 : delta > 0 ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
  return delta / Math.abs(stable);
}

/** The canary against the stable in the same window. */
export function judgeRelative(canary: number, stable: number, b: RelativeBounds, d: Describe): JudgeOutcome {
  const kind = b.kind ?? 'ratio';
  const change = relativeChange(canary, stable, kind);
  const bounds: Record<string, number | string> = { kind };
  if (b.maxIncrease !== undefined) bounds.maxIncrease = b.maxIncrease;
  if (b.maxDecrease !== undefined) bounds.maxDecrease = b.maxDecrease;
  const show = (x: number) =>
    kind === 'ratio' ? formatRatio(x).replace(/^[+-]/, '') : formatDelta(Math.abs(x), d.unit);
  const limit = (x: number, sign: '+' | '-') =>
    kind === 'ratio' ? `${sign}${formatRatio(x).replace(/^[+-]/, '')}` : `${sign}${formatDelta(x, d.unit)}`;
  const where = change > 0 ? 'above' : change < 0 ? 'below' : 'equal to';
  const head =
    change === 0
      ? `${d.label} ${formatValue(canary, d.unit)} is equal to stable ${formatValue(stable, d.unit)}`
      : `${d.label} ${formatValue(canary, d.unit)} is ${show(change)} ${where} stable ${formatValue(stable, d.unit)}`;
  if (b.maxIncrease !== undefined && change > b.maxIncrease) {
    return { verdict: 'fail', bounds, message: `${head} (max ${limit(b.maxIncrease, '+')})` };
  }
  if (b.maxDecrease !== undefined && -change > b.maxDecrease) {
    return { verdict: 'fail', bounds, message: `${head} (max ${limit(b.maxDecrease, '-')})` };
  }
  const allowed = [
    b.maxIncrease !== undefined ? limit(b.maxIncrease, '+') : undefined,
    b.maxDecrease !== undefined ? limit(b.maxDecrease, '-') : undefined,
  ].filter(Boolean);
  return { verdict: 'pass', bounds, message: `${head} (allowed ${allowed.join(' / ')})` };
}
