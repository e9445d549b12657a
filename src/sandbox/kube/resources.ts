/**
 * The resource types the simulator serves. A type is stored once, in its storage version, and
 * served at every version listed (as a real API server does for CRDs with conversion "None").
 */
export interface ResourceType {
  /** '' for the core group. */
  group: string;
  versions: string[];
  storageVersion: string;
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  namespaced: boolean;
  /** Writes to the main resource keep the stored status; /status writes keep everything else. */
  statusSubresource: boolean;
  /** Core and apps objects accept strategic merge patch; custom resources do not. */
  builtIn: boolean;
  /** Custom resources require metadata.resourceVersion on update; built-in types allow unconditional updates. */
  allowUnconditionalUpdate: boolean;
}

const ISTIO_NETWORKING = ['v1', 'v1beta1', 'v1alpha3'];
const ISTIO_SECURITY = ['v1', 'v1beta1'];

function builtIn(
  group: string,
  version: string,
  kind: string,
  plural: string,
  shortNames: string[],
  namespaced = true,
  statusSubresource = false,
): ResourceType {
  return {
    group,
    versions: [version],
    storageVersion: version,
    kind,
    plural,
    singular: kind.toLowerCase(),
    shortNames,
    namespaced,
    statusSubresource,
    builtIn: true,
    allowUnconditionalUpdate: true,
  };
}

function istio(
  group: string,
  versions: string[],
  kind: string,
  plural: string,
  shortNames: string[],
): ResourceType {
  return {
    group,
    versions,
    storageVersion: 'v1',
    kind,
    plural,
    singular: kind.toLowerCase(),
    shortNames,
    namespaced: true,
    statusSubresource: true,
    builtIn: false,
    allowUnconditionalUpdate: false,
  };
}

export const RESOURCE_TYPES: readonly ResourceType[] = [
  builtIn('', 'v1', 'Namespace', 'namespaces', ['ns'], false),
  builtIn('', 'v1', 'Service', 'services', ['svc']),
  builtIn('', 'v1', 'Pod', 'pods', ['po']),
  builtIn('apps', 'v1', 'Deployment', 'deployments', ['deploy'], true, true),
  builtIn('apps', 'v1', 'ReplicaSet', 'replicasets', ['rs'], true, true),
  builtIn('', 'v1', 'ServiceAccount', 'serviceaccounts', ['sa']),
  // Kubernetes Events (core v1), as vane writes them on VirtualServices and `kubectl describe` reads them.
  builtIn('', 'v1', 'Event', 'events', ['ev']),
  istio('networking.istio.io', ISTIO_NETWORKING, 'VirtualService', 'virtualservices', ['vs']),
  istio('networking.istio.io', ISTIO_NETWORKING, 'DestinationRule', 'destinationrules', ['dr']),
  istio('networking.istio.io', ISTIO_NETWORKING, 'Gateway', 'gateways', ['gw']),
  istio('networking.istio.io', ISTIO_NETWORKING, 'ServiceEntry', 'serviceentries', ['se']),
  istio('security.istio.io', ISTIO_SECURITY, 'PeerAuthentication', 'peerauthentications', ['pa']),
  istio('security.istio.io', ISTIO_SECURITY, 'AuthorizationPolicy', 'authorizationpolicies', ['ap']),
  // What vane's own manifests (deploy/) hold, so `kubectl apply --dry-run=server` can check them.
  builtIn('', 'v1', 'ConfigMap', 'configmaps', ['cm']),
  builtIn('', 'v1', 'Secret', 'secrets', []),
  builtIn('', 'v1', 'PersistentVolumeClaim', 'persistentvolumeclaims', ['pvc'], true, true),
  builtIn('apps', 'v1', 'StatefulSet', 'statefulsets', ['sts'], true, true),
  builtIn('policy', 'v1', 'PodDisruptionBudget', 'poddisruptionbudgets', ['pdb'], true, true),
  builtIn('networking.k8s.io', 'v1', 'NetworkPolicy', 'networkpolicies', ['netpol']),
  builtIn('rbac.authorization.k8s.io', 'v1', 'ClusterRole', 'clusterroles', [], false),
  builtIn('rbac.authorization.k8s.io', 'v1', 'ClusterRoleBinding', 'clusterrolebindings', [], false),
  builtIn('rbac.authorization.k8s.io', 'v1', 'Role', 'roles', []),
  builtIn('rbac.authorization.k8s.io', 'v1', 'RoleBinding', 'rolebindings', []),
];

/** Every served group with its versions, the preferred (storage) version first. */
export function servedGroups(): { group: string; versions: string[] }[] {
  const groups = new Map<string, Set<string>>();
  for (const t of RESOURCE_TYPES) {
    if (!t.group) continue;
    const set = groups.get(t.group) ?? new Set([t.storageVersion]);
    for (const v of t.versions) set.add(v);
    groups.set(t.group, set);
  }
  return [...groups].map(([group, versions]) => ({ group, versions: [...versions] }));
}

export function typeByPlural(group: string, version: string, plural: string): ResourceType | undefined {
  return RESOURCE_TYPES.find((t) => t.group === group && t.plural === plural && t.versions.includes(version));
}

export function typeByKind(apiVersion: string, kind: string): ResourceType | undefined {
  const { group, version } = splitApiVersion(apiVersion);
  return RESOURCE_TYPES.find((t) => t.group === group && t.kind === kind && t.versions.includes(version));
}

export function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const i = apiVersion.indexOf('/');
  return i < 0
    ? { group: '', version: apiVersion }
    : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}

export function apiVersionOf(group: string, version: string): string {
  return group ? `${group}/${version}` : version;
}

/** "virtualservices.networking.istio.io" or "services": how Status messages name a resource. */
export function qualifiedResource(t: ResourceType): string {
  return t.group ? `${t.plural}.${t.group}` : t.plural;
}
