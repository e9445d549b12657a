// The one SSE client of the dashboard. EventSource cannot send an Authorization header, so the
// stream is read through fetch: the token stays in a header, never in the URL. On a dropped
// connection it reconnects with Last-Event-ID (the id of the last event it handled), so nothing
// is missed or repeated; after the server's `end` event it stops.

import { authHeaders } from './api.js';

/** Wait before reconnecting, unless the server said otherwise with `retry:`. */
const DEFAULT_RETRY_MS = 3_000;
const MAX_BACKOFF_MS = 30_000;
const POLL_MS = 2_000;

/**
 * Splits a text/event-stream into messages. Feed it decoded text; it calls `onMessage` with
 * { event, data, id } for each complete message and `onRetry` with a `retry:` value.
 * Pure (no I/O), so it is tested on its own.
 */
export function sseParser(onMessage, onRetry = () => {}) {
  let buffer = '';
  let event = '';
  let data = [];
  let id;
  const line = (l) => {
    if (l === '') {
      if (data.length > 0) onMessage({ event: event || 'message', data: data.join('\n'), id });
      event = '';
      data = [];
      id = undefined;
      return;
    }
    if (l.startsWith(':')) return;
    const colon = l.indexOf(':');
    const field = colon < 0 ? l : l.slice(0, colon);
    let value = colon < 0 ? '' : l.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
    else if (field === 'id' && !value.includes('\0')) id = value;
    else if (field === 'retry' && /^\d+$/.test(value)) onRetry(Number(value));
  };
  return (text) => {
    buffer += text;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(buffer);
      if (!m) break;
      // A lone \r at the very end may be the first half of \r\n: wait for more.
      if (m[0] === '\r' && m.index === buffer.length - 1) break;
      line(buffer.slice(0, m.index));
      buffer = buffer.slice(m.index + m[0].length);
    }
  };
}

/** Orders stream ids (`<ms>-<seq>`). */
export function compareIds(a, b) {
  const [am, as] = a.split('-').map(Number);
  const [bm, bs] = b.split('-').map(Number);
  return am - bm || as - bs;
}

/**
 * Follows an SSE endpoint of the API. `onEvent(event)` gets each event (data parsed, `id` set);
 * `onEnd(data)` the server's final `end` message; `onStatus(state, detail)` one of
 * live | reconnecting | polling | ended | error. Where the server answers JSON instead of a stream
 * and `poll(after)` is given, it polls that instead. Returns { stop }.
 */
export function followEvents(path, { onEvent, onEnd = () => {}, onStatus = () => {}, lastEventId, poll }) {
  const abort = new AbortController();
  let lastId = lastEventId;
  let retryMs = DEFAULT_RETRY_MS;
  let failures = 0;
  let stopped = false;

  const deliver = (ev) => {
    if (ev.id && lastId && compareIds(ev.id, lastId) <= 0) return;
    if (ev.id) lastId = ev.id;
    onEvent(ev);
  };
  const sleep = (ms) =>
    new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      abort.signal.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      });
    });

  async function streamOnce() {
    const headers = authHeaders({ Accept: 'text/event-stream' });
    if (lastId) headers['Last-Event-ID'] = lastId;
    const res = await fetch(path, { headers, signal: abort.signal, cache: 'no-store' });
    if (!res.ok) {
      const body = await res.json().catch(() => undefined);
      const err = new Error(body?.error?.message ?? `HTTP ${res.status}`);
      err.status = res.status;
      throw err;
    }
    if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
      await res.body?.cancel();
      return 'no-stream';
    }
    failures = 0;
    onStatus('live');
    let ended = false;
    const feed = sseParser(
      (m) => {
        if (m.event === 'end') {
          ended = true;
          onEnd(JSON.parse(m.data));
        } else if (m.event === 'message') {
          deliver({ ...JSON.parse(m.data), ...(m.id ? { id: m.id } : {}) });
        }
        // An `error` message is the server giving up on this stream: the reconnect resumes it.
      },
      (ms) => {
        retryMs = ms;
      },
    );
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done || ended) break;
      feed(value);
    }
    if (ended) await reader.cancel().catch(() => {});
    return ended ? 'ended' : 'dropped';
  }

  async function pollLoop() {
    onStatus('polling');
    while (!stopped) {
      try {
        for (const ev of await poll(lastId)) deliver(ev);
        failures = 0;
      } catch (e) {
        if (stopped) return;
        failures++;
        onStatus('error', e.message);
      }
      await sleep(POLL_MS * Math.min(8, 2 ** failures));
    }
  }

  (async () => {
    while (!stopped) {
      try {
        const how = await streamOnce();
        if (how === 'ended') {
          onStatus('ended');
          return;
        }
        if (how === 'no-stream') {
          if (poll) return pollLoop();
          throw new Error('the server sent no event stream');
        }
      } catch (e) {
        if (stopped) return;
        // A refused request will be refused again: say why and stop.
        if (e.status && e.status !== 429 && e.status < 500) {
          onStatus('error', e.message);
          return;
        }
        failures++;
      }
      if (stopped) return;
      onStatus('reconnecting');
      await sleep(Math.min(MAX_BACKOFF_MS, failures > 0 ? retryMs * 2 ** (failures - 1) : retryMs));
    }
  })();

  return {
    stop() {
      stopped = true;
      abort.abort();
    },
  };
}
