import type { StoredRollout } from '../../rollouts/store.ts';

/** What the cache holds by default, in characters of documents and answers (about 4 MB of ASCII). */
const DEFAULT_MAX_CHARS = 4_000_000;

interface Entry {
  version: number;
  /** The stored document the answer was built from. */
  doc: string;
  /** The answer built from it. */
  body: string;
}

/**
 * The JSON answers of recently read rollouts, each kept with the stored document it was built
 * from. A read still fetches the rollout from Redis on every request; only when the stored
 * version and document are exactly the ones of the kept answer is that answer reused, so a
 * client never sees a state older than Redis holds. What it saves is parsing the document,
 * building the client's view and serializing it again, the largest CPU costs of a GET.
 * Bounded by characters held (least recently used dropped first); an answer larger than an
 * eighth of the bound is built every time and never kept.
 */
export class RolloutViewCache {
  private readonly entries = new Map<string, Entry>();
  private chars = 0;

  /** maxChars: the bound on characters of documents and answers kept. Default 4,000,000. */
  constructor(private readonly maxChars = DEFAULT_MAX_CHARS) {}

  /** The answer for rollout `id` in its `stored` state: the kept one when it was built from exactly this state, else `build()`'s. */
  answer(id: string, stored: StoredRollout, build: (stored: StoredRollout) => string): string {
    const kept = this.entries.get(id);
    if (kept) {
      this.entries.delete(id);
      if (kept.version === stored.version && kept.doc === stored.doc) {
        this.entries.set(id, kept);
        return kept.body;
      }
      this.chars -= kept.doc.length + kept.body.length;
    }
    const body = build(stored);
    const size = stored.doc.length + body.length;
    if (size <= this.maxChars / 8) {
      this.entries.set(id, { version: stored.version, doc: stored.doc, body });
      this.chars += size;
      for (const [oldId, e] of this.entries) {
        if (this.chars <= this.maxChars) break;
        this.entries.delete(oldId);
        this.chars -= e.doc.length + e.body.length;
      }
    }
    return body;
  }

  /** Rollouts kept, and characters held (for tests). */
  get stats(): { entries: number; chars: number } {
    return { entries: this.entries.size, chars: this.chars };
  }
}
