import { type AnalysisReport, type AnalyzeOptions, analyzeTarget } from './analyzer.ts';
import type { KubeClients, KubeTrafficRouter } from './kube-router.ts';
import type { MeshTarget } from './types.ts';

export interface LiveAnalyzerDeps {
  /** The router of the target's cluster. */
  router: (cluster?: string) => KubeTrafficRouter;
  /** Pods are listed to check the canary labels; without clients that check is skipped. */
  clients?: KubeClients;
}

/** The analyzer on live objects: reads the target's objects and the other VirtualServices, then checks them. */
export async function analyzeLive(
  deps: LiveAnalyzerDeps,
  target: MeshTarget,
  opts: AnalyzeOptions & { rolloutId?: string } = {},
): Promise<AnalysisReport> {
  const router = deps.router(target.cluster);
  const [virtualService, destinationRule, all, pods] = await Promise.all([
    router.getVirtualService(target.namespace, target.virtualService),
    router.getDestinationRule(target.namespace, target.destinationRule),
    router
      .listVirtualServices()
      .then(async (l) => (l.length ? l : router.listVirtualServices(target.namespace))),
    deps.clients && Object.keys(target.canaryLabels).length
      ? deps.clients.listPods(target.namespace, target.canaryLabels, target.cluster)
      : Promise.resolve(undefined),
  ]);
  const others = all.filter(
    (o) => !(o.metadata?.namespace === target.namespace && o.metadata?.name === target.virtualService),
  );
  return analyzeTarget(
    {
      target,
      ...(virtualService ? { virtualService } : {}),
      ...(destinationRule ? { destinationRule } : {}),
      otherVirtualServices: others,
      ...(pods ? { pods } : {}),
      ...(opts.rolloutId ? { rolloutId: opts.rolloutId } : {}),
    },
    opts,
  );
}

/**
 * The engine's preflight: the errors of the live analysis (warnings do not stop a rollout).
 * `isTargetBusy` is left out on purpose when the engine's own lock already answers that.
 */
export function createPreflight(deps: LiveAnalyzerDeps, opts: AnalyzeOptions = {}) {
  return {
    async check(target: MeshTarget, rolloutId: string): Promise<{ code: string; message: string }[]> {
      const r = await analyzeLive(deps, target, { ...opts, rolloutId });
      return r.findings
        .filter((f) => f.severity === 'error')
        .map((f) => ({ code: f.code, message: `${f.message} (fix: ${f.fix})` }));
    },
  };
}
