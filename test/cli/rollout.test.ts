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

describe('vane rollout, templates and analyze against a running API', () => {
  let api: TestApi;
  let dir: string;
  const vane = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    run(args, { env: { VANE_URL: api.url, ...env }, cwd: dir });
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vane-cli-'));
    api = await startTestApi(['web', 'slow', 'flags', 'tpl', 'ci']);
  }, 60_000);
  afterAll(async () => {
    await api?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('start -f --wait: exit 0 when the rollout succeeds; plain event lines off a terminal; --output json parsed back', async () => {
    writeFileSync(join(dir, 'web.yaml'), specYaml('web'));
    const r = await vane(['rollout', 'start', '-f', 'web.yaml', '--wait', '--timeout', '60s', '-o', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const final = JSON.parse(r.stdout);
    expect(final.phase).toBe('succeeded');
    expect(final.weights).toEqual({ stable: 0, canary: 100 });
    // progress as plain lines (stderr with -o json): one per event, with the transitions
    expect(r.stderr).toMatch(/^started: ro-\S+ {2}demo\/web/m);
    expect(r.stderr).toMatch(/transition → succeeded/);
    expect(r.stderr).not.toContain('\r');
    const vs = JSON.parse((await api.kube.kubectl(['get', 'vs', 'web', '-n', 'demo', '-o', 'json'])).stdout);
    expect(vs.spec.http[0].route).toEqual([{ destination: { host: 'web', subset: 'v2' }, weight: 100 }]);

    const list = await vane(['rollout', 'list', '-n', 'demo', '-o', 'json']);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout).map((x: { id: string }) => x.id)).toContain(final.id);
    const table = await vane(['rollout', 'list']);
    expect(table.stdout).toMatch(/^ID +TARGET +PHASE +WEIGHTS +REASON$/m);
    expect(table.stdout).not.toContain('\x1b['); // no colour off a terminal
    const yaml = await vane(['rollout', 'status', final.id, '-o', 'yaml']);
    expect(parseYaml(yaml.stdout).phase).toBe('succeeded');
    const events = await vane(['rollout', 'events', final.id, '-o', 'json']);
    expect(JSON.parse(events.stdout).map((e: { type: string }) => e.type)).toContain('transition');
    // --follow of an ended rollout: today's server has no SSE, the CLI falls back to polling
    const follow = await vane(['rollout', 'events', final.id, '--follow']);
    expect(follow.code).toBe(0);
    expect(follow.stdout).toMatch(/transition → succeeded/);
  });

  it('start with flags, --set and a CI-derived idempotency key; the same CI run gets the same rollout', async () => {
    const ci = { GITHUB_RUN_ID: '4711', GITHUB_RUN_ATTEMPT: '1', GITHUB_JOB: 'deploy' };
    const args = [
      'rollout',
      'start',
      '-n',
      'demo',
      '--virtual-service',
      'flags',
      '--stable',
      'v1',
      '--canary',
      'v2',
      '--canary-labels',
      'app=flags',
      '--steps',
      '10,20',
      '--step-interval',
      '1h',
      '--set',
      'canary.labels.version=v2',
      '--set',
      'analysis.failureThreshold=3',
      '--set-string',
      'metadata.commit=1.10',
      '-o',
      'json',
    ];
    const a = await vane(args, ci);
    expect(a.code, a.stderr).toBe(0);
    const ra = JSON.parse(a.stdout);
    expect(ra.spec.canary.labels).toEqual({ app: 'flags', version: 'v2' });
    expect(ra.spec.strategy.steps).toEqual([10, 20]);
    expect(ra.spec.metadata).toMatchObject({ commit: '1.10' }); // --set would have made it the number 1.1
    expect(ra.spec.analysis.failureThreshold).toBe(3);
    expect(ra.spec.idempotencyKey).toMatch(/^github-4711-1-deploy-[0-9a-f]{12}$/);
    const again = await vane(args.slice(0, -2), ci);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`already started (same idempotency key): ${ra.id}`);
    // outside CI no key: a second start on the busy target is an API error, exit 2, code and message
    const busy = await vane(args);
    expect(busy.code).toBe(2);
    expect(busy.stderr).toMatch(/^vane: TARGET_BUSY: VirtualService demo\/flags is held by active rollout/m);
    noTrace(busy);

    // the commands: pause, resume, promote, approve (no gate is waiting: CONFLICT), abort
    for (const cmd of [['pause'], ['resume', '--reason', 'checked'], ['promote']]) {
      const r = await vane(['rollout', ...cmd.slice(0, 1), ra.id, ...cmd.slice(1), '-o', 'json']);
      expect(r.code, `${cmd[0]}: ${r.stderr}`).toBe(0);
      expect(JSON.parse(r.stdout).rollout.id).toBe(ra.id);
    }
    const approve = await vane(['rollout', 'approve', ra.id, '--gate', 'bogus-gate']);
    expect(approve.code).toBe(2);
    expect(approve.stderr).toMatch(/^vane: [A-Z_]+: /);
    noTrace(approve);
    const abort = await vane(['rollout', 'abort', ra.id, '--reason', 'cli test', '--by', 'tester']);
    expect(abort.code, abort.stderr).toBe(0);
    expect(abort.stdout).toMatch(new RegExp(`^abort: ${ra.id}`));
    // following an aborted rollout to its end: exit 1, for events --follow and get --watch alike
    const follow = await vane(['rollout', 'events', ra.id, '--follow', '--timeout', '60s', '-o', 'json']);
    expect(follow.code, follow.stderr).toBe(1);
    const lines = follow.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.at(-1)).toMatchObject({ type: 'transition', to: 'aborted' });
    expect(lines.find((e) => e.type === 'command')?.by ?? 'tester').toBe('tester');
    const watch = await vane(['rollout', 'get', ra.id, '--watch']);
    expect(watch.code).toBe(1);
    expect(watch.stdout).toContain('aborted');
    // retry starts a new rollout with the same spec
    const retry = await vane(['rollout', 'retry', ra.id, '-o', 'json']);
    expect(retry.code, retry.stderr).toBe(0);
    const rb = JSON.parse(retry.stdout).rollout;
    expect(rb.id).not.toBe(ra.id);
    expect((await vane(['rollout', 'abort', rb.id, '--reason', 'done'])).code).toBe(0);
  });

  it('--wait that runs out of time exits 3; a failed or aborted rollout exits 1', async () => {
    writeFileSync(join(dir, 'slow.yaml'), specYaml('slow', '1h'));
    const slow = await vane(['rollout', 'start', '-f', 'slow.yaml', '--wait', '--timeout', '3s']);
    expect(slow.code, slow.stderr).toBe(3);
    expect(slow.stderr).toMatch(/vane: rollout ro-\S+ is still \S+ after 3s \(--timeout\)/);
    const id = /started: (ro-\S+)/.exec(slow.stdout)![1]!;
    const waiter = vane(['rollout', 'get', id, '--watch', '--timeout', '60s']);
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await vane(['rollout', 'abort', id, '--reason', 'stop'])).code).toBe(0);
    const w = await waiter;
    expect(w.code, w.stderr).toBe(1);
    expect(w.stdout).toMatch(/phase: +aborted/);
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
      '-o',
      'json',
    ]);
    expect(bad.code).toBe(1);
    const report = JSON.parse(bad.stdout);
    expect(report.errors).toBeGreaterThan(0);
    expect(report.findings.map((f: { code: string }) => f.code)).toContain('VANE0101');
  });

  it('server and token from flags, env or the config file; API and connection errors are one line, exit 2', async () => {
    const home = mkdtempSync(join(tmpdir(), 'vane-xdg-'));
    mkdirSync(join(home, 'vane'));
    writeFileSync(join(home, 'vane', 'config.yaml'), `server: ${api.url}\noutput: json\n`);
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
