// End to end through the whole sandbox: real Redis, a real Prometheus scraping the mesh gateway,
// the kube simulator running pods, vane's API over HTTP and its workers. Each rollout judged by the
// traffic at the gateway. One sandbox for the file; each test its own namespace, run concurrently.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { byVersion, type E2e, e2eSpec, startE2e, TERMINAL } from '../helpers/sandbox.ts';
import { eventually } from '../helpers/services.ts';

const NAME = 'reviews';
/** Rollouts run concurrently on a loaded 2-core machine: generous. */
const TEST_TIMEOUT = 180_000;
/** Allowed gap between the canary's weight and its share of 300 sampled requests (3.4 σ at 50%). */
const SHARE_TOLERANCE = 10;

describe('rollouts through the sandbox mesh, judged by traffic', () => {
  let e: E2e;
  beforeAll(async () => {
    e = await startE2e();
  }, 120_000);
  afterAll(async () => {
    await e?.close();
  }, 60_000);

  const start = async (spec: unknown) => {
    const r = await e.api('POST', '/api/v1/rollouts', spec);
    expect(r.status, JSON.stringify(r.data)).toBe(201);
    return r.data.rollout.id as string;
  };
  const allOn = async (ns: string, version: string, headers: Record<string, string> = {}) => {
    const s = await e.sample(ns, NAME, 500, headers);
    const v = byVersion(s, NAME);
    expect(v, `500 requests after the rollout in ${ns}`).toEqual({ [version]: 500 });
  };

  it.concurrent(
    'canary success: each step gives the canary its weight in real traffic, then 100%',
    async () => {
      const ns = 'e2e-canary';
      await e.service({ namespace: ns, name: NAME, versions: [{ version: 'v1' }, { version: 'v2' }] });
      e.load(ns, NAME, { rate: 15 });
      const id = await start(
        e2eSpec(ns, NAME, { strategy: { type: 'canary', steps: [10, 30, 60], stepInterval: '15s' } }),
      );
      const measured: { weight: number; share: number; n: number; ms: number }[] = [];
      const discarded: string[] = [];
      let r = await e.rollout(id);
      while (!TERMINAL.includes(r.phase)) {
        const w = r.weights.canary;
        if (r.phase === 'progressing' && r.applied && w > 0 && !measured.some((m) => m.weight === w)) {
          const t0 = Date.now();
          const s = byVersion(await e.sample(ns, NAME, 300, {}, 25), NAME);
          const after = await e.rollout(id);
          // Only a sample taken wholly inside the step counts.
          const n = (s.v1 ?? 0) + (s.v2 ?? 0);
          if (after.weights.canary === w) {
            measured.push({ weight: w, share: (100 * (s.v2 ?? 0)) / n, n, ms: Date.now() - t0 });
          } else discarded.push(`weight ${w}: the step ended during the sample (${Date.now() - t0} ms)`);
        }
        await new Promise((res) => setTimeout(res, 200));
        r = await e.rollout(id);
      }
      console.log(
        `canary share at the gateway per step (tolerance ±${SHARE_TOLERANCE} points):\n${measured
          .map((m) => `  weight ${m.weight}% → ${m.share.toFixed(1)}% of ${m.n} requests (${m.ms} ms)`)
          .join('\n')}${discarded.length ? `\ndiscarded: ${discarded.join('; ')}` : ''}`,
      );
      expect(r.phase, r.reason).toBe('succeeded');
      expect(measured.map((m) => m.weight)).toEqual([10, 30, 60]);
      for (const m of measured) expect(Math.abs(m.share - m.weight)).toBeLessThanOrEqual(SHARE_TOLERANCE);
      await allOn(ns, 'v2');
    },
    TEST_TIMEOUT,
  );

  it.concurrent(
    'failure on error rate: the canary goes bad mid-rollout; rolled back, every request back on stable',
    async () => {
      const ns = 'e2e-errors';
      await e.service({ namespace: ns, name: NAME, versions: [{ version: 'v1' }, { version: 'v2' }] });
      let lastOffStable = 0;
      let badAt = Number.POSITIVE_INFINITY;
      e.load(ns, NAME, {
        rate: 20,
        onAnswer: (a) => {
          if (a.at >= badAt && !(a.pod ?? '').startsWith(`${NAME}-v1-`)) lastOffStable = a.at;
        },
      });
      const id = await start(
        e2eSpec(ns, NAME, { strategy: { type: 'canary', steps: [20, 50], stepInterval: '30s' } }),
      );
      await e.waitFor(id, (r) => r.phase === 'progressing' && r.applied && r.weights.canary === 20);
      // Give it a few healthy guard checks at 20%, then break the canary as a bad deploy would.
      await new Promise((res) => setTimeout(res, 3_000));
      badAt = Date.now();
      const k = await e.kubectl([
        '-n',
        ns,
        'annotate',
        'deployment',
        `${NAME}-v2`,
        'sandbox.vane.dev/error-rate=0.5',
        '--overwrite',
      ]);
      expect(k.code, k.stderr).toBe(0);
      const end = await e.waitFor(id, (r) => TERMINAL.includes(r.phase));
      expect(end.phase).toBe('failed');
      expect(end.reason).toMatch(/success rate/);
      const { data } = await e.api('GET', `/api/v1/rollouts/${id}/events`);
      const decided = data.events.find((x: { to?: string }) => x.to === 'rolling-back');
      // Wait until the load has seen the rollback, then read when the last request left stable.
      await new Promise((res) => setTimeout(res, 2_000));
      console.log(
        `canary made bad → rollback decided ${((decided.time - badAt) / 1000).toFixed(1)} s, → last request not on stable ${((lastOffStable - badAt) / 1000).toFixed(1)} s (at the gateway); reason: ${end.reason}`,
      );
      expect(lastOffStable).toBeGreaterThan(badAt);
      await allOn(ns, 'v1');
    },
    TEST_TIMEOUT,
  );

  it.concurrent(
    'failure on latency relative to stable: rolled back at the end of the step',
    async () => {
      const ns = 'e2e-latency';
      await e.service({
        namespace: ns,
        name: NAME,
        versions: [
          { version: 'v1', latencyMs: 10 },
          { version: 'v2', latencyMs: 150 },
        ],
      });
      e.load(ns, NAME, { rate: 15 });
      const spec = e2eSpec(ns, NAME);
      spec.analysis.metrics.push({
        name: 'latency-vs-stable',
        template: 'request-duration',
        compare: { maxIncrease: 0.5 },
      } as never);
      const id = await start(spec);
      const end = await e.waitFor(id, (r) => TERMINAL.includes(r.phase));
      expect(end.phase, end.reason).toBe('failed');
      expect(end.reason).toMatch(/latency/);
      const fail = end.lastAnalysis.results.find((m: { name: string }) => m.name === 'latency-vs-stable');
      expect(fail.verdict).toBe('fail');
      expect(fail.value).toBeGreaterThan(fail.stableValue * 1.5);
      console.log(`latency: ${fail.message}`);
      await allOn(ns, 'v1');
    },
    TEST_TIMEOUT,
  );

  it.concurrent(
    'A/B with a header match: testers reach the canary, others stable; then promoted',
    async () => {
      const ns = 'e2e-ab';
      await e.service({ namespace: ns, name: NAME, versions: [{ version: 'v1' }, { version: 'v2' }] });
      e.load(ns, NAME, { rate: 15, testHeader: { name: 'x-tester', value: 'yes', share: 0.4 } });
      const id = await start(
        e2eSpec(ns, NAME, {
          strategy: {
            type: 'ab-test',
            match: [{ headers: { 'x-tester': { exact: 'yes' } } }],
            iterations: 2,
            stepInterval: '5s',
          },
        }),
      );
      await e.waitFor(id, (r) => r.phase === 'progressing' && r.applied);
      // The first stage may still be the plain 100/0 one: wait for the header route to be written.
      await eventually(async () => {
        const probe = byVersion(await e.sample(ns, NAME, 20, { 'x-tester': 'yes' }), NAME);
        return probe.v2 === 20 ? true : undefined;
      }, 60_000);
      const testers = byVersion(await e.sample(ns, NAME, 100, { 'x-tester': 'yes' }), NAME);
      const others = byVersion(await e.sample(ns, NAME, 100), NAME);
      const mid = await e.rollout(id);
      expect(mid.phase).toBe('progressing');
      expect(testers).toEqual({ v2: 100 });
      expect(others).toEqual({ v1: 100 });
      const end = await e.waitFor(id, (r) => TERMINAL.includes(r.phase));
      expect(end.phase, end.reason).toBe('succeeded');
      await allOn(ns, 'v2');
    },
    TEST_TIMEOUT,
  );

  it.concurrent(
    'blue-green with mirroring: users stay on blue while green is judged on copies; then switched',
    async () => {
      const ns = 'e2e-bluegreen';
      await e.service({ namespace: ns, name: NAME, versions: [{ version: 'v1' }, { version: 'v2' }] });
      e.load(ns, NAME, { rate: 15 });
      const spec = e2eSpec(ns, NAME, {
        strategy: { type: 'blue-green', preview: { mirrorPercent: 100 }, iterations: 2, stepInterval: '8s' },
      });
      // Mirrored copies are seen only by the destination's sidecar.
      (spec.analysis as Record<string, unknown>).reporter = 'destination';
      const id = await start(spec);
      await e.waitFor(id, (r) => r.phase === 'progressing' && r.applied);
      const during = byVersion(await e.sample(ns, NAME, 200), NAME);
      const mid = await e.rollout(id);
      expect(mid.phase, `${mid.reason} ${JSON.stringify(mid.lastAnalysis?.results)}`).toBe('progressing');
      expect(during).toEqual({ v1: 200 });
      const end = await e.waitFor(id, (r) => TERMINAL.includes(r.phase));
      expect(end.phase, end.reason).toBe('succeeded');
      // The analysis had canary requests to judge: the mirrored copies.
      expect(end.lastAnalysis.verdict).toBe('pass');
      await allOn(ns, 'v2');
    },
    TEST_TIMEOUT,
  );
});
