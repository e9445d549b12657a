// biome-ignore-all lint/suspicious/noExplicitAny: rendered manifests are arbitrary YAML; the tests check their shape.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config.ts';
import { TICK_LEASE_MS } from '../../src/rollouts/engine.ts';
import { RESOURCE_TYPES } from '../../src/sandbox/kube/resources.ts';
import { freePort } from '../../src/sandbox/processes.ts';
import { startTestKube, type TestKube } from '../helpers/kube.ts';
import { eventually } from '../helpers/services.ts';
import { find, kustomize, ROOT } from './render.ts';

const base = kustomize('deploy/base');
const overlay = kustomize('deploy/overlays/with-redis');
const deployments = (objects: any[]) => objects.filter((o) => o.kind === 'Deployment');
const containerOf = (d: any) => d.spec.template.spec.containers[0];
const envOf = (d: any) => Object.fromEntries(containerOf(d).env.map((e: any) => [e.name, e]));

describe('deploy/base', () => {
  it('renders the API and worker Deployments, their Services, RBAC, PDBs, network policies and the config', () => {
    const kinds = base.objects
      .map((o) => `${o.kind}/${o.metadata.name}`.replace(/^(ConfigMap\/vane-config)-[a-z0-9]+$/, '$1-HASH'))
      .sort();
    expect(kinds).toEqual(
      [
        'ClusterRole/vane',
        'ClusterRoleBinding/vane',
        'ConfigMap/vane-config-HASH',
        'Deployment/vane-api',
        'Deployment/vane-worker',
        'Namespace/vane-system',
        'NetworkPolicy/vane-api-ingress',
        'NetworkPolicy/vane-egress',
        'NetworkPolicy/vane-worker-ingress',
        'PodDisruptionBudget/vane-api',
        'PodDisruptionBudget/vane-worker',
        'Service/vane-api',
        'Service/vane-worker',
        'ServiceAccount/vane',
      ].sort(),
    );
    // No Secret ships with values: the Deployments only refer to one.
    expect(base.objects.some((o) => o.kind === 'Secret')).toBe(false);
  });

  it('runs `vane api` and `vane worker`, 2 replicas each, probed, with resources, locked down', () => {
    const api = find(base.objects, 'Deployment', 'vane-api');
    const worker = find(base.objects, 'Deployment', 'vane-worker');
    expect(containerOf(api).args).toEqual(['api']);
    expect(containerOf(worker).args).toEqual(['worker']);
    for (const d of [api, worker]) {
      const pod = d.spec.template.spec;
      const c = containerOf(d);
      expect(d.spec.replicas).toBe(2);
      expect(pod.serviceAccountName).toBe('vane');
      expect(c.readinessProbe.httpGet.path).toBe('/readyz');
      expect(c.livenessProbe.httpGet.path).toBe('/healthz');
      expect(c.resources.requests).toEqual({ cpu: expect.any(String), memory: expect.any(String) });
      expect(c.resources.limits.memory).toBeDefined();
      expect(pod.securityContext).toMatchObject({
        runAsNonRoot: true,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(c.securityContext).toEqual({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      });
      const tmp = pod.volumes.find((v: any) => v.emptyDir);
      expect(c.volumeMounts).toContainEqual({ name: tmp.name, mountPath: '/tmp' });
      // The Service's and the ServiceMonitor's port name.
      expect(c.ports).toEqual([{ name: 'http', containerPort: 8080 }]);
    }
  });

  it('gives workers longer to stop than vane takes: shutdown timeout above a tick, grace period above that', () => {
    const worker = find(base.objects, 'Deployment', 'vane-worker');
    const cm = base.objects.find((o) => o.kind === 'ConfigMap');
    const dir = mkdtempSync(join(tmpdir(), 'vane-deploy-'));
    writeFileSync(join(dir, 'vane.yaml'), cm.data['vane.yaml']);
    const config = loadConfig({ VANE_CONFIG: join(dir, 'vane.yaml') });
    const grace = worker.spec.template.spec.terminationGracePeriodSeconds * 1000;
    expect(config.shutdownTimeout).toBeGreaterThan(TICK_LEASE_MS);
    expect(grace).toBeGreaterThan(config.shutdownTimeout);
  });

  it('ships a config file vane accepts and mounts it as VANE_CONFIG', () => {
    const cm = base.objects.find((o) => o.kind === 'ConfigMap');
    const dir = mkdtempSync(join(tmpdir(), 'vane-deploy-'));
    writeFileSync(join(dir, 'vane.yaml'), cm.data['vane.yaml']);
    const config = loadConfig({ VANE_CONFIG: join(dir, 'vane.yaml') });
    expect(config.logFormat).toBe('json');
    expect(config.prometheus).toMatchObject({ url: expect.stringMatching(/^http/) });
    for (const d of deployments(base.objects)) {
      const env = envOf(d);
      expect(env.VANE_CONFIG.value).toBe('/etc/vane/vane.yaml');
      const vol = d.spec.template.spec.volumes.find((v: any) => v.configMap);
      expect(vol.configMap.name).toBe(cm.metadata.name);
      expect(containerOf(d).volumeMounts).toContainEqual({
        name: vol.name,
        mountPath: '/etc/vane',
        readOnly: true,
      });
    }
  });

  it('takes secrets from the Secret vane-secrets by reference: tokens and inbound webhook secrets for the API only', () => {
    const api = envOf(find(base.objects, 'Deployment', 'vane-api'));
    const worker = envOf(find(base.objects, 'Deployment', 'vane-worker'));
    const ref = (e: any) => e?.valueFrom?.secretKeyRef;
    expect(ref(api.REDIS_URL)).toEqual({ name: 'vane-secrets', key: 'redis-url' });
    expect(ref(api.VANE_API_TOKENS)).toEqual({ name: 'vane-secrets', key: 'api-tokens' });
    expect(ref(api.VANE_CI_WEBHOOK_SECRET)).toMatchObject({ name: 'vane-secrets', key: 'ci-webhook-secret' });
    expect(ref(api.VANE_SLACK_SIGNING_SECRET)).toMatchObject({
      name: 'vane-secrets',
      key: 'slack-signing-secret',
    });
    expect(ref(api.VANE_PROMETHEUS_TOKEN)).toMatchObject({ name: 'vane-secrets', key: 'prometheus-token' });
    expect(ref(worker.REDIS_URL)).toEqual({ name: 'vane-secrets', key: 'redis-url' });
    expect(ref(worker.VANE_PROMETHEUS_TOKEN)).toMatchObject({ key: 'prometheus-token' });
    expect(worker.VANE_API_TOKENS).toBeUndefined();
    expect(worker.VANE_SLACK_SIGNING_SECRET).toBeUndefined();
    // No secret value is written into a manifest.
    for (const e of [...Object.values(api), ...Object.values(worker)] as any[])
      if (/TOKEN|SECRET|PASSWORD|REDIS_URL/.test(e.name)) expect(e.value).toBeUndefined();
  });

  it('grants no Secrets and no wildcards', () => {
    const role = find(base.objects, 'ClusterRole', 'vane');
    for (const r of role.rules) {
      expect(r.resources).not.toContain('secrets');
      expect([...r.resources, ...r.verbs, ...r.apiGroups]).not.toContain('*');
    }
    const binding = find(base.objects, 'ClusterRoleBinding', 'vane');
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'vane', namespace: 'vane-system' }]);
  });

  it('lets the API in from the ingress namespace only, and vane out to DNS, Redis, the Kubernetes API, Prometheus and 443', () => {
    const ingress = find(base.objects, 'NetworkPolicy', 'vane-api-ingress');
    const from = ingress.spec.ingress.flatMap((r: any) =>
      r.from.map((f: any) => f.namespaceSelector.matchLabels),
    );
    expect(from).toContainEqual({ 'kubernetes.io/metadata.name': 'ingress-nginx' });
    const egress = find(base.objects, 'NetworkPolicy', 'vane-egress');
    const ports = egress.spec.egress.flatMap((r: any) => r.ports.map((p: any) => `${p.protocol}/${p.port}`));
    for (const p of ['UDP/53', 'TCP/53', 'TCP/6379', 'TCP/6443', 'TCP/9090', 'TCP/443'])
      expect(ports).toContain(p);
  });
});

describe('deploy/overlays/with-redis', () => {
  it('adds a Redis with AOF and noeviction on a volume, and points REDIS_URL at it', () => {
    const sts = find(overlay.objects, 'StatefulSet', 'vane-redis');
    const args: string[] = containerOf(sts).args;
    const arg = (k: string) => args[args.indexOf(k) + 1];
    expect(arg('--appendonly')).toBe('yes');
    expect(arg('--maxmemory-policy')).toBe('noeviction');
    expect(sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBeDefined();
    expect(containerOf(sts).volumeMounts).toContainEqual({ name: 'data', mountPath: '/data' });
    const svc = find(overlay.objects, 'Service', 'vane-redis');
    expect(svc.spec.ports[0].port).toBe(6379);
    for (const d of deployments(overlay.objects))
      expect(envOf(d).REDIS_URL).toEqual({ name: 'REDIS_URL', value: 'redis://vane-redis:6379' });
    // Everything else of the base is there unchanged.
    expect(overlay.objects.length).toBe(base.objects.length + 3);
  });
});

describe('the Redis arguments of the overlay', () => {
  it('are accepted by a real redis-server, which then reports AOF on and noeviction', async () => {
    const sts = find(overlay.objects, 'StatefulSet', 'vane-redis');
    const dir = mkdtempSync(join(tmpdir(), 'vane-redis-args-'));
    const port = await freePort();
    const child = spawn(
      'redis-server',
      [...containerOf(sts).args, '--port', String(port), '--dir', dir, '--save', ''],
      {
        stdio: 'ignore',
      },
    );
    try {
      const cli = (...args: string[]) =>
        spawnSync('redis-cli', ['-p', String(port), ...args], {
          encoding: 'utf8',
          timeout: 5_000,
        }).stdout.trim();
      await eventually(async () => (cli('ping') === 'PONG' ? true : undefined), 10_000);
      expect(cli('config', 'get', 'appendonly').split('\n')).toEqual(['appendonly', 'yes']);
      expect(cli('config', 'get', 'maxmemory-policy').split('\n')).toEqual([
        'maxmemory-policy',
        'noeviction',
      ]);
      expect(Number(cli('config', 'get', 'maxmemory').split('\n')[1])).toBeGreaterThan(0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('kubectl apply --dry-run=server against the kube simulator', () => {
  let kube: TestKube;
  beforeAll(async () => {
    kube = await startTestKube();
  });
  afterAll(async () => {
    await kube?.stop();
  });

  it('serves each kind once (a merge that adds a row twice fails here)', () => {
    const keys = RESOURCE_TYPES.map((t) => `${t.group}/${t.kind}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('accepts every object of the base and of the overlay, and stores none of them', async () => {
    // The namespace exists first, as dry-run objects in a namespace being created in the same apply cannot land.
    // (kubectl create sends protobuf, which the simulator does not speak; apply sends JSON.)
    const ns = await kube.kubectl(['apply', '-f', '-'], {
      input: 'apiVersion: v1\nkind: Namespace\nmetadata: { name: vane-system }\n',
    });
    expect(ns.stderr).toBe('');
    for (const { yaml, objects } of [base, overlay]) {
      const r = await kube.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: yaml });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const lines = r.stdout.trim().split('\n');
      expect(lines).toHaveLength(objects.length);
      for (const l of lines) expect(l).toMatch(/ (created|configured|unchanged) \(server dry run\)$/);
    }
    const stored = await kube.kubectl([
      'get',
      'deploy,sts,svc,sa,cm,pdb,networkpolicies,clusterroles,clusterrolebindings',
      '-A',
      '-o',
      'name',
    ]);
    expect(stored.code).toBe(0);
    expect(stored.stdout.trim()).toBe('');
    expect(kube.sim.writeLog().map((w) => `${w.verb} ${w.resource}/${w.name}`)).toEqual([
      'create namespaces/vane-system',
    ]);
  });

  it('refuses a misspelt field and a wrong structure, as a real API server does', async () => {
    const api = structuredClone(find(base.objects, 'Deployment', 'vane-api'));
    const c = api.spec.template.spec.containers[0];
    c.readinesProbe = c.readinessProbe;
    const typo = await kube.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: stringify(api) });
    expect(typo.code).not.toBe(0);
    expect(typo.stderr).toContain('unknown field "spec.template.spec.containers[0].readinesProbe"');

    const role = structuredClone(find(base.objects, 'ClusterRole', 'vane'));
    role.rules[0].verbs = 'get';
    const wrong = await kube.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: stringify(role) });
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/rules\[0\]\.verbs|verbs/);
  });
});

describe('deploy/Dockerfile (not built by the tests: no Docker engine runs here)', () => {
  const dockerfile = readFileSync(join(ROOT, 'deploy', 'Dockerfile'), 'utf8');
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

  it('installs production dependencies only, and everything vane imports at run time is one', () => {
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    expect(pkg.dependencies.tsx).toBeDefined();
    expect(readFileSync(join(ROOT, 'bin', 'vane.mjs'), 'utf8')).toMatch(/from 'tsx\/esm\/api'/);
    const missing = new Set<string>();
    const files = readdirSync(join(ROOT, 'src'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts')) // tests beside the sources stay out of the image (Dockerfile.dockerignore)
      .map((f) => join(ROOT, 'src', f));
    for (const file of files)
      for (const m of readFileSync(file, 'utf8').matchAll(
        /^import (?!type )[^;]*?from '([^'.][^']*)'|import\('([^'.][^']*)'\)/gm,
      )) {
        const spec = m[1] ?? m[2]!;
        if (spec.startsWith('node:')) continue;
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
        if (!pkg.dependencies[name]) missing.add(`${name} (${file.slice(ROOT.length + 1)})`);
      }
    expect([...missing]).toEqual([]);
  });

  it('copies what exists, runs as the user the Deployments expect, with vane as the entrypoint', () => {
    for (const m of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm))
      for (const src of m[1]!.split(/\s+/)) expect(existsSync(join(ROOT, src)), src).toBe(true);
    const user = /^USER (\d+):(\d+)$/m.exec(dockerfile);
    expect(user).not.toBeNull();
    for (const d of deployments(base.objects)) {
      expect(d.spec.template.spec.securityContext.runAsUser).toBe(Number(user![1]));
      expect(containerOf(d).command).toBeUndefined();
    }
    expect(dockerfile).toMatch(/^ENTRYPOINT \["vane"\]$/m);
    expect(dockerfile).toMatch(/ln -s \/app\/bin\/vane\.mjs \/usr\/local\/bin\/vane/);
  });
});
