import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { type SSEStreamingApi, streamSSE } from 'hono/streaming';
import type { DomainContext } from '../../rollouts/context.ts';
import type { RolloutEvent } from '../../rollouts/model.ts';
import { isTerminal } from '../../rollouts/phases.ts';
import { getRollout, rolloutEvents } from '../../rollouts/verbs.ts';
import type { App } from '../app.ts';
import type { AppEnv } from '../context.ts';
import { ApiError, envelope, errorResponses } from '../errors.ts';
import { EventSchema, RolloutIdParam } from './schema.ts';

/** An event's id: the id Redis gave it in the rollout's stream (`<ms>-<seq>`). */
const STREAM_ID = /^\d{1,16}-\d{1,16}$/;
const STREAM_ID_HINT = 'an event id like 1718000000000-0 (the id of the last event seen)';

const AfterQuery = z
  .string()
  .regex(STREAM_ID, STREAM_ID_HINT)
  .optional()
  .openapi({ description: 'Only events after this event id (for polling or resuming)' });

/**
 * A message id of the all-rollouts stream: `<event id>@<rollout id>`. Events of two rollouts may
 * share an event id (the same millisecond), so the rollout breaks the tie and resuming loses none.
 */
const FEED_ID = /^(\d{1,16})-(\d{1,16})(?:@(ro-[a-f0-9]{1,40}))?$/;
const FEED_ID_HINT = 'a message id like 1718000000000-0@ro-3f2a9c1b (the id of the last message seen)';

const route = createRoute({
  method: 'get',
  path: '/api/v1/rollouts/{id}/events',
  summary:
    "A rollout's history: every transition and weight change with its time, reason and metric values. With Accept: text/event-stream, a live stream (SSE) that ends after the terminal event",
  request: {
    params: RolloutIdParam,
    query: z.object({
      after: AfterQuery,
      limit: z.coerce.number().int().min(1).max(1000).default(500),
    }),
    headers: z.object({
      'last-event-id': z
        .string()
        .optional()
        .openapi({ description: 'SSE: resume after this event id (sent by EventSource on reconnect)' }),
    }),
  },
  responses: {
    200: {
      description:
        'Events, oldest first; or, for Accept: text/event-stream, SSE messages whose id is the event id and whose data is the event (with rolloutId), a heartbeat comment every 15 s, and a final `end` event',
      content: {
        'application/json': { schema: z.object({ events: z.array(EventSchema) }) },
        'text/event-stream': { schema: z.string() },
      },
    },
    ...errorResponses('BAD_REQUEST', 'UNAUTHORIZED', 'NOT_FOUND', 'UNAVAILABLE'),
  },
});

const allRoute = createRoute({
  method: 'get',
  path: '/api/v1/events',
  summary: "Every rollout's events as they happen (SSE), for dashboards and bots",
  request: {
    query: z.object({
      after: z
        .string()
        .regex(FEED_ID, FEED_ID_HINT)
        .optional()
        .openapi({ description: 'Only events after this message id (or event id)' }),
      namespace: z
        .string()
        .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'a Kubernetes namespace name')
        .optional()
        .openapi({
          description:
            'Only rollouts whose target is in this namespace. A token limited to namespaces sees only its own, with or without it (naming another is a 403)',
        }),
    }),
    headers: z.object({
      'last-event-id': z.string().optional().openapi({ description: 'Resume after this message id' }),
    }),
  },
  responses: {
    200: {
      description:
        'SSE messages: id = `<event id>@<rollout id>`, data = the event with its rolloutId and namespace; a heartbeat comment every 15 s',
      content: { 'text/event-stream': { schema: z.string() } },
    },
    ...errorResponses('BAD_REQUEST', 'UNAUTHORIZED', 'UNAVAILABLE'),
  },
});

export interface EventStreamOptions {
  /** Most SSE streams open at once in this process; each holds a Redis connection of its own. Default 100. */
  maxStreams?: number;
  /** Period of the heartbeat comment. Default 15 s. */
  heartbeatMs?: number;
  /** Longest wait of one blocking read of the all-rollouts stream (new rollouts are noticed at this pace). Default 2 s. */
  discoverMs?: number;
  /** Aborted at shutdown: every open stream ends (clients resume elsewhere with Last-Event-ID), so the server can close. */
  signal?: AbortSignal;
}

type Row = { rolloutId: string; event: RolloutEvent & { id: string } };

/** The event id just before `id` in a stream, so that a read "after" it includes `id` itself. */
function justBefore(id: string): string {
  const [ms, seq] = id.split('-') as [string, string];
  if (seq !== '0') return `${ms}-${BigInt(seq) - 1n}`;
  return ms === '0' ? '0-0' : `${BigInt(ms) - 1n}-18446744073709551615`;
}

function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(Number) as [number, number];
  const [bm, bs] = b.split('-').map(Number) as [number, number];
  return am - bm || as - bs;
}

const isEnd = (e: RolloutEvent) => e.type === 'transition' && e.to !== undefined && isTerminal(e.to);

/** Where a stream starts: Last-Event-ID (a reconnecting EventSource) over `?after=`; a malformed one is a 400. */
function resumeFrom(
  c: Context<AppEnv>,
  after: string | undefined,
  format: { pattern: RegExp; hint: string } = { pattern: STREAM_ID, hint: STREAM_ID_HINT },
): string | undefined {
  // An empty Last-Event-ID is what a client that has seen nothing sends: the same as none.
  const last = c.req.header('last-event-id')?.trim() || undefined;
  if (last !== undefined && !format.pattern.test(last)) {
    throw new ApiError('BAD_REQUEST', `Last-Event-ID: expected ${format.hint}, not '${last.slice(0, 60)}'`);
  }
  return last ?? after;
}

/** A counter of open streams with a ceiling; over it a client gets 503 with Retry-After. */
function streamSlots(max: number) {
  let open = 0;
  return {
    acquire(c: Context<AppEnv>): () => void {
      if (open >= max) {
        c.header('Retry-After', '5');
        throw new ApiError(
          'UNAVAILABLE',
          `${max} event streams are open in this process, the most it serves; retry later, or poll GET /api/v1/rollouts/{id}/events?after=<event id>`,
        );
      }
      open++;
      let released = false;
      return () => {
        if (!released) {
          released = true;
          open--;
        }
      };
    },
    get open() {
      return open;
    },
  };
}

/**
 * Pumps events to an SSE client from a connection of its own: `refresh` says which rollouts to
 * follow (and from where), every read is bounded, a heartbeat comment goes out when nothing else
 * did for `heartbeatMs`, and the connection is dropped as soon as the client goes away.
 */
/** Events read per rollout per round. */
const READ_COUNT = 100;

async function pump(
  ctx: DomainContext,
  stream: SSEStreamingApi,
  opts: {
    maxBlockMs: number;
    heartbeatMs: number;
    signal?: AbortSignal | undefined;
    /**
     * Before each read: the rollouts to read (id → cursor), whether to block, and (several
     * rollouts) the Redis time up to which every event is known: later ones wait for the next round,
     * so messages go out in (event id, rollout id) order even when a rollout is discovered late.
     */
    refresh(cursors: Map<string, string>): Promise<{ block: boolean; settledBefore?: number }>;
    /** After each read: whether the stream is over. */
    delivered(rows: Row[], cursors: Map<string, string>): Promise<boolean>;
    /** The namespace of a followed rollout, sent with each of its events. */
    namespaceOf(rolloutId: string): string | undefined;
    /** The SSE id of a message. Default: the event's id. */
    messageId?(row: Row): string;
  },
): Promise<void> {
  const conn = ctx.store.blockingConnection(opts.maxBlockMs);
  let gone = false;
  const stop = () => {
    gone = true;
    conn.disconnect();
  };
  stream.onAbort(stop);
  if (opts.signal?.aborted) stop();
  opts.signal?.addEventListener('abort', stop, { once: true });
  const cursors = new Map<string, string>();
  let lastWrite = Date.now();
  try {
    // Sent at once so that the headers go out now, not with the first event or heartbeat; it also
    // tells EventSource how long to wait before reconnecting.
    await stream.write('retry: 3000\n\n');
    const pending: Row[] = [];
    while (!gone) {
      const { block, settledBefore } = await opts.refresh(cursors);
      const untilBeat = opts.heartbeatMs - (Date.now() - lastWrite);
      // Rows held back are released by the next round's clock: do not wait for more before it.
      const blockMs = !block ? 0 : pending.length > 0 ? 1 : Math.max(1, Math.min(opts.maxBlockMs, untilBeat));
      const rows = await ctx.store.readEventsAfter(conn, cursors, { blockMs, count: READ_COUNT });
      const perRollout = new Map<string, number>();
      for (const row of rows) {
        cursors.set(row.rolloutId, row.event.id);
        perRollout.set(row.rolloutId, (perRollout.get(row.rolloutId) ?? 0) + 1);
      }
      pending.push(...rows);
      pending.sort(
        (a, b) =>
          compareIds(a.event.id, b.event.id) ||
          (a.rolloutId < b.rolloutId ? -1 : a.rolloutId > b.rolloutId ? 1 : 0),
      );
      let boundary = settledBefore === undefined ? undefined : `${settledBefore}-0`;
      // A rollout read to the batch limit may have more events below the boundary: wait for them.
      for (const [id, n] of perRollout) {
        const last = cursors.get(id)!;
        if (n >= READ_COUNT && (boundary === undefined || compareIds(last, boundary) < 0)) boundary = last;
      }
      let ready = pending.length;
      if (boundary !== undefined) {
        const edge = boundary;
        ready = pending.findIndex((r) => compareIds(r.event.id, edge) >= 0);
        if (ready < 0) ready = pending.length;
      }
      for (const row of pending.splice(0, ready)) {
        if (gone) return;
        await stream.writeSSE({
          id: opts.messageId?.(row) ?? row.event.id,
          data: JSON.stringify({
            rolloutId: row.rolloutId,
            namespace: opts.namespaceOf(row.rolloutId),
            ...row.event,
          }),
        });
        lastWrite = Date.now();
      }
      if (await opts.delivered(rows, cursors)) return;
      if (Date.now() - lastWrite >= opts.heartbeatMs) {
        await stream.write(': heartbeat\n\n');
        lastWrite = Date.now();
      }
    }
  } catch (e) {
    if (!gone) {
      ctx.logger.warn({ err: e }, 'event stream failed');
      await stream.writeSSE({
        event: 'error',
        data: JSON.stringify(
          envelope('UNAVAILABLE', `reading events failed: ${(e as Error).message}; reconnect to resume`, ''),
        ),
      });
    }
  } finally {
    opts.signal?.removeEventListener('abort', stop);
    gone = true;
    conn.disconnect();
  }
}

export function registerRolloutEvents(app: App, ctx: DomainContext, opts: EventStreamOptions = {}): void {
  const slots = streamSlots(opts.maxStreams ?? 100);
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  const discoverMs = opts.discoverMs ?? 2_000;

  app.openapi(route, async (c) => {
    const { after, limit } = c.req.valid('query');
    const id = c.req.valid('param').id;
    if (!c.req.header('accept')?.includes('text/event-stream')) {
      const events = await rolloutEvents({ ctx, id, limit, ...(after ? { after } : {}) });
      return c.json({ events }, 200);
    }
    const from = resumeFrom(c, after) ?? '0-0';
    const start = await getRollout({ ctx, id });
    const release = slots.acquire(c);
    // History, then live events; once the rollout has ended, what is left is read without waiting.
    let ending = isTerminal(start.phase);
    return streamSSE(c, async (stream) => {
      try {
        await pump(ctx, stream, {
          maxBlockMs: heartbeatMs,
          heartbeatMs,
          signal: opts.signal,
          refresh: async (cursors) => {
            if (!cursors.has(id)) cursors.set(id, from);
            return { block: !ending };
          },
          namespaceOf: () => start.spec.target.namespace,
          delivered: async (rows) => {
            const end = rows.find((r) => isEnd(r.event));
            if (end || (ending && rows.length === 0)) {
              await stream.writeSSE({
                event: 'end',
                data: JSON.stringify({
                  rolloutId: id,
                  phase:
                    end?.event.to ?? (await getRollout({ ctx, id }).catch(() => undefined))?.phase ?? 'gone',
                }),
              });
              return true;
            }
            if (rows.length === 0) {
              // Nothing new: an ended rollout whose terminal event is already past (or trimmed) ends too.
              const now = await ctx.store.get(id);
              if (!now || isTerminal(now.phase)) ending = true;
            }
            return false;
          },
        });
      } finally {
        release();
      }
    }) as never;
  });

  app.openapi(allRoute, async (c) => {
    const { after, namespace } = c.req.valid('query');
    // The namespaces this stream may show: the one asked for (the scope guard checked it is the
    // token's), else a limited token's own, else every one.
    const limited = c.get('principal')?.namespaces;
    const shown = namespace ? new Set([namespace]) : limited ? new Set(limited) : undefined;
    const from = resumeFrom(c, after, { pattern: FEED_ID, hint: FEED_ID_HINT });
    const release = slots.acquire(c);
    const startMs = await ctx.store.serverTimeMs().catch((e) => {
      release();
      throw e;
    });
    const m = from ? FEED_ID.exec(from) : null;
    const start = m ? `${m[1]}-${m[2]}` : `${startMs}-0`;
    // Resuming after (id, rollout R): a rollout ordered after R may still owe an event with that very id.
    const resumeAt = (rolloutId: string) => (m?.[3] && rolloutId > m[3] ? justBefore(start) : start);
    // Rollouts followed now, and the last event id delivered of every rollout seen (so one that
    // shows up again is not replayed).
    const following = new Set<string>();
    const seen = new Map<string, string>();
    // Each rollout's namespace, looked up once when it is first seen ('' for one that is gone).
    const namespaces = new Map<string, string>();
    let active = new Set<string>();
    let discoveredFrom = (from ? Number(start.split('-')[0]) : startMs) - 10_000;
    return streamSSE(c, async (stream) => {
      try {
        await pump(ctx, stream, {
          maxBlockMs: discoverMs,
          heartbeatMs,
          signal: opts.signal,
          refresh: async (cursors) => {
            const now = Date.now();
            // Taken before discovery: every rollout with an event before it is found below.
            const settledBefore = await ctx.store.serverTimeMs();
            const [ids, fresh] = await Promise.all([
              ctx.store.activeIdList(),
              ctx.store.createdSince(discoveredFrom),
            ]);
            // Clocks of API processes may differ a little: look back a margin, `seen` drops repeats.
            discoveredFrom = now - 10_000;
            active = new Set(ids);
            const candidates = [...new Set([...ids, ...fresh])].filter((id) => !following.has(id));
            const unknown = candidates.filter((id) => !namespaces.has(id));
            const docs = await Promise.all(unknown.map((id) => ctx.store.get(id)));
            for (const [i, id] of unknown.entries()) namespaces.set(id, docs[i]?.spec.target.namespace ?? '');
            for (const id of candidates) {
              if (shown && !shown.has(namespaces.get(id)!)) continue;
              following.add(id);
              cursors.set(id, seen.get(id) ?? resumeAt(id));
            }
            return { block: true, settledBefore };
          },
          namespaceOf: (id) => namespaces.get(id) || undefined,
          messageId: (row) => `${row.event.id}@${row.rolloutId}`,
          delivered: async (rows, cursors) => {
            const got = new Set(rows.map((r) => r.rolloutId));
            for (const r of rows) seen.set(r.rolloutId, r.event.id);
            for (const id of following) {
              const ended = rows.some((r) => r.rolloutId === id && isEnd(r.event));
              // An ended rollout has nothing more to say once a read found nothing new of it.
              if (ended || (!active.has(id) && !got.has(id))) {
                following.delete(id);
                seen.set(id, cursors.get(id) ?? start);
                cursors.delete(id);
              }
            }
            // Bounded memory on a stream left open for weeks: forget rollouts long gone.
            for (const memo of [seen, namespaces] as Map<string, string>[]) {
              if (memo.size <= 10_000) continue;
              for (const id of memo.keys()) {
                if (memo.size <= 5_000) break;
                if (!following.has(id) && !active.has(id)) memo.delete(id);
              }
            }
            return false;
          },
        });
      } finally {
        release();
      }
    }) as never;
  });
}
