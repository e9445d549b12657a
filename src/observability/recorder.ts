import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { VERSION } from '../version.ts';

/** Where a rollout's weights are labelled. */
export interface WeightLabels {
  id: string;
  spec: {
    target: { namespace: string; virtualService: string };
    stable: { subset: string };
    canary: { subset: string };
  };
}

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
  private readonly httpRequests = new Counter({
    name: 'vane_http_requests_total',
    help: 'HTTP API requests by route and status code.',
    labelNames: ['method', 'route', 'code'] as const,
    registers: [this.registry],
  });
  private readonly httpDuration = new Histogram({
    name: 'vane_http_request_duration_seconds',
    help: 'HTTP API request duration.',
    labelNames: ['method', 'route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  private readonly weight = new Gauge({
    name: 'vane_rollout_weight',
    help: 'Traffic weight vane last set, per target and subset (0 once the rollout ended).',
    labelNames: ['namespace', 'target', 'subset'] as const,
    registers: [this.registry],
  });
  private readonly transitions = new Counter({
    name: 'vane_rollout_transitions_total',
    help: 'Phase transitions.',
    labelNames: ['from', 'to'] as const,
    registers: [this.registry],
  });
  private readonly analysis = new Counter({
    name: 'vane_analysis_results_total',
    help: 'Metric check results.',
    labelNames: ['metric', 'result'] as const,
    registers: [this.registry],
  });
  private readonly tickDuration = new Histogram({
    name: 'vane_tick_duration_seconds',
    help: 'Duration of one rollout tick.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  private readonly tickLateness = new Histogram({
    name: 'vane_tick_lateness_seconds',
    help: 'How late a tick started after the time it was scheduled for.',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  private readonly kubeRequests = new Counter({
    name: 'vane_kube_requests_total',
    help: 'Requests to the Kubernetes API by verb and status code.',
    labelNames: ['verb', 'code'] as const,
    registers: [this.registry],
  });
  private readonly promQueries = new Counter({
    name: 'vane_prometheus_queries_total',
    help: 'Prometheus queries by result (ok, no_data, error).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  private readonly notifications = new Counter({
    name: 'vane_notifications_total',
    help: 'Outgoing webhooks and notifications by type and result.',
    labelNames: ['type', 'result'] as const,
    registers: [this.registry],
  });

  private readonly kubeEvents = new Counter({
    name: 'vane_kube_events_total',
    help: 'Kubernetes Events vane wrote on VirtualServices, by outcome (ok, error); best effort.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  private readonly scaleDowns = new Counter({
    name: 'vane_workload_scales_total',
    help: 'Workloads vane scaled after a verdict, by why (old-version, canary-failed, undo) and result.',
    labelNames: ['why', 'result'] as const,
    registers: [this.registry],
  });

  constructor({ defaultMetrics = true }: { defaultMetrics?: boolean } = {}) {
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry });
    this.buildInfo.set({ version: VERSION, node: process.version }, 1);
  }

  /** Rollouts per phase and queue depth are read at scrape time from Redis (shared by every process). */
  observeState(counts: {
    rolloutsByPhase: () => Promise<Record<string, number>>;
    queueDepth: () => Promise<Record<string, number>>;
  }): void {
    new Gauge({
      name: 'vane_rollouts',
      help: 'Rollouts per phase (active phases and terminal ones kept in Redis).',
      labelNames: ['phase'] as const,
      registers: [this.registry],
      async collect() {
        for (const [phase, n] of Object.entries(await counts.rolloutsByPhase())) this.set({ phase }, n);
      },
    });
    new Gauge({
      name: 'vane_queue_jobs',
      help: 'Jobs in the work queues by state.',
      labelNames: ['queue', 'state'] as const,
      registers: [this.registry],
      async collect() {
        for (const [key, n] of Object.entries(await counts.queueDepth())) {
          const [queue = '', state = ''] = key.split('/');
          this.set({ queue, state }, n);
        }
      },
    });
  }

  recordHttp(method: string, route: string, code: number, seconds: number): void {
    this.httpRequests.inc({ method, route, code: String(code) });
    this.httpDuration.observe({ method, route }, seconds);
  }
  setWeights(r: WeightLabels, w: { stable: number; canary: number }): void {
    const labels = { namespace: r.spec.target.namespace, target: r.spec.target.virtualService };
    this.weight.set({ ...labels, subset: r.spec.stable.subset }, w.stable);
    this.weight.set({ ...labels, subset: r.spec.canary.subset }, w.canary);
  }
  transition(from: string, to: string): void {
    this.transitions.inc({ from, to });
  }
  phaseChanged(_from: string, _to: string): void {
    // vane_rollouts is read from Redis at scrape time; nothing to keep here.
  }
  recordAnalysis(metric: string, result: string): void {
    this.analysis.inc({ metric, result });
  }
  observeTick(seconds: number): void {
    this.tickDuration.observe(seconds);
  }
  tickLate(seconds: number): void {
    this.tickLateness.observe(Math.max(0, seconds));
  }
  kubeRequest(verb: string, code: number | string): void {
    this.kubeRequests.inc({ verb, code: String(code) });
  }
  prometheusQuery(result: 'ok' | 'no_data' | 'error'): void {
    this.promQueries.inc({ result });
  }
  notification(type: string, result: 'sent' | 'failed'): void {
    this.notifications.inc({ type, result });
  }

  kubeEvent(outcome: 'ok' | 'error'): void {
    this.kubeEvents.inc({ outcome });
  }
  workloadScaled(why: 'old-version' | 'canary-failed' | 'undo', result: 'ok' | 'error'): void {
    this.scaleDowns.inc({ why, result });
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}
