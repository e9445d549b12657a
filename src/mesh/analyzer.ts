import { ANNOTATIONS } from './annotations.ts';
import { type Finding, finding, type ObjectId, objectName } from './findings.ts';
import { qualifyHost, sameHost } from './host.ts';
import type { DestinationRuleObject, HttpRoute, VirtualServiceObject } from './istio.ts';
import type { MeshTarget } from './types.ts';

export type { Finding } from './findings.ts';

/** Labels of a pod that exists or will exist (a Pod, or a workload's pod template). */
export interface PodLabels {
  /** e.g. "Pod reviews-v2-5d8f" or "Deployment reviews-v2" */
  source: string;
  labels: Record<string, string>;
}

/** Everything the analyzer looks at; gathered live through the adapter or read from YAML files. */
export interface AnalyzerInput {
  target: MeshTarget;
  /** The target's VirtualService; undefined when it does not exist. */
  virtualService?: VirtualServiceObject;
  /** The target's DestinationRule; undefined when it does not exist. */
  destinationRule?: DestinationRuleObject;
  /** The other VirtualServices in scope (any namespace), to find another claim on the host. */
  otherVirtualServices?: VirtualServiceObject[];
  /** Pods of the target's namespace; undefined skips the canary-pods check (nothing known about pods). */
  pods?: PodLabels[];
  /** The rollout asking, so its own owner annotation is not reported as someone else's. */
  rolloutId?: string;
}

export interface AnalyzeOptions {
  /** Returns the id of another active rollout holding the target, or undefined when it is free. */
  isTargetBusy?: (target: MeshTarget) => Promise<string | undefined>;
}

export interface AnalysisReport {
  target: MeshTarget;
  findings: Finding[];
  errors: number;
  warnings: number;
}

const SEVERITY_ORDER = { error: 0, warning: 1, info: 2 } as const;

/** The whole analysis: the pure checks plus the question whether another rollout holds the target. */
export async function analyzeTarget(
  input: AnalyzerInput,
  opts: AnalyzeOptions = {},
): Promise<AnalysisReport> {
  const findings = analyzeObjects(input);
  const holder = await opts.isTargetBusy?.(input.target);
  if (holder && holder !== input.rolloutId) {
    const t = input.target;
    findings.push(
      finding(
        'VANE0107',
        { kind: 'VirtualService', namespace: t.namespace, name: t.virtualService },
        undefined,
        `rollout ${holder} is active on VirtualService ${t.namespace}/${t.virtualService} or DestinationRule ${t.namespace}/${t.destinationRule}`,
        `wait for rollout ${holder} to end, or abort it`,
      ),
    );
  }
  return report(input.target, findings);
}

export function report(target: MeshTarget, findings: Finding[]): AnalysisReport {
  const sorted = [...findings].sort(
    (a, b) => SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity] || a.code.localeCompare(b.code),
  );
  return {
    target,
    findings: sorted,
    errors: sorted.filter((f) => f.severity === 'error').length,
    warnings: sorted.filter((f) => f.severity === 'warning').length,
  };
}

/** The checks that need nothing but the objects (no I/O). */
export function analyzeObjects(input: AnalyzerInput): Finding[] {
  const { target: t, virtualService: vs, destinationRule: dr } = input;
  const vsId: ObjectId = { kind: 'VirtualService', namespace: t.namespace, name: t.virtualService };
  const drId: ObjectId = { kind: 'DestinationRule', namespace: t.namespace, name: t.destinationRule };
  const out: Finding[] = [];

  if (t.stableSubset === t.canarySubset) {
    out.push(
      finding(
        'VANE0115',
        drId,
        'spec.subsets',
        `stable and canary are both subset '${t.stableSubset}'`,
        'give the canary its own subset name (e.g. the new version)',
      ),
    );
  }
  if (!vs) {
    out.push(
      finding(
        'VANE0101',
        vsId,
        'metadata.name',
        `${objectName(vsId)} does not exist`,
        `create it, or set target.virtualService to an existing VirtualService in namespace ${t.namespace}`,
      ),
    );
  }
  if (!dr) {
    out.push(
      finding(
        'VANE0108',
        drId,
        'metadata.name',
        `${objectName(drId)} does not exist`,
        `create it with host ${t.host ?? t.virtualService} and a subset '${t.stableSubset}', or set target.destinationRule`,
      ),
    );
  }
  out.push(...ownerFindings(input, vsId, drId));

  const drHost = dr?.spec?.host;
  if (t.host && drHost && !sameHost(t.host, drHost, t.namespace)) {
    out.push(
      finding(
        'VANE0109',
        drId,
        'spec.host',
        `${objectName(drId)} is for host ${drHost}, but the target's host is ${t.host}`,
        `use the DestinationRule of ${t.host}, or set target.host to ${drHost}`,
      ),
    );
  }
  const host = t.host ?? drHost;
  if (dr) out.push(...subsetFindings(input, drId));
  if (vs && host) out.push(...routeFindings(input, vsId, drId, host));
  if (vs) out.push(...claimFindings(input, vsId));
  if (input.pods && Object.keys(t.canaryLabels).length) {
    const selected = input.pods.filter((p) => matches(t.canaryLabels, p.labels));
    if (!selected.length) {
      out.push(
        finding(
          'VANE0106',
          { kind: 'Pod', namespace: t.namespace, name: labelText(t.canaryLabels) },
          'metadata.labels',
          `no pod in namespace ${t.namespace} has the canary labels ${labelText(t.canaryLabels)}${input.pods.length ? `; pods there have ${summarizeLabels(input.pods)}` : ''}`,
          'deploy the canary first, or set canary.labels to the labels of its pod template',
        ),
      );
    }
  }
  return out;
}

function ownerFindings(input: AnalyzerInput, vsId: ObjectId, drId: ObjectId): Finding[] {
  const out: Finding[] = [];
  for (const [obj, id] of [
    [input.virtualService, vsId],
    [input.destinationRule, drId],
  ] as const) {
    const owner = obj?.metadata?.annotations?.[ANNOTATIONS.rollout];
    if (owner && owner !== input.rolloutId) {
      out.push(
        finding(
          'VANE0107',
          id,
          `metadata.annotations["${ANNOTATIONS.rollout}"]`,
          `${objectName(id)} is held by rollout ${owner}`,
          `wait for rollout ${owner} to end or abort it; if it is long gone, remove the annotation ${ANNOTATIONS.rollout}`,
        ),
      );
    }
  }
  return out;
}

function subsetFindings(input: AnalyzerInput, drId: ObjectId): Finding[] {
  const { target: t } = input;
  const subsets = input.destinationRule?.spec?.subsets ?? [];
  const names = subsets.map((s) => s.name);
  const out: Finding[] = [];
  const stable = subsets.find((s) => s.name === t.stableSubset);
  if (!stable) {
    out.push(
      finding(
        'VANE0103',
        drId,
        'spec.subsets',
        `${objectName(drId)} has no subset '${t.stableSubset}' (the stable subset); subsets are: ${names.join(', ') || '(none)'}`,
        `add a subset '${t.stableSubset}' with the labels of the stable pods, or set stable.subset to one of: ${names.join(', ') || '(none)'}`,
      ),
    );
  }
  const canaryIndex = subsets.findIndex((s) => s.name === t.canarySubset);
  const canary = subsets[canaryIndex];
  if (canary && Object.keys(t.canaryLabels).length && !sameLabels(canary.labels ?? {}, t.canaryLabels)) {
    out.push(
      finding(
        'VANE0111',
        drId,
        `spec.subsets[${canaryIndex}].labels`,
        `subset '${t.canarySubset}' selects ${labelText(canary.labels ?? {})}, but the canary's labels are ${labelText(t.canaryLabels)}; vane will change the subset's labels`,
        `set canary.labels to ${labelText(canary.labels ?? {})}, or accept the change`,
      ),
    );
  }
  if (stable?.labels && Object.keys(t.canaryLabels).length && matches(stable.labels, t.canaryLabels)) {
    out.push(
      finding(
        'VANE0114',
        drId,
        `spec.subsets[${subsets.indexOf(stable)}].labels`,
        `the canary labels ${labelText(t.canaryLabels)} also match the stable subset '${t.stableSubset}' (${labelText(stable.labels)}), so the stable subset would send traffic to canary pods`,
        'give the canary pods a label value the stable subset does not select (e.g. version=v2)',
      ),
    );
  }
  return out;
}

function routeFindings(input: AnalyzerInput, vsId: ObjectId, drId: ObjectId, host: string): Finding[] {
  const { target: t } = input;
  const out: Finding[] = [];
  const http = input.virtualService?.spec?.http ?? [];
  const names = http.map((r, i) => r.name ?? `#${i} (unnamed)`).join(', ') || '(none)';
  const ns = t.namespace;
  const ofHost = (r: HttpRoute) => (r.route ?? []).filter((d) => sameHost(d.destination.host, host, ns));
  const hasSubset = (r: HttpRoute, subset: string) =>
    ofHost(r).filter((d) => d.destination.subset === subset);

  let managed: number[];
  if (t.routes?.length) {
    managed = [];
    for (const name of t.routes) {
      const i = http.findIndex((r) => r.name === name);
      if (i < 0) {
        out.push(
          finding(
            'VANE0102',
            vsId,
            'spec.http',
            `${objectName(vsId)} has no http route named '${name}'; routes are: ${names}`,
            `set target.routes to existing route names, or name the route '${name}' in the VirtualService`,
          ),
        );
      } else {
        managed.push(i);
      }
    }
  } else {
    managed = http.flatMap((r, i) => (hasSubset(r, t.stableSubset).length ? [i] : []));
    if (!managed.length) {
      out.push(
        finding(
          'VANE0110',
          vsId,
          'spec.http',
          `no http route of ${objectName(vsId)} has a destination ${host} subset ${t.stableSubset}; routes are: ${describeRoutes(http)}`,
          `add a destination { host: ${host}, subset: ${t.stableSubset} } to the route to manage, or name the routes in target.routes`,
        ),
      );
    }
  }

  const subsets = new Set((input.destinationRule?.spec?.subsets ?? []).map((s) => s.name));
  for (const i of managed) {
    const r = http[i]!;
    const where = `spec.http[${i}]`;
    const label = r.name ? `'${r.name}'` : `#${i}`;
    if (!ofHost(r).length) {
      const hosts =
        [...new Set((r.route ?? []).map((d) => d.destination.host))].join(', ') || '(no destinations)';
      out.push(
        finding(
          'VANE0109',
          vsId,
          `${where}.route`,
          `http route ${label} of ${objectName(vsId)} sends to ${hosts}, not to ${host} (the host of ${objectName(drId)})`,
          `manage a route that sends to ${host}, or set target.host / target.destinationRule to the service the route sends to`,
        ),
      );
      continue;
    }
    const stable = hasSubset(r, t.stableSubset);
    if (!stable.length && !hasSubset(r, t.canarySubset).length) {
      out.push(
        finding(
          'VANE0112',
          vsId,
          `${where}.route`,
          `http route ${label} of ${objectName(vsId)} has no destination ${host} subset ${t.stableSubset}`,
          `add { destination: { host: ${host}, subset: ${t.stableSubset} } } to the route, or leave it out of target.routes`,
        ),
      );
    }
    for (const subset of [t.stableSubset, t.canarySubset]) {
      const n = hasSubset(r, subset).length;
      if (n > 1) {
        out.push(
          finding(
            'VANE0113',
            vsId,
            `${where}.route`,
            `http route ${label} of ${objectName(vsId)} has ${n} destinations ${host} subset ${subset}; vane manages exactly one`,
            'merge them into one destination',
          ),
        );
      }
    }
    if (r.mirror && !(r.mirror.subset === t.canarySubset && sameHost(r.mirror.host, host, ns))) {
      out.push(
        finding(
          'VANE0116',
          vsId,
          `${where}.mirror`,
          `http route ${label} of ${objectName(vsId)} already mirrors to ${r.mirror.host}; a mirroring rollout would be refused`,
          'remove the mirror if the rollout uses mirroring; other strategies leave it alone',
        ),
      );
    }
  }

  // Every subset of the host that any route sends to must exist, or Istio answers 503 (the
  // canary's is created by vane).
  if (input.destinationRule) {
    http.forEach((r, i) => {
      (r.route ?? []).forEach((d, j) => {
        const s = d.destination.subset;
        if (!s || s === t.canarySubset || subsets.has(s) || !sameHost(d.destination.host, host, ns)) return;
        if (s === t.stableSubset && !subsets.has(s)) return; // reported once on the DestinationRule
        out.push(
          finding(
            'VANE0103',
            vsId,
            `spec.http[${i}].route[${j}].destination.subset`,
            `http route ${r.name ? `'${r.name}'` : `#${i}`} of ${objectName(vsId)} sends to subset '${s}', which ${objectName(drId)} does not define; subsets are: ${[...subsets].join(', ') || '(none)'}`,
            `add subset '${s}' to ${objectName(drId)}, or change the route's subset`,
          ),
        );
      });
    });
  }

  // Weights of the routes vane will rewrite (and any route Istio would refuse).
  http.forEach((r, i) => {
    const dests = r.route ?? [];
    if (dests.length < 2) return;
    const total = dests.reduce((a, d) => a + (d.weight ?? 0), 0);
    const label = r.name ? `'${r.name}'` : `#${i}`;
    if (total === 0) {
      out.push(
        finding(
          'VANE0104',
          vsId,
          `spec.http[${i}].route`,
          `the weights of http route ${label} of ${objectName(vsId)} total 0, which Istio refuses`,
          'give the destinations weights summing to 100',
          'error',
        ),
      );
    } else if (total !== 100 && managed.includes(i)) {
      out.push(
        finding(
          'VANE0104',
          vsId,
          `spec.http[${i}].route`,
          `the weights of http route ${label} of ${objectName(vsId)} total ${total}, not 100; vane reads them as relative and will write them normalized to 100`,
          'write weights summing to 100 (older Istio releases refuse anything else)',
        ),
      );
    }
  });
  return out;
}

/** Gateways a VirtualService is bound to, qualified by namespace; none means the mesh (sidecars). */
function gatewaysOf(vs: VirtualServiceObject): string[] {
  const ns = vs.metadata?.namespace ?? 'default';
  const gws = vs.spec?.gateways?.length ? vs.spec.gateways : ['mesh'];
  return gws.map((g) => (g === 'mesh' || g.includes('/') ? g : `${ns}/${g}`));
}

function claimFindings(input: AnalyzerInput, vsId: ObjectId): Finding[] {
  const vs = input.virtualService!;
  const ns = input.target.namespace;
  const mine = new Set((vs.spec?.hosts ?? []).map((h) => qualifyHost(h, ns)));
  const myGateways = new Set(gatewaysOf(vs));
  const out: Finding[] = [];
  for (const other of input.otherVirtualServices ?? []) {
    const ons = other.metadata?.namespace ?? ns;
    if (ons === ns && other.metadata?.name === input.target.virtualService) continue;
    const hosts = (other.spec?.hosts ?? []).filter((h) => mine.has(qualifyHost(h, ons)));
    const gateways = gatewaysOf(other).filter((g) => myGateways.has(g));
    if (!hosts.length || !gateways.length) continue;
    const forMesh = gateways.includes('mesh');
    out.push(
      finding(
        'VANE0105',
        vsId,
        'spec.hosts',
        `VirtualService ${ons}/${other.metadata?.name} also routes host ${hosts.join(', ')} on ${gateways.join(', ')}; ${forMesh ? 'for sidecars only one of them applies, so weights vane sets may be ignored' : 'the gateway merges both, and the order of their routes is not defined'}`,
        `merge the routes into ${objectName(vsId)}, or remove host ${hosts[0]} from VirtualService ${ons}/${other.metadata?.name}`,
        forMesh ? 'error' : 'warning',
      ),
    );
  }
  return out;
}

function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  return Object.keys(a).length === Object.keys(b).length && matches(a, b);
}

function labelText(labels: Record<string, string>): string {
  return (
    Object.entries(labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(',') || '(no labels)'
  );
}

function summarizeLabels(pods: PodLabels[]): string {
  const seen = [...new Set(pods.map((p) => labelText(p.labels)))];
  return seen.slice(0, 5).join('; ') + (seen.length > 5 ? ` and ${seen.length - 5} more` : '');
}

function describeRoutes(http: HttpRoute[]): string {
  if (!http.length) return '(none)';
  return http
    .map((r, i) => {
      const to = (r.route ?? []).map(
        (d) => `${d.destination.host}${d.destination.subset ? ` ${d.destination.subset}` : ''}`,
      );
      return `${r.name ?? `#${i}`} (${to.join(', ') || 'no destinations'})`;
    })
    .join(', ');
}
