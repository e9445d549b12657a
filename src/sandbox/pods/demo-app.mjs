// The demo app of one sandbox Pod, run in a worker thread (plain JavaScript: a worker loads its
// file with Node itself, without the TypeScript loader of the main thread).
//
// workerData / messages: { pod, namespace, labels, errorRate, latencyMs } — a message replaces the
// behaviour of the running server. It posts { port } once it listens on 127.0.0.1.
import { createServer } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';

/** Spread of the log-normal latency: p50 ≈ 0.88 × mean, p99 ≈ 2.8 × mean. */
const SIGMA = 0.5;
/** A request body larger than this is not read (the answer does not depend on it). */
const MAX_BODY = 1024 * 1024;

let config = workerData;

/** A standard normal sample (Box–Muller). */
function normal() {
  const u = 1 - Math.random();
  const v = Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** A log-normal delay whose mean is `mean` milliseconds. */
function delayMs(mean) {
  if (!(mean > 0)) return 0;
  const mu = Math.log(mean) - (SIGMA * SIGMA) / 2;
  return Math.exp(mu + SIGMA * normal());
}

const server = createServer((req, res) => {
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY) req.destroy();
  });
  req.on('end', () => {
    const c = config;
    const fail = Math.random() < c.errorRate;
    const body = JSON.stringify({
      pod: c.pod,
      namespace: c.namespace,
      labels: c.labels,
      path: req.url ?? '/',
      ...(fail ? { error: 'injected by sandbox.vane.dev/error-rate' } : {}),
    });
    const send = () => {
      if (res.destroyed) return;
      res.writeHead(fail ? 500 : 200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'x-sandbox-pod': c.pod,
      });
      res.end(body);
    };
    const ms = delayMs(c.latencyMs);
    if (ms >= 1) setTimeout(send, ms);
    else send();
  });
});
server.keepAliveTimeout = 30_000;

// Stopping is the parent's worker.terminate(): the thread's sockets close with it.
parentPort.on('message', (m) => {
  if (m && m.type === 'config') config = m.config;
});

server.listen(0, '127.0.0.1', () => {
  parentPort.postMessage({ type: 'listening', port: server.address().port });
});
