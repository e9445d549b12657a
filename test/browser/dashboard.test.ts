import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type ServerType, serve } from '@hono/node-server';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApp } from '../../src/api/app.ts';
import type { MetricProvider, QueryResult } from '../../src/metrics/types.ts';
import { startRollout } from '../../src/rollouts/verbs.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { startTestBrowser, type TestBrowser } from '../helpers/browser.ts';
import { canarySpec, type EngineHarness, seedTarget, startEngineHarness } from '../helpers/engine.ts';
import { eventually, startTestRedis } from '../helpers/services.ts';

const SCREENSHOTS = join(import.meta.dirname, '../../.test-results/screenshots');
const ADMIN_TOKEN = 'dashboard-admin-token-0123456789';
/** Steps of the rollouts a test acts on: long enough (38 s) that none ends before the test acts, on a loaded machine too. */
const STEPS = Array.from({ length: 19 }, (_, i) => 5 * (i + 1));
const VIEWER_TOKEN = 'dashboard-viewer-token-0123456789';

/**
 * Answers the built-in Istio templates for every service: request counts, success rate (the
 * canary's settable per service) and p99 latency, with a little movement so the charts show some.
 */
class MetricsTable implements MetricProvider {
  canarySuccess = new Map<string, number>();
  private n = 0;
  async query(promql: string): Promise<QueryResult> {
    const service = /destination_service_name="([^"]+)"/.exec(promql)?.[1] ?? '';
    const canary = /destination_version="v2"/.test(promql);
    const wobble = Math.sin(this.n++ / 3);
    let value: number;
    if (promql.startsWith('histogram_quantile')) value = canary ? 180 + 20 * wobble : 150 + 5 * wobble;
    else if (promql.includes('increase(')) value = 1200;
    else value = canary ? (this.canarySuccess.get(service) ?? 99.6 + 0.2 * wobble) : 99.9;
    return { type: 'vector', series: [{ labels: {}, value }], warnings: [] };
  }
  async queryRange(): Promise<QueryResult> {
    throw new Error('not used');
  }
  async isOnline(): Promise<boolean> {
    return true;
  }
}

const METRICS = {
  guardInterval: '250ms',
  minRequests: 100,
  failureThreshold: 1,
  metrics: [
    { name: 'success-rate', template: 'request-success-rate', critical: true, thresholdRange: { min: 99 } },
    // Dry run: judged and shown (marked in the analysis table), never counted.
    { name: 'p99-latency', template: 'request-duration', dryRun: true, thresholdRange: { max: 500 } },
  ],
};

describe('the dashboard in a real browser (Debian chromium, vane API over HTTP, real Redis, kube simulator)', () => {
  let redis: ManagedProcess;
  let h: EngineHarness;
  let server: ServerType;
  let fetchApp: (req: Request) => Response | Promise<Response>;
  const listen = async (port: number) => {
    const s = serve({ fetch: fetchApp, port, hostname: '127.0.0.1' });
    await new Promise((r) => s.once('listening', r));
    return s;
  };
  let base: string;
  let browser: TestBrowser;
  const provider = new MetricsTable();
  const problems: string[] = [];

  beforeAll(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    redis = await startTestRedis();
    h = await startEngineHarness({ redisUrl: redis.url, provider, notify: {} });
    const app = newApp({
      logger: h.domain.ctx.logger,
      recorder: h.domain.ctx.recorder,
      readiness: [],
      domain: h.domain.ctx,
      // A plain token (every scope, named token-1) and a read-only one by its hash.
      apiTokens: [ADMIN_TOKEN],
      scopedTokens: [
        {
          name: 'viewer',
          sha256: createHash('sha256').update(VIEWER_TOKEN).digest('hex'),
          scopes: ['read'],
          namespaces: ['shop'],
        },
      ],
    });
    fetchApp = app.fetch;
    server = await listen(0);
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await startTestBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => server?.close(r));
    await h?.close();
    await redis?.stop();
  });

  const start = async (name: string, over: Record<string, unknown>) => {
    seedTarget(h.sim, name);
    const { rollout } = await startRollout({
      ctx: h.domain.ctx,
      input: canarySpec(name, { analysis: METRICS, ...over }),
    });
    return rollout.id;
  };

  async function open(path = '/ui'): Promise<Page> {
    const page = await browser.context.newPage();
    page.on('console', (m) => {
      // Refused requests (the wrong token, a stream the server does not have) are logged by the browser; the rest is a fault.
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource'))
        problems.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    await page.goto(`${base}${path}`);
    return page;
  }

  /** Signs in on the page's form (each tab has its own sessionStorage). */
  async function signIn(page: Page, token = ADMIN_TOKEN) {
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }

  it('signs in once with the token, lists rollouts, follows one live, and aborts it after confirmation', async () => {
    // One rollout that ends promoted, one that the analysis rolls back, one that moves slowly.
    const done = await start('details', { strategy: { type: 'canary', steps: [50], stepInterval: '1s' } });
    provider.canarySuccess.set('ratings', 91.5);
    const failed = await start('ratings', {
      strategy: { type: 'canary', steps: [20, 40], stepInterval: '1s' },
    });
    await h.settle(done);
    await h.settle(failed);
    const id = await start('reviews', {
      strategy: { type: 'canary', steps: STEPS, stepInterval: '2s' },
    });

    const page = await open();
    // Sign-in: a labelled password field; a wrong token is refused and says so.
    const token = page.getByLabel('API token');
    await token.fill('wrong');
    await token.press('Enter');
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('not accepted');
    await signIn(page);

    // The list: target, phase, weight, age, reason.
    const rows = page.locator('table.rollouts tbody tr');
    await expect.poll(() => rows.count(), { timeout: 15_000 }).toBe(3);
    const row = (rid: string) => page.locator(`tr[data-id="${rid}"]`);
    expect(await row(done).locator('.phase').textContent()).toBe('succeeded');
    expect(await row(failed).locator('.phase').textContent()).toBe('failed');
    expect(await row(failed).locator('.reason').textContent()).toMatch(/success rate 91.5% < 99%/);
    expect(await row(id).locator('th a').textContent()).toBe('shop/reviews');
    expect(await page.locator('thead th').allTextContents()).toEqual([
      'Target',
      'Phase',
      'Canary weight',
      'Age',
      'Last reason',
    ]);
    // The token is in this tab's sessionStorage, and in no URL.
    expect(await page.evaluate('sessionStorage.getItem("vane.token")')).toBe(ADMIN_TOKEN);
    expect(page.url()).not.toContain(ADMIN_TOKEN);
    await eventually(async () =>
      (await row(id).locator('.weight').textContent()) !== '0%' ? true : undefined,
    );
    // The list follows the all-rollouts event stream.
    await expect.poll(() => page.locator('#live').textContent()).toBe('live');
    await page.screenshot({ path: join(SCREENSHOTS, 'dashboard-list.png'), fullPage: true });
    // A rollout started now shows up, and moves, without a reload.
    await page.evaluate('window.sameDocument = true');
    const late = await start('catalog', {
      strategy: { type: 'canary', steps: [25, 50], stepInterval: '1s' },
    });
    await expect.poll(() => row(late).count(), { timeout: 15_000 }).toBe(1);
    await expect.poll(() => row(late).locator('.phase').textContent(), { timeout: 20_000 }).toBe('succeeded');
    expect(await row(late).locator('.weight').textContent()).toBe('100%');
    expect(await page.evaluate('window.sameDocument')).toBe(true);

    // By keyboard: focus the rollout's link and follow it.
    await row(id).locator('th a').focus();
    await page.keyboard.press('Enter');
    await page.waitForURL(`**/ui#/rollouts/${id}`);
    await expect.poll(() => page.locator('h1').textContent()).toBe('Rollout of shop/reviews');

    // Live from the rollout's event stream: the weight shown changes without a reload.
    await expect.poll(() => page.locator('#live').textContent()).toBe('live');
    await page.evaluate('window.sameDocument = true');
    const weightText = () => page.locator('[data-field="Canary weight"]').textContent();
    await expect.poll(weightText, { timeout: 15_000 }).toMatch(/^[1-9]\d*%$/);
    const first = await weightText();
    await expect.poll(weightText, { timeout: 20_000 }).not.toBe(first);
    expect(await page.evaluate('window.sameDocument')).toBe(true);
    // The timeline, the charts and the analysis table are filled from the events.
    await expect.poll(() => page.locator('.timeline li[data-type="weight"]').count()).toBeGreaterThan(1);
    await expect.poll(() => page.locator('table.analysis tbody tr').count(), { timeout: 15_000 }).toBe(2);
    const success = page.locator('table.analysis tr[data-metric="success-rate"] td');
    expect(await success.nth(2).textContent()).toBe('≥ 99');
    expect(await success.nth(3).textContent()).toBe('pass');
    expect(await page.locator('table.analysis tr[data-metric="p99-latency"] th').textContent()).toBe(
      'p99-latency dry run',
    );
    expect(await page.locator('table.analysis tr[data-metric="success-rate"] th').textContent()).toBe(
      'success-rate critical',
    );
    await expect
      .poll(() => page.locator('table.analysis caption').textContent())
      .toMatch(/canary requests in the window: 1200 \(minimum 100\)/);
    await expect.poll(() => page.locator('.metrics figure canvas').count(), { timeout: 15_000 }).toBe(2);
    // A few analyses in the charts before the picture.
    await expect
      .poll(() => page.locator('.timeline li[data-type="analysis"]').count(), { timeout: 20_000 })
      .toBeGreaterThan(2);
    await page.screenshot({ path: join(SCREENSHOTS, 'dashboard-rollout.png'), fullPage: true });

    // Abort by keyboard: a confirmation first; Escape cancels it, sends nothing, and gives the focus back.
    const abort = page.getByRole('button', { name: 'Abort' });
    await abort.focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog');
    expect(await dialog.isVisible()).toBe(true);
    expect(await dialog.getByRole('heading').textContent()).toBe('Abort shop/reviews?');
    await page.keyboard.press('Escape');
    expect(await dialog.isVisible()).toBe(false);
    expect(await page.evaluate('document.activeElement.dataset.action')).toBe('abort');
    expect((await h.domain.ctx.store.get(id))?.commands).toEqual([]);
    await page.keyboard.press('Enter');
    // Enter in the reason field confirms.
    await dialog.getByLabel('Reason (kept in the history)').fill('dashboard test');
    await page.keyboard.press('Enter');
    await expect
      .poll(() => page.locator('[data-field="Phase"]').textContent(), { timeout: 20_000 })
      .toBe('aborted');
    // Ended: the stream ends, and no action is offered any more.
    await expect.poll(() => page.locator('#live').textContent(), { timeout: 15_000 }).toBe('ended');
    await expect.poll(() => page.locator('.actions button').count()).toBe(0);
    const ended = await h.settle(id);
    expect(ended.phase).toBe('aborted');
    await expect
      .poll(() => page.locator('.timeline').textContent(), { timeout: 15_000 })
      .toContain('dashboard test');
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.screenshot({ path: join(SCREENSHOTS, 'dashboard-rollout-dark.png'), fullPage: true });
    expect(problems).toEqual([]);
    await page.close();
  });

  it('a rollout held at its promotion gate: Approve after confirmation, and the gate says who opened it', async () => {
    const id = await start('productpage', {
      strategy: { type: 'canary', steps: [20], stepInterval: '1s', confirmPromotion: true },
    });
    const page = await open(`/ui#/rollouts/${id}`);
    await signIn(page);
    const phase = () => page.locator('[data-field="Phase"]').textContent();
    await expect.poll(phase, { timeout: 20_000 }).toBe('awaiting-promotion');
    await expect
      .poll(() => page.locator('.gate-waiting').textContent())
      .toMatch(/^Waiting at confirm-promotion/);
    expect(await page.locator('.actions button').allTextContents()).toEqual([
      'Promote',
      'Approve',
      'Pause',
      'Abort',
    ]);
    await page.getByRole('button', { name: 'Approve' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Reason (kept in the history)').fill('looks good');
    await dialog.getByRole('button', { name: 'Confirm' }).click();
    await expect.poll(phase, { timeout: 20_000 }).toBe('succeeded');
    await expect
      .poll(() => page.locator('.gates').textContent(), { timeout: 15_000 })
      .toMatch(/confirm-promotion approved by token-1: looks good/);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('a read-only token sees the rollout but no action buttons', async () => {
    const id = await start('reviews-ro', {
      strategy: { type: 'canary', steps: STEPS, stepInterval: '2s' },
    });
    const page = await open(`/ui#/rollouts/${id}`);
    await signIn(page, VIEWER_TOKEN);
    await expect.poll(() => page.locator('#who').textContent()).toMatch(/^viewer \(read in shop\)/);
    await expect
      .poll(() => page.locator('[data-field="Phase"]').textContent(), { timeout: 15_000 })
      .toBe('progressing');
    await expect
      .poll(() => page.locator('.timeline li[data-type="weight"]').count(), { timeout: 15_000 })
      .toBeGreaterThan(1);
    expect(await page.locator('.actions').count()).toBe(0);
    expect(await page.getByRole('button', { name: /Promote|Approve|Pause|Resume|Abort/ }).count()).toBe(0);
    // Its list follows the stream of its own namespace.
    await page.getByRole('link', { name: '← All rollouts' }).click();
    await expect.poll(() => page.locator('#live').textContent()).toBe('live');
    await expect.poll(() => page.locator(`tr[data-id="${id}"]`).count()).toBe(1);
    await page.goto(`${base}/ui#/rollouts/${id}`);
    // The same rollout as an operator offers them.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await signIn(page);
    await expect
      .poll(() => page.locator('.actions button').allTextContents())
      .toEqual(['Promote', 'Pause', 'Abort']);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('an API restart under an open page: it reconnects with Last-Event-ID and loses or repeats no event', async () => {
    const id = await start('reviews-restart', {
      strategy: { type: 'canary', steps: STEPS, stepInterval: '2s' },
    });
    const page = await open(`/ui#/rollouts/${id}`);
    await signIn(page);
    const weights = () => page.locator('.timeline li[data-type="weight"]').count();
    await expect.poll(() => page.locator('#live').textContent()).toBe('live');
    await expect.poll(weights, { timeout: 15_000 }).toBeGreaterThan(2);
    // The API goes away with the stream open, and comes back on the same port.
    const port = (server.address() as AddressInfo).port;
    (server as Server).closeAllConnections();
    await new Promise((r) => server.close(r));
    await expect.poll(() => page.locator('#live').textContent()).not.toBe('live');
    const before = await weights();
    server = await listen(port);
    await expect.poll(() => page.locator('#live').textContent(), { timeout: 15_000 }).toBe('live');
    await expect.poll(weights, { timeout: 15_000 }).toBeGreaterThan(before + 1);
    // What the page shows is the stored history, each event once.
    await eventually(async () => {
      const stored = await h.domain.ctx.store.events(id, {});
      const shown = await page.locator('.timeline li').count();
      return shown === stored.length ? true : undefined;
    }, 10_000);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('with no token configured there is no sign-in: the local caller may do everything', async () => {
    const local = serve({
      fetch: newApp({
        logger: h.domain.ctx.logger,
        recorder: h.domain.ctx.recorder,
        readiness: [],
        domain: h.domain.ctx,
      }).fetch,
      port: 0,
      hostname: '127.0.0.1',
    });
    await new Promise((r) => local.once('listening', r));
    try {
      const page = await browser.context.newPage();
      await page.goto(`http://127.0.0.1:${(local.address() as AddressInfo).port}/ui`);
      await expect
        .poll(() => page.locator('#who').textContent())
        .toBe('local (read, trigger, operate, admin)');
      expect(await page.getByLabel('API token').count()).toBe(0);
      await expect.poll(() => page.locator('table.rollouts tbody tr').count()).toBeGreaterThan(0);
      await page.close();
    } finally {
      // The page's event stream may still hold a connection: close() alone would wait for it.
      (local as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      await new Promise((r) => local.close(r));
    }
  });

  it('serves its assets itself, with content types, caching and a strict Content-Security-Policy', async () => {
    const page = await fetch(`${base}/ui`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toMatch(/script-src 'self' 'sha256-[A-Za-z0-9+/=]+'(;|$)/);
    expect(csp).not.toMatch(/https?:|\*/);
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await page.text();
    // Every asset the page names is vane's own, and is served.
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"|"uplot": "([^"]+)"/g)].map((m) => m[1] ?? m[2]!);
    expect(refs.filter((r) => !r.startsWith('/ui') && !r.startsWith('#') && r !== 'data:,')).toEqual([]);
    const uplot = refs.find((r) => r.endsWith('uPlot.esm.js'))!;
    const js = await fetch(`${base}${uplot}`);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    const main = await fetch(`${base}/ui/assets/main.js`);
    expect(main.status).toBe(200);
    expect(main.headers.get('cache-control')).toBe('no-cache');
    const etag = main.headers.get('etag')!;
    expect((await fetch(`${base}/ui/assets/main.js`, { headers: { 'If-None-Match': etag } })).status).toBe(
      304,
    );
    expect((await fetch(`${base}/ui/assets/style.css`)).headers.get('content-type')).toBe(
      'text/css; charset=utf-8',
    );
    expect((await fetch(`${base}/ui/assets/nope.js`)).status).toBe(404);
    expect((await fetch(`${base}/ui/assets/../route.ts`)).status).toBe(404);
    // whoami needs the token; with it, names the caller and its scopes.
    expect((await fetch(`${base}/api/v1/whoami`)).status).toBe(401);
    const me = await fetch(`${base}/api/v1/whoami`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(await me.json()).toEqual({ name: 'token-1', scopes: ['read', 'trigger', 'operate', 'admin'] });
    const viewer = await fetch(`${base}/api/v1/whoami`, {
      headers: { Authorization: `Bearer ${VIEWER_TOKEN}` },
    });
    expect(await viewer.json()).toEqual({ name: 'viewer', scopes: ['read'], namespaces: ['shop'] });
  });
});
