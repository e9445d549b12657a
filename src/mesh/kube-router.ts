import { isDeepStrictEqual } from 'node:util';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type Informer,
  KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  makeInformer,
  type ObjectCache,
} from '@kubernetes/client-node';
import type { PodLabels } from './analyzer.ts';
import { ANNOTATIONS } from './annotations.ts';
import type {
  DestinationRuleObject,
  DestinationRuleSpec,
  HttpRoute,
  Subset,
  VirtualServiceObject,
  VirtualServiceSpec,
} from './istio.ts';
import { ISTIO_GROUP } from './istio.ts';
import { backoff, type CallPolicy, callKube, sleep, statusOf, withContext } from './kube-call.ts';
import { clientsPerCluster, KubeConnections } from './kube-connections.ts';
import {
  ensureSubset,
  promoteVirtualService,
  type RouteScope,
  type RouteWeights,
  readRouteWeights,
  relabelSubset,
  removeExperimentRoute,
  removeSubset,
  rollbackVirtualService,
  routeScope,
  setExperimentRoute,
  setMirror,
  setWeights,
} from './transforms/index.ts';
import {
  type ExperimentMatch,
  MeshError,
  type MeshTarget,
  type MirrorSetting,
  type PromotionMode,
  type TrafficRouter,
  type Weights,
  type WriteResult,
} from './types.ts';

/** Options of the Kubernetes adapter. */
export interface KubeRouterOptions extends CallPolicy {
  kubeConfig: KubeConfig;
  /** Kubeconfig context (cluster) to use. Default: the kubeconfig's current context. */
  context?: string;
  /** Attempts of read-change-write when the object changed in between (409 Conflict). Default 5. */
  maxConflictAttempts?: number;
  /** The process's connection pools, one per cluster. Default: pools of this router's own. */
  connections?: KubeConnections;
  /**
   * Read the managed objects for drift from a watch (an informer per namespace in use) instead of a
   * GET per tick. Writes still read the object afresh. Default true.
   */
  watch?: boolean;
}

/** The managed weights as the cluster has them, with every managed route's own split (for drift). */
export type ReadWeights = Weights & { routes: RouteWeights[] };

/** vane's own bookkeeping annotation on the VirtualService: the split it last wrote (see splitOfShare). */
const WEIGHTS_ANNOTATION = 'vane.dev/weights';
const VANE_ANNOTATIONS = [...Object.values(ANNOTATIONS), WEIGHTS_ANNOTATION];

type Kind = 'VirtualService' | 'DestinationRule';
const PLURAL: Record<Kind, string> = {
  VirtualService: 'virtualservices',
  DestinationRule: 'destinationrules',
};
/** Tried in order; the first the server serves is used (v1 from Istio 1.22, v1beta1 before). */
const VERSIONS = ['v1', 'v1beta1', 'v1alpha3'];

type IstioObject = VirtualServiceObject | DestinationRuleObject;

/** The TrafficRouter over the Kubernetes API, plus reads the analyzer needs. */
export interface KubeTrafficRouter extends TrafficRouter {
  readWeights(target: MeshTarget): Promise<ReadWeights>;
  /** Puts back the specs saved by snapshot (VirtualService first, so no route points at a removed subset). */
  restore(target: MeshTarget): Promise<void>;
  /** The VirtualService, or undefined when it does not exist. */
  getVirtualService(namespace: string, name: string): Promise<VirtualServiceObject | undefined>;
  /** The DestinationRule, or undefined when it does not exist. */
  getDestinationRule(namespace: string, name: string): Promise<DestinationRuleObject | undefined>;
  /** VirtualServices of every namespace (of `namespace` when listing all is forbidden or asked). */
  listVirtualServices(namespace?: string): Promise<VirtualServiceObject[]>;
  /** The networking.istio.io version the server was found to serve. */
  apiVersion(): Promise<string>;
  /**
   * The stable subset's labels before the rollout changed them (from the snapshot while the rollout
   * holds the DestinationRule, else as they are now): what undo gives back after a relabel.
   */
  stableLabels(target: MeshTarget): Promise<Record<string, string> | undefined>;
  /**
   * Undoes a promotion in one write: `shift` — every managed route sends the whole share back to the
   * stable subset (the VirtualService); `relabel` — the stable subset selects the old version's
   * labels again (the DestinationRule; its routes already send everything to stable).
   */
  undoPromotion(
    target: MeshTarget,
    mode: PromotionMode,
    stableLabels?: Record<string, string>,
  ): Promise<void>;
  /** Stops the watches. */
  close(): Promise<void>;
}

function annotationsOf(o: IstioObject): Record<string, string> {
  return o.metadata?.annotations ?? {};
}

/** The object with these annotations set (string) or removed (undefined); the object itself when nothing changes. */
function withAnnotations<T extends IstioObject>(o: T, set: Record<string, string | undefined>): T {
  const current = annotationsOf(o);
  const next = { ...current };
  for (const [k, v] of Object.entries(set)) {
    if (v === undefined) delete next[k];
    else next[k] = v;
  }
  if (isDeepStrictEqual(next, current)) return o;
  const metadata = { ...o.metadata };
  if (Object.keys(next).length) metadata.annotations = next;
  else delete metadata.annotations;
  return { ...o, metadata };
}

function withSpec<T extends IstioObject>(o: T, spec: T['spec']): T {
  return spec === o.spec ? o : { ...o, spec };
}

function parseWeights(s: string | undefined): Weights | undefined {
  if (!s) return undefined;
  try {
    const w = JSON.parse(s) as Weights;
    return Number.isInteger(w.stable) && Number.isInteger(w.canary) ? w : undefined;
  } catch {
    return undefined;
  }
}

type WrittenSubsets = Record<string, Subset | null>;

function parseWritten(s: string | undefined): WrittenSubsets | undefined {
  if (!s) return undefined;
  try {
    const w = JSON.parse(s) as unknown;
    return w && typeof w === 'object' && !Array.isArray(w) ? (w as WrittenSubsets) : undefined;
  } catch {
    return undefined;
  }
}

function parseSpec<S>(o: IstioObject, s: string | undefined): S | undefined {
  if (!s) return undefined;
  try {
    return JSON.parse(s) as S;
  } catch {
    throw new MeshError(
      'Invalid',
      `${o.kind} ${o.metadata?.namespace}/${o.metadata?.name}: annotation ${ANNOTATIONS.originalSpec} is not JSON; restore the spec by hand`,
      false,
    );
  }
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Three-way merge that takes vane's change back: where `now` is still what vane wrote, the snapshot's
 * value (`was`); where vane wrote what was there already, `now`; for objects, key by key (the
 * snapshot's keys first, so an untouched object keeps its text); otherwise (both changed) `now`.
 */
export function revert3(was: unknown, wrote: unknown, now: unknown): unknown {
  if (isDeepStrictEqual(now, wrote)) return was;
  if (isDeepStrictEqual(was, wrote)) return now;
  if (!isPlainObject(was) || !isPlainObject(wrote) || !isPlainObject(now)) return now;
  const out: Record<string, unknown> = {};
  for (const k of new Set([...Object.keys(was), ...Object.keys(now)])) {
    const v = revert3(was[k], wrote[k], now[k]);
    if (v !== undefined) out[k] = v;
  }
  return isDeepStrictEqual(out, was) ? was : out;
}

/**
 * Three-way revert of the subsets vane wrote: what is still as vane wrote it goes back to the
 * snapshot (a subset vane created goes), field by field, so a relabelled stable subset selects the
 * old pods again even when someone changed its trafficPolicy meanwhile; what someone else changed
 * since stays as they left it. Subsets vane never wrote, and every other field, are not touched.
 */
export function revertSubsets(
  current: DestinationRuleSpec,
  original: DestinationRuleSpec,
  written: WrittenSubsets,
): DestinationRuleSpec {
  const subsets = [...(current.subsets ?? [])];
  const before = original.subsets ?? [];
  for (const [name, wrote] of Object.entries(written)) {
    const i = subsets.findIndex((s) => s.name === name);
    const j = before.findIndex((s) => s.name === name);
    const now = i >= 0 ? subsets[i]! : null;
    const was = j >= 0 ? before[j]! : null;
    const next = revert3(was, wrote, now) as Subset | null;
    if (next === now) continue;
    if (next && i >= 0) subsets[i] = next;
    else if (next) subsets.splice(Math.min(j, subsets.length), 0, next);
    else subsets.splice(i, 1);
  }
  if (isDeepStrictEqual(subsets, current.subsets ?? [])) return current;
  const { subsets: _, ...rest } = current;
  return subsets.length || original.subsets ? { ...current, subsets } : rest;
}

/**
 * The rolled-back VirtualService, with the snapshot's own text wherever rolling back the snapshot
 * gives the same thing (e.g. a sole destination without a weight stays so): the whole spec when
 * nobody else changed it, else route by route, so a route or field someone else changed keeps
 * their change (rolled back to stable all the same).
 */
export function preferOriginal(
  rolledBack: VirtualServiceSpec,
  original: VirtualServiceSpec,
  scope: RouteScope,
): VirtualServiceSpec {
  let normal: VirtualServiceSpec;
  try {
    normal = rollbackVirtualService(original, scope);
  } catch {
    return rolledBack;
  }
  // Istio gives a sole destination everything, written out or not.
  const same = (a: HttpRoute | undefined, b: HttpRoute | undefined) => {
    const sole = (r: HttpRoute | undefined) =>
      r?.route?.length === 1 && (r.route[0]!.weight ?? 100) === 100
        ? { ...r, route: [{ ...r.route[0]!, weight: 100 }] }
        : r;
    return isDeepStrictEqual(sole(a), sole(b));
  };
  const http = rolledBack.http ?? [];
  const before = original.http ?? [];
  const normalHttp = normal.http ?? [];
  if (http.length !== normalHttp.length) return rolledBack;
  const routes = http.map((route, i) => (same(route, normalHttp[i]) ? before[i]! : route));
  const { http: _a, ...restRolledBack } = rolledBack;
  const { http: _b, ...restNormal } = normal;
  if (isDeepStrictEqual(restRolledBack, restNormal) && routes.every((r, i) => r === before[i]))
    return original;
  return isDeepStrictEqual(routes, http) ? rolledBack : { ...rolledBack, http: routes };
}

/** Creates the TrafficRouter of one cluster over @kubernetes/client-node. */
export function createKubeTrafficRouter(options: KubeRouterOptions): KubeTrafficRouter {
  const kc = withContext(options.kubeConfig, options.context, () => new KubeConfig());
  const connections = options.connections ?? new KubeConnections();
  const opts: KubeRouterOptions = { ...options, dispatcher: () => connections.dispatcherFor(kc) };
  const api = kc.makeApiClient(CustomObjectsApi);
  const maxConflictAttempts = opts.maxConflictAttempts ?? 5;
  let version: Promise<string> | undefined;

  function apiVersion(): Promise<string> {
    version ??= (async () => {
      for (const v of VERSIONS) {
        try {
          await callKube(
            opts,
            `API group ${ISTIO_GROUP}/${v}`,
            (o) => api.getAPIResources({ group: ISTIO_GROUP, version: v }, o),
            (s) => s === 404,
          );
          return v;
        } catch (e) {
          if (statusOf(e) !== 404) throw e;
        }
      }
      throw new MeshError(
        'NotFound',
        `the cluster serves none of ${VERSIONS.map((v) => `${ISTIO_GROUP}/${v}`).join(', ')}; is Istio installed?`,
        false,
      );
    })();
    // a failed discovery is asked again next time rather than remembered
    version.catch(() => {
      version = undefined;
    });
    return version;
  }

  const objectName = (kind: Kind, ns: string, name: string) => `${kind} ${ns}/${name}`;

  async function get<T extends IstioObject>(kind: Kind, ns: string, name: string): Promise<T | undefined> {
    const v = await apiVersion();
    try {
      return (await callKube(
        opts,
        objectName(kind, ns, name),
        (o) =>
          api.getNamespacedCustomObject(
            { group: ISTIO_GROUP, version: v, namespace: ns, plural: PLURAL[kind], name },
            o,
          ),
        (s) => s === 404,
      )) as T;
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw e;
    }
  }

  async function mustGet<T extends IstioObject>(kind: Kind, ns: string, name: string): Promise<T> {
    const o = await get<T>(kind, ns, name);
    if (!o) throw new MeshError('NotFound', `${objectName(kind, ns, name)} does not exist`, false);
    return o;
  }

  /**
   * The managed objects as a watch sees them: one informer per kind and namespace in use, started on
   * first read. A cached object is used only when its resourceVersion is the newest this router
   * knows of the object (from its own GET or write): right after vane writes, or after someone
   * else's edit, the cache may lag, so the object is read afresh once and the cache is trusted again
   * when it has caught up. Until its first list, and after a watch error, reads go to the API.
   */
  type Watched = { informer: Informer<KubernetesObject> & ObjectCache<KubernetesObject>; synced: boolean };
  const watches = new Map<string, Watched>();
  const known = new Map<string, string | undefined>();
  let closed = false;

  function watched(kind: Kind, ns: string, v: string): Watched | undefined {
    if (options.watch === false || closed) return undefined;
    const key = `${kind}/${ns}`;
    let w = watches.get(key);
    if (!w) {
      const path = `/apis/${ISTIO_GROUP}/${v}/namespaces/${ns}/${PLURAL[kind]}`;
      const informer = makeInformer<KubernetesObject>(
        kc,
        path,
        () =>
          callKube(opts, `${PLURAL[kind]} of namespace ${ns}`, (o) =>
            api.listNamespacedCustomObject(
              { group: ISTIO_GROUP, version: v, namespace: ns, plural: PLURAL[kind] },
              o,
            ),
          ) as Promise<KubernetesListObject<KubernetesObject>>,
      );
      const entry: Watched = { informer, synced: false };
      informer.on('connect', () => {
        entry.synced = true;
      });
      informer.on('error', (e) => {
        entry.synced = false;
        opts.logger?.debug(
          { what: path, err: (e as Error)?.message },
          'watch failed; reading from the API until it is back',
        );
      });
      informer.start().then(
        () => {
          entry.synced = true;
        },
        () => {
          entry.synced = false;
        },
      );
      watches.set(key, entry);
      w = entry;
    }
    return w.synced ? w : undefined;
  }

  /** The object for a drift check: from the watch when it is known current, else one GET. */
  async function observe<T extends IstioObject>(kind: Kind, ns: string, name: string): Promise<T> {
    const key = `${kind}/${ns}/${name}`;
    const w = watched(kind, ns, await apiVersion());
    const cached = w?.informer.get(name, ns) as unknown as T | undefined;
    if (cached && known.has(key) && cached.metadata?.resourceVersion === known.get(key)) return cached;
    const o = await mustGet<T>(kind, ns, name);
    known.set(key, o.metadata?.resourceVersion);
    return o;
  }

  /**
   * Read, change, write with the resourceVersion read (PUT). On 409 the object changed in between:
   * read again and apply the change again, a bounded number of times. Nothing is written when the
   * change leaves the object as it was.
   */
  async function update<T extends IstioObject>(
    kind: Kind,
    ns: string,
    name: string,
    change: (o: T) => T,
    fence?: () => Promise<void>,
  ): Promise<WriteResult> {
    const what = objectName(kind, ns, name);
    for (let attempt = 0; ; attempt++) {
      const current = await mustGet<T>(kind, ns, name);
      const next = change(current);
      if (next === current || isDeepStrictEqual(next, current)) {
        return { changed: false, resourceVersion: current.metadata?.resourceVersion };
      }
      const v = await apiVersion();
      // The last moment before the write: a caller that lost its right to write stops here.
      await fence?.();
      try {
        const written = (await callKube(
          opts,
          what,
          (o) =>
            api.replaceNamespacedCustomObject(
              { group: ISTIO_GROUP, version: v, namespace: ns, plural: PLURAL[kind], name, body: next },
              o,
            ),
          (s) => s === 409,
        )) as T;
        known.set(`${kind}/${ns}/${name}`, written.metadata?.resourceVersion);
        return { changed: true, resourceVersion: written.metadata?.resourceVersion };
      } catch (e) {
        if (statusOf(e) !== 409) throw e;
        if (attempt + 1 >= maxConflictAttempts) {
          throw new MeshError(
            'Conflict',
            `${what} kept changing while vane wrote it (${maxConflictAttempts} conflicts in a row); the next tick tries again`,
            true,
          );
        }
        opts.logger?.debug({ what, attempt: attempt + 1 }, 'conflict; reading again');
        await sleep(backoff(opts.backoffMs ?? 200, attempt, 2_000));
      }
    }
  }

  const vsUpdate = (t: MeshTarget, change: (o: VirtualServiceObject) => VirtualServiceObject) =>
    update<VirtualServiceObject>('VirtualService', t.namespace, t.virtualService, change, t.fence);
  const drUpdate = (t: MeshTarget, change: (o: DestinationRuleObject) => DestinationRuleObject) =>
    update<DestinationRuleObject>('DestinationRule', t.namespace, t.destinationRule, change, t.fence);

  /**
   * The DestinationRule with these subsets recorded as vane wrote them (null: removed), beside the
   * ones recorded before; rollback reverts a subset only while it is still as vane wrote it.
   */
  function recordSubsets(o: DestinationRuleObject, names: string[]): DestinationRuleObject {
    const a = annotationsOf(o);
    const written = parseWritten(a[ANNOTATIONS.writtenSubsets]) ?? {};
    for (const n of names) written[n] = o.spec?.subsets?.find((s) => s.name === n) ?? null;
    return withAnnotations(o, { [ANNOTATIONS.writtenSubsets]: JSON.stringify(written) });
  }

  /** A DR change of `names` subsets, recorded; the object itself when the spec does not change. */
  function drChange(
    o: DestinationRuleObject,
    spec: DestinationRuleSpec,
    names: string[],
  ): DestinationRuleObject {
    const next = withSpec(o, spec);
    return next === o || isDeepStrictEqual(next.spec, o.spec) ? o : recordSubsets(next, names);
  }

  /** The host the managed routes send to: the target's, or else the DestinationRule's (one more read). */
  async function scopeOf(t: MeshTarget) {
    if (t.host) return routeScope(t);
    const dr = await observe<DestinationRuleObject>('DestinationRule', t.namespace, t.destinationRule);
    return routeScope(t, dr.spec?.host);
  }

  const vsSpec = (o: VirtualServiceObject): VirtualServiceSpec => o.spec ?? {};
  const drSpec = (o: DestinationRuleObject): DestinationRuleSpec => {
    if (!o.spec)
      throw new MeshError(
        'Invalid',
        `DestinationRule ${o.metadata?.namespace}/${o.metadata?.name} has no spec`,
        false,
      );
    return o.spec;
  };

  function claim<T extends IstioObject>(kind: Kind, o: T, rolloutId: string): T {
    const a = annotationsOf(o);
    const owner = a[ANNOTATIONS.rollout];
    if (owner && owner !== rolloutId) {
      throw new MeshError(
        'Conflict',
        `${objectName(kind, o.metadata?.namespace ?? '', o.metadata?.name ?? '')} is held by rollout ${owner} (annotation ${ANNOTATIONS.rollout}); wait for it to end, or remove the annotation if it is long gone`,
        false,
      );
    }
    return withAnnotations(o, {
      [ANNOTATIONS.rollout]: rolloutId,
      // the original is the spec before the first rollout step; a repeated snapshot keeps it
      [ANNOTATIONS.originalSpec]: a[ANNOTATIONS.originalSpec] ?? JSON.stringify(o.spec ?? {}),
    });
  }

  const router: KubeTrafficRouter = {
    apiVersion: async () => `${ISTIO_GROUP}/${await apiVersion()}`,

    async close() {
      closed = true;
      const all = [...watches.values()];
      watches.clear();
      await Promise.all(all.map((w) => w.informer.stop().catch(() => {})));
    },

    getVirtualService: (ns, name) => get<VirtualServiceObject>('VirtualService', ns, name),
    getDestinationRule: (ns, name) => get<DestinationRuleObject>('DestinationRule', ns, name),

    async listVirtualServices(namespace) {
      const v = await apiVersion();
      const plural = PLURAL.VirtualService;
      if (!namespace) {
        try {
          const list = await callKube(
            opts,
            'VirtualServices of all namespaces',
            (o) => api.listClusterCustomObject({ group: ISTIO_GROUP, version: v, plural }, o),
            (s) => s === 403,
          );
          return (list as { items?: VirtualServiceObject[] }).items ?? [];
        } catch (e) {
          if (statusOf(e) !== 403) throw e;
          return [];
        }
      }
      const list = await callKube(opts, `VirtualServices of namespace ${namespace}`, (o) =>
        api.listNamespacedCustomObject({ group: ISTIO_GROUP, version: v, namespace, plural }, o),
      );
      return (list as { items?: VirtualServiceObject[] }).items ?? [];
    },

    async snapshot(t, rolloutId) {
      const scope = await scopeOf(t);
      await vsUpdate(t, (o) => {
        const claimed = claim('VirtualService', o, rolloutId);
        if (annotationsOf(claimed)[WEIGHTS_ANNOTATION]) return claimed;
        // Record the split as it is, so setting the same weights at the first step writes nothing.
        const first = readRouteWeights(vsSpec(o), scope, undefined)[0]?.weights;
        return first ? withAnnotations(claimed, { [WEIGHTS_ANNOTATION]: JSON.stringify(first) }) : claimed;
      });
      await drUpdate(t, (o) => claim('DestinationRule', o, rolloutId));
    },

    async ensureCanarySubset(t) {
      let created = false;
      const ref = { namespace: t.namespace, name: t.destinationRule };
      const r = await drUpdate(t, (o) => {
        const e = ensureSubset(drSpec(o), ref, t.canarySubset, t.canaryLabels);
        // A subset vane created stays "created by vane" across retries, so rollback removes it.
        created = e.created || annotationsOf(o)[ANNOTATIONS.createdSubset] === t.canarySubset;
        return withAnnotations(
          drChange(o, e.spec, [t.canarySubset]),
          e.created ? { [ANNOTATIONS.createdSubset]: t.canarySubset } : {},
        );
      });
      return { ...r, created };
    },

    async readWeights(t) {
      const scope = await scopeOf(t);
      const vs = await observe<VirtualServiceObject>('VirtualService', t.namespace, t.virtualService);
      const routes = readRouteWeights(vsSpec(vs), scope, parseWeights(annotationsOf(vs)[WEIGHTS_ANNOTATION]));
      // Report a route that differs from the first, so a hand edit of any route shows as drift.
      const first = routes[0]!.weights;
      const odd = routes.find((r) => !isDeepStrictEqual(r.weights, first));
      return { ...(odd ? odd.weights : first), routes };
    },

    async setWeights(t, w) {
      const scope = await scopeOf(t);
      return vsUpdate(t, (o) =>
        withAnnotations(withSpec(o, setWeights(vsSpec(o), scope, w)), {
          [WEIGHTS_ANNOTATION]: JSON.stringify(w),
        }),
      );
    },

    async setExperiment(t, experiment: ExperimentMatch | null) {
      const scope = await scopeOf(t);
      return vsUpdate(t, (o) => {
        const previous = annotationsOf(o)[ANNOTATIONS.experimentRoute];
        let spec = vsSpec(o);
        if (previous && previous !== experiment?.routeName)
          spec = removeExperimentRoute(spec, scope, previous);
        if (experiment) spec = setExperimentRoute(spec, scope, experiment);
        return withAnnotations(withSpec(o, spec), { [ANNOTATIONS.experimentRoute]: experiment?.routeName });
      });
    },

    async setMirror(t, mirror: MirrorSetting | null) {
      const scope = await scopeOf(t);
      return vsUpdate(t, (o) => withSpec(o, setMirror(vsSpec(o), scope, mirror)));
    },

    async promote(t, mode: PromotionMode) {
      const scope = await scopeOf(t);
      // The DestinationRule first: the stable subset must select the new pods before it gets all traffic.
      if (mode === 'relabel') {
        const ref = { namespace: t.namespace, name: t.destinationRule };
        await drUpdate(t, (o) =>
          drChange(o, relabelSubset(drSpec(o), ref, t.stableSubset, t.canaryLabels), [t.stableSubset]),
        );
      }
      await vsUpdate(t, (o) => {
        const experimentRoute = annotationsOf(o)[ANNOTATIONS.experimentRoute];
        const spec = promoteVirtualService(
          vsSpec(o),
          scope,
          mode,
          experimentRoute ? { experimentRoute } : {},
        );
        return withAnnotations(withSpec(o, spec), {
          [ANNOTATIONS.experimentRoute]: undefined,
          [WEIGHTS_ANNOTATION]: undefined,
        });
      });
      // After a relabel no route sends to the canary subset; one vane created goes, as on rollback.
      if (mode === 'relabel') {
        await drUpdate(t, (o) =>
          annotationsOf(o)[ANNOTATIONS.createdSubset] === t.canarySubset
            ? withAnnotations(drChange(o, removeSubset(drSpec(o), t.canarySubset), [t.canarySubset]), {
                [ANNOTATIONS.createdSubset]: undefined,
              })
            : o,
        );
      }
    },

    async rollback(t, { removeCanarySubset, rolloutId }) {
      const scope = await scopeOf(t);
      const none = Object.fromEntries(VANE_ANNOTATIONS.map((k) => [k, undefined]));
      const notOurs = (o: IstioObject) =>
        rolloutId !== undefined && annotationsOf(o)[ANNOTATIONS.rollout] !== rolloutId;
      // The VirtualService first, so no request goes to a subset that is about to change or go.
      // One that was deleted sends nothing anywhere: the DestinationRule is still put back.
      await vsUpdate(t, (o) => {
        if (notOurs(o)) return o;
        const a = annotationsOf(o);
        const experimentRoute = a[ANNOTATIONS.experimentRoute];
        let spec = rollbackVirtualService(vsSpec(o), scope, experimentRoute ? { experimentRoute } : {});
        const original = parseSpec<VirtualServiceSpec>(o, a[ANNOTATIONS.originalSpec]);
        if (original) spec = preferOriginal(spec, original, scope);
        return withAnnotations(withSpec(o, spec), none);
      }).catch((e: unknown) => {
        if (!(e instanceof MeshError && e.code === 'NotFound')) throw e;
      });
      // Then the DestinationRule: each subset vane wrote goes back to the snapshot; vane's annotations
      // go in the same write, so the saved original is never dropped before it was put back.
      await drUpdate(t, (o) => {
        if (notOurs(o)) return o;
        const a = annotationsOf(o);
        const written = parseWritten(a[ANNOTATIONS.writtenSubsets]);
        const original = parseSpec<DestinationRuleSpec>(o, a[ANNOTATIONS.originalSpec]);
        let spec = drSpec(o);
        if (written && original) spec = revertSubsets(spec, original, written);
        else if (removeCanarySubset || a[ANNOTATIONS.createdSubset] === t.canarySubset)
          spec = removeSubset(spec, t.canarySubset);
        return withAnnotations(withSpec(o, spec), none);
      });
    },

    async stableLabels(t) {
      const dr = await mustGet<DestinationRuleObject>('DestinationRule', t.namespace, t.destinationRule);
      const original = parseSpec<DestinationRuleSpec>(dr, annotationsOf(dr)[ANNOTATIONS.originalSpec]);
      const subset = (original ?? drSpec(dr)).subsets?.find((x) => x.name === t.stableSubset);
      return subset?.labels as Record<string, string> | undefined;
    },

    async undoPromotion(t, mode, stableLabels) {
      if (mode === 'relabel') {
        if (!stableLabels) {
          throw new MeshError(
            'Invalid',
            `the old labels of subset '${t.stableSubset}' were not recorded at promotion; set them back in DestinationRule ${t.namespace}/${t.destinationRule} by hand`,
            false,
          );
        }
        const ref = { namespace: t.namespace, name: t.destinationRule };
        await drUpdate(t, (o) => withSpec(o, relabelSubset(drSpec(o), ref, t.stableSubset, stableLabels)));
        return;
      }
      // After a shift the managed routes send to the canary subset: promote "back" to the old one.
      const scope = await scopeOf(t);
      const back = { ...scope, stableSubset: scope.canarySubset, canarySubset: scope.stableSubset };
      await vsUpdate(t, (o) => withSpec(o, promoteVirtualService(vsSpec(o), back, 'shift')));
    },

    async release(t) {
      const none = Object.fromEntries(VANE_ANNOTATIONS.map((k) => [k, undefined]));
      await vsUpdate(t, (o) => withAnnotations(o, none));
      await drUpdate(t, (o) => withAnnotations(o, none));
    },

    async restore(t) {
      const back = <T extends IstioObject>(o: T): T => {
        const saved = annotationsOf(o)[ANNOTATIONS.originalSpec];
        if (!saved) return o;
        try {
          return { ...o, spec: JSON.parse(saved) as T['spec'] };
        } catch {
          throw new MeshError(
            'Invalid',
            `${o.kind} ${o.metadata?.namespace}/${o.metadata?.name}: annotation ${ANNOTATIONS.originalSpec} is not JSON; restore the spec by hand`,
            false,
          );
        }
      };
      await vsUpdate(t, back);
      await drUpdate(t, back);
    },
  };
  return router;
}

/** The engine's `router(cluster)`, and `close()` to stop every router's watches. */
export type KubeRouters = ((cluster?: string) => KubeTrafficRouter) & { close(): Promise<void> };

/** One router per kubeconfig context, made on first use: the engine's `router(cluster)`. */
export function createKubeRouters(opts: Omit<KubeRouterOptions, 'context'>): KubeRouters {
  const routers = new Map<string, KubeTrafficRouter>();
  const connections = opts.connections ?? new KubeConnections();
  const get = (cluster?: string) => {
    const key = cluster ?? '';
    let r = routers.get(key);
    if (!r) {
      r = createKubeTrafficRouter({ ...opts, connections, ...(cluster ? { context: cluster } : {}) });
      routers.set(key, r);
    }
    return r;
  };
  return Object.assign(get, {
    async close() {
      await Promise.all([...routers.values()].map((r) => r.close()));
    },
  });
}

/** Readiness of a workload as its status says. */
export interface WorkloadReadiness {
  /** Every desired replica is updated, ready and available, and the controller has seen the latest spec. */
  ready: boolean;
  desired: number;
  readyReplicas: number;
  updated: number;
  available: number;
  /** Why it is not ready, for the rollout's event. */
  message?: string;
}

/** The reads of core and apps objects the engine and the analyzer need. */
export interface KubeClients {
  readWorkload(namespace: string, kind: string, name: string, cluster?: string): Promise<WorkloadReadiness>;
  /** Pods of a namespace whose labels include `labels`. */
  listPods(namespace: string, labels: Record<string, string>, cluster?: string): Promise<PodLabels[]>;
}

export function createKubeClients(
  options: CallPolicy & { kubeConfig: KubeConfig; connections?: KubeConnections },
): KubeClients {
  const perCluster = clientsPerCluster(
    options.kubeConfig,
    options.connections ?? new KubeConnections(),
    options as CallPolicy,
    (kc) => ({ apps: kc.makeApiClient(AppsV1Api), core: kc.makeApiClient(CoreV1Api) }),
  );
  const apisOf = (cluster?: string) => {
    const { api, opts } = perCluster(cluster);
    return { ...api, opts };
  };
  return {
    async readWorkload(namespace, kind, name, cluster) {
      const { apps, opts } = apisOf(cluster);
      const what = `${kind} ${namespace}/${name}`;
      let w: {
        metadata?: { generation?: number };
        spec?: { replicas?: number };
        status?: {
          observedGeneration?: number;
          readyReplicas?: number;
          updatedReplicas?: number;
          availableReplicas?: number;
        };
      };
      if (kind === 'Deployment') {
        w = await callKube(opts, what, (o) => apps.readNamespacedDeployment({ namespace, name }, o));
      } else if (kind === 'StatefulSet') {
        w = await callKube(opts, what, (o) => apps.readNamespacedStatefulSet({ namespace, name }, o));
      } else {
        throw new MeshError(
          'Invalid',
          `${what}: vane reads the readiness of a Deployment or StatefulSet, not a ${kind}`,
          false,
        );
      }
      const desired = w.spec?.replicas ?? 1;
      const s = w.status ?? {};
      const readyReplicas = s.readyReplicas ?? 0;
      const updated = s.updatedReplicas ?? 0;
      const available = s.availableReplicas ?? 0;
      const observed = (s.observedGeneration ?? 0) >= (w.metadata?.generation ?? 0);
      const ready = observed && readyReplicas >= desired && updated >= desired && available >= desired;
      return {
        ready,
        desired,
        readyReplicas,
        updated,
        available,
        ...(ready
          ? {}
          : {
              message: observed
                ? `${readyReplicas}/${desired} ready, ${updated}/${desired} updated, ${available}/${desired} available`
                : 'the controller has not yet seen the latest spec',
            }),
      };
    },

    async listPods(namespace, labels, cluster) {
      const { core, opts } = apisOf(cluster);
      const labelSelector = Object.entries(labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(',');
      const list = await callKube(opts, `pods of namespace ${namespace} with ${labelSelector}`, (o) =>
        core.listNamespacedPod({ namespace, ...(labelSelector ? { labelSelector } : {}) }, o),
      );
      return list.items.map((p) => ({ source: `Pod ${p.metadata?.name}`, labels: p.metadata?.labels ?? {} }));
    },
  };
}
