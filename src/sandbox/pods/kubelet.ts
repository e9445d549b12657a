// biome-ignore-all lint/suspicious/noExplicitAny: Kubernetes objects are arbitrary JSON whose shape is checked by schemas at run time, not by types.
import { Worker } from 'node:worker_threads';
import type { Cluster } from './cluster.ts';
import { isPodReady } from './controller.ts';

/** Set by the runtime on a running Pod: the demo app listens on 127.0.0.1 at this port. */
export const PORT_ANNOTATION = 'sandbox.vane.dev/port';
export const ERROR_RATE_ANNOTATION = 'sandbox.vane.dev/error-rate';
export const LATENCY_ANNOTATION = 'sandbox.vane.dev/latency-ms';
/** Every pod's address: the demo apps listen on loopback, each on its own port. */
export const POD_IP = '127.0.0.1';

const MAX_LATENCY_MS = 60_000;
/** A demo app that dies is started again after this long (CrashLoopBackOff, without the growth). */
const RESTART_BACKOFF_MS = 1_000;
const DEMO_APP = new URL('./demo-app.mjs', import.meta.url);

export interface DemoConfig {
  pod: string;
  namespace: string;
  labels: Record<string, string>;
  errorRate: number;
  latencyMs: number;
}

/** The behaviour the pod's annotations ask for, or what is wrong with them (naming the annotation and the fix). */
export function demoConfigOf(pod: any): DemoConfig | { error: string } {
  const a = pod.metadata.annotations ?? {};
  const num = (key: string, max: number, what: string): number | string => {
    const raw = a[key];
    if (raw === undefined || raw === '') return 0;
    const v = Number(raw);
    return Number.isFinite(v) && v >= 0 && v <= max
      ? v
      : `annotation ${key} must be ${what}, not ${JSON.stringify(raw)}; fix it with kubectl annotate --overwrite`;
  };
  const errorRate = num(
    ERROR_RATE_ANNOTATION,
    1,
    'a number from 0 to 1 (the share of requests answered 500)',
  );
  if (typeof errorRate === 'string') return { error: errorRate };
  const latencyMs = num(
    LATENCY_ANNOTATION,
    MAX_LATENCY_MS,
    `a mean in milliseconds from 0 to ${MAX_LATENCY_MS}`,
  );
  if (typeof latencyMs === 'string') return { error: latencyMs };
  return {
    pod: pod.metadata.name,
    namespace: pod.metadata.namespace,
    labels: { ...(pod.metadata.labels ?? {}) },
    errorRate,
    latencyMs,
  };
}

interface Proc {
  uid: string;
  namespace: string;
  name: string;
  worker: Worker;
  config: string;
  port?: number;
  /** When the demo app started listening (the container's startedAt, the pod's Ready time). */
  readyAt?: string;
  stopping: boolean;
}

export interface RunningPod {
  namespace: string;
  name: string;
  uid: string;
  /** undefined while the demo app is starting. */
  port?: number;
  threadId: number;
}

const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * The node agent: every Pod object gets a demo app in a worker thread; when it listens, the Pod is
 * written Running and Ready with its port; a Pod that goes away stops its worker. The workers are
 * the only state kept outside the simulator.
 */
export class Kubelet {
  private readonly procs = new Map<string, Proc>();
  /** Pods whose demo app died: restarts so far and when the next start is due. */
  private readonly crashes = new Map<string, { restarts: number; until: number }>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(
    private readonly cluster: Cluster,
    /** Asks for another reconcile pass (a worker came up, or went down). */
    private readonly wake: () => void,
    private readonly maxPods: number,
    private readonly log: (m: string) => void,
  ) {}

  running(): RunningPod[] {
    return [...this.procs.values()].map((p) => ({
      namespace: p.namespace,
      name: p.name,
      uid: p.uid,
      ...(p.port !== undefined ? { port: p.port } : {}),
      threadId: p.worker.threadId,
    }));
  }

  /** Ends a pod's demo app as if it had crashed; it is started again after a second (restartCount + 1). */
  async crash(namespace: string, name: string): Promise<boolean> {
    const proc = [...this.procs.values()].find((p) => p.namespace === namespace && p.name === name);
    if (!proc) return false;
    await proc.worker.terminate();
    return true;
  }

  /** One pass: start, reconfigure and stop demo apps, and write what became of each Pod. */
  sync(): void {
    if (this.closed) return;
    const seen = new Set<string>();
    for (const pod of this.cluster.list('Pod')) {
      const uid = pod.metadata.uid;
      seen.add(uid);
      if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') continue;
      const config = demoConfigOf(pod);
      let proc = this.procs.get(uid);
      if ('error' in config) {
        if (proc) this.stop(proc);
        this.writeWaiting(pod, 'CreateContainerConfigError', config.error);
        continue;
      }
      if (!proc) {
        const crash = this.crashes.get(uid);
        if (crash && crash.until > Date.now()) {
          this.writeWaiting(pod, 'CrashLoopBackOff', 'the demo app exited; it is started again shortly');
          continue;
        }
        if (this.procs.size >= this.maxPods) {
          this.writeUnschedulable(pod);
          continue;
        }
        proc = this.start(pod, config);
        // A Pod that ran before (a restored snapshot) is not Ready again until its new app listens.
        if (isPodReady(pod) || pod.metadata.annotations?.[PORT_ANNOTATION] !== undefined)
          this.writeWaiting(pod, 'ContainerCreating', 'the demo app is starting');
        continue;
      }
      const key = JSON.stringify(config);
      if (key !== proc.config) {
        proc.worker.postMessage({ type: 'config', config });
        proc.config = key;
      }
      if (proc.port !== undefined) this.writeRunning(pod, proc);
    }
    for (const proc of this.procs.values()) if (!seen.has(proc.uid)) this.stop(proc);
    for (const uid of this.crashes.keys()) if (!seen.has(uid)) this.crashes.delete(uid);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const stopping = [...this.procs.values()].map((p) => this.stop(p));
    await Promise.all(stopping);
  }

  private start(pod: any, config: DemoConfig): Proc {
    const worker = new Worker(DEMO_APP, {
      workerData: config,
      // Plain JavaScript: without this the worker inherits the TypeScript loader (tsx, vitest) and boots 3× slower.
      execArgv: [],
      // A demo app needs little heap; small limits keep many pods cheap.
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2 },
    });
    worker.unref();
    const proc: Proc = {
      uid: pod.metadata.uid,
      namespace: pod.metadata.namespace,
      name: pod.metadata.name,
      worker,
      config: JSON.stringify(config),
      stopping: false,
    };
    this.procs.set(proc.uid, proc);
    worker.on('message', (m: { type?: string; port?: number }) => {
      if (m?.type !== 'listening' || proc.stopping) return;
      proc.port = m.port;
      proc.readyAt = now();
      this.wake();
    });
    worker.on('error', (e) => this.log(`pod ${proc.namespace}/${proc.name}: demo app failed: ${e.message}`));
    worker.on('exit', () => {
      if (proc.stopping || this.closed) return;
      this.procs.delete(proc.uid);
      const restarts = (this.crashes.get(proc.uid)?.restarts ?? 0) + 1;
      this.crashes.set(proc.uid, { restarts, until: Date.now() + RESTART_BACKOFF_MS });
      const t = setTimeout(() => {
        this.timers.delete(t);
        this.wake();
      }, RESTART_BACKOFF_MS + 10);
      this.timers.add(t);
      this.wake();
    });
    return proc;
  }

  private stop(proc: Proc): Promise<number> {
    proc.stopping = true;
    this.procs.delete(proc.uid);
    return proc.worker.terminate();
  }

  private containerStatuses(pod: any, state: unknown, ready: boolean, containerId?: string) {
    const restartCount = this.crashes.get(pod.metadata.uid)?.restarts ?? 0;
    return (pod.spec?.containers ?? []).map((c: any) => ({
      name: c.name,
      image: c.image,
      imageID: '',
      ...(containerId ? { containerID: containerId } : {}),
      ready,
      started: ready,
      restartCount,
      state,
    }));
  }

  private writeRunning(pod: any, proc: Proc): void {
    const port = String(proc.port);
    if (pod.metadata.annotations?.[PORT_ANNOTATION] !== port)
      pod = this.cluster.update({
        ...structuredClone(pod),
        metadata: {
          ...structuredClone(pod.metadata),
          annotations: { ...pod.metadata.annotations, [PORT_ANNOTATION]: port },
        },
      });
    const at = proc.readyAt!;
    const scheduled = (pod.status?.conditions ?? []).find((c: any) => c.type === 'PodScheduled');
    const cond = (type: string, time = at) => ({
      type,
      status: 'True',
      lastProbeTime: null,
      lastTransitionTime: time,
    });
    const status = {
      phase: 'Running',
      conditions: [
        cond('Initialized'),
        cond('Ready'),
        cond('ContainersReady'),
        cond('PodScheduled', scheduled?.status === 'True' ? scheduled.lastTransitionTime : at),
      ],
      hostIP: POD_IP,
      hostIPs: [{ ip: POD_IP }],
      podIP: POD_IP,
      podIPs: [{ ip: POD_IP }],
      startTime: pod.status?.startTime ?? at,
      containerStatuses: this.containerStatuses(
        pod,
        { running: { startedAt: at } },
        true,
        `sandbox://thread-${proc.worker.threadId}`,
      ),
      qosClass: 'BestEffort',
    };
    if (!sameJson(pod.status, status)) this.cluster.updateStatus({ ...structuredClone(pod), status });
  }

  /** Not running: the port annotation goes, so no gateway sends it traffic. */
  private writeWaiting(pod: any, reason: string, message: string): void {
    if (pod.metadata.annotations?.[PORT_ANNOTATION] !== undefined) {
      const { [PORT_ANNOTATION]: _, ...annotations } = pod.metadata.annotations;
      pod = this.cluster.update({
        ...structuredClone(pod),
        metadata: { ...structuredClone(pod.metadata), annotations },
      });
    }
    const old = pod.status?.conditions ?? [];
    const since = (type: string, status: string) => {
      const prev = old.find((c: any) => c.type === type);
      return prev?.status === status ? prev.lastTransitionTime : now();
    };
    const notReady = (type: string) => ({
      type,
      status: 'False',
      lastProbeTime: null,
      lastTransitionTime: since(type, 'False'),
      reason: 'ContainersNotReady',
      message: `containers with unready status: [${(pod.spec?.containers ?? []).map((c: any) => c.name).join(' ')}]`,
    });
    const status = {
      phase: pod.status?.phase === 'Running' ? 'Running' : 'Pending',
      conditions: [
        {
          type: 'Initialized',
          status: 'True',
          lastProbeTime: null,
          lastTransitionTime: since('Initialized', 'True'),
        },
        notReady('Ready'),
        notReady('ContainersReady'),
        {
          type: 'PodScheduled',
          status: 'True',
          lastProbeTime: null,
          lastTransitionTime: since('PodScheduled', 'True'),
        },
      ],
      hostIP: POD_IP,
      hostIPs: [{ ip: POD_IP }],
      ...(pod.status?.startTime ? { startTime: pod.status.startTime } : {}),
      containerStatuses: this.containerStatuses(pod, { waiting: { reason, message } }, false),
      qosClass: 'BestEffort',
    };
    if (!sameJson(pod.status, status)) this.cluster.updateStatus({ ...structuredClone(pod), status });
  }

  private writeUnschedulable(pod: any): void {
    const prev = (pod.status?.conditions ?? []).find((c: any) => c.type === 'PodScheduled');
    const status = {
      phase: 'Pending',
      conditions: [
        {
          type: 'PodScheduled',
          status: 'False',
          lastProbeTime: null,
          lastTransitionTime: prev?.status === 'False' ? prev.lastTransitionTime : now(),
          reason: 'Unschedulable',
          message: `0/1 nodes are available: the sandbox runs at most ${this.maxPods} pods (startKubeSimulator option pods.maxPods); scale something down`,
        },
      ],
      qosClass: 'BestEffort',
    };
    if (!sameJson(pod.status, status)) this.cluster.updateStatus({ ...structuredClone(pod), status });
  }
}
