// biome-ignore-all lint/suspicious/noExplicitAny: Kubernetes objects are arbitrary JSON whose shape is checked by schemas at run time, not by types.
import type { ServerResponse } from 'node:http';
import { present, type Target } from './api.ts';
import { fieldSelector, labelSelector } from './selectors.ts';
import { KubeError } from './status.ts';
import type { ObjectStore, StoreEvent } from './store.ts';

/** How often a watch that asked for bookmarks gets one (a real server sends one about every minute). */
const BOOKMARK_INTERVAL_MS = 2_000;

/**
 * Streams a watch as newline-delimited JSON events: the backlog since the requested
 * resourceVersion (or every current object as ADDED when none is given), then live changes.
 */
export function serveWatch(
  store: ObjectStore,
  x: Target,
  q: URLSearchParams,
  res: ServerResponse,
  onClose: (fn: () => void) => void,
  /** Turns each object into what the client asked for (a Table row for kubectl get --watch). */
  wrap: (obj: any) => unknown = (o) => o,
): void {
  const byLabel = labelSelector(q.get('labelSelector'));
  const byField = fieldSelector(q.get('fieldSelector'), x.t.kind);
  const rvParam = q.get('resourceVersion');
  const selected = (o: any) =>
    (x.namespace === undefined || o.metadata.namespace === x.namespace) && byLabel(o) && byField(o);
  res.writeHead(200, {
    'Content-Type': 'application/json',
    'Cache-Control': 'no-cache, private',
    'Transfer-Encoding': 'chunked',
  });
  // Clients (client-node's informer) wait for the response headers before they count the watch as started.
  res.flushHeaders();
  const send = (type: string, object: unknown) => res.write(`${JSON.stringify({ type, object })}\n`);
  // As the API server does, a change that moves an object into or out of the selection is
  // reported as ADDED or DELETED, so a filtered informer's cache stays right.
  const sendEvent = (e: StoreEvent) => {
    if (e.resourceType !== x.t) return;
    const now = selected(e.object);
    const before = e.type === 'MODIFIED' && e.previous !== undefined ? selected(e.previous) : now;
    if (!now && !before) return;
    const type = e.type === 'MODIFIED' && now !== before ? (now ? 'ADDED' : 'DELETED') : e.type;
    send(type, wrap(present(x.t, x.version, e.object)));
  };

  let backlog: StoreEvent[] | undefined;
  if (rvParam && rvParam !== '0') {
    const rv = Number(rvParam);
    backlog = Number.isInteger(rv) ? store.eventsSince(rv) : undefined;
    if (!backlog) {
      const err = new KubeError(
        410,
        'Expired',
        `too old resource version: ${rvParam} (${store.oldestWatchable})`,
      );
      send('ERROR', err.toStatus());
      res.end();
      return;
    }
  }
  // Subscribing before replaying is safe: nothing runs between these synchronous steps.
  const unsubscribe = store.subscribe(sendEvent);
  if (backlog) for (const e of backlog) sendEvent(e);
  else
    for (const o of store.list(x.t, x.namespace))
      if (selected(o)) send('ADDED', wrap(present(x.t, x.version, o)));

  const timers: NodeJS.Timeout[] = [];
  if (q.get('allowWatchBookmarks') === 'true') {
    timers.push(
      setInterval(() => {
        send('BOOKMARK', {
          kind: x.t.kind,
          apiVersion: x.t.group ? `${x.t.group}/${x.version}` : x.version,
          metadata: { resourceVersion: String(store.resourceVersion) },
        });
      }, BOOKMARK_INTERVAL_MS),
    );
  }
  const timeout = Number(q.get('timeoutSeconds') ?? 0);
  const stop = () => {
    unsubscribe();
    for (const t of timers) clearInterval(t);
    if (!res.writableEnded) res.end();
  };
  if (timeout > 0) timers.push(setTimeout(stop, timeout * 1000));
  res.on('close', stop);
  onClose(stop);
}
