import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { VERSION } from '../version.ts';

/**
 * Owns the service's own Prometheus metrics. Every part records through intent-named methods,
 * so metric names and labels live in this one file.
 */
export class Recorder {
  readonly registry = new Registry();
  private readonly buildInfo = new Gauge({
    name: 'vane_build_info',
    help: 'Always 1; labels carry the version of vane and of Node.js.',
    labelNames: ['version', 'node'] as const,
    registers: [this.registry],
  });
  readonly httpRequests = new Counter({
    name: 'vane_http_requests_total',
    help: 'HTTP API requests by route and status code.',
    labelNames: ['method', 'route', 'code'] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: 'vane_http_request_duration_seconds',
    help: 'HTTP API request duration.',
    labelNames: ['method', 'route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  constructor({ defaultMetrics = true }: { defaultMetrics?: boolean } = {}) {
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry });
    this.buildInfo.set({ version: VERSION, node: process.version }, 1);
  }

  recordHttp(method: string, route: string, code: number, seconds: number): void {
    this.httpRequests.inc({ method, route, code: String(code) });
    this.httpDuration.observe({ method, route }, seconds);
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}
