import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKube, type TestKube } from '../../helpers/kube.ts';
import { eventually } from '../../helpers/services.ts';

const event = (name: string, reason: string, object: string, message: string) => `apiVersion: v1
kind: Event
metadata:
  name: ${name}
  namespace: shop
involvedObject:
  apiVersion: networking.istio.io/v1
  kind: VirtualService
  name: ${object}
  namespace: shop
reason: ${reason}
message: "${message}"
type: Normal
source:
  component: vane
firstTimestamp: "2026-01-01T00:00:00Z"
lastTimestamp: "2026-01-01T00:00:00Z"
count: 1
`;

describe('core v1 Events in the simulator, through the real kubectl', () => {
  let k: TestKube;
  beforeAll(async () => {
    k = await startTestKube();
    await k.kubectl(['apply', '-f', '-'], {
      input: 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n',
    });
  });
  afterAll(async () => {
    await k?.stop();
  });

  it('creates, gets, lists with the events columns and field selectors, and watches', async () => {
    const watch = k.kubectlStream(['get', 'events', '-n', 'shop', '--watch', '--output-watch-events']);
    const created = await k.kubectl(['create', '-f', '-'], {
      input: event('reviews.1', 'Promoted', 'reviews', 'rollout ro-1: shop/reviews v2 promoted'),
    });
    expect(created.stderr).toBe('');
    expect(created.stdout).toContain('event/reviews.1 created');
    await k.kubectl(['create', '-f', '-'], {
      input: event('ratings.1', 'RolledBack', 'ratings', 'rollout ro-2: shop/ratings v2 aborted'),
    });
    const got = await k.kubectl(['get', 'event', 'reviews.1', '-n', 'shop', '-o', 'json']);
    expect(JSON.parse(got.stdout)).toMatchObject({ reason: 'Promoted', involvedObject: { name: 'reviews' } });

    const list = await k.kubectl(['get', 'events', '-n', 'shop']);
    expect(list.stdout).toMatch(/LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+MESSAGE/);
    expect(list.stdout).toMatch(
      /Normal\s+Promoted\s+virtualservice\/reviews\s+rollout ro-1: shop\/reviews v2 promoted/,
    );
    const only = await k.kubectl([
      'get',
      'events',
      '-n',
      'shop',
      '--field-selector',
      'involvedObject.kind=VirtualService,involvedObject.name=ratings',
      '-o',
      'name',
    ]);
    expect(only.stdout.trim()).toBe('event/ratings.1');
    // Those field labels are an Event's own: other resources refuse them as a real server does.
    const pods = await k.kubectl(['get', 'pods', '-n', 'shop', '--field-selector', 'involvedObject.name=x']);
    expect(pods.stderr).toContain('field label not supported: involvedObject.name');

    await eventually(async () => (/ratings/.test(watch.output()) ? true : undefined), 10_000);
    const out = (await watch.stop()).stdout;
    expect(out).toMatch(/ADDED\s+.*Promoted/);
    expect(out).toMatch(/ADDED\s+.*RolledBack/);
  });
});
