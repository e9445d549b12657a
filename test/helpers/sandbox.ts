// biome-ignore-all lint/suspicious/noExplicitAny: tests read API answers and Kubernetes objects as untyped JSON.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { applyDemoService, type DemoServiceOptions } from '../../src/sandbox/demo-service.ts';
import {
  type LoadGenerator,
  type LoadOptions,
  type Sample,
  sampleTraffic,
  startLoad,
} from '../../src/sandbox/mesh/index.ts';
import { freePort, type ManagedProcess } from '../../src/sandbox/processes.ts';
import { type Sandbox, startSandbox } from '../../src/sandbox/run.ts';
import { istioCrdsFile } from './kube.ts';
import { eventually, startTestRedis } from './services.ts';

export const TERMINAL = ['succeeded', 'failed', 'aborted'];

/** One sandbox for a test file: real Redis, the simulator with pods, gateway, Prometheus, vane's API over HTTP and workers. */
export interface E2e {
  sb: Sandbox;
  redis: ManagedProcess;
  dataDir: string;
  /** JSON call to the API over HTTP. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; data: any }>;
  rollout(id: string): Promise<any>;
  /** Polls until the rollout's phase is one of `phases` (default: terminal); returns it. */
  waitFor(id: string, test: (r: any) => boolean, timeoutMs?: number): Promise<any>;
  /** The real kubectl against the simulator. */
  kubectl(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }>;
  /** A service of the given versions in its own namespace, each with a ready pod. */
  service(o: DemoServiceOptions): Promise<void>;
  /** Steady load to a service (stopped at close). */
  load(
    namespace: string,
    host: string,
    opts?: Pick<LoadOptions, 'rate' | 'testHeader' | 'onAnswer'>,
  ): LoadGenerator;
  sample(
    namespace: string,
    host: string,
    n?: number,
    headers?: Record<string, string>,
    concurrency?: number,
  ): Promise<Sample>;
  close(): Promise<void>;
}

export async function startE2e(env: Record<string, string> = {}): Promise<E2e> {
  const redis = await startTestRedis();
  const dataDir = mkdtempSync(join(process.env.VANE_TEST_RUN_DIR ?? tmpdir(), 'sandbox-e2e-'));
  const config = loadConfig({
    REDIS_URL: redis.url,
    PORT: String(await freePort()),
    HOST: '127.0.0.1',
    VANE_DATA_DIR: dataDir,
    VANE_KEY_PREFIX: 'e2e',
    LOG_LEVEL: 'warn',
    LOG_FORMAT: 'json',
    ...env,
  });
  const crdsFile = istioCrdsFile();
  let sb: Sandbox;
  try {
    sb = await startSandbox({
      config,
      logger: createLogger({ level: 'warn', format: 'json' }),
      portExplicit: true,
      persist: false,
      bookinfo: false,
      ...(crdsFile ? { crdsFile } : {}),
    });
  } catch (e) {
    await redis.stop();
    throw e;
  }
  // The run's global teardown kills Prometheus if this file crashes.
  let pidFile: string | undefined;
  if (process.env.VANE_TEST_RUN_DIR && sb.mesh.prometheus) {
    mkdirSync(join(process.env.VANE_TEST_RUN_DIR, 'pids'), { recursive: true });
    pidFile = join(process.env.VANE_TEST_RUN_DIR, 'pids', String(sb.mesh.prometheus.pid));
    writeFileSync(pidFile, String(sb.mesh.prometheus.pid));
  }
  const loads: LoadGenerator[] = [];
  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${sb.apiUrl}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await r.text();
    return { status: r.status, data: text ? JSON.parse(text) : undefined };
  };
  const rollout = async (id: string) => (await api('GET', `/api/v1/rollouts/${id}`)).data.rollout;
  return {
    sb,
    redis,
    dataDir,
    api,
    rollout,
    waitFor: (id, test, timeoutMs = 150_000) =>
      eventually(
        async () => {
          const r = await rollout(id);
          return test(r) ? r : undefined;
        },
        timeoutMs,
        200,
      ),
    kubectl: (args, input) =>
      new Promise((resolve) => {
        const child = spawn(
          'kubectl',
          ['--kubeconfig', sb.kubeconfig, '--cache-dir', join(dataDir, 'kubectl-cache'), ...args],
          { stdio: ['pipe', 'pipe', 'pipe'] },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (b) => {
          stdout += b;
        });
        child.stderr.on('data', (b) => {
          stderr += b;
        });
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        child.once('close', (code) => {
          clearTimeout(timer);
          resolve({ code: code ?? 1, stdout, stderr });
        });
        child.stdin.end(input ?? '');
      }),
    service: (o) => applyDemoService(sb.sim, o, 60_000),
    load(namespace, host, opts = {}) {
      const l = startLoad({
        gatewayUrl: sb.gatewayUrl,
        targets: [{ host, namespace }],
        rate: opts.rate ?? 15,
        sourceWorkload: 'productpage-v1',
        ...(opts.testHeader ? { testHeader: opts.testHeader } : {}),
        ...(opts.onAnswer ? { onAnswer: opts.onAnswer } : {}),
      });
      loads.push(l);
      return l;
    },
    sample: (namespace, host, n = 500, headers = {}, concurrency = 10) =>
      // A loaded machine can take seconds per answer: a timeout here would read as a routing failure.
      sampleTraffic(sb.gatewayUrl, { host, namespace, n, headers, concurrency, timeoutMs: 20_000 }),
    async close() {
      await Promise.all(loads.map((l) => l.stop()));
      await sb.close();
      await redis.stop();
      if (pidFile) rmSync(pidFile, { force: true });
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The version a pod belongs to, from its name (`<service>-<version>-<hash>-<suffix>`). */
export function versionOf(pod: string, service: string): string {
  return pod.startsWith(`${service}-`) ? (pod.slice(service.length + 1).split('-')[0] ?? '?') : pod;
}

/** A sample's answers counted by version. */
export function byVersion(s: Sample, service: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [pod, n] of Object.entries(s.byPod))
    out[versionOf(pod, service)] = (out[versionOf(pod, service)] ?? 0) + n;
  if (s.failed) out.failed = s.failed;
  return out;
}

/** A canary spec for a demo service with short intervals; `over` replaces top-level fields. */
export function e2eSpec(ns: string, name: string, over: Record<string, any> = {}) {
  return {
    target: { namespace: ns, virtualService: name, destinationRule: name },
    stable: { subset: 'v1' },
    canary: { subset: 'v2', labels: { app: name, version: 'v2' }, workload: { name: `${name}-v2` } },
    strategy: { type: 'canary', steps: [20, 50], stepInterval: '4s' },
    analysis: {
      interval: '10s',
      guardInterval: '1s',
      guardWindow: '6s',
      failureThreshold: 1,
      minRequests: 10,
      metrics: [
        {
          name: 'success-rate',
          template: 'request-success-rate',
          critical: true,
          thresholdRange: { min: 95 },
        },
      ],
      deadlines: { inconclusive: '60s' },
    },
    metadata: { triggeredBy: 'e2e' },
    ...over,
  };
}
