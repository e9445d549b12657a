import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { apiBinding, isLoopbackHost } from '../../src/api/auth/binding.ts';

describe('where the API listens', () => {
  it('listens on loopback only without a token, and says so', () => {
    const b = apiBinding({ tokens: 0, auth: 'tokens', role: 'all' });
    expect(b.host).toBe('127.0.0.1');
    expect(b.note).toMatch(/no API token configured: listening on 127\.0\.0\.1 only/);
    expect(apiBinding({ host: '::1', tokens: 0, auth: 'tokens', role: 'api' }).error).toBeUndefined();
  });
  it('refuses a non-loopback HOST without a token, naming VANE_API_TOKENS', () => {
    const b = apiBinding({ host: '0.0.0.0', tokens: 0, auth: 'tokens', role: 'api' });
    expect(b.error).toMatch(/^HOST=0\.0\.0\.0 .*set VANE_API_TOKENS/);
    expect(b.error).not.toContain('\n');
  });
  it('serves every address with tokens, or with VANE_AUTH=none and a warning', () => {
    expect(apiBinding({ tokens: 1, auth: 'tokens', role: 'all' }).host).toBe('0.0.0.0');
    const none = apiBinding({ host: '0.0.0.0', tokens: 0, auth: 'none', role: 'all' });
    expect(none).toMatchObject({ host: '0.0.0.0', level: 'warn' });
    expect(none.note).toMatch(/VANE_AUTH=none/);
  });
  it('lets a worker (probes and /metrics only) listen anywhere', () => {
    expect(apiBinding({ host: '0.0.0.0', tokens: 0, auth: 'tokens', role: 'worker' }).error).toBeUndefined();
  });
  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.9.9.9', '::1', '[::1]', 'localhost'])
      expect(isLoopbackHost(h)).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', 'vane.example']) expect(isLoopbackHost(h)).toBe(false);
  });

  it('`vane api` on HOST=0.0.0.0 without a token refuses to start with one line', async () => {
    const child = spawn(process.execPath, [join(import.meta.dirname, '../../bin/vane.mjs'), 'api'], {
      env: { PATH: process.env.PATH, HOST: '0.0.0.0', REDIS_URL: 'redis://127.0.0.1:1', LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(code).toBe(2);
    expect(err.trim().split('\n')).toHaveLength(1);
    expect(err).toMatch(/^vane: HOST=0\.0\.0\.0 .*VANE_API_TOKENS/);
  });
});

describe('templates of the config file', () => {
  it('are checked at start: an unknown field stops it, naming the template, the path and the nearest field', async () => {
    const { templateIssues } = await import('../../src/api/templates/check.ts');
    expect(templateIssues({ strategy: { stepIntervl: '1h' } }, 'templates.web')).toEqual([
      { path: 'templates.web.strategy.stepIntervl', message: 'unknown field; did you mean stepInterval?' },
    ]);
    expect(templateIssues({ strategy: { type: 'blue-green', preview: { mirrorPercent: 10 } } })).toEqual([]);
    const { loadConfig } = await import('../../src/config.ts');
    const { startService } = await import('../../src/service.ts');
    const { createLogger } = await import('../../src/observability/logger.ts');
    const config = { ...loadConfig({ HOST: '127.0.0.1' }), templates: { web: { stratgy: {} } } };
    await expect(
      startService({ ...config, redisUrl: 'redis://127.0.0.1:1' }, 'api', createLogger({ level: 'silent' })),
    ).rejects.toThrow('VANE_CONFIG: templates.web.stratgy: unknown field; did you mean strategy?');
  });
});
