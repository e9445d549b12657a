import { describe, expect, it } from 'vitest';
import { RolloutViewCache } from './view-cache.ts';

describe('RolloutViewCache', () => {
  const doc = (n: number, pad = 0) => JSON.stringify({ n, pad: 'x'.repeat(pad) });

  it('builds once per stored state and reuses the answer only for exactly that state', () => {
    const cache = new RolloutViewCache();
    let built = 0;
    const build = ({ doc }: { doc: string }) => {
      built++;
      return `answer of ${doc}`;
    };
    expect(cache.answer('a', { version: 1, doc: doc(1) }, build)).toBe(`answer of ${doc(1)}`);
    expect(cache.answer('a', { version: 1, doc: doc(1) }, build)).toBe(`answer of ${doc(1)}`);
    expect(built).toBe(1);
    // A new version, or the same version with another document, is built afresh.
    expect(cache.answer('a', { version: 2, doc: doc(2) }, build)).toBe(`answer of ${doc(2)}`);
    expect(cache.answer('a', { version: 2, doc: doc(3) }, build)).toBe(`answer of ${doc(3)}`);
    expect(built).toBe(3);
    expect(cache.stats.entries).toBe(1);
  });

  it('holds at most its bound, dropping the least recently used first', () => {
    const cache = new RolloutViewCache(8_000);
    const build = ({ doc }: { doc: string }) => doc;
    // Each entry holds a 500-character document and its 500-character answer.
    for (let i = 0; i < 20; i++) cache.answer(`r${i}`, { version: 1, doc: doc(i, 400).padEnd(500) }, build);
    expect(cache.stats.chars).toBeLessThanOrEqual(8_000);
    expect(cache.stats.entries).toBe(8);
    let built = 0;
    const counted = (s: { doc: string }) => {
      built++;
      return s.doc;
    };
    cache.answer('r19', { version: 1, doc: doc(19, 400).padEnd(500) }, counted);
    expect(built).toBe(0);
    cache.answer('r0', { version: 1, doc: doc(0, 400).padEnd(500) }, counted);
    expect(built).toBe(1);
  });

  it('never keeps an answer larger than an eighth of its bound', () => {
    const cache = new RolloutViewCache(8_000);
    const big = { version: 1, doc: doc(1, 2_000) };
    cache.answer('big', big, (s) => s.doc);
    expect(cache.stats).toEqual({ entries: 0, chars: 0 });
  });
});
