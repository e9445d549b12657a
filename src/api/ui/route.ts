import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Context } from 'hono';
import type { App } from '../app.ts';
import type { AppEnv } from '../context.ts';

/** The dashboard's own files, served as they are: plain ES modules, no build step. */
const OWN_FILES = [
  'main.js',
  'api.js',
  'sse.js',
  'model.js',
  'dom.js',
  'format.js',
  'charts.js',
  'list-view.js',
  'rollout-view.js',
  'sign-in-view.js',
  'style.css',
] as const;

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

interface Asset {
  body: Uint8Array;
  type: string;
  etag: string;
  cacheControl: string;
}

export interface UiOptions {
  /** Which phases each operator command applies in (the API's own table), handed to the page so it offers only what would be accepted. */
  commandPhases: Record<string, readonly string[]>;
}

function asset(body: Uint8Array | string, file: string, cacheControl: string): Asset {
  const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : new Uint8Array(body);
  const ext = file.slice(file.lastIndexOf('.'));
  const type = TYPES[ext];
  if (!type) throw new Error(`dashboard asset ${file}: no content type for '${ext}'`);
  const etag = `"${createHash('sha256').update(bytes).digest('base64url').slice(0, 27)}"`;
  return { body: bytes, type, etag, cacheControl };
}

/**
 * Content-Security-Policy of every dashboard response: nothing from another origin, no inline
 * script but the import map (allowed by its hash), no inline style, no framing.
 */
function contentSecurityPolicy(importMapHash: string): string {
  return [
    "default-src 'none'",
    `script-src 'self' 'sha256-${importMapHash}'`,
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/**
 * GET /ui (the page) and its assets: the dashboard's own modules from this folder and uPlot from
 * the installed package, each with its content type, an ETag and a cache policy — revalidated for
 * vane's own files (their names do not change between releases), cached for a year for uPlot's
 * (its version is in the path). Everything is read once, at start.
 */
export function registerUi(app: App, opts: UiOptions): void {
  const dir = join(import.meta.dirname, 'assets');
  const require = createRequire(import.meta.url);
  const uplotDir = dirname(require.resolve('uplot/package.json'));
  const uplotVersion = (
    JSON.parse(readFileSync(join(uplotDir, 'package.json'), 'utf8')) as { version: string }
  ).version;
  const vendor = `/ui/vendor/uplot-${uplotVersion}`;

  // index.html names uPlot without its version; the version goes into the path so that its files can be cached for good.
  const page = readFileSync(join(dir, 'index.html'), 'utf8')
    .replaceAll('/ui/vendor/uplot/', `${vendor}/`)
    // JSON inside a script element that is never run: '<' escaped so no text can close the element.
    .replace(
      'id="command-phases">{}',
      () => `id="command-phases">${JSON.stringify(opts.commandPhases).replaceAll('<', '\\u003c')}`,
    );
  const importMap = /<script type="importmap">([^<]*)<\/script>/.exec(page)?.[1];
  if (importMap === undefined) throw new Error('dashboard index.html: no import map');
  const csp = contentSecurityPolicy(createHash('sha256').update(importMap).digest('base64'));

  const assets = new Map<string, Asset>();
  const revalidate = 'no-cache';
  assets.set('/ui', asset(page, 'index.html', revalidate));
  for (const f of OWN_FILES) assets.set(`/ui/assets/${f}`, asset(readFileSync(join(dir, f)), f, revalidate));
  const immutable = 'public, max-age=31536000, immutable';
  for (const f of ['uPlot.esm.js', 'uPlot.min.css']) {
    assets.set(`${vendor}/${f}`, asset(readFileSync(join(uplotDir, 'dist', f)), f, immutable));
  }

  const serve = (c: Context<AppEnv>, a: Asset) => {
    c.header('Content-Security-Policy', csp);
    c.header('X-Content-Type-Options', 'nosniff');
    c.header('Referrer-Policy', 'no-referrer');
    c.header('X-Frame-Options', 'DENY');
    c.header('Cache-Control', a.cacheControl);
    c.header('ETag', a.etag);
    if (c.req.header('if-none-match') === a.etag) return c.body(null, 304);
    c.header('Content-Type', a.type);
    return c.body(a.body as Uint8Array<ArrayBuffer>, 200);
  };

  const index = assets.get('/ui')!;
  app.get('/ui', (c) => serve(c, index));
  app.get('/ui/', (c) => c.redirect('/ui', 301));
  app.get('/ui/*', (c) => {
    const a = assets.get(c.req.path);
    return a ? serve(c, a) : c.notFound();
  });
}
