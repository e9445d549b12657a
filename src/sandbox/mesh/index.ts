import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { type ManagedProcess, startPrometheus } from '../processes.ts';
import { type MeshGateway, startMeshGateway } from './gateway.ts';
import { type LoadGenerator, type LoadOptions, startLoad } from './load.ts';

export {
  type MeshGateway,
  type MeshGatewayOptions,
  NAMESPACE_HEADER,
  RESPONSE_FLAGS_HEADER,
  SOURCE_WORKLOAD_HEADER,
  startMeshGateway,
} from './gateway.ts';
export {
  type LoadAnswer,
  type LoadGenerator,
  type LoadOptions,
  type LoadStats,
  meshRequest,
  POD_HEADER,
  type Sample,
  type SampleOptions,
  sampleTraffic,
  startLoad,
} from './load.ts';
export { compileRoutes, POD_PORT_ANNOTATION, route } from './routes.ts';

export interface SandboxMeshOptions {
  /** The kube simulator (or anything giving a KubeConfig of the cluster to follow). */
  sim: { kubeConfig(): KubeConfig };
  /** Folder for Prometheus's configuration and data (`<dataDir>/prometheus`). */
  dataDir: string;
  /** Gateway port. Default: a free port. */
  gatewayPort?: number;
  /** Start Prometheus scraping the gateway. Default: on, a free port, every 1s. */
  prometheus?: false | { port?: number; scrapeInterval?: string };
  /** Start a load generator through the gateway. Default: none. */
  load?: Omit<LoadOptions, 'gatewayUrl'>;
}

export interface SandboxMesh {
  gatewayUrl: string;
  /** Undefined when Prometheus was not asked for. */
  prometheusUrl?: string;
  gateway: MeshGateway;
  prometheus?: ManagedProcess;
  load?: LoadGenerator;
  /** Stops the load, Prometheus and the gateway, in that order. */
  close(): Promise<void>;
}

export interface GatewayPrometheusOptions {
  /** Folder for Prometheus's configuration and data. */
  dir: string;
  /** The gateway's host:port (`MeshGateway.hostPort`). */
  gateway: string;
  /** Default: a free port. */
  port?: number;
  /** Default 1s. */
  scrapeInterval?: string;
}

/** A real Prometheus scraping the gateway's /metrics (job `sandbox-mesh`), every second by default. */
export function startGatewayPrometheus(opts: GatewayPrometheusOptions): Promise<ManagedProcess> {
  return startPrometheus({
    dir: opts.dir,
    ...(opts.port !== undefined ? { port: opts.port } : {}),
    scrapeInterval: opts.scrapeInterval ?? '1s',
    targets: [{ job: 'sandbox-mesh', target: opts.gateway }],
  });
}

/**
 * Resolves once Prometheus has scraped the gateway (`up{job="sandbox-mesh"} == 1`); Prometheus
 * from Debian takes several seconds to its first sample. Throws after `timeoutMs` (default 30 s).
 */
export async function waitForGatewayScrape(prometheusUrl: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const url = `${prometheusUrl}/api/v1/query?query=${encodeURIComponent('up{job="sandbox-mesh"} == 1')}`;
  let last = 'no answer';
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      const body = (await r.json()) as { data?: { result?: unknown[] } };
      if (r.ok && (body.data?.result?.length ?? 0) > 0) return;
      last = r.ok ? 'no successful scrape yet' : `HTTP ${r.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(
    `Prometheus at ${prometheusUrl} has not scraped the gateway within ${timeoutMs}ms (${last})`,
  );
}

/** Starts the mesh gateway following `sim`, a real Prometheus scraping it every second, and optionally load. */
export async function startSandboxMesh(opts: SandboxMeshOptions): Promise<SandboxMesh> {
  const gateway = await startMeshGateway({
    kubeConfig: opts.sim.kubeConfig(),
    ...(opts.gatewayPort !== undefined ? { port: opts.gatewayPort } : {}),
  });
  let prometheus: ManagedProcess | undefined;
  let load: LoadGenerator | undefined;
  try {
    if (opts.prometheus !== false) {
      prometheus = await startGatewayPrometheus({
        dir: join(opts.dataDir, 'prometheus'),
        gateway: gateway.hostPort,
        ...(opts.prometheus?.port !== undefined ? { port: opts.prometheus.port } : {}),
        ...(opts.prometheus?.scrapeInterval ? { scrapeInterval: opts.prometheus.scrapeInterval } : {}),
      });
    }
    if (opts.load) load = startLoad({ ...opts.load, gatewayUrl: gateway.url });
  } catch (e) {
    await prometheus?.stop();
    await gateway.close();
    throw e;
  }
  return {
    gatewayUrl: gateway.url,
    ...(prometheus ? { prometheusUrl: prometheus.url } : {}),
    gateway,
    ...(prometheus ? { prometheus } : {}),
    ...(load ? { load } : {}),
    async close() {
      await load?.stop();
      await prometheus?.stop();
      await gateway.close();
    },
  };
}

/** Every part's address, as `<VANE_DATA_DIR>/sandbox.json` names them. */
export interface SandboxFile {
  apiUrl: string;
  /** Path of a kubeconfig for the simulator. */
  kubeconfig: string;
  kubeUrl: string;
  gatewayUrl: string;
  prometheusUrl: string;
}

const SANDBOX_FILE_FIELDS = ['apiUrl', 'kubeconfig', 'kubeUrl', 'gatewayUrl', 'prometheusUrl'] as const;

/** Writes `<dataDir>/sandbox.json` (atomically: a reader never sees half a file) and returns its path. */
export function writeSandboxFile(dataDir: string, info: SandboxFile): string {
  for (const k of Object.keys(info))
    if (!(SANDBOX_FILE_FIELDS as readonly string[]).includes(k))
      throw new Error(`sandbox.json: unknown field ${k}; the fields are ${SANDBOX_FILE_FIELDS.join(', ')}`);
  for (const k of SANDBOX_FILE_FIELDS) {
    const v = info[k];
    if (typeof v !== 'string' || !v || v.length > 4096)
      throw new Error(`sandbox.json: ${k} must be a non-empty string (got ${JSON.stringify(v)})`);
    if (k !== 'kubeconfig' && !/^https?:\/\//.test(v))
      throw new Error(`sandbox.json: ${k} must be an http(s) URL (got ${JSON.stringify(v)})`);
  }
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, 'sandbox.json');
  const tmp = `${file}.${process.pid}.tmp`;
  const body = Object.fromEntries(SANDBOX_FILE_FIELDS.map((k) => [k, info[k]]));
  writeFileSync(tmp, `${JSON.stringify(body, null, 2)}\n`);
  renameSync(tmp, file);
  return file;
}
