/**
 * Reaction time of the alert path next to the guard-check path, on the sandbox: from the moment a
 * canary pod starts failing half its requests (its annotation patched in place, after a random
 * 2–7 s healthy at 20%) to the VirtualService back at stable 100. Setup in test/helpers/alerting.ts:
 * - alert path: a real Prometheus alerting rule (evaluated every 1 s, error ratio over 10 s > 5%) →
 *   a real Alertmanager (group_wait 1 s) → POST /api/v1/hooks/alertmanager → abort, tick woken. The
 *   rollout has no critical check, so only the alert can stop it.
 * - guard path: a critical success-rate check, guardInterval 5s (the default), guardWindow 10s; its
 *   alert policy is ignore.
 * Both: demo-app pods behind the mesh gateway at 100 req/s over two services, Prometheus scraping
 * the gateway every 1 s, the kube simulator, a real Redis, one in-process worker. Runs alternate;
 * between runs the canary heals and the alert resolves.
 * Run: npx tsx bench/alert-reaction.ts [--runs 5]
 */
import { parseArgs } from 'node:util';
import { ALERT_WINDOW, startAlertSandbox } from '../test/helpers/alerting.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const RUNS = Number(values.runs);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const sb = await startAlertSandbox({ services: ['cart', 'shoes'] });
const analysis = {
  alert: { minRequests: 0, metrics: [], alerts: { action: 'rollback' } },
  guard: {
    minRequests: 0,
    guardInterval: '5s',
    guardWindow: ALERT_WINDOW,
    failureThreshold: 1,
    metrics: [
      { name: 'success-rate', template: 'request-success-rate', critical: true, thresholdRange: { min: 99 } },
    ],
    alerts: { action: 'ignore' },
  },
};
const service = { alert: 'cart', guard: 'shoes' } as const;
const stable: Record<'alert' | 'guard', number[]> = { alert: [], guard: [] };
const delivered: number[] = [];
try {
  for (let i = 0; i < RUNS; i++) {
    for (const path of ['alert', 'guard'] as const) {
      const r = await sb.badCanary(service[path], analysis[path]);
      const want = path === 'alert' ? 'aborted' : 'failed';
      if (r.rollout.phase !== want)
        throw new Error(`${path} run ${i}: ended ${r.rollout.phase} (${r.rollout.reason})`);
      stable[path].push(r.seconds * 1000);
      if (path === 'alert' && r.deliveredSeconds !== undefined) delivered.push(r.deliveredSeconds * 1000);
      await sb.heal(service[path]);
    }
    // The 10 s error window empties and the alerts resolve before the next run.
    await sleep(15_000);
  }
} finally {
  await sb.close();
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const median = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  const f = (v: number) => `${Math.round(v).toLocaleString('en')} ms`;
  return `median ${f(median)}, min ${f(s[0]!)}, max ${f(s.at(-1)!)}`;
};
console.log(`runs per path: ${RUNS}`);
console.log(`alert path, canary bad → alert delivered to vane: ${stats(delivered)}`);
console.log(`alert path, canary bad → stable 100:             ${stats(stable.alert)}`);
console.log(`guard path, canary bad → stable 100:             ${stats(stable.guard)}`);
