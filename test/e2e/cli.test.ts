import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../src/sandbox/processes.ts';
import { eventually } from '../helpers/services.ts';

const VANE = join(import.meta.dirname, '../../bin/vane.mjs');

describe('the vane command', () => {
  it('stops at once with one clear line on an invalid setting', () => {
    const r = spawnSync('node', [VANE, 'all'], { env: { ...process.env, PORT: 'abc' }, encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr.trim()).toBe('vane: invalid setting PORT="abc": expected an integer from 1 to 65535');
  });

  it('start: runs a private Redis, answers /readyz, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const dataDir = mkdtempSync(join(tmpdir(), 'vane-start-'));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      VANE_DATA_DIR: dataDir,
      LOG_FORMAT: 'json',
    };
    delete env.REDIS_URL;
    const child = spawn('node', [VANE, 'start'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b) => {
      out += b;
    });
    child.stderr.on('data', (b) => {
      out += b;
    });
    try {
      await eventually(async () => {
        const r = await fetch(`http://127.0.0.1:${port}/readyz`);
        return r.status === 200 ? true : undefined;
      }, 30_000);
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(out).toContain('"msg":"stopped"');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
