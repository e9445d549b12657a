import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deliver } from '../../src/notify/deliver.ts';
import { buildPayload } from '../../src/notify/payload.ts';
import { sign } from '../../src/notify/signing.ts';
import { makeRollout } from './fixtures.ts';

/** The receiver example of docs/WEBHOOKS.md, run as written, must accept vane's deliveries and refuse forgeries. */
describe('the documented Node receiver', () => {
  let child: ChildProcess;
  let dir: string;
  let url: string;
  const output: string[] = [];

  beforeAll(async () => {
    const doc = readFileSync(new URL('../../docs/WEBHOOKS.md', import.meta.url), 'utf8');
    const code = /```js receiver\.mjs\n([\s\S]*?)```/.exec(doc)?.[1];
    if (!code) throw new Error('docs/WEBHOOKS.md has no ```js receiver.mjs block');
    dir = mkdtempSync(join(tmpdir(), 'vane-receiver-'));
    writeFileSync(join(dir, 'receiver.mjs'), code);
    child = spawn(process.execPath, [join(dir, 'receiver.mjs')], {
      env: { PATH: process.env.PATH, WEBHOOK_SECRET: 'doc-secret', PORT: '0' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (d: string) => output.push(d));
    const port = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`receiver did not start: ${output.join('')}`)), 10_000);
      child.stdout?.on('data', () => {
        const m = /listening on (\d+)/.exec(output.join(''));
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
    });
    url = `http://127.0.0.1:${port}/hook`;
  });

  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('accepts a signed delivery once, refuses a wrong secret, a tampered body and a replay', async () => {
    const payload = buildPayload(makeRollout(), 'event');
    const target = { url, event: 'event' };
    const good = await deliver(target, payload, {
      timeoutMs: 2_000,
      secret: 'doc-secret',
      deliveryId: 'd-1',
    });
    expect(good).toMatchObject({ ok: true, status: 200, response: 'ok' });
    const again = await deliver(target, payload, {
      timeoutMs: 2_000,
      secret: 'doc-secret',
      deliveryId: 'd-1',
    });
    expect(again).toMatchObject({ status: 200, response: 'already handled' });

    const wrong = await deliver(target, payload, { timeoutMs: 2_000, secret: 'guess', deliveryId: 'd-2' });
    expect(wrong).toMatchObject({ ok: false, status: 401, response: 'bad signature' });
    const unsigned = await deliver(target, payload, { timeoutMs: 2_000, deliveryId: 'd-3' });
    expect(unsigned).toMatchObject({ status: 401, response: 'unsigned or malformed' });
    // A body changed after signing.
    const ts = Math.floor(Date.now() / 1000);
    const body = JSON.stringify(payload);
    expect(body).toContain('"canary":25');
    const tampered = await fetch(url, {
      method: 'POST',
      headers: { 'x-vane-timestamp': String(ts), 'x-vane-signature': sign('doc-secret', ts, body) },
      body: body.replace('"canary":25', '"canary":100'),
    });
    expect([tampered.status, await tampered.text()]).toEqual([
      401,
      JSON.stringify({ reason: 'bad signature' }),
    ]);
    // Signed ten minutes ago: a captured request replayed later.
    const replay = await deliver(target, payload, {
      timeoutMs: 2_000,
      secret: 'doc-secret',
      deliveryId: 'd-4',
      now: Date.now() - 600_000,
    });
    expect(replay).toMatchObject({ status: 401, response: 'stale timestamp' });
    expect(output.join('')).toContain('event: bookinfo/reviews progressing, canary 25%');
  });
});
