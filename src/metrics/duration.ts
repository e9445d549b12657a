import { z } from 'zod';

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/** A duration such as 500ms, 30s, 5m or 1h, or a number of milliseconds; parses to milliseconds. */
export const DurationSchema = z.union([
  z.number().int().positive(),
  z
    .string()
    .regex(/^\d+(ms|s|m|h)$/, 'a duration such as 500ms, 30s, 5m or 1h')
    .transform((s) => parseDurationMs(s)),
]);

export function parseDurationMs(s: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(s);
  if (!m) throw new Error(`not a duration: ${s} (use 500ms, 30s, 5m or 1h)`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}

/** Seconds as a PromQL duration: 60 → 1m, 90 → 90s, 7200 → 2h; fractions are rounded up to whole seconds. */
export function promDuration(seconds: number): string {
  const s = Math.max(1, Math.ceil(seconds));
  if (s % 3600 === 0) return `${s / 3600}h`;
  if (s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}
