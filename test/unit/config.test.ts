import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

describe('loadConfig', () => {
  it('gives defaults when nothing is set', () => {
    const c = loadConfig({});
    expect(c.port).toBe(8080);
    expect(c.redisUrl).toBeUndefined();
    expect(c.shutdownTimeout).toBe(20_000);
    expect(c.apiTokens).toEqual([]);
  });

  it('names the variable, the value and what is allowed', () => {
    expect(() => loadConfig({ PORT: 'abc' })).toThrow(
      new ConfigError('invalid setting PORT="abc": expected an integer from 1 to 65535'),
    );
    expect(() => loadConfig({ REDIS_URL: 'localhost:6379' })).toThrow(
      /REDIS_URL="localhost:6379".*redis:\/\//,
    );
    expect(() => loadConfig({ VANE_SHUTDOWN_TIMEOUT: '10 seconds' })).toThrow(/VANE_SHUTDOWN_TIMEOUT.*30s/);
  });

  it('reads the signed doors’ settings and never echoes a secret in an error', () => {
    const c = loadConfig({
      VANE_CI_WEBHOOK_SECRET: 'ci-secret-0123456789',
      VANE_SLACK_SIGNING_SECRET: 'slack-secret',
      VANE_SLACK_OPERATORS: 'U1, U2,,',
    });
    expect(c.ciWebhookSecret).toBe('ci-secret-0123456789');
    expect(c.slackSigningSecret).toBe('slack-secret');
    expect(c.slackOperators).toEqual(['U1', 'U2']);
    expect(loadConfig({}).slackOperators).toEqual([]);
    expect(() => loadConfig({ VANE_CI_WEBHOOK_SECRET: 'short-secret' })).toThrow(
      new ConfigError('invalid setting VANE_CI_WEBHOOK_SECRET=(hidden): expected at least 16 characters'),
    );
  });

  it('reads a YAML file and lets the environment override it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vane-config-'));
    const file = join(dir, 'vane.yaml');
    writeFileSync(file, 'port: 9000\nlogLevel: debug\napiTokens: a, b\n');
    const c = loadConfig({ VANE_CONFIG: file, LOG_LEVEL: 'warn' });
    expect(c.port).toBe(9000);
    expect(c.logLevel).toBe('warn');
    expect(c.apiTokens).toEqual(['a', 'b']);
  });

  it('refuses an unknown key in the file, naming it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vane-config-'));
    const file = join(dir, 'vane.yaml');
    writeFileSync(file, 'prot: 9000\n');
    expect(() => loadConfig({ VANE_CONFIG: file })).toThrow(/unknown setting 'prot'/);
    writeFileSync(file, 'port: 70000\n');
    expect(() => loadConfig({ VANE_CONFIG: file })).toThrow(/port in .*vane.yaml=70000/);
  });
});
