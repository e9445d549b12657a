import { z } from 'zod';

const UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
const DURATION = /^(\d+)(ms|s|m|h)$/;

/** "500ms", "30s", "5m", "1h" → milliseconds. */
export function parseDuration(s: string): number {
  const m = DURATION.exec(s);
  if (!m) throw new Error(`not a duration: ${s}`);
  return Number(m[1]) * UNITS[m[2] as keyof typeof UNITS];
}

/** Milliseconds → the shortest exact duration string ("90s", "2m"). */
export function formatDuration(ms: number): string {
  for (const unit of ['h', 'm', 's'] as const) {
    if (ms >= UNITS[unit] && ms % UNITS[unit] === 0) return `${ms / UNITS[unit]}${unit}`;
  }
  return `${ms}ms`;
}

/** A zod duration: a string such as 30s or 5m, parsed to milliseconds. */
export const Duration = z
  .string()
  .regex(DURATION, 'a duration such as 500ms, 30s, 5m or 1h')
  .transform((s) => parseDuration(s));
