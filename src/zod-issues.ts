import { z } from 'zod';

/**
 * Readable zod issues for users: paths in the spec's own notation (`analysis.metrics[2].name`)
 * and, for an unknown field, the nearest known one ("strategy.stepIntervl: unknown field; did
 * you mean stepInterval?"). Unknown fields are errors everywhere (strict objects), never dropped.
 */

/** Levenshtein distance (two rows). */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** The known word closest to `word` (case-insensitive), when it is close enough to be a typo. */
export function nearest(word: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  const w = word.toLowerCase();
  for (const k of known) {
    const d = editDistance(w, k.toLowerCase());
    if (d < bestD) {
      best = k;
      bestD = d;
    }
  }
  if (best === undefined) return undefined;
  return bestD <= Math.max(2, Math.floor(best.length / 3)) ? best : undefined;
}

type UnknownKeysIssue = z.core.$ZodIssueUnrecognizedKeys & { knownKeys?: string[] };

// Every strict object's unknown-key issue carries the object's known keys, so the message can
// name the nearest one whichever schema raised it. Returning undefined keeps zod's message.
z.config({
  customError: (iss) => {
    if (iss.code === 'unrecognized_keys') {
      const shape = (iss.inst as { _zod?: { def?: { shape?: Record<string, unknown> } } } | undefined)?._zod
        ?.def?.shape;
      if (shape) (iss as unknown as UnknownKeysIssue).knownKeys = Object.keys(shape);
    }
    return undefined;
  },
});

/** A path as the spec writes it: `strategy.steps[2]`. */
export function formatPath(path: readonly PropertyKey[], prefix = ''): string {
  return (
    prefix +
    path
      .map((seg, k) =>
        typeof seg === 'number' ? `[${seg}]` : `${k === 0 && !prefix ? '' : '.'}${String(seg)}`,
      )
      .join('')
  );
}

/** The line for one unknown field. */
export function unknownFieldMessage(key: string, known: readonly string[] | undefined): string {
  const near = known ? nearest(key, known) : undefined;
  if (near) return `unknown field; did you mean ${near}?`;
  return known?.length ? `unknown field; known fields are: ${known.join(', ')}` : 'unknown field';
}

/** Every issue of a zod error as `{ path, message }`, one per unknown field. */
export function describeIssues(error: z.ZodError, prefix = ''): { path: string; message: string }[] {
  const out: { path: string; message: string }[] = [];
  for (const i of error.issues) {
    if (i.code === 'unrecognized_keys') {
      const known = (i as UnknownKeysIssue).knownKeys;
      for (const key of i.keys) {
        out.push({ path: formatPath([...i.path, key], prefix), message: unknownFieldMessage(key, known) });
      }
    } else {
      out.push({ path: formatPath(i.path, prefix), message: i.message });
    }
  }
  return out;
}
