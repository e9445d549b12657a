import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { freePort } from '../../src/sandbox/processes.ts';
import { type CliResult, vane as run, startTestApi, type TestApi } from './harness.ts';

const specYaml = (name: string, over = '') => `
target: { namespace: demo, virtualService: ${name}, destinationRule: ${name} }
stable: { subset: v1 }
canary: { subset: v2, labels: { app: ${name}, version: v2 } }
strategy: { type: canary, steps: [25, 50], stepInterval: ${over || '500ms'} }
analysis: { guardInterval: 250ms }
`;

const noTrace = (r: CliResult) => expect(r.stderr).not.toMatch(/^\s+at /m);

// Each CLI run is a Node process starting tsx; on a loaded machine that takes seconds.
describe('vane templates, analyze and client settings against a running API', { timeout: 240_000 }, () => {
  let api: TestApi;
  let dir: string;
  const vane = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    run(args, { env: { VANE_URL: api.url, VANE_TOKEN: 'sekret', ...env }, cwd: dir });
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vane-cli-'));
    api = await startTestApi(['tpl', 'ci'], { tokens: 'sekret' });
  }, 120_000);
  afterAll(async () => {
    await api?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('templates: apply (create, then replace), list, get, start from one with --set, delete; errors exit 2', async () => {
    writeFileSync(
      join(dir, 'templates.yaml'),
      `name: tpl
spec:
  target: { namespace: demo, virtualService: tpl, destinationRule: tpl }
  stable: { subset: v1 }
  strategy: { type: canary, steps: [50], stepInterval: 500ms }
  analysis: { guardInterval: 250ms }
---
name: other
spec: { stable: { subset: v1 } }
`,
    );
    const created = await vane(['templates', 'apply', '-f', 'templates.yaml']);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toBe('created tpl\ncreated other\n');
    const replaced = await vane(['templates', 'apply', '-f', 'templates.yaml', '-o', 'json']);
    expect(JSON.parse(replaced.stdout)).toEqual([
      { name: 'tpl', action: 'replaced' },
      { name: 'other', action: 'replaced' },
    ]);
    const list = await vane(['templates', 'list', '-o', 'json']);
    expect(
      JSON.parse(list.stdout)
        .map((t: { name: string }) => t.name)
        .sort(),
    ).toEqual(['other', 'tpl']);
    const table = await vane(['templates', 'list']);
    expect(table.stdout).toMatch(/^tpl +api +\S+ +demo\/tpl$/m);
    const get = await vane(['templates', 'get', 'tpl', '-o', 'yaml']);
    expect(parseYaml(get.stdout).spec.target.virtualService).toBe('tpl');

    const started = await vane([
      'rollout',
      'start',
      '--template',
      'tpl',
      '--set',
      'canary.subset=v2',
      '--set',
      'canary.labels={app: tpl, version: v2}',
      '--wait',
      '-o',
      'json',
    ]);
    expect(started.code, started.stderr).toBe(0);
    expect(JSON.parse(started.stdout)).toMatchObject({
      phase: 'succeeded',
      spec: {
        target: { virtualService: 'tpl' },
        canary: { subset: 'v2', labels: { app: 'tpl', version: 'v2' } },
      },
    });

    expect((await vane(['templates', 'delete', 'other'])).stdout).toBe('deleted other\n');
    const gone = await vane(['templates', 'delete', 'other']);
    expect(gone.code).toBe(2);
    expect(gone.stderr.trim()).toBe("vane: NOT_FOUND: no template named 'other'");
    writeFileSync(join(dir, 'bad-template.yaml'), 'name: x\nspec: {}\nextra: 1\n');
    const bad = await vane(['templates', 'apply', '-f', 'bad-template.yaml']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('bad-template.yaml: document 1: (document): Unrecognized key: "extra"');
    expect((await vane(['templates', 'apply', '-f', 'missing.yaml'])).code).toBe(2);
  });

  it('analyze through the API: exit 0 on a clean target, 1 with findings (JSON parsed back)', async () => {
    const target = ['-n', 'demo', '--virtual-service', 'ci', '--stable', 'v1', '--canary', 'v2'];
    const ok = await vane(['analyze', ...target, '--canary-labels', 'app=ci,version=v2']);
    expect(ok.code, ok.stderr + ok.stdout).toBe(0);
    expect(ok.stdout).toBe('VirtualService demo/ci, DestinationRule demo/ci: no findings\n');
    const bad = await vane([
      'analyze',
      '-n',
      'demo',
      '--virtual-service',
      'nope',
      '--stable',
      'v1',
      '--canary',
      'v2',
      '--canary-labels',
      'version=v2',
      '-o',
      'json',
    ]);
    expect(bad.code).toBe(1);
    const report = JSON.parse(bad.stdout);
    expect(report.errors).toBeGreaterThan(0);
    expect(report.findings.map((f: { code: string }) => f.code)).toContain('VANE0101');
    const noLabels = await vane(['analyze', '--virtual-service', 'ci', '--stable', 'v1', '--canary', 'v2']);
    expect(noLabels.code).toBe(2);
    expect(noLabels.stderr).toContain('vane analyze: --canary-labels is required without -f');
  });

  it('server and token from flags, env or the config file; API and connection errors are one line, exit 2', async () => {
    const home = mkdtempSync(join(tmpdir(), 'vane-xdg-'));
    mkdirSync(join(home, 'vane'));
    // no token: the API refuses, one line with its code, exit 2
    const anonymous = await run(['rollout', 'list', '--server', api.url], { cwd: dir });
    expect(anonymous.code).toBe(2);
    expect(anonymous.stderr.trim()).toBe(
      'vane: UNAUTHORIZED: send Authorization: Bearer <token> with an API token (VANE_API_TOKENS or apiTokens in VANE_CONFIG)',
    );
    // --token wins over VANE_TOKEN
    const flagToken = await vane(['templates', 'list', '--token', 'sekret'], { VANE_TOKEN: 'wrong' });
    expect(flagToken.code, flagToken.stderr).toBe(0);
    expect((await vane(['templates', 'list'], { VANE_TOKEN: 'wrong' })).stderr).toContain('UNAUTHORIZED');
    // server, token and output from the config file
    writeFileSync(join(home, 'vane', 'config.yaml'), `server: ${api.url}\ntoken: sekret\noutput: json\n`);
    const fromFile = await run(['rollout', 'list'], { env: { XDG_CONFIG_HOME: home }, cwd: dir });
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(Array.isArray(JSON.parse(fromFile.stdout))).toBe(true);
    // the flag wins over the file
    const closed = await freePort();
    const flag = await run(['rollout', 'list', '--server', `http://127.0.0.1:${closed}`, '-o', 'table'], {
      env: { XDG_CONFIG_HOME: home },
      cwd: dir,
    });
    expect(flag.code).toBe(2);
    expect(flag.stderr.trim()).toBe(
      `vane: cannot reach vane at http://127.0.0.1:${closed}: ECONNREFUSED (set --server or VANE_URL)`,
    );
    writeFileSync(join(home, 'vane', 'config.yaml'), `server: ${api.url}\nsever: typo\n`);
    const strict = await run(['rollout', 'list'], { env: { XDG_CONFIG_HOME: home }, cwd: dir });
    expect(strict.code).toBe(2);
    expect(strict.stderr).toContain(
      'config.yaml: (top level): Unrecognized key: "sever"; the keys are: server, token, output',
    );
    rmSync(home, { recursive: true, force: true });

    const missing = await vane(['rollout', 'get', 'ro-doesnotexist']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^vane: NOT_FOUND: /);
    noTrace(missing);
    writeFileSync(join(dir, 'invalid.yaml'), specYaml('web').replace('steps: [25, 50]', 'steps: [50, 25]'));
    const invalid = await vane(['rollout', 'start', '-f', 'invalid.yaml']);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr.trim()).toBe(
      'vane: BAD_REQUEST: strategy.steps[1]: steps must ascend: 25 follows 50',
    );
    const nothing = await vane(['rollout', 'start']);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toContain('needs a spec');
  });
});
