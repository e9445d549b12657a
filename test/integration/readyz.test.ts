import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { freePort, type ManagedProcess, startRedisServer } from '../../src/sandbox/processes.ts';
import { type RunningService, startService } from '../../src/service.ts';
import { eventually } from '../helpers/services.ts';

describe('/readyz', () => {
  let service: RunningService | undefined;
  let redis: ManagedProcess | undefined;
  afterAll(async () => {
    await service?.shutdown('test over');
    await redis?.stop();
  });

  it('says 503 naming Redis while Redis is down, keeps running, and recovers by itself', async () => {
    const redisPort = await freePort();
    const config = loadConfig({
      PORT: String(await freePort()),
      HOST: '127.0.0.1',
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    });
    service = await startService(
      { ...config, redisUrl: config.redisUrl! },
      'all',
      createLogger({ level: 'silent' }),
    );
    const url = `http://127.0.0.1:${service.port}`;

    const down = await fetch(`${url}/readyz`);
    expect(down.status).toBe(503);
    const body = (await down.json()) as { checks: { name: string; ok: boolean; error?: string }[] };
    expect(body.checks).toEqual([expect.objectContaining({ name: 'redis', ok: false })]);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);

    redis = await startRedisServer({ dir: mkdtempSync(join(tmpdir(), 'vane-readyz-')), port: redisPort });
    const status = await eventually(async () => {
      const r = await fetch(`${url}/readyz`);
      return r.status === 200 ? r.status : undefined;
    }, 15_000);
    expect(status).toBe(200);

    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/vane_build_info\{version="[^"]+",node="v\d+/);
    expect(metrics).toContain('process_cpu_user_seconds_total');
  });
});
