import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NotifyJob } from '../../src/notify/plan.ts';
import { planDeliveries } from '../../src/notify/plan.ts';
import { NotifyQueue, notifyOnEvents, notifyProcessor } from '../../src/notify/queue.ts';
import { validateSlackMessage } from '../../src/notify/slack.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Recorder } from '../../src/observability/recorder.ts';
import { connectRedis, pingRedis, type Redis } from '../../src/redis.ts';
import type { Rollout, RolloutEvent } from '../../src/rollouts/model.ts';
import { RolloutStore } from '../../src/rollouts/store.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { startWorkers, type WorkerPool } from '../../src/workers/runtime.ts';
import { eventually, startTestRedis } from '../helpers/services.ts';
import { closedPort, makeRollout, Receiver, receiverVerifies } from './fixtures.ts';

const SECRET = 'whsec-test-7f3a';
const SECRETS: Record<string, string> = { VANE_SECRET_HOOK: SECRET };

describe('the notify queue against a real Redis and real receivers', () => {
  let server: ManagedProcess;
  let client: Redis;
  let workerConn: Redis;
  let store: RolloutStore;
  let queue: NotifyQueue;
  let pool: WorkerPool;
  let receiver: Receiver;
  let recorder: Recorder;
  const prefix = `vt-${randomUUID().slice(0, 8)}`;
  const looked: string[] = [];

  beforeAll(async () => {
    server = await startTestRedis();
    client = connectRedis(server.url, { role: 'client' });
    workerConn = connectRedis(server.url, { role: 'worker' });
    await pingRedis(client, 5_000);
    store = new RolloutStore(client, prefix);
    queue = new NotifyQueue(client, prefix, { backoffMs: 50 });
    recorder = new Recorder({ defaultMetrics: false });
    receiver = await new Receiver().start();
    pool = startWorkers({
      connection: workerConn,
      prefix,
      logger: createLogger({ level: 'silent', format: 'json' }),
      processors: [
        notifyProcessor({
          store,
          recorder,
          logger: createLogger({ level: 'silent', format: 'json' }),
          secrets: (name) => {
            looked.push(name);
            return SECRETS[name];
          },
          concurrency: 16,
        }),
      ],
    });
  });

  afterAll(async () => {
    await pool?.close();
    await queue?.close();
    await receiver?.stop();
    await client?.quit();
    await workerConn?.quit();
    await server?.stop();
  });

  /** A stored rollout whose webhooks point at the test's receiver. */
  async function storedRollout(over: Parameters<typeof makeRollout>[0] = {}): Promise<Rollout> {
    const id = `ro-${randomUUID().replaceAll('-', '').slice(0, 20)}`;
    const ns = `ns${id.slice(3, 11)}`;
    const base = makeRollout(over, { id });
    const r: Rollout = { ...base, spec: { ...base.spec, target: { ...base.spec.target, namespace: ns } } };
    const res = await store.create(r, { time: Date.now(), type: 'created', reason: 'rollout created' });
    if (res.status !== 'created') throw new Error(`fixture: ${res.status}`);
    return res.rollout;
  }

  async function notificationEvents(id: string, n: number): Promise<RolloutEvent[]> {
    return eventually(async () => {
      const es = (await store.events(id)).filter((e) => e.type === 'notification');
      return es.length >= n ? es : undefined;
    }, 15_000);
  }

  function job(r: Rollout, over: Partial<NotifyJob>): NotifyJob {
    return {
      id: `n-${r.id}-t-${randomUUID().slice(0, 8)}`,
      rolloutId: r.id,
      channel: 'webhook',
      type: 'event',
      label: 'event webhook',
      url: receiver.url('/none'),
      timeoutMs: 2_000,
      retries: 3,
      body: { hello: 'world' },
      about: 'weight',
      ...over,
    };
  }

  it('delivers the planned webhooks signed, the Slack message in its format, and records each on the rollout', async () => {
    const r = await storedRollout({
      webhooks: [
        {
          type: 'event',
          name: 'audit',
          url: receiver.url('/audit?token=hidden'),
          secretEnv: 'VANE_SECRET_HOOK',
        },
        { type: 'rollout', url: receiver.url('/load'), secretEnv: 'VANE_SECRET_HOOK' },
      ],
      notifications: [{ type: 'slack', url: receiver.url('/slack/T0/B0/XYZ') }],
    });
    const event: RolloutEvent = {
      time: Date.now(),
      type: 'weight',
      reason: 'step 3 of 4: canary 25%',
      weights: r.weights,
    };
    const jobs = planDeliveries(r, [event]);
    expect(jobs).toHaveLength(3);
    for (const j of jobs) await queue.enqueue(j);

    const recorded = await notificationEvents(r.id, 3);
    const audit = receiver.at('/audit?token=hidden');
    const load = receiver.at('/load');
    const slack = receiver.at('/slack/T0/B0/XYZ');
    expect([audit.length, load.length, slack.length]).toEqual([1, 1, 1]);
    // The receiver's own implementation of the scheme accepts both signed deliveries...
    expect(receiverVerifies(SECRET, audit[0]!.headers, audit[0]!.raw)).toBe(true);
    expect(receiverVerifies(SECRET, load[0]!.headers, load[0]!.raw)).toBe(true);
    // ...and refuses them with another secret or another body.
    expect(receiverVerifies('wrong', audit[0]!.headers, audit[0]!.raw)).toBe(false);
    expect(receiverVerifies(SECRET, audit[0]!.headers, audit[0]!.raw.replace('25', '26'))).toBe(false);
    expect(audit[0]!.headers['x-vane-event']).toBe('event');
    expect(load[0]!.headers['x-vane-event']).toBe('rollout');
    expect(audit[0]!.headers['x-vane-delivery']).toBe(jobs[0]!.id);
    expect(audit[0]!.body).toMatchObject({ id: r.id, type: 'event', weights: { stable: 75, canary: 25 } });
    expect(validateSlackMessage(slack[0]!.body)).toEqual([]);
    expect(slack[0]!.headers['x-vane-signature']).toBeUndefined();

    const reasons = recorded.map((e) => e.reason).join('\n');
    expect(recorded.every((e) => e.verdict === 'sent')).toBe(true);
    expect(reasons).toContain(`event webhook 'audit' to ${receiver.url('/audit')} for weight: sent (200 in`);
    expect(reasons).toContain('slack notification to http://127.0.0.1');
    // Never the secret, never the query string, never Slack's secret path.
    expect(reasons).not.toContain(SECRET);
    expect(reasons).not.toContain('token=hidden');
    expect(reasons).not.toContain('XYZ');
    expect(await recorder.metrics()).toMatch(/vane_notifications_total\{type="event",result="sent"\} 1/);
    // The secret was resolved once, though used twice.
    expect(looked.filter((n) => n === 'VANE_SECRET_HOOK')).toHaveLength(1);
  });

  it("as the engine's onEvents listener: returns at once, and a post-rollout hook and a filtered notification follow", async () => {
    const r = await storedRollout({
      webhooks: [{ type: 'post-rollout', url: receiver.url('/post') }],
      notifications: [
        {
          type: 'webhook',
          url: receiver.url('/errors-only'),
          severity: 'error',
          secretEnv: 'VANE_SECRET_HOOK',
        },
        { type: 'webhook', url: receiver.url('/succeeded-only'), events: ['succeeded'] },
      ],
    });
    const listener = notifyOnEvents(queue, createLogger({ level: 'silent', format: 'json' }));
    const ended: RolloutEvent = {
      time: Date.now(),
      type: 'transition',
      from: 'rolling-back',
      to: 'failed',
      reason: 'analysis failed (2 of 2): success-rate 91.2% < 99% (stable 99.9%)',
    };
    const t0 = performance.now();
    listener({ ...r, phase: 'failed', version: r.version + 1 }, [ended]);
    expect(performance.now() - t0).toBeLessThan(20);
    await notificationEvents(r.id, 2);
    expect(receiver.at('/post')).toHaveLength(1);
    expect(receiver.at('/succeeded-only')).toHaveLength(0);
    const [n] = receiver.at('/errors-only');
    expect(receiverVerifies(SECRET, n!.headers, n!.raw)).toBe(true);
    expect(n!.body).toMatchObject({
      type: 'notification',
      severity: 'error',
      summary: `${r.spec.target.namespace}/reviews v2 rolled back at 25%: success-rate 91.2% < 99% (stable 99.9%), 2 of 2 analyses failed`,
    });
  });

  it('retries a failing receiver with backoff and records the success once', async () => {
    receiver.on('/flaky', (n) => (n < 2 ? 503 : 200));
    const r = await storedRollout();
    const j = job(r, { url: receiver.url('/flaky'), secretEnv: 'VANE_SECRET_HOOK', retries: 3 });
    await queue.enqueue(j);
    const [e] = await notificationEvents(r.id, 1);
    const got = receiver.at('/flaky');
    expect(got).toHaveLength(3);
    expect(got.map((g) => g.headers['x-vane-attempt'])).toEqual(['1', '2', '3']);
    // One delivery id across retries, so a receiver can drop duplicates.
    expect(new Set(got.map((g) => g.headers['x-vane-delivery']))).toEqual(new Set([j.id]));
    expect(got.every((g) => receiverVerifies(SECRET, g.headers, g.raw))).toBe(true);
    expect(e!.reason).toMatch(/sent \(200 in \d+ms, attempt 3 of 4\)/);
    // Backoff: the retries were spaced (50ms, then 100ms).
    expect(got[2]!.at - got[0]!.at).toBeGreaterThanOrEqual(140);
  });

  it('gives up after retries + 1 attempts and records the failure', async () => {
    receiver.on('/down', () => ({ status: 502, body: JSON.stringify({ message: 'bad gateway' }) }));
    const r = await storedRollout();
    await queue.enqueue(job(r, { url: receiver.url('/down'), retries: 1 }));
    const [e] = await notificationEvents(r.id, 1);
    expect(receiver.at('/down')).toHaveLength(2);
    expect(e).toMatchObject({ type: 'notification', verdict: 'failed' });
    expect(e!.reason).toContain('failed after 2 attempts: answered 502: bad gateway');
  });

  it('does not retry a 4xx, but does retry 408 and 429', async () => {
    receiver.on('/bad', () => ({ status: 400, body: JSON.stringify({ reason: 'invalid_payload' }) }));
    receiver.on('/slow-down', (n) => (n === 0 ? 429 : n === 1 ? 408 : 200));
    const r = await storedRollout();
    await queue.enqueue(job(r, { url: receiver.url('/bad'), retries: 3 }));
    await queue.enqueue(job(r, { url: receiver.url('/slow-down'), retries: 3 }));
    const es = await notificationEvents(r.id, 2);
    await new Promise((res) => setTimeout(res, 300)); // longer than any backoff: no late retry of /bad
    expect(receiver.at('/bad')).toHaveLength(1);
    expect(receiver.at('/slow-down')).toHaveLength(3);
    const bad = es.find((e) => e.verdict === 'failed');
    expect(bad?.reason).toContain('failed after 1 attempt: answered 400: invalid_payload');
    expect(es.some((e) => e.verdict === 'sent')).toBe(true);
  });

  it('enqueues the same delivery once', async () => {
    const r = await storedRollout();
    const j = job(r, { url: receiver.url('/once') });
    await queue.enqueue(j);
    await queue.enqueue(j);
    await notificationEvents(r.id, 1);
    await queue.enqueue(j);
    await new Promise((res) => setTimeout(res, 300));
    expect(receiver.at('/once')).toHaveLength(1);
    expect(await store.events(r.id)).toHaveLength(2); // created + one notification
  });

  it('fails without sending when the secret is missing, naming the variable', async () => {
    const r = await storedRollout();
    await queue.enqueue(
      job(r, { url: receiver.url('/nosecret'), secretEnv: 'VANE_SECRET_NOT_SET_ANYWHERE' }),
    );
    const [e] = await notificationEvents(r.id, 1);
    expect(receiver.at('/nosecret')).toHaveLength(0);
    expect(e!.reason).toContain('environment variable VANE_SECRET_NOT_SET_ANYWHERE, which is not set');
  });

  it('a dead receiver neither blocks other deliveries nor slows a tick, and its failure is recorded', async () => {
    receiver.on('/hang', () => 'hang');
    const r = await storedRollout();
    const port = await closedPort();

    // A tick-like operation: enqueue a delivery plus a compare-and-set of the rollout, as the engine's save does.
    const tickLike = async (i: number, url: string) => {
      const t0 = performance.now();
      await queue.enqueue(
        job(r, { id: `n-${r.id}-tick-${url.length}-${i}`, url, retries: 0, timeoutMs: 60_000 }),
      );
      await store.mutate(r.id, (cur) => ({ next: { ...cur, updatedAt: Date.now() } }));
      return performance.now() - t0;
    };
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const measure = async (url: string, n: number) => {
      const ts: number[] = [];
      for (let i = 0; i < n; i++) ts.push(await tickLike(i, url));
      return ts;
    };

    const baseline = await measure(receiver.url('/fast'), 40);
    await eventually(async () => (receiver.at('/fast').length === 40 ? true : undefined));

    // Now hanging receivers hold worker slots (they never answer; 3s timeout), a closed port refuses.
    const hanging = job(r, {
      id: `n-${r.id}-hang`,
      url: receiver.url('/hang'),
      retries: 0,
      timeoutMs: 3_000,
    });
    const refused = job(r, { id: `n-${r.id}-refused`, url: `http://127.0.0.1:${port}/x`, retries: 0 });
    await queue.enqueue(hanging);
    await queue.enqueue(refused);
    for (let i = 0; i < 5; i++) await queue.enqueue({ ...hanging, id: `${hanging.id}-${i}` });
    await eventually(async () => (receiver.at('/hang').length >= 6 ? true : undefined));

    const started = Date.now();
    const during = await measure(receiver.url('/fast2'), 40);
    // Other deliveries keep flowing while the dead ones hang.
    await eventually(async () => (receiver.at('/fast2').length === 40 ? true : undefined));
    const fastDone = Date.now() - started;

    const b = median(baseline);
    const d = median(during);
    console.log(
      `tick-like op (enqueue + CAS), median of 40: ${b.toFixed(2)}ms without, ${d.toFixed(2)}ms with 6 hanging receivers and a closed port; 40 other deliveries done in ${fastDone}ms`,
    );
    expect(d).toBeLessThan(b * 3 + 5);
    expect(fastDone).toBeLessThan(2_500); // before the hanging ones even time out

    const failures = await eventually(async () => {
      const es = (await store.events(r.id, { limit: 1000 })).filter(
        (e) => e.type === 'notification' && e.verdict === 'failed',
      );
      return es.length >= 7 ? es : undefined;
    });
    const reasons = failures.map((e) => e.reason).join('\n');
    expect(reasons).toContain('no answer within 3000ms (timeout)');
    expect(reasons).toMatch(/ECONNREFUSED/);
  });
});
