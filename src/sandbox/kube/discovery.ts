import { apiVersionOf, RESOURCE_TYPES, type ResourceType, servedGroups } from './resources.ts';
import { SCALABLE_KINDS } from './scale.ts';

/** The Kubernetes release the simulator says it is; kubectl only warns when client and server differ by more than one minor. */
export const SERVER_VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0-vane',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2026-01-01T00:00:00Z',
  goVersion: 'go1.23.0',
  compiler: 'gc',
  platform: 'linux/amd64',
};

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

export function apiVersions(serverAddress: string) {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

export function apiGroupList() {
  return {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: servedGroups().map(({ group, versions }) => ({
      name: group,
      versions: versions.map((v) => ({ groupVersion: `${group}/${v}`, version: v })),
      preferredVersion: { groupVersion: `${group}/${versions[0]}`, version: versions[0] },
    })),
  };
}

function resourceEntries(t: ResourceType) {
  const main = {
    name: t.plural,
    singularName: t.singular,
    namespaced: t.namespaced,
    kind: t.kind,
    verbs: VERBS,
    ...(t.shortNames.length ? { shortNames: t.shortNames } : {}),
    ...(t.builtIn ? {} : { categories: [t.group.includes('istio') ? 'istio-io' : 'all'] }),
  };
  const status = {
    name: `${t.plural}/status`,
    singularName: '',
    namespaced: t.namespaced,
    kind: t.kind,
    verbs: ['get', 'patch', 'update'],
  };
  const scale = {
    name: `${t.plural}/scale`,
    singularName: '',
    namespaced: t.namespaced,
    group: 'autoscaling',
    version: 'v1',
    kind: 'Scale',
    verbs: ['get', 'patch', 'update'],
  };
  return [main, ...(t.statusSubresource ? [status] : []), ...(SCALABLE_KINDS.has(t.kind) ? [scale] : [])];
}

/** APIResourceList of a group version, or undefined when nothing is served there. */
export function apiResourceList(group: string, version: string) {
  const types = RESOURCE_TYPES.filter((t) => t.group === group && t.versions.includes(version));
  if (!types.length) return undefined;
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: apiVersionOf(group, version),
    resources: types.flatMap(resourceEntries),
  };
}

/** Every served group version: "v1", "apps/v1", "networking.istio.io/v1beta1" ... */
export function servedGroupVersions(): { group: string; version: string }[] {
  const out: { group: string; version: string }[] = [{ group: '', version: 'v1' }];
  for (const g of servedGroups()) for (const v of g.versions) out.push({ group: g.group, version: v });
  return out;
}
