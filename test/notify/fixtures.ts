import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Rollout } from '../../src/rollouts/model.ts';
import { type RolloutSpecInput, RolloutSpecSchema } from '../../src/rollouts/spec.ts';

/** A rollout of bookinfo/reviews v1 → v2 at step 3 (25%), with two analyses failed. */
export function makeRollout(spec: Partial<RolloutSpecInput> = {}, over: Partial<Rollout> = {}): Rollout {
  const parsed = RolloutSpecSchema.parse({
    target: { namespace: 'bookinfo', virtualService: 'reviews', destinationRule: 'reviews', host: 'reviews' },
    stable: { subset: 'v1' },
    canary: { subset: 'v2', labels: { version: 'v2' } },
    strategy: { type: 'canary', steps: [5, 10, 25, 50], stepInterval: '30s' },
    analysis: { failureThreshold: 2 },
    metadata: { commit: 'abc1234', pipelineUrl: 'https://ci.example/p/42', triggeredBy: 'ci-bot' },
    ...spec,
  });
  const now = Date.UTC(2026, 0, 2, 3, 4, 5);
  return {
    id: 'ro-test0000000000001',
    version: 7,
    spec: parsed,
    input: {},
    phase: 'progressing',
    reason: 'analysis passed',
    createdAt: now - 60_000,
    updatedAt: now,
    phaseStartedAt: now - 30_000,
    progress: {
      stageIndex: 2,
      stageStartedAt: now - 30_000,
      windowStartedAt: now - 30_000,
      passes: 0,
      failures: 2,
      lastGuardAt: now,
      lastAnalysisAt: now,
      gatePassed: false,
    },
    traffic: { canaryWeight: 25 },
    weights: { stable: 75, canary: 25 },
    applied: true,
    createdSubset: false,
    commands: [],
    errorCount: 0,
    lastAnalysis: {
      verdict: 'fail',
      at: now,
      results: [
        {
          name: 'success-rate',
          verdict: 'fail',
          critical: true,
          value: 91.2,
          stableValue: 99.9,
          bounds: { min: 99 },
          message: 'success-rate 91.2% < 99% (stable 99.9%)',
        },
        {
          name: 'p99-latency',
          verdict: 'pass',
          critical: false,
          value: 120,
          bounds: { max: 500 },
          message: 'p99-latency 120ms ≤ 500ms',
        },
      ],
    },
    ...over,
  };
}

/**
 * The receiver's own check of vane's signature scheme, written from the documentation and not from
 * vane's code: HMAC-SHA256 over "<X-Vane-Timestamp>.<raw body>", hex, sent as "v1=<hex>".
 */
export function receiverVerifies(secret: string, headers: IncomingHttpHeaders, raw: string): boolean {
  const ts = headers['x-vane-timestamp'];
  const sig = headers['x-vane-signature'];
  if (typeof ts !== 'string' || typeof sig !== 'string') return false;
  if (Math.abs(Date.now() / 1000 - Number(ts)) > 300) return false;
  const want = createHmac('sha256', secret).update(`${ts}.${raw}`).digest('hex');
  return sig.split(',').some((s) => s.trim() === `v1=${want}`);
}

export interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  raw: string;
  body: unknown;
  at: number;
}

/** What the receiver answers to the n-th request (0-based) of a path: a status, or 'hang' to never answer. */
export type Behaviour = (n: number, req: Received) => number | 'hang' | { status: number; body: string };

/** A real HTTP server that records every request per path and answers as each path's behaviour says. */
export class Receiver {
  readonly received: Received[] = [];
  private readonly behaviours = new Map<string, Behaviour>();
  private readonly server: Server;
  private readonly hanging = new Set<import('node:http').ServerResponse>();
  port = 0;

  constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = JSON.parse(raw);
        } catch {
          body = raw;
        }
        const path = req.url ?? '/';
        const rec: Received = { path, headers: req.headers, raw, body, at: Date.now() };
        const n = this.received.filter((r) => r.path === path).length;
        this.received.push(rec);
        const out = (this.behaviours.get(path) ?? (() => 200))(n, rec);
        if (out === 'hang') {
          this.hanging.add(res);
          return;
        }
        const { status, body: text } = typeof out === 'number' ? { status: out, body: 'ok' } : out;
        res.writeHead(status, { 'content-type': 'text/plain' }).end(text);
      });
    });
  }

  async start(): Promise<this> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  on(path: string, b: Behaviour): this {
    this.behaviours.set(path, b);
    return this;
  }

  at(path: string): Received[] {
    return this.received.filter((r) => r.path === path);
  }

  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** A port nothing listens on: bound, then released. */
export async function closedPort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
