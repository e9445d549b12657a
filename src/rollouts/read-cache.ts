import type { Logger } from '../observability/logger.ts';
import { connectRedis, type Redis } from '../redis.ts';
import type { RolloutStore, StoredRollout } from './store.ts';

/** The channel Redis publishes invalidations on in RESP2's redirect mode. */
const INVALIDATE = '__redis__:invalidate';
/** What the copy holds at most, in characters of documents, whatever the entry bound. */
const MAX_CHARS = 8_000_000;
/** A document larger than this is read from Redis every time, never kept. */
const MAX_DOC_CHARS = 256_000;

/** Reads of stored rollouts (the GET route takes either the store or a RolloutReadCache). */
export interface StoredReads {
  getStored(id: string): Promise<StoredRollout | undefined>;
}

export interface RolloutReadCacheOptions {
  redisUrl: string;
  /** Where reads fall back to, and whose own writes drop their copy at once. */
  store: RolloutStore;
  /** Documents kept, least recently read dropped first. Default 10,000. */
  maxEntries?: number;
  /**
   * The longest a kept document may be served after another process changed it in Redis, in ms:
   * the copy is used only while Redis answered, within this time, a PING sent on the
   * invalidation connection (so every invalidation sent before it has arrived). Default 50.
   */
  maxLagMs?: number;
  /** Prefix of the two connections' names (CLIENT LIST). Default "vane". */
  name?: string;
  /** Wait before a lost pair of connections is made again, in ms. Default 1000. */
  retryMs?: number;
  /** A PING unanswered this long means the invalidation connection is stuck: it is dropped. Default 2000. */
  stuckMs?: number;
  logger?: Logger;
}

/** The two connections of one tracking session; a lost one ends both and the copy with them. */
interface Session {
  /** SUBSCRIBEd to the invalidations; its PINGs bound how late an invalidation can be. */
  sub: Redis;
  /** Reads with CLIENT TRACKING on, its invalidations redirected to `sub`. */
  reader: Redis;
  ready: boolean;
  lost: boolean;
  /** When the last answered PING on `sub` was sent (performance.now()); every invalidation Redis sent before then has been applied. */
  confirmedAt: number;
  /** When the PING in flight was sent, if one is. */
  pingSentAt: number | undefined;
  timer: NodeJS.Timeout | undefined;
}

/**
 * An in-process copy of recently read rollout documents, kept fresh by Redis's client-side caching
 * (CLIENT TRACKING, RESP2 redirect mode): a reading connection with tracking on and a second
 * connection SUBSCRIBEd to `__redis__:invalidate`, where Redis sends the key of every tracked
 * document written since it was read, by any client.
 *
 * What a reader can see: a write by this process (through `store`) drops its copy before the write
 * returns, so it is seen at once. A write by another process is seen once its invalidation
 * arrives, usually well under a millisecond; the copy is used only while a PING sent on the
 * invalidation connection at most `maxLagMs` ago (default 50 ms) has been answered, so a served
 * document is never older than what Redis held `maxLagMs` before the read. When either connection
 * closes, fails or stalls, the copy is emptied and every read goes to Redis until a new pair is
 * connected, subscribed, tracking and has answered a PING. A read in flight when its key is
 * invalidated is answered but not kept, since its reply may predate the write.
 */
export class RolloutReadCache implements StoredReads {
  private readonly entries = new Map<string, StoredRollout>();
  /** Reads in flight through the tracked connection, by id; an invalidation removes the id, so the reply is not kept. */
  private readonly pending = new Map<string, object>();
  private chars = 0;
  private session: Session | undefined;
  private closed = false;
  private retry: NodeJS.Timeout | undefined;
  private readonly keyPrefix: string;
  private readonly maxEntries: number;
  private readonly maxLagMs: number;
  private readonly pingEveryMs: number;
  private readonly unsubscribeWrites: () => void;
  /** Sessions made ready so far (for tests and logs). */
  sessions = 0;

  constructor(private readonly opts: RolloutReadCacheOptions) {
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.maxLagMs = opts.maxLagMs ?? 50;
    // Three PINGs per bound: an ordinary round trip never lets the confirmation age past it, and
    // the PINGs cost little (about 60 a second at the default).
    this.pingEveryMs = Math.max(1, Math.floor(this.maxLagMs / 3));
    this.keyPrefix = opts.store.documentKey('');
    this.unsubscribeWrites = opts.store.onDocumentWrite((id) => this.invalidate(id));
  }

  /** Connects the tracking pair; reads go to Redis until it is ready. */
  start(): this {
    this.connect();
    return this;
  }

  /** Whether a read may be answered from the copy now. */
  get usable(): boolean {
    const s = this.session;
    return s?.ready === true && performance.now() - s.confirmedAt <= this.maxLagMs;
  }

  async getStored(id: string): Promise<StoredRollout | undefined> {
    const s = this.session;
    if (!s?.ready || performance.now() - s.confirmedAt > this.maxLagMs) return this.opts.store.getStored(id);
    const kept = this.entries.get(id);
    if (kept) {
      this.entries.delete(id);
      this.entries.set(id, kept);
      return kept;
    }
    const token = {};
    this.pending.set(id, token);
    let stored: StoredRollout | undefined;
    try {
      stored = await this.opts.store.getStoredOn(s.reader, id);
    } catch {
      if (this.pending.get(id) === token) this.pending.delete(id);
      // The tracked connection failing is no reason to fail the read.
      return this.opts.store.getStored(id);
    }
    if (this.pending.get(id) === token) {
      this.pending.delete(id);
      if (stored && this.session === s && s.ready) this.keep(id, stored);
    }
    return stored;
  }

  /** Drops the copy of rollout `id` (its document was written, or Redis said so). */
  invalidate(id: string): void {
    this.pending.delete(id);
    const kept = this.entries.get(id);
    if (kept) {
      this.entries.delete(id);
      this.chars -= kept.doc.length;
    }
  }

  /** Documents kept and characters held, and whether the copy is in use (for tests). */
  get stats(): { entries: number; chars: number; usable: boolean; sessions: number } {
    return { entries: this.entries.size, chars: this.chars, usable: this.usable, sessions: this.sessions };
  }

  /** Ends the tracking pair; reads after this go to Redis through the store. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    this.unsubscribeWrites();
    const s = this.session;
    if (s) this.lose(s, undefined);
  }

  private keep(id: string, stored: StoredRollout): void {
    if (stored.doc.length > MAX_DOC_CHARS || this.maxEntries === 0) return;
    this.entries.set(id, stored);
    this.chars += stored.doc.length;
    for (const [oldId, e] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.chars <= MAX_CHARS) break;
      this.entries.delete(oldId);
      this.chars -= e.doc.length;
    }
  }

  private clear(): void {
    this.entries.clear();
    this.pending.clear();
    this.chars = 0;
  }

  private connect(): void {
    if (this.closed) return;
    const name = this.opts.name ?? 'vane';
    const s: Session = {
      // No auto-pipelining: its PINGs go out one at a time anyway, and a pipeline per PING costs more.
      sub: connectRedis(this.opts.redisUrl, {
        role: 'client',
        name: `${name}-invalidations`,
        reconnect: false,
        autoPipelining: false,
        // RESP2: Redis sends a redirected invalidation to a RESP3 connection as a push frame, which
        // ioredis drops; to a RESP2 one as a message of the channel it subscribed to.
        protocol: 2,
      }),
      reader: connectRedis(this.opts.redisUrl, { role: 'client', name: `${name}-tracked`, reconnect: false }),
      ready: false,
      lost: false,
      confirmedAt: Number.NEGATIVE_INFINITY,
      pingSentAt: undefined,
      timer: undefined,
    };
    this.session = s;
    for (const c of [s.sub, s.reader]) {
      c.once('close', () => this.lose(s, 'a tracking connection closed'));
      c.once('end', () => this.lose(s, 'a tracking connection ended'));
    }
    s.sub.on('messageBuffer', (channel: Buffer, message: unknown) => {
      if (s === this.session && channel.toString() === INVALIDATE) this.onInvalidate(message);
    });
    this.establish(s).catch((e: unknown) =>
      this.lose(s, `client-side caching not set up: ${e instanceof Error ? e.message : String(e)}`),
    );
  }

  private async establish(s: Session): Promise<void> {
    // CLIENT ID before SUBSCRIBE: a subscribed RESP2 connection takes no other command.
    const subId = await s.sub.call('CLIENT', 'ID');
    await s.sub.subscribe(INVALIDATE);
    await s.reader.call('CLIENT', 'TRACKING', 'ON', 'REDIRECT', String(subId));
    const sent = performance.now();
    await s.sub.ping();
    if (s.lost || this.session !== s) return;
    // Nothing was kept before (the copy is emptied whenever a session is lost), so none of it can
    // predate the tracking.
    this.clear();
    s.confirmedAt = sent;
    s.ready = true;
    this.sessions++;
    s.timer = setInterval(() => this.heartbeat(s), this.pingEveryMs);
    s.timer.unref();
    this.opts.logger?.debug({ maxLagMs: this.maxLagMs }, 'client-side caching of rollouts on');
  }

  private heartbeat(s: Session): void {
    const now = performance.now();
    if (s.pingSentAt !== undefined) {
      if (now - s.pingSentAt > (this.opts.stuckMs ?? 2_000))
        this.lose(s, 'the invalidation connection stalled');
      return;
    }
    s.pingSentAt = now;
    s.sub.ping().then(
      () => {
        if (s.pingSentAt === now) {
          s.pingSentAt = undefined;
          s.confirmedAt = now;
        }
      },
      () => this.lose(s, 'a PING on the invalidation connection failed'),
    );
  }

  private onInvalidate(message: unknown): void {
    // A null message: Redis dropped all tracking (FLUSHALL, its tracking table full).
    if (message === null || message === undefined) {
      this.clear();
      return;
    }
    const keys = Array.isArray(message) ? message : [message];
    for (const key of keys) {
      const k = String(key);
      if (k.startsWith(this.keyPrefix)) this.invalidate(k.slice(this.keyPrefix.length));
    }
  }

  /** Ends a session: the copy is emptied at once, both connections dropped, a new pair made later. */
  private lose(s: Session, reason: string | undefined): void {
    if (s.lost) return;
    s.lost = true;
    s.ready = false;
    clearInterval(s.timer);
    if (this.session === s) {
      this.session = undefined;
      this.clear();
    }
    s.sub.disconnect();
    s.reader.disconnect();
    if (this.closed) return;
    if (reason) this.opts.logger?.warn({ reason }, 'client-side caching of rollouts off until reconnected');
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.connect(), this.opts.retryMs ?? 1_000);
    this.retry.unref();
  }
}
