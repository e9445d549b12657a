import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../../src/sandbox/processes.ts';
import { istioCrdsFile } from '../../helpers/kube.ts';
import { eventually } from '../../helpers/services.ts';

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    child.once('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

describe('vane sandbox kube', () => {
  // No --token here: kubectl (client-go) sends credentials only over TLS, and the simulator speaks plain http.
  it('serves kubectl on the given port with a snapshot and stops on SIGTERM', async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'vane-kube-cli-'));
    const crds = istioCrdsFile();
    const child = spawn(process.execPath, [
      'bin/vane.mjs',
      'sandbox',
      'kube',
      '--port',
      String(port),
      '--snapshot',
      join(dir, 'snap.json'),
      ...(crds ? ['--crds', crds] : []),
    ]);
    let stdout = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    try {
      const kubeconfig = await eventually(
        async () => (stdout.includes('current-context') ? stdout : undefined),
        30_000,
      );
      expect(kubeconfig).toContain(`server: http://127.0.0.1:${port}`);
      const file = join(dir, 'kubeconfig');
      writeFileSync(file, kubeconfig);
      const r = await run('kubectl', [
        '--kubeconfig',
        file,
        '--cache-dir',
        join(dir, 'cache'),
        'get',
        'namespaces',
        '-o',
        'name',
      ]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toContain('namespace/default');
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a bad option with usage', async () => {
    const r = await run(process.execPath, ['bin/vane.mjs', 'sandbox', 'kube', '--prot', '1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown option '--prot'");
  });
});
