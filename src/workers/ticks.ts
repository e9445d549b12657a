import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from '../observability/logger.ts';
import { LuaScript, type Redis } from '../redis.ts';
import type { DomainContext, TickScheduler } from '../rollouts/context.ts';
import { runClaimedTick, TICK_LEASE_MS, type TickOutcome } from '../rollouts/engine.ts';
import type { Rollout } from '../rollouts/model.ts';
import { parseStored, type RolloutStore, rolloutKeyPrefixes } from '../rollouts/store.ts';
import type { BackgroundRunner, RunningService } from './runtime.ts';

/**
 * Rollout ticks are scheduled in one Redis sorted set, not as a queue job each: member = rollout
 * id, score = when its next tick is due (ms). A worker claims the due ones in one script call per
 * batch — for each, the rollout's lease, its document, and its score moved to the lease's expiry, so
 * the ticks of a worker that dies come due again by themselves — and gives each back in one script
 * call that releases the lease and sets the next due time (and, for a guard tick that only recorded
 * its check, saves that too). A guard tick then costs Redis well under ten commands, where a queue
 * job's moves between its lists cost about forty; see BENCHMARKS.md.
 */
export const TICK_QUEUE = 'ticks';

/** How often each worker looks for active rollouts that have no due time (lost from the set). */
export const SWEEP_INTERVAL_MS = 5_000;
/** How often an idle worker looks for ticks made due by another process (a command's wake). */
export const POLL_MS = 100;
/** Most rollouts claimed by one script call. */
const CLAIM_BATCH = 100;

// KEYS[1] the due set. ARGV: now, most to claim, lease ms, token, lease key prefix, rollout key prefix.
// Answers {claimed, next}: claimed = {id, due, version, doc} per rollout leased; next = the earliest
// due time left (after the claimed ones moved to their lease's expiry), or false when none.
// A rollout whose lease another tick holds (a direct tick, a wake's race) is put back for when that
// lease expires; the holder sets its next due time when it finishes.
const CLAIM = `
local now = tonumber(ARGV[1])
local leaseMs = tonumber(ARGV[3])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for i = 1, #due, 2 do
  local id = due[i]
  local lease = ARGV[5] .. id
  if redis.call('SET', lease, ARGV[4], 'PX', leaseMs, 'NX') then
    redis.call('ZADD', KEYS[1], now + leaseMs, id)
    local doc = redis.call('HMGET', ARGV[6] .. id, 'v', 'doc')
    out[#out + 1] = {id, due[i + 1], doc[1], doc[2]}
  else
    local ttl = redis.call('PTTL', lease)
    if ttl < 50 then ttl = 50 end
    redis.call('ZADD', KEYS[1], now + ttl, id)
  end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {out, first[2] or false}
`;

// KEYS: the due set, the lease, the rollout. ARGV: id, token, next due ('' when the rollout is done),
// the version the tick last knew ('' for none), the due time for "soon", and for a deferred save the
// version it was decided on and the document ('' and '' for none).
// Answers {1, saved} when the tick still held the lease (saved: 1 saved, 0 a conflict, -1 no save),
// {0} when it had lost it (the new holder schedules the rollout).
const FINISH = `
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return {0} end
redis.call('DEL', KEYS[2])
local v = redis.call('HGET', KEYS[3], 'v')
if not v or ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return {1, -1}
end
local at = tonumber(ARGV[3])
local saved = -1
if ARGV[6] ~= '' then
  if v == ARGV[6] then
    redis.call('HSET', KEYS[3], 'v', tostring(tonumber(v) + 1), 'doc', ARGV[7])
    saved = 1
  else
    -- a command landed after the check was decided: decide again at once
    saved = 0
    at = tonumber(ARGV[5])
  end
elseif ARGV[4] ~= '' and v ~= ARGV[4] then
  -- a command stored while the tick ran (its wake found the lease held): look again soon
  local soon = tonumber(ARGV[5])
  if soon < at then at = soon end
end
redis.call('ZADD', KEYS[1], at, ARGV[1])
return {1, saved}
`;

// KEYS[1] the due set; ARGV the ids of active rollouts. Gives each one with no due time one now.
const SWEEP = `
local scores = redis.call('ZMSCORE', KEYS[1], unpack(ARGV, 2))
local added = {}
for i = 1, #ARGV - 1 do
  if not scores[i] then
    redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[i + 1])
    added[#added + 1] = ARGV[i + 1]
  end
end
return added
`;

const SCRIPTS = { claim: new LuaScript(CLAIM), finish: new LuaScript(FINISH), sweep: new LuaScript(SWEEP) };

/** A rollout this worker has claimed: its lease token, when it was due, and its stored state. */
export interface ClaimedTick {
  id: string;
  token: string;
  dueAt: number;
  rollout: Rollout | undefined;
}

/**
 * The rollouts' tick schedule in Redis: wake (a command, a new rollout), claim the due ones, give
 * them back with their next due time, and find active rollouts that lost theirs. Producers fail
 * fast: it uses a client connection.
 */
export class TickQueue implements TickScheduler {
  private readonly dueKey: string;
  private readonly keys: { rollout: string; lease: string };
  /** Told of every wake made through this object, so a worker in the same process claims at once. */
  readonly local = new EventEmitter();
  constructor(
    private readonly connection: Redis,
    prefix: string,
  ) {
    this.dueKey = `${prefix}:${TICK_QUEUE}:due`;
    this.keys = rolloutKeyPrefixes(prefix);
    this.local.setMaxListeners(0);
  }

  /** Makes the rollout's tick due now (never later than it was); adds it when it has none. */
  async wake(rolloutId: string): Promise<void> {
    await this.connection.zadd(this.dueKey, 'LT', Date.now(), rolloutId);
    this.local.emit('wake');
  }

  /** Gives the rollout a due time now when it has none; false when it had one. */
  async ensure(rolloutId: string): Promise<boolean> {
    const added = await this.connection.zadd(this.dueKey, 'NX', Date.now(), rolloutId);
    if (added) this.local.emit('wake');
    return Number(added) === 1;
  }

  /** Whether the rollout has a due time (a live tick), and when. */
  async state(rolloutId: string): Promise<{ scheduled: false } | { scheduled: true; dueAt: number }> {
    const score = await this.connection.zscore(this.dueKey, rolloutId);
    return score === null ? { scheduled: false } : { scheduled: true, dueAt: Number(score) };
  }

  /** Drops the rollout's due time (tests: a tick lost). */
  async forget(rolloutId: string): Promise<void> {
    await this.connection.zrem(this.dueKey, rolloutId);
  }

  /** Claims up to `max` due ticks: each rollout leased and read in the same script. */
  async claim(max: number, leaseMs = TICK_LEASE_MS): Promise<{ claimed: ClaimedTick[]; next?: number }> {
    const token = randomUUID();
    const [rows, next] = (await SCRIPTS.claim.run(
      this.connection,
      [this.dueKey],
      [Date.now(), Math.min(max, CLAIM_BATCH), leaseMs, token, this.keys.lease, this.keys.rollout],
    )) as [[string, string, string | null, string | null][], string | null];
    return {
      claimed: rows.map(([id, due, v, doc]) => ({
        id,
        token,
        dueAt: Number(due),
        rollout: v && doc ? parseStored({ version: Number(v), doc }) : undefined,
      })),
      ...(next !== null ? { next: Number(next) } : {}),
    };
  }

  /**
   * Gives a claimed rollout back: the lease released and the next due time set (removed when the
   * rollout is done), in one script call; a deferred save is written in the same call.
   * Answers whether that save was written (undefined: none, or the lease was lost).
   */
  async finish(
    c: ClaimedTick,
    outcome: TickOutcome,
    known: number | undefined,
    deferred?: { version: number; doc: string },
  ): Promise<{ held: boolean; saved?: boolean }> {
    const now = Date.now();
    const res = (await SCRIPTS.finish.run(
      this.connection,
      [this.dueKey, this.keys.lease + c.id, this.keys.rollout + c.id],
      [
        c.id,
        c.token,
        outcome.done ? '' : String(Math.max(outcome.nextAt, now)),
        known === undefined || (!outcome.done && outcome.backoff) ? '' : String(known),
        String(now + 50),
        deferred ? String(deferred.version) : '',
        deferred ? deferred.doc : '',
      ],
    )) as number[];
    if (res[0] !== 1) return { held: false };
    return { held: true, ...(res[1] === -1 ? {} : { saved: res[1] === 1 }) };
  }

  /** Of these rollouts, the ones with no due time, given one now (one script call per batch). */
  async missing(rolloutIds: string[]): Promise<string[]> {
    if (rolloutIds.length === 0) return [];
    return (await SCRIPTS.sweep.run(this.connection, [this.dueKey], [Date.now(), ...rolloutIds])) as string[];
  }

  /**
   * Gives every active rollout without a due time one: the active ids in batches (SSCAN), each
   * batch checked and mended with one script call.
   */
  async sweep(store: RolloutStore): Promise<number> {
    let added = 0;
    for await (const ids of store.activeIds()) added += (await this.missing(ids)).length;
    if (added) this.local.emit('wake');
    return added;
  }

  /** Ticks due and not yet claimed (`ticks/wait`), and scheduled later or running (`ticks/delayed`). */
  async depth(): Promise<Record<string, number>> {
    const now = Date.now();
    const [wait, later] = await Promise.all([
      this.connection.zcount(this.dueKey, '-inf', now),
      this.connection.zcount(this.dueKey, `(${now}`, '+inf'),
    ]);
    return { [`${TICK_QUEUE}/wait`]: wait, [`${TICK_QUEUE}/delayed`]: later };
  }

  async close(): Promise<void> {
    this.local.removeAllListeners();
  }
}

/**
 * A worker's tick loop: claims due ticks while it has free slots (up to `concurrency` at once),
 * runs each, gives it back with its next due time, and sleeps until the earliest due time it
 * knows — woken early by a wake in this process, a freed slot, or the poll for other processes'
 * wakes. A tick that throws (a Redis call failing) is retried with a backoff, never at once and
 * never dropped. A worker killed mid-tick leaves its leases to expire: their ticks come due again
 * and another worker takes them, finding the state in Redis and the weights in the cluster.
 */
class TickLoop implements RunningService {
  readonly name = TICK_QUEUE;
  private running = 0;
  private closing = false;
  private paused = false;
  private wakeUp: (() => void) | undefined;
  private sleepingUntil = 0;
  private readonly inflight = new Set<Promise<void>>();
  /** Ticks in a row that threw, per rollout: their backoff. */
  private readonly errors = new Map<string, number>();
  private readonly done: Promise<void>;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private readonly onWake = () => this.kick();

  constructor(
    private readonly ctx: DomainContext,
    private readonly ticks: TickQueue,
    private readonly concurrency: number,
    private readonly logger: Logger,
    private readonly opts: { sweepIntervalMs: number; pollMs: number },
  ) {
    ticks.local.on('wake', this.onWake);
    this.done = this.loop();
    this.scheduleSweep(opts.sweepIntervalMs * Math.random());
  }

  private kick(): void {
    const w = this.wakeUp;
    this.wakeUp = undefined;
    w?.();
  }

  private sleep(until: number): Promise<void> {
    const ms = Math.max(0, until - Date.now());
    this.sleepingUntil = until;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.wakeUp = undefined;
        resolve();
      }, ms);
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    }).finally(() => {
      this.sleepingUntil = 0;
    });
  }

  private async loop(): Promise<void> {
    let failures = 0;
    while (!this.closing) {
      let until = Date.now() + this.opts.pollMs;
      const free = this.concurrency - this.running;
      if (free > 0 && !this.paused) {
        let claimed: ClaimedTick[] = [];
        try {
          const res = await this.ticks.claim(free);
          claimed = res.claimed;
          if (res.next !== undefined) until = Math.min(until, res.next);
          failures = 0;
        } catch (e) {
          failures++;
          this.logger.warn({ err: (e as Error).message }, 'could not claim ticks; retrying');
          until = Date.now() + Math.min(100 * 2 ** Math.min(failures, 5), 3_000);
        }
        for (const c of claimed) this.start(c);
        // Full: wait for a slot (a finished tick kicks the loop).
        if (this.running >= this.concurrency) until = Date.now() + this.opts.pollMs;
        else if (claimed.length === Math.min(free, CLAIM_BATCH)) continue; // more may be due
      }
      if (this.closing) break;
      await this.sleep(until);
    }
  }

  private start(c: ClaimedTick): void {
    this.running++;
    const p = this.run(c).finally(() => {
      this.running--;
      this.inflight.delete(p);
      if (this.running === this.concurrency - 1) this.kick();
    });
    this.inflight.add(p);
  }

  private async run(c: ClaimedTick): Promise<void> {
    this.ctx.recorder.tickLate((Date.now() - c.dueAt) / 1000);
    let result: Awaited<ReturnType<typeof runClaimedTick>>;
    try {
      result = await runClaimedTick(this.ctx, c);
      this.errors.delete(c.id);
    } catch (e) {
      const errors = (this.errors.get(c.id) ?? 0) + 1;
      this.errors.set(c.id, errors);
      if (this.errors.size > 100_000) this.errors.clear();
      const backoff = Math.min(250 * 2 ** Math.min(errors, 7), 30_000);
      this.logger.warn(
        { rollout: c.id, err: (e as Error).message, errors },
        'tick threw; retrying with backoff',
      );
      result = { outcome: { done: false, nextAt: Date.now() + backoff, backoff: true }, known: undefined };
    }
    const { outcome, known, deferred } = result;
    // Giving the rollout back must not be lost to one failed call: its lease would hold it until it expires.
    for (let attempt = 0; ; attempt++) {
      try {
        const fin = await this.ticks.finish(c, outcome, known, deferred);
        // Written outside the store: the store's listeners (the API's copy of documents) hear of it.
        if (fin.saved) this.ctx.store.wrote(c.id);
        if (fin.saved === false)
          this.logger.debug({ rollout: c.id }, 'guard result not saved: a command came first');
        break;
      } catch (e) {
        if (attempt >= 2 || this.closing) {
          this.logger.warn(
            { rollout: c.id, err: (e as Error).message },
            'could not give a tick back; its lease expires',
          );
          return;
        }
        await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
      }
    }
    // A tick due before the loop next looks (a phase change due at once): look now.
    if (!outcome.done && this.sleepingUntil && outcome.nextAt < this.sleepingUntil) this.kick();
  }

  private scheduleSweep(ms: number): void {
    if (this.closing) return;
    this.sweepTimer = setTimeout(() => {
      this.sweeping = this.ticks
        .sweep(this.ctx.store)
        .then((added) => {
          if (added) this.logger.warn({ added }, 'active rollouts without a tick got one');
        })
        .catch((err: Error) => this.logger.warn({ err: err.message }, 'tick sweep failed'))
        .finally(() => {
          this.sweeping = undefined;
          // jittered, so the workers' sweeps spread out
          this.scheduleSweep(this.opts.sweepIntervalMs * (0.8 + Math.random() * 0.4));
        });
    }, ms);
  }

  /** Stops claiming; the running ticks go on. */
  async pause(): Promise<void> {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.kick();
  }

  /** Stops claiming, waits for the running ticks to finish and give their rollouts back. */
  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.sweepTimer);
    this.ticks.local.off('wake', this.onWake);
    this.kick();
    await this.done;
    await Promise.all([...this.inflight, this.sweeping]);
  }
}

/** The tick loop as a worker runs it (see TickLoop); `concurrency`: ticks at once. */
export function tickProcessor(
  ctx: DomainContext,
  concurrency: number,
  opts: { sweepIntervalMs?: number; pollMs?: number } = {},
): BackgroundRunner {
  const ticks = ctx.scheduler;
  if (!(ticks instanceof TickQueue))
    throw new Error('the tick loop needs the domain scheduler to be a TickQueue');
  return {
    name: TICK_QUEUE,
    start: (logger) =>
      new TickLoop(ctx, ticks, concurrency, logger, {
        sweepIntervalMs: opts.sweepIntervalMs ?? SWEEP_INTERVAL_MS,
        pollMs: opts.pollMs ?? POLL_MS,
      }),
  };
}
