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
});
