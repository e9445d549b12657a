import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MetricCheckInput } from '../../src/metrics/spec.ts';
import type { AnalysisContext } from '../../src/metrics/types.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { startTestPrometheus } from './services.ts';

/**
 * A week of a stable's Istio metrics, written into a real Prometheus with promtool (the Debian
 * Prometheus 2.42 offers `promtool tsdb create-blocks-from openmetrics`; its remote-write receiver
 * refuses samples older than the head block, so it cannot write last week):
 * - one sample a minute, 10 req/s, 0.1% errors, every request 100 ms;
 * - every day from 14:00 to 14:15 a latency bump: 200, 800, 200, 900, 450, 700, 200 ms on the 7 days,
 *   so p99 crosses 500 ms on three of them (800, 900, 700) and comes within 2.5 ms on one (450: in
 *   the 250–500 bucket Prometheus interpolates p99 to 497.5);
 * - every night from 02:00 to 02:30, 0.05 req/s: fewer than minRequests in the window.
 */
export const DAY = 86_400_000;
export const END = Math.floor(Date.now() / DAY) * DAY; // today 00:00 UTC: the window is the 7 whole days before
export const START = END - 7 * DAY;
export const BUMPS = [200, 800, 200, 900, 450, 700, 200];
const BUCKETS = [50, 100, 250, 500, 1000, 2500];
export const HISTORY_CTX: AnalysisContext = {
  namespace: 'shop',
  host: 'cart.shop.svc.cluster.local',
  service: 'cart',
  stable: { subset: 'v1', labels: { app: 'cart', version: 'v1' } },
  canary: { subset: 'v2', labels: { app: 'cart', version: 'v2' } },
  intervalSeconds: 300,
};
export const HISTORY_CHECKS: MetricCheckInput[] = [
  { name: 'success-rate', template: 'request-success-rate', critical: true, thresholdRange: { min: 99 } },
  { name: 'p99-latency', template: 'request-duration', thresholdRange: { max: 500 } },
  {
    name: 'p50-latency',
    template: 'request-duration',
    options: { quantile: 0.5 },
    dryRun: true,
    thresholdRange: { max: 150 },
  },
  { name: 'latency-vs-stable', template: 'request-duration', compare: { maxIncrease: 0.2 } },
];

/** The minute ending at `t` (ms): requests, latency. */
function minute(t: number): { requests: number; latency: number } {
  const inDay = t - Math.floor((t - 1) / DAY) * DAY; // (0, DAY]: a sample covers the minute before it
  const day = Math.floor((t - 1 - START) / DAY);
  const dip = inDay > 2 * 3_600_000 && inDay <= 2.5 * 3_600_000;
  const bump = inDay > 14 * 3_600_000 && inDay <= 14.25 * 3_600_000 && day >= 0 && day < 7;
  return { requests: (dip ? 0.05 : 10) * 60, latency: bump ? BUMPS[day]! : 100 };
}

export function openMetrics(): string {
  const from = START - 2 * 3_600_000;
  const to = END + 10 * 60_000;
  const sel =
    'reporter="source",destination_service_namespace="shop",destination_service_name="cart",destination_app="cart",destination_version="v1"';
  const lines: string[] = ['# TYPE istio_requests counter'];
  const ok: string[] = [];
  const err: string[] = [];
  const buckets: string[][] = [...BUCKETS, '+Inf'].map(() => []);
  let good = 0;
  let bad = 0;
  const cum = new Array(BUCKETS.length + 1).fill(0);
  for (let t = from; t <= to; t += 60_000) {
    const m = minute(t);
    good += m.requests * 0.999;
    bad += m.requests * 0.001;
    BUCKETS.forEach((le, i) => {
      if (m.latency <= le) cum[i] += m.requests;
    });
    cum[BUCKETS.length] += m.requests;
    const s = t / 1000;
    ok.push(`istio_requests_total{${sel},response_code="200"} ${good} ${s}`);
    err.push(`istio_requests_total{${sel},response_code="500"} ${bad} ${s}`);
    buckets.forEach((b, i) => {
      b.push(
        `istio_request_duration_milliseconds_bucket{${sel},le="${i < BUCKETS.length ? BUCKETS[i] : '+Inf'}"} ${cum[i]} ${s}`,
      );
    });
  }
  lines.push(...ok, ...err, '# TYPE istio_request_duration_milliseconds histogram');
  for (const b of buckets) lines.push(...b);
  lines.push('# EOF');
  return `${lines.join('\n')}\n`;
}

/** A real Prometheus (scrape interval 60 s in the history) holding the week above, written with promtool before it starts. */
export async function startHistoryPrometheus(): Promise<ManagedProcess> {
  const work = mkdtempSync(join(tmpdir(), 'vane-backtest-'));
  try {
    writeFileSync(join(work, 'week.om'), openMetrics());
    return await startTestPrometheus([], '15s', {
      retention: '30d',
      prepare: (data) =>
        execFileSync(
          'promtool',
          ['tsdb', 'create-blocks-from', 'openmetrics', '-q', join(work, 'week.om'), data],
          {
            timeout: 90_000,
          },
        ),
    });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export const weekday = (ms: number) =>
  new Date(ms).toLocaleDateString('en-GB', { weekday: 'long', timeZone: 'UTC' });
