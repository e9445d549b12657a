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

describe('security settings', () => {
  const file = (text: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'vane-config-'));
    const f = join(dir, 'vane.yaml');
    writeFileSync(f, text);
    return f;
  };
  const hash = 'a'.repeat(64);

  it('reads tokens with scopes from the file, next to the plain VANE_API_TOKENS', () => {
    const f = file(
      `apiTokens:\n  - { name: ci, sha256: ${hash.toUpperCase()}, scopes: [trigger, read] }\n  - { name: oncall, sha256: ${'b'.repeat(64)}, scopes: [operate], namespaces: [shop] }\n`,
    );
    const c = loadConfig({ VANE_CONFIG: f, VANE_API_TOKENS: 'plain-one' });
    expect(c.apiTokens).toEqual(['plain-one']);
    expect(c.scopedTokens).toEqual([
      { name: 'ci', sha256: hash, scopes: ['trigger', 'read'] },
      { name: 'oncall', sha256: 'b'.repeat(64), scopes: ['operate'], namespaces: ['shop'] },
    ]);
  });

  it('refuses a bad token entry naming the field', () => {
    expect(() =>
      loadConfig({ VANE_CONFIG: file(`apiTokens:\n  - { name: ci, sha256: abc, scopes: [read] }\n`) }),
    ).toThrow(/apiTokens\.0\.sha256: the hex SHA-256 of the token/);
    expect(() =>
      loadConfig({ VANE_CONFIG: file(`apiTokens:\n  - { name: ci, sha256: ${hash}, scopes: [write] }\n`) }),
    ).toThrow(/apiTokens\.0\.scopes\.0/);
    expect(() =>
      loadConfig({
        VANE_CONFIG: file(`apiTokens:\n  - { name: ci, sha256: ${hash}, scopes: [read], scope: x }\n`),
      }),
    ).toThrow(/apiTokens\.0/);
    expect(() =>
      loadConfig({
        VANE_CONFIG: file(
          `apiTokens:\n  - { name: ci, sha256: ${hash}, scopes: [read] }\n  - { name: ci, sha256: ${hash}, scopes: [admin] }\n`,
        ),
      }),
    ).toThrow(/duplicate name 'ci'/);
  });

  it('has safe defaults and reads the new variables', () => {
    const d = loadConfig({});
    expect(d.host).toBeUndefined();
    expect(d.auth).toBe('tokens');
    expect(d.allowLoopbackWebhooks).toBe(false);
    expect(d.retention).toBe(30 * 86_400);
    const c = loadConfig({
      VANE_AUTH: 'none',
      VANE_RETENTION: '12h',
      VANE_ALLOW_LOOPBACK_WEBHOOKS: 'true',
      VANE_METRICS_TOKEN: 'metrics-token-0123456789',
      VANE_RATE_LIMIT: '10',
      VANE_REQUEST_TIMEOUT: '5s',
    });
    expect(c).toMatchObject({
      auth: 'none',
      retention: 43_200,
      allowLoopbackWebhooks: true,
      metricsToken: 'metrics-token-0123456789',
      rateLimit: 10,
      requestTimeout: 5_000,
    });
    expect(() => loadConfig({ VANE_RETENTION: '30 days' })).toThrow(/VANE_RETENTION.*30d/);
    expect(() => loadConfig({ VANE_AUTH: 'off' })).toThrow(/VANE_AUTH.*tokens, none/);
  });
});
