import type { RequestOptions } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import { Agent, type Dispatcher } from 'undici';
import { withContext } from './kube-call.ts';

/** Options of the per-cluster connection pools. */
export interface KubeConnectionOptions {
  /** Most TCP (or TLS) connections to one API server at once. Default 16. */
  connections?: number;
  /** How long an idle connection is kept open, ms. Default 30000 (below a load balancer's usual 60 s). */
  keepAliveMs?: number;
}

/**
 * One keep-alive connection pool (an undici Agent) per cluster and user, shared by every Kubernetes
 * call of the process. @kubernetes/client-node 2.x builds a new Agent, so a new connection and a
 * full TLS handshake, for every request whenever a TLS option is set (a CA, a client certificate,
 * skipTLSVerify); with plain options it falls back to fetch's global pool. The pool carries the same
 * TLS options the kubeconfig gives client-node, so only the connection reuse changes. A cluster
 * reached through a proxy keeps client-node's own dispatcher (undefined here).
 */
export class KubeConnections {
  private readonly pools = new Map<string, Promise<Dispatcher | undefined>>();
  private readonly made: Dispatcher[] = [];
  constructor(private readonly opts: KubeConnectionOptions = {}) {}

  /** The pool of the kubeconfig's current cluster and user, made on first use. */
  dispatcherFor(kc: KubeConfig): Promise<Dispatcher | undefined> {
    const cluster = kc.getCurrentCluster();
    const key = JSON.stringify([cluster?.name, cluster?.server, kc.getCurrentUser()?.name]);
    let p = this.pools.get(key);
    if (!p) {
      p = this.make(kc);
      this.pools.set(key, p);
      // a kubeconfig that could not be read (an exec plugin failing) is read again next time
      p.catch(() => this.pools.delete(key));
    }
    return p;
  }

  private async make(kc: KubeConfig): Promise<Dispatcher | undefined> {
    const cluster = kc.getCurrentCluster();
    if (cluster?.proxyUrl) return undefined;
    const https: RequestOptions = {};
    await kc.applyToHTTPSOptions(https);
    const tls: Record<string, unknown> = {};
    for (const k of ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'] as const) {
      if (https[k] !== undefined) tls[k] = https[k];
    }
    const agent = new Agent({
      connections: this.opts.connections ?? 16,
      keepAliveTimeout: this.opts.keepAliveMs ?? 30_000,
      connect: { ...tls, keepAlive: true, keepAliveInitialDelay: 30_000 },
    });
    this.made.push(agent);
    return agent;
  }

  /** Closes every pool (open requests finish first). */
  async close(): Promise<void> {
    const all = this.made.splice(0);
    this.pools.clear();
    await Promise.all(all.map((d) => d.close().catch(() => {})));
  }
}

/**
 * An API client per kubeconfig context, made once, with the call policy that sends its requests
 * through the cluster's pooled connections. `cluster` undefined is the current context.
 */
export function clientsPerCluster<T, P extends object>(
  kubeConfig: KubeConfig,
  connections: KubeConnections,
  policy: P,
  make: (kc: KubeConfig) => T,
): (cluster?: string) => { api: T; opts: P & { dispatcher: () => Promise<Dispatcher | undefined> } } {
  const made = new Map<string, { api: T; opts: P & { dispatcher: () => Promise<Dispatcher | undefined> } }>();
  return (cluster) => {
    const key = cluster ?? '';
    let m = made.get(key);
    if (!m) {
      const kc = withContext(kubeConfig, cluster, () => new KubeConfig());
      m = { api: make(kc), opts: { ...policy, dispatcher: () => connections.dispatcherFor(kc) } };
      made.set(key, m);
    }
    return m;
  };
}
