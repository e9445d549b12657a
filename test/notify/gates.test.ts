import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkGate, checkRollbackRequest, GateStore, gateKey, type Webhook } from '../../src/notify/gates.ts';
import { buildPayload } from '../../src/notify/payload.ts';
import { connectRedis, pingRedis, type Redis } from '../../src/redis.ts';
import { WebhookSchema } from '../../src/rollouts/spec.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { startTestRedis } from '../helpers/services.ts';
import { closedPort, makeRollout, Receiver, receiverVerifies } from './fixtures.ts';

const hook = (w: Record<string, unknown>): Webhook => WebhookSchema.parse(w);

describe('gate webhooks against a real receiver', () => {
  let receiver: Receiver;
  beforeAll(async () => {
    receiver = await new Receiver().start();
  });
  afterAll(async () => {
    await receiver?.stop();
  });

  it('a receiver holds the gate closed (403), then opens it (200)', async () => {
    let open = false;
    receiver.on('/gate', () =>
      open ? 200 : { status: 403, body: JSON.stringify({ reason: 'change freeze until 18:00' }) },
    );
    const w = hook({
      type: 'confirm-promotion',
      url: receiver.url('/gate'),
      timeout: '2s',
      secretEnv: 'VANE_SECRET_GATE',
    });
    const r = makeRollout({}, { phase: 'awaiting-promotion' });
    const payload = buildPayload(r, 'confirm-promotion', { gate: 'confirm-promotion' });
    const secrets = (n: string) => (n === 'VANE_SECRET_GATE' ? 'gate-secret' : undefined);

    const closed = await checkGate(w, payload, { secrets });
    expect(closed).toEqual({
      open: false,
      status: 403,
      message: `confirm-promotion webhook to ${receiver.url('/gate')} answered 403: change freeze until 18:00`,
    });
    open = true;
    expect(await checkGate(w, payload, { secrets })).toMatchObject({ open: true, status: 200 });

    const asked = receiver.at('/gate');
    expect(asked).toHaveLength(2);
    expect(asked.every((a) => receiverVerifies('gate-secret', a.headers, a.raw))).toBe(true);
    expect(asked[0]!.headers['x-vane-event']).toBe('confirm-promotion');
    expect(asked[0]!.body).toMatchObject({
      gate: 'confirm-promotion',
      phase: 'awaiting-promotion',
      name: 'reviews',
    });
  });

  it('an unreachable, hanging or misconfigured gate stays closed, within the webhook timeout', async () => {
    const port = await closedPort();
    const payload = buildPayload(makeRollout(), 'confirm-rollout');
    const refused = await checkGate(
      hook({ type: 'confirm-rollout', url: `http://127.0.0.1:${port}/g` }),
      payload,
    );
    expect(refused.open).toBe(false);
    expect(refused.message).toMatch(/unreachable: .*ECONNREFUSED/);

    receiver.on('/hang', () => 'hang');
    const t0 = performance.now();
    const hung = await checkGate(
      hook({ type: 'confirm-rollout', url: receiver.url('/hang'), timeout: '300ms' }),
      payload,
    );
    const took = performance.now() - t0;
    expect(hung).toMatchObject({ open: false });
    expect(hung.message).toContain('no answer within 300ms (timeout)');
    expect(took).toBeLessThan(1_500);

    const noSecret = await checkGate(
      hook({ type: 'confirm-rollout', url: receiver.url('/gate'), secretEnv: 'VANE_SECRET_MISSING' }),
      payload,
      { secrets: () => undefined },
    );
    expect(noSecret.open).toBe(false);
    expect(noSecret.message).toContain('environment variable VANE_SECRET_MISSING, which is not set');
  });

  it('a rollback webhook asks for a rollback with a 2xx, and not otherwise', async () => {
    let want = false;
    receiver.on('/rollback', () => (want ? 200 : 404));
    const w = hook({ type: 'rollback', url: receiver.url('/rollback') });
    const payload = buildPayload(makeRollout(), 'rollback');
    expect(await checkRollbackRequest(w, payload)).toMatchObject({ rollback: false, status: 404 });
    want = true;
    expect(await checkRollbackRequest(w, payload)).toMatchObject({ rollback: true, status: 200 });
  });
});

describe('approvals stored in vane', () => {
  let server: ManagedProcess;
  let redis: Redis;
  let gates: GateStore;
  const prefix = `vt-${randomUUID().slice(0, 8)}`;

  beforeAll(async () => {
    server = await startTestRedis();
    redis = connectRedis(server.url, { role: 'client' });
    await pingRedis(redis, 5_000);
    gates = new GateStore(redis, prefix, { ttlSeconds: 3600 });
  });
  afterAll(async () => {
    await redis?.quit();
    await server?.stop();
  });

  it('are bound to one rollout and one gate, and used once', async () => {
    const step3 = gateKey('confirm-traffic-increase', 3);
    expect(step3).toBe('confirm-traffic-increase:3');
    const a = await gates.approve('ro-a', step3, 'alice', { reason: 'load test ok' });
    expect(a).toMatchObject({ rolloutId: 'ro-a', gateKey: step3, by: 'alice', reason: 'load test ok' });
    expect(await gates.hasApproval('ro-a', step3)).toBe(true);

    // Not another rollout, not another step, not another gate.
    expect(await gates.consumeApproval('ro-b', step3)).toBeUndefined();
    expect(await gates.consumeApproval('ro-a', gateKey('confirm-traffic-increase', 4))).toBeUndefined();
    expect(await gates.consumeApproval('ro-a', 'confirm-promotion')).toBeUndefined();

    expect(await gates.consumeApproval('ro-a', step3)).toEqual(a);
    // Used once: gone for the next tick and the next release.
    expect(await gates.consumeApproval('ro-a', step3)).toBeUndefined();
    expect(await gates.hasApproval('ro-a', step3)).toBe(false);
  });

  it('one approval opens the gate for exactly one of many concurrent consumers', async () => {
    await gates.approve('ro-c', 'confirm-promotion', 'bob');
    const got = await Promise.all(
      Array.from({ length: 20 }, () => gates.consumeApproval('ro-c', 'confirm-promotion')),
    );
    expect(got.filter(Boolean)).toHaveLength(1);
  });

  it('expire, live under the rollout keys, and refuse unknown gates', async () => {
    await gates.approve('ro-d', 'confirm-rollout', 'carol');
    const key = `${prefix}:r:approval:ro-d:confirm-rollout`;
    const ttl = await redis.ttl(key);
    expect(ttl).toBeGreaterThan(3500);
    expect(ttl).toBeLessThanOrEqual(3600);
    await expect(gates.approve('ro-d', 'confirm-everything', 'x')).rejects.toThrow(
      /unknown gate key 'confirm-everything'; use confirm-rollout, confirm-promotion or confirm-traffic-increase:<step index>/,
    );
    expect(() => gateKey('confirm-traffic-increase')).toThrow(/needs the step index/);
  });
});
