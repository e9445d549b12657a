import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grantName, startKubeSimulator } from '../../../src/sandbox/kube/index.ts';
import { startTestKube, type TestKube } from '../../helpers/kube.ts';

const DEPLOY = `apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: dry }
spec:
  replicas: 1
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec: { containers: [{ name: web, image: web:v1 }] }
`;
const CM =
  'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: settings, namespace: dry }\ndata: { a: "1" }\n';

describe('dryRun=All: validated, answered, not stored', () => {
  let kube: TestKube;
  beforeAll(async () => {
    kube = await startTestKube();
    const r = await kube.kubectl(['apply', '-f', '-'], {
      input: `apiVersion: v1\nkind: Namespace\nmetadata: { name: dry }\n---\n${CM}`,
    });
    expect(r.stderr).toBe('');
    kube.sim.clearWriteLog();
  });
  afterAll(async () => {
    await kube?.stop();
  });

  it('changes nothing through client-side and server-side apply, replace and delete', async () => {
    const changed = CM.replace('"1"', '"2"');
    const runs = [
      ['apply', '--dry-run=server', '-f', '-', DEPLOY, 'deployment.apps/web created (server dry run)'],
      ['apply', '--dry-run=server', '-f', '-', changed, 'configmap/settings configured (server dry run)'],
      [
        'apply',
        '--server-side',
        '--dry-run=server',
        '-f',
        '-',
        DEPLOY,
        'serverside-applied (server dry run)',
      ],
      [
        'apply',
        '--server-side',
        '--dry-run=server',
        '-f',
        '-',
        changed,
        'serverside-applied (server dry run)',
      ],
      ['replace', '--dry-run=server', '-f', '-', changed, 'configmap/settings replaced (server dry run)'],
      ['delete', '--dry-run=server', '-f', '-', CM, 'configmap "settings" deleted (server dry run)'],
      ['delete', 'namespace', 'dry', '--dry-run=server', '', 'namespace "dry" deleted (server dry run)'],
    ];
    for (const run of runs) {
      const [want, input] = [run.pop()!, run.pop()!];
      const r = await kube.kubectl(run, { input });
      expect(r.stderr, run.join(' ')).toBe('');
      expect(r.stdout).toContain(want);
    }
    expect(kube.sim.writeLog()).toEqual([]);
    expect(kube.sim.getObject('v1', 'ConfigMap', 'dry', 'settings').data).toEqual({ a: '1' });
    expect(kube.sim.getObject('apps/v1', 'Deployment', 'dry', 'web')).toBeUndefined();
  });

  it('still refuses what it would refuse for real, and an unknown dryRun value', async () => {
    const bad = await kube.kubectl(['apply', '--dry-run=server', '-f', '-'], {
      input: DEPLOY.replace('replicas: 1', 'replicas: 1\n  replicaz: 2'),
    });
    expect(bad.stderr).toContain('unknown field "spec.replicaz"');
    const res = await fetch(`${kube.sim.url}/api/v1/namespaces/dry/configmaps?dryRun=Some`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ metadata: { name: 'x' } }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toBe(
      'dryRun: Unsupported value: "Some": supported values: "All"',
    );
  });
});

describe('RBAC from roles and bindings', () => {
  const POLICY = `
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: reader, namespace: team }
rules:
  - { apiGroups: [""], resources: [configmaps], verbs: [get], resourceNames: [allowed] }
  - { apiGroups: [apps], resources: [deployments/status], verbs: [update] }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: reader, namespace: team }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader }
subjects: [{ kind: Group, name: "system:serviceaccounts:ci" }]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: lister }
rules: [{ apiGroups: [""], resources: [namespaces], verbs: [list, watch] }]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: lister }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: lister }
subjects: [{ kind: User, name: alice }]
`;

  it('allows only the bound rules, in the bound namespace, for the named objects; records what was used', async () => {
    const sim = await startKubeSimulator({
      log: () => {},
      rbac: {
        yaml: POLICY,
        users: { ci: 'system:serviceaccount:ci:builder', al: 'alice', root: 'admin' },
        admins: ['admin'],
      },
    });
    try {
      for (const ns of ['team', 'other'])
        sim.putObject({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'allowed', namespace: ns } });
      const call = (token: string, path: string) =>
        fetch(`${sim.url}${path}`, { headers: { Authorization: `Bearer ${token}` } }).then((r) => r.status);
      expect(await call('ci', '/api/v1/namespaces/team/configmaps/allowed')).toBe(200);
      expect(await call('ci', '/api/v1/namespaces/other/configmaps/allowed')).toBe(403);
      expect(await call('ci', '/api/v1/namespaces/team/configmaps')).toBe(403); // list: resourceNames never match it
      expect(await call('al', '/api/v1/namespaces')).toBe(200);
      expect(await call('al', '/api/v1/namespaces/team/configmaps/allowed')).toBe(403);
      expect(await call('root', '/api/v1/namespaces/team/configmaps')).toBe(200);
      const usage = sim.rbacUsage()!;
      expect(usage.grants.map((g) => [grantName(g), g.requests])).toEqual([
        ['Role reader: get configmaps', 1],
        ['Role reader: update deployments/status.apps', 0],
        ['ClusterRole lister: list namespaces', 1],
        ['ClusterRole lister: watch namespaces', 0],
      ]);
      expect(usage.denied).toHaveLength(3);
    } finally {
      await sim.close();
    }
  });
});
