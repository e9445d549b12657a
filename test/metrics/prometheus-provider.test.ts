import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMetricError, MetricError } from '../../src/metrics/errors.ts';
import { createPrometheusProvider, type PrometheusProvider } from '../../src/metrics/prometheus.ts';
import { escapePromString } from '../../src/metrics/render.ts';
import { singleSeries, singleValue } from '../../src/metrics/values.ts';
import { freePort, type ManagedProcess } from '../../src/sandbox/processes.ts';
import { type IstioExporter, startIstioExporter } from '../helpers/istio-exporter.ts';
import { eventually, startTestPrometheus } from '../helpers/services.ts';

const TOKEN = 's3cret-token-value';

async function rejection(p: Promise<unknown>): Promise<MetricError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof MetricError) return e;
    throw e;
  }
  throw new Error('expected a MetricError');
}

/** A gateway in front of Prometheus: serves it under /prom, wants a bearer token, can be told to fail. */
function startGateway(target: string, tls?: { key: string; cert: string }) {
  const state = { failNext: 0, hang: false, requests: 0, seenHeaders: [] as Record<string, unknown>[] };
  const targetUrl = new URL(target);
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    state.requests++;
    state.seenHeaders.push({ ...req.headers });
    if (state.hang) return; // never answers
    if (!req.url?.startsWith('/prom/')) {
      res.writeHead(404).end('not found');
      return;
    }
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      res.writeHead(401, { 'Content-Type': 'text/plain' }).end('missing or wrong token');
      return;
    }
    if (state.failNext > 0) {
      state.failNext--;
      res.writeHead(503, { 'Content-Type': 'text/html' }).end('<html>upstream unavailable</html>');
      return;
    }
    const up = request(
      {
        host: targetUrl.hostname,
        port: targetUrl.port,
        path: req.url.slice('/prom'.length),
        method: req.method,
        headers: {
          'content-type': req.headers['content-type'] ?? '',
          'content-length': req.headers['content-length'] ?? '0',
        },
      },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    req.pipe(up);
  };
  const server: Server = tls ? createHttpsServer(tls, handler) : createServer(handler);
  return { server, state };
}

describe('the Prometheus provider against a real Prometheus', () => {
  let prom: ManagedProcess;
  let exporter: IstioExporter;
  let provider: PrometheusProvider;
  let gw: ReturnType<typeof startGateway>;
  let gwUrl: string;
  let dir: string;

  beforeAll(async () => {
    exporter = await startIstioExporter();
    exporter.setSubset('v1', { rps: 10 });
    prom = await startTestPrometheus([{ job: 'istio', target: exporter.hostPort }]);
    provider = createPrometheusProvider({ url: prom.url, timeout: '5s' });
    gw = startGateway(prom.url);
    await new Promise<void>((r) => gw.server.listen(0, '127.0.0.1', r));
    gwUrl = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}/prom`;
    dir = mkdtempSync(join(tmpdir(), 'vane-prov-'));
    await eventually(async () => {
      const r = await provider.query('count(istio_requests_total)');
      return r.type === 'vector' && r.series.length > 0 ? true : undefined;
    }, 30_000);
  });
  afterAll(async () => {
    provider?.close();
    gw?.server.closeAllConnections();
    gw?.server.close();
    await exporter?.stop();
    await prom?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers instant vectors with their labels, scalars, strings and ranges, typed', async () => {
    const v = await provider.query(
      'istio_requests_total{reporter="source",destination_version="v1",response_code="200"}',
    );
    expect(v.type).toBe('vector');
    if (v.type !== 'vector') return;
    expect(v.series).toHaveLength(1);
    expect(v.series[0]!.labels).toMatchObject({
      destination_version: 'v1',
      reporter: 'source',
      response_code: '200',
    });
    expect(v.series[0]!.value).toBeGreaterThan(0);

    expect(await provider.query('scalar(vector(2.5))')).toEqual({ type: 'scalar', value: 2.5, warnings: [] });
    expect(await provider.query('"hello"')).toEqual({ type: 'string', value: 'hello', warnings: [] });

    const end = new Date();
    const m = await provider.queryRange('vector(3)', {
      start: new Date(end.getTime() - 10_000),
      end,
      stepSeconds: 2,
    });
    expect(m.type).toBe('matrix');
    expect(singleSeries(m, 'vector(3)')).toEqual([3, 3, 3, 3, 3, 3]);
    expect(await provider.isOnline()).toBe(true);
  });

  it("reports a PromQL syntax error as bad-query with Prometheus's own message, without retrying", async () => {
    const before = gw.state.requests;
    const p = createPrometheusProvider({ url: gwUrl, bearerToken: { value: TOKEN }, retries: 3 });
    const e = await rejection(p.query('sum(rate(istio_requests_total[1m])'));
    expect(e.code).toBe('bad-query');
    expect(e.message).toMatch(/parse error/);
    expect(e.message).toContain('sum(rate(istio_requests_total[1m])');
    expect(gw.state.requests - before).toBe(1);
    p.close();
  });

  it('tells no data, NaN, +Inf, -Inf and several series apart — none of them becomes 0', async () => {
    const q = async (promql: string) =>
      rejection((async () => singleValue(await provider.query(promql), promql))());
    const none = await q('istio_requests_total{destination_version="nope"}');
    expect(none.code).toBe('no-data');
    expect(none.message).toBe(
      'no data: the query returned no series — check the labels (query: istio_requests_total{destination_version="nope"})',
    );
    expect((await q('0/0')).code).toBe('nan');
    expect((await q('sum(istio_requests_total{destination_version="v1"}) * 0 / 0')).code).toBe('nan');
    expect((await q('1/0')).code).toBe('infinite');
    const neg = await q('-1/0');
    expect(neg.code).toBe('infinite');
    expect(neg.message).toContain('-Inf');
    const several = await q('istio_requests_total{destination_version="v1"}');
    expect(several.code).toBe('multiple-series');
    expect(several.message).toMatch(/returned 4 series where one was expected \(\{/);
    expect(singleValue(await provider.query('vector(0)'), 'vector(0)')).toBe(0);
  });

  it('reports a closed port as unreachable after its retries, and isOnline is false', async () => {
    const port = await freePort();
    const p = createPrometheusProvider({ url: `http://127.0.0.1:${port}`, retries: 2, retryBackoff: '20ms' });
    const t0 = Date.now();
    const e = await rejection(p.query('vector(1)'));
    expect(e.code).toBe('unreachable');
    expect(e.message).toContain('ECONNREFUSED');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(20); // it waited between attempts
    expect(await p.isOnline()).toBe(false);
  });

  it('goes through a gateway with a path prefix and a bearer token from a file or an env var', async () => {
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`);
    const fromFile = createPrometheusProvider({
      url: gwUrl,
      bearerToken: { file: tokenFile },
      headers: { 'X-Scope-OrgID': 'team-a' },
    });
    expect(await fromFile.query('vector(7)')).toMatchObject({ type: 'vector', series: [{ value: 7 }] });
    expect(gw.state.seenHeaders.at(-1)).toMatchObject({ 'x-scope-orgid': 'team-a' });
    expect(await fromFile.isOnline()).toBe(true);

    const fromEnv = createPrometheusProvider(
      { url: `${gwUrl}/`, bearerToken: { env: 'PROM_TOKEN' }, method: 'GET' },
      { env: { PROM_TOKEN: TOKEN } },
    );
    expect(await fromEnv.query('vector(8)')).toMatchObject({ series: [{ value: 8 }] });

    const noToken = createPrometheusProvider({ url: gwUrl });
    const e = await rejection(noToken.query('vector(1)'));
    expect(e.code).toBe('unauthorized');
    const wrong = createPrometheusProvider({ url: gwUrl, bearerToken: { value: 'wrong-one' } });
    const w = await rejection(wrong.query('vector(1)'));
    expect(w.code).toBe('unauthorized');
    expect(w.message).not.toContain('wrong-one');
    expect(await noToken.isOnline()).toBe(false);
    expect(() =>
      createPrometheusProvider({ url: gwUrl, bearerToken: { env: 'PROM_TOKEN' } }, { env: {} }),
    ).toThrow('prometheus.bearerToken.env: environment variable PROM_TOKEN is not set or empty');
    for (const p of [fromFile, fromEnv, noToken, wrong]) p.close();
  });

  it('sends basic auth, and a wrong password is unauthorized without showing it', async () => {
    const p = createPrometheusProvider(
      { url: gwUrl, basicAuth: { username: 'vane', password: { env: 'PROM_PASSWORD' } } },
      { env: { PROM_PASSWORD: 'pa55' } },
    );
    const e = await rejection(p.query('vector(1)'));
    expect(e.code).toBe('unauthorized');
    expect(e.message).not.toContain('pa55');
    expect(gw.state.seenHeaders.at(-1)).toMatchObject({
      authorization: `Basic ${Buffer.from('vane:pa55').toString('base64')}`,
    });
    p.close();
  });

  it.skipIf(spawnSync('openssl', ['version']).status !== 0)(
    'reaches Prometheus behind TLS with a CA file, and refuses an unknown certificate',
    async () => {
      const key = join(dir, 'key.pem');
      const cert = join(dir, 'cert.pem');
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-keyout',
          key,
          '-out',
          cert,
          '-days',
          '1',
          '-subj',
          '/CN=127.0.0.1',
          '-addext',
          'subjectAltName=IP:127.0.0.1',
        ],
        { stdio: 'ignore' },
      );
      const tlsGw = startGateway(prom.url, {
        key: readFileSync(key, 'utf8'),
        cert: readFileSync(cert, 'utf8'),
      });
      await new Promise<void>((r) => tlsGw.server.listen(0, '127.0.0.1', r));
      const url = `https://127.0.0.1:${(tlsGw.server.address() as AddressInfo).port}/prom`;
      try {
        const trusted = createPrometheusProvider({
          url,
          bearerToken: { value: TOKEN },
          tls: { caFile: cert },
        });
        expect(await trusted.query('vector(5)')).toMatchObject({ series: [{ value: 5 }] });
        const untrusted = createPrometheusProvider({ url, bearerToken: { value: TOKEN }, retries: 0 });
        const e = await rejection(untrusted.query('vector(5)'));
        expect(e.code).toBe('unreachable');
        expect(e.message).toMatch(/SELF_SIGNED|self.signed/i);
        const insecure = createPrometheusProvider({
          url,
          bearerToken: { value: TOKEN },
          tls: { insecureSkipVerify: true },
        });
        expect(await insecure.query('vector(6)')).toMatchObject({ series: [{ value: 6 }] });
        for (const p of [trusted, untrusted, insecure]) p.close();
      } finally {
        tlsGw.server.closeAllConnections();
        tlsGw.server.close();
      }
    },
  );

  it('retries a 5xx with backoff and gives up after its retries', async () => {
    const p = createPrometheusProvider({
      url: gwUrl,
      bearerToken: { value: TOKEN },
      retries: 2,
      retryBackoff: '10ms',
    });
    gw.state.failNext = 2;
    expect(await p.query('vector(1)')).toMatchObject({ series: [{ value: 1 }] });
    gw.state.failNext = 3;
    const e = await rejection(p.query('vector(1)'));
    expect(e.code).toBe('http');
    expect(e.details.status).toBe(503);
    gw.state.failNext = 0;
    p.close();
  });

  it("gives up on a silent server after its timeout, and honours the caller's abort", async () => {
    gw.state.hang = true;
    try {
      const p = createPrometheusProvider({
        url: gwUrl,
        bearerToken: { value: TOKEN },
        timeout: '300ms',
        retries: 2,
      });
      const t0 = Date.now();
      const e = await rejection(p.query('vector(1)'));
      expect(e.code).toBe('timeout');
      expect(Date.now() - t0).toBeLessThan(2_000); // a timeout is not retried
      await expect(p.query('vector(1)', { signal: AbortSignal.timeout(50) })).rejects.toThrow();
      p.close();
    } finally {
      gw.state.hang = false;
    }
  });

  it('refuses a bad configuration naming the field', () => {
    expect(() => createPrometheusProvider({ url: 'ftp://x' })).toThrow(/^prometheus\.url: /);
    expect(() =>
      createPrometheusProvider({
        url: 'http://x',
        bearerToken: { value: 'a' },
        basicAuth: { username: 'u', password: { value: 'p' } },
      }),
    ).toThrow('prometheus.bearerToken: give bearerToken or basicAuth, not both');
    expect(() => createPrometheusProvider({ url: 'http://x', bearerToken: { file: 'a', env: 'B' } })).toThrow(
      'give exactly one of file, env or value',
    );
    expect(() => createPrometheusProvider({ url: 'http://x', timeout: '5 seconds' })).toThrow(
      /prometheus\.timeout/,
    );
  });

  it('escapes any label value so that Prometheus reads back exactly that value and never a parse error', async () => {
    const tricky = fc.string({
      unit: fc.constantFrom('a', '"', "'", '\\', '\n', '\r', '\t', '}', '{', ' ', 'é', '😀', '$', ','),
      maxLength: 12,
    });
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(tricky, fc.string({ maxLength: 12 })),
        fc.constantFrom('"' as const, "'" as const),
        async (v, quote) => {
          // A string literal reads back as itself; a matcher with the value must parse (no bad-query).
          const lit = `${quote}${escapePromString(v, quote)}${quote}`;
          expect(await provider.query(lit)).toEqual({ type: 'string', value: v, warnings: [] });
          const r = await provider.query(
            `count(istio_requests_total{destination_version=${lit}}) or vector(0)`,
          );
          expect(r.type).toBe('vector');
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('MetricError', () => {
  it('is recognised by code', () => {
    const e = new MetricError('no-data', 'x');
    expect(isMetricError(e)).toBe(true);
    expect(isMetricError(e, 'nan')).toBe(false);
    expect(isMetricError(new Error('x'))).toBe(false);
  });
});
