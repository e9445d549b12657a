import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SCOPES, TokenTable } from './tokens.ts';

const sha = (t: string) => createHash('sha256').update(t).digest('hex');

describe('TokenTable', () => {
  const table = new TokenTable({
    plain: ['plain-a', 'plain-b'],
    scoped: [
      { name: 'ci', sha256: sha('ci-token'), scopes: ['trigger', 'read', 'read'], namespaces: ['shop'] },
    ],
  });
  it('finds the principal of a token by its hash', () => {
    expect(table.find('plain-b')).toEqual({ name: 'token-2', scopes: SCOPES });
    expect(table.find('ci-token')).toEqual({ name: 'ci', scopes: ['trigger', 'read'], namespaces: ['shop'] });
  });
  it('knows no other token, of any length', () => {
    for (const t of ['', 'plain', 'plain-a ', 'ci-token'.repeat(100), sha('ci-token')])
      expect(table.find(t)).toBeUndefined();
    expect(new TokenTable().size).toBe(0);
  });
  it('hashes a token once while it keeps being presented, and keeps a bounded number of digests', () => {
    const t = new TokenTable({ plain: ['plain-a'] });
    for (let i = 0; i < 1000; i++) expect(t.find(`unknown-${i}`)).toBeUndefined();
    expect(t.digestsKept).toBe(256);
    // A token presented again after being pushed out is hashed again and still found.
    expect(t.find('plain-a')).toEqual({ name: 'token-1', scopes: SCOPES });
    expect(t.find('unknown-0')).toBeUndefined();
    expect(t.find('plain-a')).toEqual({ name: 'token-1', scopes: SCOPES });
    expect(t.digestsKept).toBe(256);
  });
});
