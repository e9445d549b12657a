import { createHash, timingSafeEqual } from 'node:crypto';
import { type ApiTokenEntry, SCOPES, type Scope } from '../../config.ts';

export { SCOPES, type Scope };

/** Who is calling: a token's name, its scopes and (when limited) its namespaces. */
export interface Principal {
  name: string;
  scopes: readonly Scope[];
  /** Only these namespaces; undefined means every namespace. */
  namespaces?: readonly string[];
}

/** The caller when no token is configured (local use): every scope. */
export const LOCAL_PRINCIPAL: Principal = Object.freeze({ name: 'local', scopes: SCOPES });

interface StoredToken {
  principal: Principal;
  hash: Buffer;
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** How many presented tokens keep their digest (a client sends the same token on every request). */
const DIGEST_CACHE_SIZE = 256;

/**
 * The configured tokens, by hash: plain ones (VANE_API_TOKENS, every scope, named `token-1`, …)
 * and the YAML file's hashed ones with their scopes and namespaces.
 */
export class TokenTable {
  private readonly tokens: StoredToken[];
  /**
   * Digests of recently presented tokens, least recently used first (a Map keeps insertion
   * order). Hashing is most of what a lookup costs; the comparisons below still run in full on
   * every request. A hit says only that the same string was presented before, which tells a
   * caller nothing about the stored tokens.
   */
  private readonly digests = new Map<string, Buffer>();
  constructor({ plain = [], scoped = [] }: { plain?: string[]; scoped?: ApiTokenEntry[] } = {}) {
    this.tokens = [
      ...plain.map((t, i) => ({ principal: { name: `token-${i + 1}`, scopes: SCOPES }, hash: sha256(t) })),
      ...scoped.map((t) => ({
        principal: {
          name: t.name,
          scopes: [...new Set(t.scopes)],
          ...(t.namespaces ? { namespaces: t.namespaces } : {}),
        },
        hash: Buffer.from(t.sha256, 'hex'),
      })),
    ];
  }

  get size(): number {
    return this.tokens.length;
  }

  /** How many presented tokens' digests are kept (bounded; for tests). */
  get digestsKept(): number {
    return this.digests.size;
  }

  /**
   * The principal of a presented token, or undefined. The token is hashed first, so every
   * comparison is between two 32-byte digests, and every stored hash is compared (no early
   * return): the time taken says nothing about which token, or how much of one, matched.
   */
  find(presented: string): Principal | undefined {
    const h = this.digest(presented);
    let found: Principal | undefined;
    for (const t of this.tokens) {
      const same = timingSafeEqual(h, t.hash);
      if (same && !found) found = t.principal;
    }
    return found;
  }

  private digest(presented: string): Buffer {
    let h = this.digests.get(presented);
    if (h) {
      this.digests.delete(presented);
    } else {
      h = sha256(presented);
      if (this.digests.size >= DIGEST_CACHE_SIZE) {
        this.digests.delete(this.digests.keys().next().value as string);
      }
    }
    this.digests.set(presented, h);
    return h;
  }
}
