import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { judgeMannWhitney, mannWhitneyU, median, normalCdf } from '../../src/metrics/judges/mann-whitney.ts';

// ---- a second, independent implementation, written differently on purpose ----

/** U by counting pairs (not by ranks). */
function pairU(x: number[], y: number[]): number {
  let u = 0;
  for (const a of x) for (const b of y) u += a > b ? 1 : a === b ? 0.5 : 0;
  return u;
}

/** Every way to pick which k of the N pooled values belong to x. */
function* combinations(n: number, k: number, start = 0, acc: number[] = []): Generator<number[]> {
  if (acc.length === k) {
    yield acc;
    return;
  }
  for (let i = start; i <= n - (k - acc.length); i++) yield* combinations(n, k, i + 1, [...acc, i]);
}

/** Exact permutation p-value of "x tends to be larger", by brute force. */
function permutationPGreater(x: number[], y: number[]): number {
  const pooled = [...x, ...y];
  const observed = pairU(x, y);
  let ge = 0;
  let total = 0;
  for (const idx of combinations(pooled.length, x.length)) {
    const set = new Set(idx);
    const xs = pooled.filter((_, i) => set.has(i));
    const ys = pooled.filter((_, i) => !set.has(i));
    if (pairU(xs, ys) >= observed - 1e-9) ge++;
    total++;
  }
  return ge / total;
}

/** Φ by Simpson integration of the density (no erfc involved). */
function phiBySimpson(z: number): number {
  const lo = -12;
  if (z <= lo) return 0;
  const n = 4000;
  const h = (z - lo) / n;
  const f = (t: number) => Math.exp((-t * t) / 2) / Math.sqrt(2 * Math.PI);
  let s = f(lo) + f(z);
  for (let i = 1; i < n; i++) s += f(lo + i * h) * (i % 2 ? 4 : 2);
  return (s * h) / 3;
}

/** Normal approximation in Lehmann's form of the tie-corrected variance. */
function normalPGreater(x: number[], y: number[]): number {
  const n1 = x.length;
  const n2 = y.length;
  const N = n1 + n2;
  const counts = new Map<number, number>();
  for (const v of [...x, ...y]) counts.set(v, (counts.get(v) ?? 0) + 1);
  let ties = 0;
  for (const t of counts.values()) ties += (t ** 3 - t) / 12;
  const variance = ((n1 * n2) / (N * (N - 1))) * ((N ** 3 - N) / 12 - ties);
  const z = (pairU(x, y) - (n1 * n2) / 2 - 0.5) / Math.sqrt(variance);
  return 1 - phiBySimpson(z);
}

describe('Mann-Whitney U', () => {
  it('matches published values: R wilcox.test (Hollander & Wolfe) and SciPy mannwhitneyu', () => {
    // R: wilcox.test(x, y, alternative = "g") → W = 35, p-value = 0.1272
    const x = [0.8, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46];
    const y = [1.15, 0.88, 0.9, 0.74, 1.21];
    const r = mannWhitneyU(x, y);
    expect(r.u).toBe(35);
    expect(r.exact).toBe(true);
    expect(r.pGreater).toBeCloseTo(0.1272, 4);
    // SciPy docs: mannwhitneyu(males, females, method="exact") → U1 = 17, p = 0.1111 (two-sided);
    // method="asymptotic" → p = 0.11134688653314041
    const males = [19, 22, 16, 29, 24];
    const females = [20, 11, 17, 12];
    expect(mannWhitneyU(males, females)).toMatchObject({ u: 17, exact: true });
    expect(mannWhitneyU(males, females).pTwoSided).toBeCloseTo(1 / 9, 10);
    expect(mannWhitneyU(males, females, 'normal').pTwoSided).toBeCloseTo(0.11134688653314041, 7);
  });

  it('normalCdf matches known quantiles', () => {
    expect(normalCdf(0)).toBeCloseTo(0.5, 7);
    expect(normalCdf(1.959963984540054)).toBeCloseTo(0.975, 7);
    expect(normalCdf(-3)).toBeCloseTo(0.0013498980316301, 8);
    expect(normalCdf(-6) / 9.865876450377e-10).toBeCloseTo(1, 5);
  });

  const sample = (max: number) =>
    fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 1, maxLength: max });

  it('exact p-values equal a brute-force permutation test (no ties, small samples)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 0, max: 10_000 }), { minLength: 2, maxLength: 13 }),
        fc.nat(),
        (pool, cut) => {
          const k = 1 + (cut % (pool.length - 1));
          const x = pool.slice(0, k);
          const y = pool.slice(k);
          const r = mannWhitneyU(x, y);
          expect(r.exact).toBe(true);
          expect(r.u).toBe(pairU(x, y));
          expect(r.pGreater).toBeCloseTo(permutationPGreater(x, y), 10);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('the tie-corrected normal approximation equals an independent implementation', () => {
    const tied = fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 3, maxLength: 40 });
    fc.assert(
      fc.property(tied, tied, (x, y) => {
        const r = mannWhitneyU(x, y, 'normal');
        expect(r.u).toBe(pairU(x, y));
        const allEqual = new Set([...x, ...y]).size === 1;
        if (allEqual) expect(r.pGreater).toBe(1);
        else expect(Math.abs(r.pGreater - Math.min(1, normalPGreater(x, y)))).toBeLessThan(1e-6);
      }),
      { numRuns: 300 },
    );
  });

  it('and is close to the exact permutation p for moderate samples with ties', () => {
    const x = [3, 4, 4, 5, 6, 6, 7, 8];
    const y = [1, 2, 2, 3, 4, 5, 5, 6];
    expect(Math.abs(mannWhitneyU(x, y).pGreater - permutationPGreater(x, y))).toBeLessThan(0.01);
  });

  it('is symmetric, bounded and depends only on ranks', () => {
    fc.assert(
      fc.property(sample(30), sample(30), (x, y) => {
        const a = mannWhitneyU(x, y);
        const b = mannWhitneyU(y, x);
        expect(a.u + b.u).toBe(x.length * y.length);
        expect(a.pGreater).toBeCloseTo(b.pLess, 12);
        for (const p of [a.pGreater, a.pLess, a.pTwoSided]) {
          expect(p).toBeGreaterThanOrEqual(0);
          expect(p).toBeLessThanOrEqual(1);
        }
        // A strictly increasing transform keeps every rank, hence every p-value.
        const t = (v: number) => Math.log1p(v) * 3 + 7;
        expect(mannWhitneyU(x.map(t), y.map(t)).pGreater).toBeCloseTo(a.pGreater, 12);
      }),
    );
  });
});

describe('the Mann-Whitney judge', () => {
  const opts = {
    direction: 'increase' as const,
    confidence: 0.95,
    effectSize: 0.1,
    tolerance: 0,
    minPoints: 5,
  };
  const d = { label: 'p99 latency', unit: 'ms' };
  const series = fc.array(fc.double({ min: 1, max: 1000, noNaN: true }), { minLength: 5, maxLength: 60 });

  it('never fails a canary identical to the stable, or one that only got better', () => {
    fc.assert(
      fc.property(series, fc.double({ min: 0, max: 0.9, noNaN: true }), (s, gain) => {
        expect(judgeMannWhitney(s, s, opts, d).verdict).toBe('pass');
        expect(
          judgeMannWhitney(
            s.map((v) => v * (1 - gain)),
            s,
            opts,
            d,
          ).verdict,
        ).toBe('pass');
        expect(judgeMannWhitney(s, s, { ...opts, direction: 'either' }, d).verdict).toBe('pass');
      }),
    );
  });

  it('fails a canary clearly worse beyond the effect size', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 100, max: 110, noNaN: true }), { minLength: 10, maxLength: 60 }),
        (s) => {
          const worse = s.map((v) => v * 2);
          const r = judgeMannWhitney(worse, s, opts, d);
          expect(r.verdict).toBe('fail');
          expect(r.message).toMatch(
            /^p99 latency higher on the canary: median \d+ms vs stable \d+ms \(\+\d+%\), p=/,
          );
          expect(judgeMannWhitney(s, worse, { ...opts, direction: 'decrease' }, d).verdict).toBe('fail');
        },
      ),
    );
  });

  it('passes a significant but small shift (within effect size or tolerance)', () => {
    const stable = Array.from({ length: 30 }, (_, i) => 100 + (i % 10) / 10);
    const canary = stable.map((v) => v + 5); // +5%: significant, below the 10% effect size
    const r = judgeMannWhitney(canary, stable, opts, d);
    expect(Number(r.details!.pValue)).toBeLessThan(0.05);
    expect(r.verdict).toBe('pass');
    expect(r.message).toContain('within the allowed effect size 10%');
    expect(judgeMannWhitney(canary, stable, { ...opts, effectSize: 0.01, tolerance: 10 }, d).verdict).toBe(
      'pass',
    );
    expect(judgeMannWhitney(canary, stable, { ...opts, effectSize: 0.01 }, d).verdict).toBe('fail');
  });

  it('is inconclusive with too few points', () => {
    const r = judgeMannWhitney([1, 2], [1, 2, 3, 4, 5, 6], opts, d);
    expect(r).toMatchObject({
      verdict: 'inconclusive',
      message: 'p99 latency: only 2 canary and 6 stable points (need 5 each)',
    });
  });

  it('median', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
  });
});
