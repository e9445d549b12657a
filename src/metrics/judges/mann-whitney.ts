import { type Describe, formatRatio, formatValue, type JudgeOutcome } from './format.ts';

/**
 * erfc with fractional error below 1.2e-7 everywhere (Chebyshev fit, Numerical Recipes "erfcc");
 * keeps its relative precision in the tails, where small p-values live.
 */
export function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 +
                            t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

/** Standard normal CDF. */
export function normalCdf(z: number): number {
  return 0.5 * erfc(-z / Math.SQRT2);
}

export interface MannWhitneyResult {
  /** U of the first sample: the number of (x, y) pairs with x > y, ties counting one half. */
  u: number;
  n1: number;
  n2: number;
  /** P-value for "x tends to be larger than y". */
  pGreater: number;
  /** P-value for "x tends to be smaller than y". */
  pLess: number;
  /** P-value for "x and y differ". */
  pTwoSided: number;
  /** True when the exact distribution was used (no ties, both samples at most EXACT_MAX). */
  exact: boolean;
  /** z of the normal approximation (0 when exact). */
  z: number;
}

/** Largest sample size per side for which the exact distribution of U is computed. */
export const EXACT_MAX = 20;

/** Counts of U values over all arrangements: cache keyed by "n1,n2". */
const exactCache = new Map<string, Float64Array>();

/**
 * Number of arrangements giving each U for samples of sizes m and n, by the recurrence
 * f(m, n, u) = f(m-1, n, u-n) + f(m, n-1, u) (the largest value belongs to x or to y).
 */
function exactCounts(m: number, n: number): Float64Array {
  const key = `${m},${n}`;
  const hit = exactCache.get(key);
  if (hit) return hit;
  // table[i][j] = counts for sizes i, j
  let prev: Float64Array[] = [];
  for (let i = 0; i <= m; i++) {
    const row: Float64Array[] = [];
    for (let j = 0; j <= n; j++) {
      const f = new Float64Array(i * j + 1);
      if (i === 0 || j === 0) f[0] = 1;
      else {
        const a = prev[j]!; // (i-1, j): x holds the largest, adding j to U
        const b = row[j - 1]!; // (i, j-1)
        for (let u = 0; u < a.length; u++) f[u + j]! += a[u]!;
        for (let u = 0; u < b.length; u++) f[u]! += b[u]!;
      }
      row.push(f);
    }
    prev = row;
  }
  const out = prev[n]!;
  exactCache.set(key, out);
  return out;
}

/**
 * Mann-Whitney U test of x against y: rank sums with average ranks for ties; exact distribution for
 * small samples without ties, otherwise the normal approximation with tie-corrected variance and
 * continuity correction.
 */
export function mannWhitneyU(
  x: readonly number[],
  y: readonly number[],
  /** auto (default): exact when possible; normal: always the approximation. */
  method: 'auto' | 'normal' = 'auto',
): MannWhitneyResult {
  const n1 = x.length;
  const n2 = y.length;
  if (n1 === 0 || n2 === 0) throw new Error('mannWhitneyU needs at least one value in each sample');
  const all: { v: number; fromX: boolean }[] = [];
  for (const v of x) all.push({ v, fromX: true });
  for (const v of y) all.push({ v, fromX: false });
  all.sort((a, b) => a.v - b.v);
  const N = n1 + n2;
  let r1 = 0;
  let tieTerm = 0;
  for (let i = 0; i < N; ) {
    let j = i + 1;
    while (j < N && all[j]!.v === all[i]!.v) j++;
    const t = j - i;
    const rank = (i + 1 + j) / 2; // average of ranks i+1..j
    for (let k = i; k < j; k++) if (all[k]!.fromX) r1 += rank;
    if (t > 1) tieTerm += t * t * t - t;
    i = j;
  }
  const u = r1 - (n1 * (n1 + 1)) / 2;
  if (method === 'auto' && tieTerm === 0 && n1 <= EXACT_MAX && n2 <= EXACT_MAX) {
    const f = exactCounts(n1, n2);
    let total = 0;
    for (const c of f) total += c;
    // u is an integer without ties
    let le = 0;
    for (let k = 0; k <= u; k++) le += f[k]!;
    let ge = 0;
    for (let k = u; k < f.length; k++) ge += f[k]!;
    const pLess = le / total;
    const pGreater = ge / total;
    return {
      u,
      n1,
      n2,
      pLess,
      pGreater,
      pTwoSided: Math.min(1, 2 * Math.min(pLess, pGreater)),
      exact: true,
      z: 0,
    };
  }
  const mu = (n1 * n2) / 2;
  const variance = ((n1 * n2) / 12) * (N + 1 - tieTerm / (N * (N - 1)));
  if (variance <= 0) {
    // Every value equal: no evidence either way.
    return { u, n1, n2, pLess: 1, pGreater: 1, pTwoSided: 1, exact: false, z: 0 };
  }
  const sd = Math.sqrt(variance);
  const d = u - mu;
  const pGreater = normalCdf(-(d - 0.5) / sd);
  const pLess = normalCdf((d + 0.5) / sd);
  const pTwoSided = Math.min(1, 2 * normalCdf(-(Math.abs(d) - 0.5) / sd));
  return {
    u,
    n1,
    n2,
    pGreater: Math.min(1, pGreater),
    pLess: Math.min(1, pLess),
    pTwoSided,
    exact: false,
    z: d / sd,
  };
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export type Direction = 'increase' | 'decrease' | 'either';

export interface MannWhitneyJudgeOptions {
  /** Which change of the canary is bad: increase (latency, errors), decrease (success rate, throughput) or either. */
  direction: Direction;
  /** Confidence level; a change counts when p < 1 - confidence. E.g. 0.95. */
  confidence: number;
  /** Relative shift of the median the canary may show even when significant (0.1 = 10%). */
  effectSize: number;
  /** Absolute shift of the median, in the metric's unit, that never fails (for values near zero). */
  tolerance: number;
  /** Fewer points than this on either side is inconclusive. */
  minPoints: number;
}

/**
 * Kayenta-style comparison of two series: fails only when the canary differs in the bad direction
 * with the given confidence AND by more than the effect size and the tolerance, so a tiny but
 * consistent difference does not halt a rollout.
 */
export function judgeMannWhitney(
  canary: readonly number[],
  stable: readonly number[],
  o: MannWhitneyJudgeOptions,
  d: Describe,
): JudgeOutcome {
  const bounds: Record<string, number | string> = {
    direction: o.direction,
    confidence: o.confidence,
    effectSize: o.effectSize,
    tolerance: o.tolerance,
  };
  if (canary.length < o.minPoints || stable.length < o.minPoints) {
    return {
      verdict: 'inconclusive',
      bounds,
      details: { canaryPoints: canary.length, stablePoints: stable.length },
      message: `${d.label}: only ${canary.length} canary and ${stable.length} stable points (need ${o.minPoints} each)`,
    };
  }
  const r = mannWhitneyU(canary, stable);
  const p = o.direction === 'increase' ? r.pGreater : o.direction === 'decrease' ? r.pLess : r.pTwoSided;
  const alpha = 1 - o.confidence;
  const mc = median(canary);
  const ms = median(stable);
  const shift = mc - ms;
  const rel =
    ms === 0
      ? shift === 0
        ? 0
        : shift > 0
          ? Number.POSITIVE_INFINITY
          : Number.NEGATIVE_INFINITY
      : shift / Math.abs(ms);
  const details = {
    u: r.u,
    pValue: p,
    canaryMedian: mc,
    stableMedian: ms,
    relativeShift: rel,
    canaryPoints: canary.length,
    stablePoints: stable.length,
  };
  const badDirection =
    o.direction === 'increase' ? shift > 0 : o.direction === 'decrease' ? shift < 0 : shift !== 0;
  const pText = `p=${p < 0.0001 ? p.toExponential(1) : Number(p.toFixed(4))}`;
  const medians = `median ${formatValue(mc, d.unit)} vs stable ${formatValue(ms, d.unit)} (${formatRatio(rel)})`;
  const significant = p < alpha;
  if (significant && badDirection && Math.abs(rel) > o.effectSize && Math.abs(shift) > o.tolerance) {
    const word = shift > 0 ? 'higher' : 'lower';
    return {
      verdict: 'fail',
      bounds,
      details,
      message: `${d.label} ${word} on the canary: ${medians}, ${pText} < ${Number(alpha.toFixed(4))}`,
    };
  }
  const why = !significant
    ? `no significant ${o.direction === 'either' ? 'difference' : o.direction}`
    : !badDirection
      ? `a significant change in the harmless direction`
      : `a significant change within the allowed effect size ${formatRatio(o.effectSize).replace('+', '')} / tolerance ${formatValue(o.tolerance, d.unit)}`;
  return { verdict: 'pass', bounds, details, message: `${d.label}: ${why}: ${medians}, ${pText}` };
}
