import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALERT_WINDOW, type AlertSandbox, allStable, startAlertSandbox } from '../helpers/alerting.ts';

/**
 * Alert-driven abort end to end on the sandbox (test/helpers/alerting.ts): demo-app pods behind the
 * mesh gateway, a real Prometheus alerting rule, a real Alertmanager, vane's hook over HTTP, the
 * engine. Next to it the same failure caught by the guard check, for the reaction times.
 *
 * Figures: `npx vitest run test/e2e/alertmanager.test.ts` prints both; bench/alert-reaction.ts repeats them.
 */
let sb: AlertSandbox;
beforeAll(async () => {
  sb = await startAlertSandbox({ services: ['cart', 'shoes'] });
}, 150_000);
afterAll(async () => {
  await sb?.close();
});

describe('alert-driven abort on the sandbox: Prometheus rule → Alertmanager → vane', () => {
  const figures: string[] = [];
  afterAll(() => {
    for (const f of figures) console.log(f);
  });

  it('a firing alert about the canary rolls the rollout back at once: stable 100, the alert in the events', async () => {
    // No critical metric: only the alert can stop this rollout before the 5-minute step ends.
    const { rollout, seconds, deliveredSeconds, sample, events } = await sb.badCanary('cart', {
      minRequests: 0,
      metrics: [],
      alerts: { action: 'rollback', severity: 'critical' },
    });
    figures.push(
      `alert path (rule eval 1s, group_wait 1s): canary bad → alert at vane ${deliveredSeconds?.toFixed(2)} s → stable 100 ${seconds.toFixed(2)} s`,
    );
    expect(rollout.phase, rollout.reason).toBe('aborted');
    expect(rollout.weights).toEqual({ stable: 100, canary: 0 });
    expect(allStable(sample, 'cart'), JSON.stringify(sample.byPod)).toBe(true);
    expect(sample.byStatus['200']).toBe(200);
    const command = events.find((e) => e.type === 'command' && e.reason.includes('CanaryHighErrorRate'));
    expect(command?.by).toBe('alertmanager');
    expect(command?.reason).toContain('destination_service_name="cart"');
    expect(command?.reason).toContain('namespace="shop"');
    expect(command?.reason).toContain('severity="critical"');
    expect(command?.reason).toMatch(/cart v2 answers \d+(\.\d+)?% errors/);
    const back = events.find((e) => e.type === 'transition' && e.to === 'rolling-back');
    expect(back?.reason).toMatch(/^aborted by alertmanager: alert firing: CanaryHighErrorRate/);
    // Well under the 5-minute step; generous for a loaded machine.
    expect(seconds).toBeLessThan(30);
  });

  it('the guard-check path for the same failure (the alert policy set to ignore, so only the guard acts)', async () => {
    const { rollout, seconds, sample, events } = await sb.badCanary('shoes', {
      minRequests: 0,
      guardInterval: '5s',
      guardWindow: ALERT_WINDOW,
      failureThreshold: 1,
      metrics: [
        {
          name: 'success-rate',
          template: 'request-success-rate',
          critical: true,
          thresholdRange: { min: 99 },
        },
      ],
      alerts: { action: 'ignore' },
    });
    figures.push(
      `guard path (guardInterval 5s, guardWindow 10s): canary bad → stable 100 ${seconds.toFixed(2)} s`,
    );
    expect(rollout.phase, rollout.reason).toBe('failed');
    expect(rollout.reason).toMatch(/success rate/);
    expect(allStable(sample, 'shoes'), JSON.stringify(sample.byPod)).toBe(true);
    // The same rule fires for shoes too; its policy (ignore) leaves the rollback to the guard.
    expect(events.some((e) => e.type === 'transition' && e.reason.startsWith('aborted'))).toBe(false);
  });
});
