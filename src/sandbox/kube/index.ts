// biome-ignore-all lint/suspicious/noExplicitAny: Kubernetes objects are arbitrary JSON whose shape is checked by schemas at run time, not by types.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify as toYaml } from 'yaml';
import {
  checkPodRuntimeOptions,
  type PodRuntime,
  type PodRuntimeOptions,
  startPodRuntime,
} from '../pods/runtime.ts';
import { ObjectApi, present, type WriteLogEntry } from './api.ts';
import type { AllowRule } from './auth.ts';
import { type FaultRule, Faults } from './faults.ts';
import { OpenApi } from './openapi.ts';
import { Rbac, type RbacOptions, type RbacUsage } from './rbac.ts';
import { RESOURCE_TYPES, splitApiVersion, typeByKind } from './resources.ts';
import { createHandler } from './server.ts';
import { loadSnapshot, persistSnapshots } from './snapshot.ts';
import { ObjectStore, type WatchEventType } from './store.ts';
import { preloadModels, Validator } from './validation.ts';

export { grantName } from './rbac.ts';
export { KubeError } from './status.ts';
export type { FaultRule, PodRuntime, PodRuntimeOptions, RbacOptions, RbacUsage, WriteLogEntry };

/** A change to an object, as `subscribe` hands it over (the object as its storage version). */
export interface ObjectEvent {
  type: WatchEventType;
  kind: string;
  object: any;
}

export interface KubeSimulatorOptions {
  /** Port to listen on. Default: a free port. */
  port?: number;
  /** Address to bind. Default 127.0.0.1. */
  host?: string;
  /** Istio CRDs YAML: serve their openAPIV3Schema and evaluate their CEL rules. Default: none (models only). */
  crdsFile?: string;
  /** JSON snapshot: loaded at start when present, rewritten shortly after every change. Default: memory only. */
  snapshotFile?: string;
  /** When set, required as Bearer. Default: any token (or none) is accepted. kubectl sends tokens only over TLS, so a required token locks kubectl out of this plain-http server. */
  token?: string;
  /** RBAC-like allow list; 403 otherwise. Default: everything allowed. */
  allow?: AllowRule[];
  /** Kubernetes RBAC from roles and bindings in YAML (e.g. a rendered ClusterRole) and the users of tokens; replaces `token` and `allow`. Default: none. */
  rbac?: RbacOptions;
  /** Faults injected from the start. Default: none. */
  faults?: FaultRule[];
  /** Where start-up notes (like CEL rules that cannot be evaluated) go. Default: console.warn. */
  log?: (message: string) => void;
  /**
   * Run workloads: Deployments get ReplicaSets and Pods, each Pod a demo-app server on 127.0.0.1
   * (annotation sandbox.vane.dev/port), marked Ready. Default: off (objects only).
   */
  pods?: boolean | PodRuntimeOptions;
}

export interface KubeSimulator {
  readonly url: string;
  readonly port: number;
  /** A kubeconfig for kubectl: plain http, insecure-skip-tls-verify, a user with the token. */
  kubeconfigYaml(opts?: { token?: string; namespace?: string }): string;
  /** A @kubernetes/client-node KubeConfig (skipTLSVerify: true). */
  kubeConfig(opts?: { token?: string }): KubeConfig;
  writeLog(): WriteLogEntry[];
  /** With `rbac`: the grants of the tokens' users with the requests each allowed, and the requests refused. */
  rbacUsage(): RbacUsage | undefined;
  clearWriteLog(): void;
  setFaults(rules: FaultRule[]): void;
  clearFaults(): void;
  /** Direct access for tests and the sandbox: bypasses auth and faults, still validates, bumps resourceVersion, emits watch events. */
  getObject(apiVersion: string, kind: string, namespace: string | undefined, name: string): any | undefined;
  /** Create or replace (ignores resourceVersion); returns the stored object. */
  putObject(obj: any): any;
  deleteObject(apiVersion: string, kind: string, namespace: string | undefined, name: string): boolean;
  setDeploymentStatus(namespace: string, name: string, status: Record<string, unknown>): void;
  /** Every object of a kind (in a namespace when given), as a client speaking `apiVersion` sees it. */
  listObjects(apiVersion: string, kind: string, namespace?: string): any[];
  /** Calls `listener` after every change, synchronously, in the order of resourceVersion (the stored object: read it, never change it); returns the unsubscribe. */
  subscribe(listener: (e: ObjectEvent) => void): () => void;
  /** The pod runtime when started with `pods`; undefined otherwise. */
  readonly pods: PodRuntime | undefined;
  /** TCP connections accepted since start (to see whether clients reuse their connections). */
  connectionsAccepted(): number;
  /** CEL rules from crdsFile that could not be compiled/evaluated (also logged at start). */
  readonly unevaluatedCelRules: string[];
  close(): Promise<void>;
}

const BUILT_IN_NAMESPACES = ['default', 'kube-system', 'kube-public', 'istio-system'];

function typeOf(apiVersion: string, kind: string) {
  const t = typeByKind(apiVersion, kind);
  if (!t)
    throw new Error(
      `the kube simulator does not serve ${kind} in ${apiVersion}; it serves ${RESOURCE_TYPES.map((r) => `${r.kind} (${r.group || 'core'} ${r.versions.join(', ')})`).join('; ')}`,
    );
  return { t, version: splitApiVersion(apiVersion).version };
}

/** Starts a Kubernetes API simulator; close it when done. */
export async function startKubeSimulator(opts: KubeSimulatorOptions = {}): Promise<KubeSimulator> {
  const log = opts.log ?? ((m: string) => console.warn(m));
  const podOptions = opts.pods
    ? checkPodRuntimeOptions(typeof opts.pods === 'object' ? opts.pods : {})
    : undefined;
  await preloadModels();
  const validator = new Validator(opts.crdsFile);
  if (validator.cel.unevaluated.length)
    log(
      `kube simulator: ${validator.cel.unevaluated.length} CEL rule(s) of the CRDs cannot be evaluated and are NOT enforced:\n  ${validator.cel.unevaluated.join('\n  ')}`,
    );
  const store = new ObjectStore();
  const api = new ObjectApi(store, validator);
  const faults = new Faults();
  const rbac = opts.rbac ? new Rbac(opts.rbac) : undefined;
  if (opts.faults) faults.set(opts.faults);

  const nsType = RESOURCE_TYPES.find((t) => t.kind === 'Namespace')!;
  const restored = opts.snapshotFile ? loadSnapshot(store, opts.snapshotFile) : false;
  if (!restored)
    for (const name of BUILT_IN_NAMESPACES)
      api.create({ t: nsType, version: 'v1' }, { metadata: { name } }, {}, false);
  const snapshots = opts.snapshotFile ? persistSnapshots(store, opts.snapshotFile) : undefined;

  const host = opts.host ?? '127.0.0.1';
  const watches = new Set<() => void>();
  let url = '';
  const openapi = new OpenApi(validator);
  const handler = createHandler({
    api,
    openapi,
    faults,
    auth: { token: opts.token, allow: opts.allow },
    ...(rbac ? { rbac } : {}),
    address: () => url.replace(/^http:\/\//, ''),
    watches,
  });
  const server: Server = createServer(handler);
  server.keepAliveTimeout = 30_000;
  let accepted = 0;
  server.on('connection', () => {
    accepted++;
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  const ensureNamespace = (ns: string | undefined) => {
    if (ns && !store.get(nsType, undefined, ns))
      api.create({ t: nsType, version: 'v1' }, { metadata: { name: ns } }, {}, false);
  };

  const pods = podOptions ? startPodRuntime(api, { ...podOptions, log }) : undefined;

  const sim: KubeSimulator = {
    url,
    port,
    pods,
    unevaluatedCelRules: [...validator.cel.unevaluated],
    connectionsAccepted: () => accepted,
    kubeconfigYaml({ token = opts.token ?? 'sandbox', namespace } = {}) {
      return toYaml({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'vane-sandbox', cluster: { server: url, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'vane', user: { token } }],
        contexts: [
          {
            name: 'vane-sandbox',
            context: { cluster: 'vane-sandbox', user: 'vane', ...(namespace ? { namespace } : {}) },
          },
        ],
        'current-context': 'vane-sandbox',
      });
    },
    kubeConfig({ token = opts.token ?? 'sandbox' } = {}) {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'vane-sandbox', server: url, skipTLSVerify: true }],
        users: [{ name: 'vane', token }],
        contexts: [{ name: 'vane-sandbox', cluster: 'vane-sandbox', user: 'vane' }],
        currentContext: 'vane-sandbox',
      });
      return kc;
    },
    writeLog: () => structuredClone(api.writes),
    rbacUsage: () => rbac?.usage(),
    clearWriteLog: () => void api.writes.splice(0),
    setFaults: (rules) => faults.set(rules),
    clearFaults: () => faults.clear(),
    getObject(apiVersion, kind, namespace, name) {
      const { t, version } = typeOf(apiVersion, kind);
      const o = store.get(t, t.namespaced ? namespace : undefined, name);
      return o ? api.get({ t, version, namespace: t.namespaced ? namespace : undefined, name }) : undefined;
    },
    putObject(obj) {
      const { t, version } = typeOf(obj?.apiVersion ?? '', obj?.kind ?? '');
      const namespace = t.namespaced ? (obj.metadata?.namespace ?? 'default') : undefined;
      const name = obj.metadata?.name;
      ensureNamespace(namespace);
      const x = { t, version, namespace, name };
      const old = name ? store.get(t, namespace, name) : undefined;
      if (!old) {
        const status = obj.status;
        const created = api.create(x, obj, {}, false);
        return status !== undefined && t.statusSubresource
          ? api.update(
              { ...x, name: created.metadata.name, subresource: 'status' },
              { ...created, status },
              {},
              false,
            )
          : created;
      }
      const body = { ...structuredClone(obj), metadata: { ...obj.metadata, resourceVersion: undefined } };
      const updated = api.update(x, body, {}, false);
      return t.statusSubresource && obj.status !== undefined
        ? api.update({ ...x, subresource: 'status' }, { ...updated, status: obj.status }, {}, false)
        : updated;
    },
    deleteObject(apiVersion, kind, namespace, name) {
      const { t } = typeOf(apiVersion, kind);
      return store.delete(t, t.namespaced ? namespace : undefined, name) !== undefined;
    },
    setDeploymentStatus(namespace, name, status) {
      const t = RESOURCE_TYPES.find((r) => r.kind === 'Deployment')!;
      const old = store.get(t, namespace, name);
      if (!old)
        throw new Error(
          `Deployment ${namespace}/${name} does not exist in the kube simulator; create it first with putObject`,
        );
      api.update(
        { t, version: 'v1', namespace, name, subresource: 'status' },
        { ...structuredClone(old), status },
        {},
        false,
      );
    },
    listObjects(apiVersion, kind, namespace) {
      const { t, version } = typeOf(apiVersion, kind);
      return store.list(t, t.namespaced ? namespace : undefined).map((o) => present(t, version, o));
    },
    subscribe(listener) {
      return store.subscribe((e) => listener({ type: e.type, kind: e.resourceType.kind, object: e.object }));
    },
    async close() {
      await pods?.close();
      for (const stop of watches) stop();
      watches.clear();
      snapshots?.flush();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
  return sim;
}
