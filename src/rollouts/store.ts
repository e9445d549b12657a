import { LuaScript, type Redis } from '../redis.ts';
import { VersionConflict } from './errors.ts';
import type { Rollout, RolloutEvent } from './model.ts';
import { isTerminal, PHASES, type Phase } from './phases.ts';

/** How many events a rollout keeps (a capped stream). */
const EVENTS_MAX = 300;
/** How long an idempotency key maps to its rollout. */
const IDEMPOTENCY_TTL_SECONDS = 7 * 24 * 3600;
/** How long an ended rollout and its events are kept by default (VANE_RETENTION). */
export const DEFAULT_RETENTION_SECONDS = 30 * 24 * 3600;

// Creates a rollout only when no idempotency key and no target lock stands in the way; all or nothing.
const CREATE = `
if KEYS[4] ~= '' then
  local existing = redis.call('GET', KEYS[4])
  if existing then return {'idempotent', existing} end
end
local holder = redis.call('GET', KEYS[2])
if holder then return {'busy', holder, 'VirtualService'} end
holder = redis.call('GET', KEYS[3])
if holder then return {'busy', holder, 'DestinationRule'} end
redis.call('HSET', KEYS[1], 'v', '1', 'doc', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[1])
if KEYS[4] ~= '' then redis.call('SET', KEYS[4], ARGV[1], 'EX', ARGV[4]) end
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[6], ARGV[3], ARGV[1])
redis.call('SADD', KEYS[7], ARGV[1])
redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[5], '*', 'e', ARGV[6])
return {'created', ARGV[1]}
`;

// Compare-and-set of the document, its phase index, its target locks and its events, atomically;
// KEYS[7..] are used-once keys (approvals, gate answers) deleted only when the compare-and-set wins.
const UPDATE = `
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return -1 end
if tonumber(v) ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', tostring(tonumber(v) + 1), 'doc', ARGV[2])
if KEYS[3] ~= KEYS[4] then
  redis.call('SREM', KEYS[3], ARGV[3])
  redis.call('SADD', KEYS[4], ARGV[3])
end
if ARGV[4] == '1' then
  if redis.call('GET', KEYS[5]) == ARGV[3] then redis.call('DEL', KEYS[5]) end
  if redis.call('GET', KEYS[6]) == ARGV[3] then redis.call('DEL', KEYS[6]) end
end
for i = 7, #ARGV do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'e', ARGV[i])
end
if ARGV[4] == '1' then
  -- An ended rollout and its events expire after the retention.
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  redis.call('EXPIRE', KEYS[2], ARGV[6])
end
for i = 7, #KEYS do
  redis.call('DEL', KEYS[i])
end
return 1
`;

// Events outside a state change (a notification delivered, an approval stored). The stream lives as
// long as its rollout: appended to an ended rollout, it keeps the rollout's expiry; appended after
// the rollout expired, nothing is written (a new stream would never expire).
const APPEND = `
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then return 0 end
for i = 2, #ARGV do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[i])
end
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
`;

// How many rollouts each phase index holds. Before counting an ended phase, it drops the ids whose
// rollout expired (retention) from that index and from the index of all rollouts, so the count is
// of rollouts that exist. ARGV[1] is the key prefix of rollout documents; ARGV[i + 1] is '1' when
// KEYS[i] is an ended phase; the last key is the index of all rollouts.
const COUNT_PHASES = `
local all = KEYS[#KEYS]
local out = {}
for i = 1, #KEYS - 1 do
  if ARGV[i + 1] == '1' then
    local cursor = '0'
    repeat
      local page = redis.call('SSCAN', KEYS[i], cursor, 'COUNT', 1000)
      cursor = page[1]
      for _, id in ipairs(page[2]) do
        if redis.call('EXISTS', ARGV[1] .. id) == 0 then
          redis.call('SREM', KEYS[i], id)
          redis.call('ZREM', all, id)
        end
      end
    until cursor == '0'
  end
  out[i] = redis.call('SCARD', KEYS[i])
end
return out
`;

const RENEW_LEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

const RELEASE_LEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

// A tick's first step in one round trip: take the lease (KEYS[1]) and, when taken, read the rollout.
const LEASE_AND_READ = `
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  return redis.call('HMGET', KEYS[2], 'v', 'doc')
end
return false
`;

// A tick's last step in one round trip: give the lease back (when still ours) and answer the
// rollout's version, so the worker sees a command stored meanwhile without reading the document.
const RELEASE_AND_VERSION = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return redis.call('HGET', KEYS[2], 'v')
`;

const SCRIPTS = {
  create: new LuaScript(CREATE),
  update: new LuaScript(UPDATE),
  renewLease: new LuaScript(RENEW_LEASE),
  releaseLease: new LuaScript(RELEASE_LEASE),
  leaseAndRead: new LuaScript(LEASE_AND_READ),
  releaseAndVersion: new LuaScript(RELEASE_AND_VERSION),
};

function parseRollout(v: string | null | undefined, doc: string | null | undefined): Rollout | undefined {
  if (!v || !doc) return undefined;
  return parseStored({ version: Number(v), doc });
}

export type CreateResult =
  | { status: 'created'; rollout: Rollout }
  | { status: 'idempotent'; id: string }
  | { status: 'busy'; id: string; object: 'VirtualService' | 'DestinationRule' };

/** A stored rollout before parsing: its compare-and-set version and its JSON document. */
export interface StoredRollout {
  version: number;
  doc: string;
}

/** The rollout of a stored document. */
export function parseStored({ version, doc }: StoredRollout): Rollout {
  return { ...(JSON.parse(doc) as Rollout), version };
}

/**
 * The key prefixes of a rollout's document and lease (append the id), for the tick scheduler's
 * scripts (src/workers/ticks.ts), which lease and read rollouts in batches.
 */
export function rolloutKeyPrefixes(prefix: string): { rollout: string; lease: string } {
  return { rollout: `${prefix}:r:rollout:`, lease: `${prefix}:r:lease:` };
}

export interface ListQuery {
  namespace?: string;
  phase?: Phase;
  /** Only active (non-terminal) rollouts. */
  active?: boolean;
  limit?: number;
  /** Only rollouts created before this time (ms), for paging. */
  before?: number;
}

/**
 * Rollouts, their events, target locks, idempotency keys and indexes in Redis. Every update is a
 * compare-and-set on the rollout's version.
 */
export class RolloutStore {
  private readonly retentionSeconds: number;
  private readonly writeListeners = new Set<(id: string) => void>();
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    /** retentionSeconds: how long an ended rollout and its events are kept. Default 30 days. */
    { retentionSeconds = DEFAULT_RETENTION_SECONDS }: { retentionSeconds?: number } = {},
  ) {
    this.retentionSeconds = retentionSeconds;
  }

  private key(...parts: string[]): string {
    return [this.prefix, 'r', ...parts].join(':');
  }
  private rolloutKey(id: string) {
    return this.key('rollout', id);
  }
  eventsKey(id: string) {
    return this.key('events', id);
  }
  private phaseKey(phase: Phase) {
    return this.key('idx', 'phase', phase);
  }
  private lockKeys(r: Rollout): [string, string] {
    const t = r.spec.target;
    const cluster = t.cluster ?? '_';
    return [
      this.key('lock', 'vs', cluster, t.namespace, t.virtualService),
      this.key('lock', 'dr', cluster, t.namespace, t.destinationRule),
    ];
  }

  /** The id of the active rollout holding this rollout's VirtualService or DestinationRule, if any. */
  async targetHolder(r: Rollout): Promise<string | undefined> {
    const [vs, dr] = this.lockKeys(r);
    const [a, b] = await this.redis.mget(vs, dr);
    return a ?? b ?? undefined;
  }

  /** Stores a new rollout unless its idempotency key is known or its target is held by another rollout. */
  async create(r: Rollout, event: RolloutEvent): Promise<CreateResult> {
    try {
      return await this.createOnce(r, event);
    } finally {
      this.wrote(r.id);
    }
  }

  private async createOnce(r: Rollout, event: RolloutEvent): Promise<CreateResult> {
    const [vs, dr] = this.lockKeys(r);
    const idem = r.spec.idempotencyKey ? this.key('idem', r.spec.idempotencyKey) : '';
    const out = (await SCRIPTS.create.run(
      this.redis,
      [
        this.rolloutKey(r.id),
        vs,
        dr,
        idem,
        this.key('idx', 'all'),
        this.key('idx', 'ns', r.spec.target.namespace),
        this.phaseKey(r.phase),
        this.eventsKey(r.id),
      ],
      [
        r.id,
        JSON.stringify(r),
        String(r.createdAt),
        String(IDEMPOTENCY_TTL_SECONDS),
        String(EVENTS_MAX),
        JSON.stringify(event),
      ],
    )) as string[];
    if (out[0] === 'created') return { status: 'created', rollout: { ...r, version: 1 } };
    if (out[0] === 'idempotent') return { status: 'idempotent', id: out[1]! };
    return { status: 'busy', id: out[1]!, object: out[2] as 'VirtualService' | 'DestinationRule' };
  }

  async get(id: string): Promise<Rollout | undefined> {
    const stored = await this.getStored(id);
    return stored && parseStored(stored);
  }

  /**
   * A rollout as Redis holds it, unparsed: its version and its JSON document, read in one round
   * trip. Every write of the document bumps the version in the same script (compare-and-set), so
   * the pair names one state; a reader that keeps what it built from a document (the API's
   * answer) can reuse it while the stored document is unchanged.
   */
  async getStored(id: string): Promise<StoredRollout | undefined> {
    const [v, doc] = await this.redis.hmget(this.rolloutKey(id), 'v', 'doc');
    if (!v || !doc) return undefined;
    return { version: Number(v), doc };
  }

  /** getStored on another connection: the one client-side caching tracks (src/rollouts/read-cache.ts). */
  async getStoredOn(conn: Redis, id: string): Promise<StoredRollout | undefined> {
    const [v, doc] = await conn.hmget(this.rolloutKey(id), 'v', 'doc');
    if (!v || !doc) return undefined;
    return { version: Number(v), doc };
  }

  /** The Redis key of a rollout's document (client-side caching maps the keys Redis invalidates back to ids). */
  documentKey(id: string): string {
    return this.rolloutKey(id);
  }

  /**
   * Calls `listener` with a rollout's id whenever a write of its document through this store has
   * settled (done or failed, since a failed call may still have written), before the writer's
   * caller resumes: a process's copy of documents drops its own writes at once. Returns the
   * unsubscribe.
   */
  onDocumentWrite(listener: (id: string) => void): () => void {
    this.writeListeners.add(listener);
    return () => this.writeListeners.delete(listener);
  }

  /**
   * Tells the write listeners that rollout `id`'s document was written: the store's own writes
   * call it, and so does the tick schedule after a guard result it wrote in its own script.
   */
  wrote(id: string): void {
    for (const listener of this.writeListeners) listener(id);
  }

  /** The stored version alone (cheap: to see whether a command arrived during a tick). */
  async version(id: string): Promise<number | undefined> {
    const v = await this.redis.hget(this.rolloutKey(id), 'v');
    return v ? Number(v) : undefined;
  }

  /**
   * Writes `next` if the stored version is still `prev.version`, with its events, atomically, and
   * deletes the `consume` keys (approvals used by this change) in the same step.
   * Throws VersionConflict otherwise (nothing deleted). Returns the stored rollout (version bumped).
   */
  async update(
    prev: Rollout,
    next: Rollout,
    events: RolloutEvent[] = [],
    consume: string[] = [],
  ): Promise<Rollout> {
    try {
      return await this.updateOnce(prev, next, events, consume);
    } finally {
      this.wrote(prev.id);
    }
  }

  private async updateOnce(
    prev: Rollout,
    next: Rollout,
    events: RolloutEvent[],
    consume: string[],
  ): Promise<Rollout> {
    const [vs, dr] = this.lockKeys(prev);
    const stored = { ...next, version: prev.version + 1 };
    const res = (await SCRIPTS.update.run(
      this.redis,
      [
        this.rolloutKey(prev.id),
        this.eventsKey(prev.id),
        this.phaseKey(prev.phase),
        this.phaseKey(next.phase),
        vs,
        dr,
        ...consume,
      ],
      [
        String(prev.version),
        JSON.stringify(stored),
        prev.id,
        isTerminal(next.phase) ? '1' : '0',
        String(EVENTS_MAX),
        String(this.retentionSeconds),
        ...events.map((e) => JSON.stringify(e)),
      ],
    )) as number;
    if (res !== 1) throw new VersionConflict(prev.id);
    return stored;
  }

  /** Reads, applies `change`, and writes with compare-and-set; retries on a concurrent change. */
  async mutate(
    id: string,
    change: (r: Rollout) => { next: Rollout; events?: RolloutEvent[] } | undefined,
    attempts = 10,
  ): Promise<Rollout | undefined> {
    for (let i = 0; i < attempts; i++) {
      const cur = await this.get(id);
      if (!cur) return undefined;
      const out = change(cur);
      if (!out) return cur;
      try {
        return await this.update(cur, out.next, out.events);
      } catch (e) {
        if (!(e instanceof VersionConflict)) throw e;
      }
    }
    throw new VersionConflict(id);
  }

  /**
   * The ids of every active (non-terminal) rollout, in batches: SSCAN over the phase indexes, so
   * 10,000 rollouts cost a few round trips, not one per rollout. A rollout changing phase during the
   * scan may be missed or seen twice; the next scan sees it.
   */
  async *activeIds(batch = 1000): AsyncGenerator<string[]> {
    for (const p of PHASES) {
      if (isTerminal(p)) continue;
      let cursor = '0';
      do {
        const [next, ids] = await this.redis.sscan(this.phaseKey(p), cursor, 'COUNT', batch);
        cursor = next;
        if (ids.length) yield ids;
      } while (cursor !== '0');
    }
  }

  /**
   * How many rollouts each phase holds now (for the vane_rollouts gauge). Ended rollouts that
   * expired are dropped from the indexes first, in the same script, so they are not counted; that
   * pass is over the ended rollouts still kept (the retention's worth), once per call.
   */
  async countByPhase(): Promise<Record<string, number>> {
    const res = (await this.redis.eval(
      COUNT_PHASES,
      PHASES.length + 1,
      ...PHASES.map((p) => this.phaseKey(p)),
      this.key('idx', 'all'),
      this.rolloutKey(''),
      ...PHASES.map((p) => (isTerminal(p) ? '1' : '0')),
    )) as number[];
    return Object.fromEntries(PHASES.map((p, i) => [p, Number(res[i] ?? 0)]));
  }

  async list(q: ListQuery = {}): Promise<Rollout[]> {
    const limit = Math.min(q.limit ?? 50, 500);
    let ids: string[];
    if (q.phase) {
      ids = await this.redis.smembers(this.phaseKey(q.phase));
    } else if (q.active) {
      const phases = PHASES.filter((p) => !isTerminal(p));
      ids = (await Promise.all(phases.map((p) => this.redis.smembers(this.phaseKey(p))))).flat();
    } else {
      const index = q.namespace ? this.key('idx', 'ns', q.namespace) : this.key('idx', 'all');
      const max = q.before !== undefined ? `(${q.before}` : '+inf';
      ids = await this.redis.zrevrangebyscore(index, max, '-inf', 'LIMIT', 0, limit);
    }
    const found = await Promise.all(ids.map((id) => this.get(id)));
    const rollouts = found.filter((r): r is Rollout => r !== undefined);
    const expired = ids.filter((_, i) => found[i] === undefined);
    if (expired.length)
      await this.forget(expired, q.namespace ? this.key('idx', 'ns', q.namespace) : undefined);
    return rollouts
      .filter((r) => (q.namespace ? r.spec.target.namespace === q.namespace : true))
      .filter((r) => (q.before !== undefined ? r.createdAt < q.before : true))
      .sort((a, b) => b.createdAt - a.createdAt)
      .slice(0, limit);
  }

  async events(id: string, opts: { after?: string; limit?: number } = {}): Promise<RolloutEvent[]> {
    const start = opts.after ? `(${opts.after}` : '-';
    const rows = await this.redis.xrange(
      this.eventsKey(id),
      start,
      '+',
      'COUNT',
      Math.min(opts.limit ?? 500, 1000),
    );
    return rows.map(([sid, fields]) => ({ ...(JSON.parse(fields[1]!) as RolloutEvent), id: sid }));
  }

  /** Drops ids of rollouts that expired (retention) from the indexes. */
  private async forget(ids: string[], nsIndex?: string): Promise<void> {
    const pipe = this.redis.pipeline();
    if (nsIndex) pipe.zrem(nsIndex, ...ids);
    pipe.zrem(this.key('idx', 'all'), ...ids);
    for (const p of PHASES.filter(isTerminal)) pipe.srem(this.phaseKey(p), ...ids);
    await pipe.exec();
  }

  /** Ids of the rollouts that have not ended, all at once (the event streams follow each of them). */
  async activeIdList(): Promise<string[]> {
    const all: string[] = [];
    for await (const ids of this.activeIds()) all.push(...ids);
    return all;
  }

  /** Ids of the rollouts created at or after `ms` (their creation time). */
  createdSince(ms: number): Promise<string[]> {
    return this.redis.zrangebyscore(this.key('idx', 'all'), ms, '+inf');
  }

  /** Redis's own clock in ms: event stream ids are made from it. */
  async serverTimeMs(): Promise<number> {
    const [s, us] = await this.redis.time();
    return Number(s) * 1000 + Math.floor(Number(us) / 1000);
  }

  /**
   * A connection of its own for blocking reads of event streams (an XREAD BLOCK holds its
   * connection), its command timeout a little over the longest block. The caller disconnects it.
   */
  blockingConnection(maxBlockMs: number): Redis {
    return this.redis.duplicate({ commandTimeout: maxBlockMs + 5_000, maxRetriesPerRequest: 1 });
  }

  /**
   * New events of several rollouts after each one's cursor (a stream id), on `conn`: waits up to
   * `blockMs` when none is there yet (0: do not wait). At most `count` per rollout.
   */
  async readEventsAfter(
    conn: Redis,
    cursors: ReadonlyMap<string, string>,
    { blockMs, count }: { blockMs: number; count: number },
  ): Promise<{ rolloutId: string; event: RolloutEvent & { id: string } }[]> {
    if (cursors.size === 0) return [];
    const ids = [...cursors.keys()];
    const args: (string | number)[] = ['COUNT', count];
    if (blockMs > 0) args.push('BLOCK', blockMs);
    args.push('STREAMS', ...ids.map((id) => this.eventsKey(id)), ...ids.map((id) => cursors.get(id)!));
    // xread (not call('XREAD')): ioredis gives the per-stream pairs only through the typed command.
    const xread = conn.xread.bind(conn) as (...a: (string | number)[]) => Promise<unknown>;
    const res = (await xread(...args)) as [string, [string, string[]][]][] | null;
    if (!res) return [];
    const byKey = new Map(ids.map((id) => [this.eventsKey(id), id]));
    return res.flatMap(([key, rows]) =>
      rows.map(([sid, fields]) => ({
        rolloutId: byKey.get(key)!,
        event: { ...(JSON.parse(fields[1]!) as RolloutEvent), id: sid },
      })),
    );
  }

  /**
   * Appends events outside a state change (e.g. a notification delivered). The stream keeps the
   * expiry of its rollout when that has ended, and nothing is written once the rollout expired.
   */
  async appendEvents(id: string, events: RolloutEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.redis.eval(
      APPEND,
      2,
      this.rolloutKey(id),
      this.eventsKey(id),
      String(EVENTS_MAX),
      ...events.map((e) => JSON.stringify(e)),
    );
  }

  /** A per-rollout lease so that two workers never work on the same rollout at once. */
  async acquireLease(id: string, token: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(this.key('lease', id), token, 'PX', ttlMs, 'NX')) === 'OK';
  }

  /**
   * Takes the rollout's lease and reads the rollout, in one round trip: `leased` false when another
   * worker holds it; `rollout` undefined when it does not exist (ended and expired).
   */
  async leaseAndGet(
    id: string,
    token: string,
    ttlMs: number,
  ): Promise<{ leased: false } | { leased: true; rollout: Rollout | undefined }> {
    const out = (await SCRIPTS.leaseAndRead.run(
      this.redis,
      [this.key('lease', id), this.rolloutKey(id)],
      [token, String(ttlMs)],
    )) as [string | null, string | null] | null;
    if (!out) return { leased: false };
    return { leased: true, rollout: parseRollout(out[0], out[1]) };
  }

  /** Extends the lease when this token still holds it; false when it was lost (expired, or taken over). */
  async renewLease(id: string, token: string, ttlMs: number): Promise<boolean> {
    return (await SCRIPTS.renewLease.run(this.redis, [this.key('lease', id)], [token, String(ttlMs)])) === 1;
  }

  async releaseLease(id: string, token: string): Promise<void> {
    await SCRIPTS.releaseLease.run(this.redis, [this.key('lease', id)], [token]);
  }

  /** Releases the lease (when this token holds it) and answers the rollout's stored version, in one round trip. */
  async releaseLeaseAndVersion(id: string, token: string): Promise<number | undefined> {
    const v = await SCRIPTS.releaseAndVersion.run(
      this.redis,
      [this.key('lease', id), this.rolloutKey(id)],
      [token],
    );
    return v ? Number(v) : undefined;
  }
}
