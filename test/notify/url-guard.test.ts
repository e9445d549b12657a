import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerReason, deliver } from '../../src/notify/deliver.ts';
import { checkGate } from '../../src/notify/gates.ts';
import { buildPayload } from '../../src/notify/payload.ts';
import {
  createOutboundGuard,
  type Resolver,
  redactCredentials,
  refusedAddress,
  refusedUrl,
} from '../../src/notify/url-guard.ts';
import { WebhookSchema } from '../../src/rollouts/spec.ts';
import { makeRollout } from './fixtures.ts';

const strict = { allowLoopback: false };
const loose = { allowLoopback: true };

describe('refusedUrl / refusedAddress', () => {
  const table: [string, boolean, boolean][] = [
    // url, refused when loopback is not allowed, refused when it is
    ['http://169.254.169.254/latest/meta-data/', true, true],
    ['http://169.254.1.2:8080/', true, true],
    ['http://[fe80::1]/', true, true],
    ['http://[febf::1]/', true, true],
    ['http://[fd00:ec2::254]/', true, true],
    ['http://[::ffff:169.254.169.254]/', true, true],
    ['http://metadata.google.internal/computeMetadata/v1/', true, true],
    ['http://METADATA.GOOGLE.INTERNAL./x', true, true],
    ['http://0.0.0.0:8080/', true, true],
    ['http://[::]/', true, true],
    ['http://127.0.0.1:9000/hook', true, false],
    ['http://127.1.2.3/', true, false],
    ['http://2130706433/', true, false], // 127.0.0.1 as one number
    ['http://0x7f.1/', true, false],
    ['http://[::1]:8080/', true, false],
    ['http://[::ffff:127.0.0.1]/', true, false],
    ['http://localhost:8080/', true, false],
    ['http://api.localhost/', true, false],
    ['ftp://example.com/', true, true],
    ['not a url', true, true],
    // private ranges and public names are allowed: in-cluster services live there
    ['http://10.0.0.5:8080/gate', false, false],
    ['http://172.16.3.4/', false, false],
    ['http://192.168.1.10/', false, false],
    ['http://[fd12:3456::1]/', false, false],
    ['https://hooks.slack.com/services/T0/B0/x', false, false],
    ['http://gate.default.svc.cluster.local/check', false, false],
    ['http://169.253.255.255/', false, false],
    ['http://169.255.0.1/', false, false],
  ];
  it.each(table)('%s', (url, refusedStrict, refusedLoose) => {
    expect(refusedUrl(url, strict) !== undefined).toBe(refusedStrict);
    expect(refusedUrl(url, loose) !== undefined).toBe(refusedLoose);
  });

  it('names why', () => {
    expect(refusedAddress('169.254.169.254', strict)).toBe(
      '169.254.169.254 is a link-local or cloud-metadata address',
    );
    expect(refusedAddress('127.0.0.1', strict)).toMatch(/loopback .*VANE_ALLOW_LOOPBACK_WEBHOOKS/);
  });

  it('redacts credentials of URLs inside any text', () => {
    expect(redactCredentials('connect to https://user:s3cret@gate.example/x failed')).toBe(
      'connect to https://***@gate.example/x failed',
    );
    expect(redactCredentials('http://token@h/ and HTTP://a:b@c/')).toBe('http://***@h/ and HTTP://***@c/');
  });

  it('is what spec validation uses, naming the field', () => {
    const r = WebhookSchema.safeParse({ type: 'rollout', url: 'http://[fd00:ec2::254]/latest' });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual(['url']);
    expect(r.error!.issues[0]!.message).toMatch(/link-local or cloud-metadata/);
  });
});

describe('deliveries through the guard (real sockets)', () => {
  let server: Server;
  let port: number;
  const hits: string[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      hits.push(req.url ?? '');
      if (req.url === '/redirect') return res.writeHead(302, { location: '/landed' }).end();
      if (req.url === '/html')
        return res
          .writeHead(403, { 'content-type': 'text/html' })
          .end('<h1>internal admin page: db password hunter2</h1>');
      if (req.url === '/json') {
        return res
          .writeHead(403, { 'content-type': 'application/json' })
          .end(JSON.stringify({ reason: `frozen ${'z'.repeat(500)}`, secret: 'hunter2' }));
      }
      if (req.url === '/auth')
        return res.writeHead(200).end(JSON.stringify({ message: req.headers.authorization ?? 'none' }));
      res.writeHead(200).end('{}');
    });
    server.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  // A name that resolves to loopback: the DNS-rebinding case the guard must catch at connect time.
  const rebinding: Resolver = (hostname, cb) =>
    hostname === 'innocent.example'
      ? cb(null, [{ address: '127.0.0.1', family: 4 }])
      : hostname === 'dual.example'
        ? cb(null, [
            { address: '10.0.0.1', family: 4 },
            { address: '169.254.169.254', family: 4 },
          ])
        : cb(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), []);

  it('refuses a hostname that resolves to 127.0.0.1 when it connects, and sends nothing', async () => {
    const guard = createOutboundGuard(strict, rebinding);
    const before = hits.length;
    // The URL itself passes: the name is not an address.
    expect(guard.refused(`http://innocent.example:${port}/hook`)).toBeUndefined();
    const res = await deliver(
      { url: `http://innocent.example:${port}/hook`, event: 'rollout' },
      { a: 1 },
      {
        timeoutMs: 3_000,
        guard,
      },
    );
    expect(res.ok).toBe(false);
    expect(res.error).toMatch(/^refused: innocent\.example resolves to 127\.0\.0\.1 is a loopback address/);
    expect(hits.length).toBe(before);
    // Any refused address among several refuses the name.
    const dual = await deliver(
      { url: `http://dual.example:${port}/`, event: 'rollout' },
      {},
      { timeoutMs: 3_000, guard },
    );
    expect(dual.error).toMatch(/dual\.example resolves to 169\.254\.169\.254/);
    await guard.dispatcher.close();
  });

  it('lets the same name through when loopback is allowed', async () => {
    const guard = createOutboundGuard(loose, rebinding);
    const res = await deliver(
      { url: `http://innocent.example:${port}/hook`, event: 'rollout' },
      {},
      { timeoutMs: 3_000, guard },
    );
    expect(res).toMatchObject({ ok: true, status: 200 });
    await guard.dispatcher.close();
  });

  it('refuses a literal loopback URL before connecting', async () => {
    const guard = createOutboundGuard(strict);
    const before = hits.length;
    const res = await deliver(
      { url: `http://127.0.0.1:${port}/`, event: 'rollout' },
      {},
      { timeoutMs: 3_000, guard },
    );
    expect(res.error).toMatch(/^refused: 127\.0\.0\.1 is a loopback address/);
    expect(hits.length).toBe(before);
    await guard.dispatcher.close();
  });

  it('does not follow a redirect: a 3xx is a failure', async () => {
    const guard = createOutboundGuard(loose);
    const res = await deliver(
      { url: `http://127.0.0.1:${port}/redirect`, event: 'rollout' },
      {},
      { timeoutMs: 3_000, guard },
    );
    expect(res).toMatchObject({ ok: false, status: 302 });
    expect(res.error).toMatch(/does not follow redirects/);
    expect(hits).not.toContain('/landed');
    await guard.dispatcher.close();
  });

  it('keeps only the status and a short JSON reason of an answer, never the raw body', async () => {
    const guard = createOutboundGuard(loose);
    const hook = WebhookSchema.parse({ type: 'confirm-promotion', url: `http://127.0.0.1:${port}/html` });
    const payload = buildPayload(makeRollout(), 'confirm-promotion');
    const html = await checkGate(hook, payload, {});
    expect(html.message).toBe(`confirm-promotion webhook to http://127.0.0.1:${port}/html answered 403`);
    expect(html.message).not.toContain('hunter2');
    const json = await checkGate({ ...hook, url: `http://127.0.0.1:${port}/json` }, payload, {});
    expect(json.message).toMatch(/answered 403: frozen z+…$/);
    expect(json.message).not.toContain('hunter2');
    expect(json.message.split(': ').at(-1)!.length).toBeLessThanOrEqual(201);
    expect(answerReason('{"message":"no"}')).toBe('no');
    expect(answerReason('[1]')).toBeUndefined();
    await guard.dispatcher.close();
  });

  it('sends URL credentials as basic auth and never puts them in error text', async () => {
    const guard = createOutboundGuard(loose);
    const ok = await deliver(
      { url: `http://bob:s3cret@127.0.0.1:${port}/auth`, event: 'rollout' },
      {},
      { timeoutMs: 3_000, guard },
    );
    expect(ok.response).toBe(`Basic ${Buffer.from('bob:s3cret').toString('base64')}`);
    const failed = await deliver(
      { url: 'http://bob:s3cret@no-such-host.invalid/', event: 'rollout' },
      {},
      { timeoutMs: 3_000, guard },
    );
    expect(failed.ok).toBe(false);
    expect(failed.error).not.toContain('s3cret');
    const hook = WebhookSchema.parse({
      type: 'confirm-rollout',
      url: 'http://bob:s3cret@no-such-host.invalid/g',
    });
    const gate = await checkGate(hook, buildPayload(makeRollout(), 'confirm-rollout'));
    expect(gate.message).not.toContain('s3cret');
    expect(gate.message).not.toContain('bob');
    await guard.dispatcher.close();
  });
});
