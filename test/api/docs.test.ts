import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type ServerType, serve } from '@hono/node-server';
import { describe, expect, it } from 'vitest';
import { newApp } from '../../src/api/app.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Recorder } from '../../src/observability/recorder.ts';
import type { DomainContext } from '../../src/rollouts/context.ts';

describe('/docs and /openapi.json', () => {
  // Routes are only registered, never called: a domain object is enough to list them.
  const app = newApp({
    logger: createLogger({ level: 'silent' }),
    recorder: new Recorder({ defaultMetrics: false }),
    readiness: [],
    domain: {} as DomainContext,
    apiTokens: ['t'],
  });

  it('serves an interactive reference whose every asset comes from vane itself', async () => {
    const res = await app.request('/docs');
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('SwaggerUIBundle');
    expect(html).toContain("url: '/openapi.json'");
    // No outside call: the validator badge is off, and no src/href leaves vane.
    expect(html).toContain("validatorUrl: 'none'");
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThanOrEqual(2);
    expect(html).not.toMatch(/https?:\/\//);
    for (const ref of refs) {
      expect(ref.startsWith('/'), ref).toBe(true);
      const asset = await app.request(ref);
      expect(asset.status, ref).toBe(200);
      expect(asset.headers.get('content-type')).toMatch(
        ref.endsWith('.css') ? /^text\/css/ : /^text\/javascript/,
      );
      expect((await asset.arrayBuffer()).byteLength).toBeGreaterThan(10_000);
    }
    // No bearer token needed to read the docs, and nothing else is served from the asset folder.
    const other = await app.request('/docs/assets/swagger-ui-dist/package.json');
    expect(other.status).toBe(404);
    expect(((await other.json()) as { error: { message: string } }).error.message).toContain(
      'assets are: swagger-ui-bundle.js, swagger-ui.css',
    );
  });

  it('documents the signed doors and the event streams', async () => {
    const doc = (await (await app.request('/openapi.json')).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/api/v1/hooks/ci',
        '/api/v1/chatops/slack',
        '/api/v1/chatops/slack/interactive',
        '/api/v1/events',
        '/api/v1/rollouts/{id}/events',
      ]),
    );
    const events = doc.paths['/api/v1/rollouts/{id}/events']!.get as {
      responses: Record<string, { content: object }>;
    };
    expect(Object.keys(events.responses['200']!.content)).toEqual(['application/json', 'text/event-stream']);
  });

  it('renders in a real browser that can reach nothing but vane', async () => {
    const server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
    });
    const profile = mkdtempSync(join(tmpdir(), 'vane-chromium-'));
    try {
      const port = (server.address() as AddressInfo).port;
      expect(existsSync('/usr/bin/chromium')).toBe(true);
      const { stdout } = await promisify(execFile)(
        '/usr/bin/chromium',
        [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          `--user-data-dir=${profile}`,
          // Every host but vane's is unresolvable: a CDN asset would not load.
          '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
          '--virtual-time-budget=10000',
          '--dump-dom',
          `http://127.0.0.1:${port}/docs`,
        ],
        { timeout: 60_000, maxBuffer: 20 * 1024 * 1024 },
      );
      // Swagger UI ran: the operations are rendered from /openapi.json.
      expect(stdout).toContain('opblock');
      expect(stdout).toContain('/api/v1/hooks/ci');
      expect(stdout).toContain('/api/v1/chatops/slack/interactive');
    } finally {
      server.close();
      rmSync(profile, { recursive: true, force: true });
    }
  }, 90_000);
});
