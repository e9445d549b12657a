import { type ApiClient, readJson } from './client.ts';
import { CliError } from './errors.ts';

/** One line of a rollout's history, as the API shows it. */
export interface EventView {
  id?: string;
  time: number;
  type: string;
  reason: string;
  from?: string;
  to?: string;
  weights?: { stable: number; canary: number };
  verdict?: string;
  by?: string;
  results?: unknown[];
}

export const TERMINAL = new Set(['succeeded', 'failed', 'aborted']);

/** The terminal phase an event moves the rollout to, if it is the last transition. */
export function terminalPhaseOf(e: EventView): string | undefined {
  return e.type === 'transition' && e.to && TERMINAL.has(e.to) ? e.to : undefined;
}

export interface SseMessage {
  /** the last event id seen on the stream (the spec keeps it across messages) */
  id: string;
  event: string;
  data: string;
}

const MAX_LINE = 1024 * 1024;

/**
 * An incremental parser of the text/event-stream format (WHATWG HTML, "server-sent events"):
 * lines end in CRLF, LF or CR; `data` lines join with LF; `id` without NUL sets the last event id;
 * comments (`:`) are ignored; a blank line dispatches.
 */
export class SseParser {
  private buf = '';
  private data = '';
  private hasData = false;
  private event = '';
  lastEventId = '';
  retryMs: number | undefined;

  feed(chunk: string, end = false): SseMessage[] {
    this.buf += chunk;
    const out: SseMessage[] = [];
    for (;;) {
      const i = this.buf.search(/[\r\n]/);
      if (i < 0) break;
      // A CR at the very end may be the first half of a CRLF split across chunks.
      if (this.buf[i] === '\r' && i === this.buf.length - 1 && !end) break;
      const line = this.buf.slice(0, i);
      const skip = this.buf[i] === '\r' && this.buf[i + 1] === '\n' ? 2 : 1;
      this.buf = this.buf.slice(i + skip);
      const msg = this.line(line);
      if (msg) out.push(msg);
    }
    if (this.buf.length > MAX_LINE) throw new CliError(`event stream line longer than ${MAX_LINE} bytes`);
    return out;
  }

  private line(line: string): SseMessage | undefined {
    if (line === '') {
      const hadData = this.hasData;
      const msg = {
        id: this.lastEventId,
        event: this.event || 'message',
        data: this.data.replace(/\n$/, ''),
      };
      this.data = '';
      this.hasData = false;
      this.event = '';
      return hadData ? msg : undefined;
    }
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'data':
        this.data += `${value}\n`;
        this.hasData = true;
        if (this.data.length > MAX_LINE)
          throw new CliError(`event stream message longer than ${MAX_LINE} bytes`);
        break;
      case 'event':
        this.event = value;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastEventId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
    }
    return undefined;
  }
}

export interface FollowOptions {
  /** resume after this event id */
  after?: string;
  onEvent(e: EventView): void;
  /** epoch ms after which following stops with `timedOut` */
  deadline?: number;
  pollMs?: number;
  /** a connection that sends nothing for this long is dropped and resumed */
  idleMs?: number;
  /** consecutive failed connections before giving up */
  maxFailures?: number;
}

export interface FollowResult {
  /** the terminal phase reached, when the rollout ended */
  phase?: string;
  timedOut: boolean;
  /** how the events came: the SSE stream or polling `?after=` */
  mode: 'sse' | 'poll';
  connections: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/**
 * Follows a rollout's events until its terminal transition: over SSE (`Accept: text/event-stream`,
 * resuming with `Last-Event-ID` after a dropped connection), or, when the server answers with JSON,
 * by polling `?after=<last id>`.
 */
export async function followEvents(api: ApiClient, id: string, opts: FollowOptions): Promise<FollowResult> {
  const pollMs = opts.pollMs ?? 1_000;
  const idleMs = opts.idleMs ?? 60_000;
  const maxFailures = opts.maxFailures ?? 5;
  const base = `/api/v1/rollouts/${encodeURIComponent(id)}/events`;
  let last = opts.after;
  let mode: 'sse' | 'poll' = 'sse';
  let failures = 0;
  let connections = 0;
  let phase: string | undefined;
  const left = () => (opts.deadline === undefined ? Number.POSITIVE_INFINITY : opts.deadline - Date.now());
  const take = (e: EventView) => {
    if (e.id) last = e.id;
    opts.onEvent(e);
    phase ??= terminalPhaseOf(e);
  };
  const failed = async (e: unknown) => {
    if (!(e instanceof CliError) || e.name === 'ApiCallError') throw e;
    if (++failures >= maxFailures) throw new CliError(`lost the event stream of ${id}: ${e.message}`);
    await sleep(Math.min(left(), Math.min(5_000, 250 * 2 ** failures)));
  };

  while (phase === undefined) {
    if (left() <= 0) return { timedOut: true, mode, connections };
    const q = last ? `?after=${encodeURIComponent(last)}` : '';
    if (mode === 'poll') {
      try {
        const res = await api.raw(`${base}${q}`, { headers: { Accept: 'application/json' } });
        const { events } = await readJson<{ events: EventView[] }>(res, api.settings.server);
        failures = 0;
        for (const e of events) take(e);
        if (phase === undefined && events.length < 500) await sleep(Math.min(pollMs, left()));
      } catch (e) {
        await failed(e);
      }
      continue;
    }
    // SSE: one connection with a connect deadline, an idle deadline and the overall deadline.
    const ctrl = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const arm = (ms: number, why: string) => {
      clearTimeout(timer);
      timer = setTimeout(() => ctrl.abort(new CliError(why)), Math.min(ms, left()));
    };
    try {
      arm(api.timeoutMs, `no answer within ${Math.round(api.timeoutMs / 1000)}s`);
      connections++;
      const res = await api.raw(`${base}${q}`, {
        headers: { Accept: 'text/event-stream', ...(last ? { 'Last-Event-ID': last } : {}) },
        signal: ctrl.signal,
        timeoutMs: 24 * 3_600_000,
      });
      if (!(res.headers.get('content-type') ?? '').includes('text/event-stream')) {
        // A server without SSE answered with the JSON list: use it, then poll.
        const { events } = await readJson<{ events: EventView[] }>(res, api.settings.server);
        mode = 'poll';
        failures = 0;
        for (const e of events) take(e);
        continue;
      }
      if (!res.body) throw new CliError('the event stream has no body');
      const parser = new SseParser();
      if (last) parser.lastEventId = last;
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      arm(idleMs, `the event stream sent nothing for ${Math.round(idleMs / 1000)}s`);
      for (;;) {
        const { done, value } = await reader.read();
        const messages = parser.feed(done ? decoder.decode() : decoder.decode(value, { stream: true }), done);
        for (const m of messages) {
          let e: EventView;
          try {
            e = JSON.parse(m.data) as EventView;
          } catch {
            continue; // not an event of the history (a heartbeat, say)
          }
          if (!e || typeof e !== 'object' || typeof e.type !== 'string') continue;
          if (m.id) e.id ??= m.id;
          if (m.id) last = m.id;
          take(e);
          failures = 0;
        }
        if (done) break;
        arm(idleMs, `the event stream sent nothing for ${Math.round(idleMs / 1000)}s`);
      }
      clearTimeout(timer);
      if (phase === undefined) await failed(new CliError('the server closed the event stream'));
    } catch (e) {
      clearTimeout(timer);
      if (ctrl.signal.aborted && ctrl.signal.reason instanceof CliError) await failed(ctrl.signal.reason);
      else if (e instanceof CliError) await failed(e);
      else await failed(new CliError((e as Error).message));
    }
  }
  return { phase, timedOut: false, mode, connections };
}
