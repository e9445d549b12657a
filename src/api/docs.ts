import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { swaggerUI } from '@hono/swagger-ui';
import type { App } from './app.ts';
import { ApiError } from './errors.ts';

/** Where /docs loads Swagger UI's files from: vane itself, never a CDN. */
const ASSET_BASE = '/docs/assets';

/** The files of swagger-ui-dist the page needs, with their content types. */
const ASSETS: Record<string, string> = {
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'swagger-ui.css': 'text/css; charset=utf-8',
};

const require = createRequire(import.meta.url);
const cache = new Map<string, Promise<Buffer>>();

function asset(name: string): Promise<Buffer> {
  let p = cache.get(name);
  if (!p) {
    p = readFile(require.resolve(`swagger-ui-dist/${name}`));
    p.catch(() => cache.delete(name));
    cache.set(name, p);
  }
  return p;
}

/**
 * /docs: an interactive reference of /openapi.json (Swagger UI), every asset served by vane from
 * the swagger-ui-dist package, so it works offline and behind a strict egress policy. The
 * validator badge (an outside call) is off.
 */
export function registerDocs(app: App): void {
  app.get(
    '/docs',
    swaggerUI({
      url: '/openapi.json',
      title: 'vane API',
      baseUrl: ASSET_BASE,
      validatorUrl: 'none',
      persistAuthorization: true,
    }),
  );
  app.get(`${ASSET_BASE}/swagger-ui-dist/:file`, async (c) => {
    const file = c.req.param('file');
    const type = ASSETS[file];
    if (!type)
      throw new ApiError(
        'NOT_FOUND',
        `no docs asset named '${file}'; assets are: ${Object.keys(ASSETS).join(', ')}`,
      );
    const body = await asset(file);
    return c.body(new Uint8Array(body), 200, {
      'Content-Type': type,
      'Cache-Control': 'public, max-age=86400',
    });
  });
}
