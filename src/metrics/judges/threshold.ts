import { type Describe, formatValue, type JudgeOutcome } from './format.ts';

export interface ThresholdRange {
  min?: number;
  max?: number;
}

/**
 * The canary's value against fixed bounds. The stable's value, when known, is only shown, so the
 * reader sees at once whether the whole service is unhealthy or just the canary.
 */
export function judgeThreshold(
  value: number,
  range: ThresholdRange,
  d: Describe,
  stableValue?: number,
): JudgeOutcome {
  const bounds: Record<string, number> = {};
  if (range.min !== undefined) bounds.min = range.min;
  if (range.max !== undefined) bounds.max = range.max;
  const v = formatValue(value, d.unit);
  const stable = stableValue === undefined ? '' : ` (stable ${formatValue(stableValue, d.unit)})`;
  if (range.min !== undefined && value < range.min) {
    return {
      verdict: 'fail',
      bounds,
      message: `${d.label} ${v} < ${formatValue(range.min, d.unit)}${stable}`,
    };
  }
  if (range.max !== undefined && value > range.max) {
    return {
      verdict: 'fail',
      bounds,
      message: `${d.label} ${v} > ${formatValue(range.max, d.unit)}${stable}`,
    };
  }
  const parts: string[] = [];
  if (range.min !== undefined) parts.push(`>= ${formatValue(range.min, d.unit)}`);
  if (range.max !== undefined) parts.push(`<= ${formatValue(range.max, d.unit)}`);
  return { verdict: 'pass', bounds, message: `${d.label} ${v} ${parts.join(' and ')}${stable}` };
}
