import { describe, expect, it } from 'vitest';
import { CliError } from '../../src/cli/errors.ts';
import { applySet, ciIdempotencyKey, parsePath } from '../../src/cli/spec-input.ts';

describe('--set', () => {
  it('sets dotted paths with YAML values, list indexes and escaped dots', () => {
    const body: Record<string, unknown> = { canary: { subset: 'v2' }, strategy: { steps: [5, 10] } };
    applySet(body, 'canary.labels.version=v2');
    applySet(body, 'strategy.steps[1]=20');
    applySet(body, 'strategy.stepInterval=30s');
    applySet(body, 'analysis.failureThreshold=3');
    applySet(body, 'drift=reassert');
    applySet(body, 'webhooks=[{type: rollback, url: "https://x.example"}]');
    applySet(body, 'canary.labels.app\\.kubernetes\\.io/version=1.10', true);
    applySet(body, 'metadata.note=a=b');
    expect(body).toEqual({
      canary: { subset: 'v2', labels: { version: 'v2', 'app.kubernetes.io/version': '1.10' } },
      strategy: { steps: [5, 20], stepInterval: '30s' },
      analysis: { failureThreshold: 3 },
      drift: 'reassert',
      webhooks: [{ type: 'rollback', url: 'https://x.example' }],
      metadata: { note: 'a=b' },
    });
    expect(parsePath('a[0].b')).toEqual(['a', 0, 'b']);
  });

  it('refuses what it cannot set, naming the flag', () => {
    const bad = (s: string, body: Record<string, unknown> = {}) => {
      try {
        applySet(body, s);
      } catch (e) {
        expect(e).toBeInstanceOf(CliError);
        return (e as Error).message;
      }
      throw new Error(`${s} was accepted`);
    };
    expect(bad('version')).toBe('--set version: expected PATH=VALUE, e.g. canary.labels.version=v2');
    expect(bad('a..b=1')).toBe('--set a..b: empty segment in the path');
    expect(bad('canary.subset.x=1', { canary: { subset: 'v2' } })).toBe(
      "--set canary.subset.x=1: 'x' is inside something that is not a mapping",
    );
    expect(bad('__proto__.polluted=1')).toBe("--set __proto__.polluted=1: '__proto__' is not allowed");
    expect(bad('steps[5]=1', { steps: [1] })).toBe(
      '--set steps[5]=1: index 5 is past the end of the list (1)',
    );
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('the idempotency key in CI', () => {
  const body = { template: 'cart', canary: { subset: 'v2' } };
  it('derives a key from the CI run and job, plus a digest of the request', () => {
    const gh = ciIdempotencyKey(body, { GITHUB_RUN_ID: '99', GITHUB_RUN_ATTEMPT: '2', GITHUB_JOB: 'deploy' });
    expect(gh).toMatch(/^github-99-2-deploy-[0-9a-f]{12}$/);
    // same request, same key (field order does not matter); another request in the same job, another key
    expect(
      ciIdempotencyKey(
        { canary: { subset: 'v2' }, template: 'cart' },
        { GITHUB_RUN_ID: '99', GITHUB_RUN_ATTEMPT: '2', GITHUB_JOB: 'deploy' },
      ),
    ).toBe(gh);
    expect(
      ciIdempotencyKey(
        { template: 'web' },
        { GITHUB_RUN_ID: '99', GITHUB_RUN_ATTEMPT: '2', GITHUB_JOB: 'deploy' },
      ),
    ).not.toBe(gh);
    expect(ciIdempotencyKey(body, { CI_PIPELINE_ID: '7', CI_JOB_ID: '8' })).toMatch(
      /^gitlab-7-8-[0-9a-f]{12}$/,
    );
    expect(ciIdempotencyKey(body, { BUILDKITE_BUILD_ID: 'b-1', BUILDKITE_JOB_ID: 'j-2' })).toMatch(
      /^buildkite-b-1-j-2-/,
    );
    expect(ciIdempotencyKey(body, { BUILD_TAG: 'jenkins-shop/cart-12' })).toMatch(
      /^jenkins-jenkins-shop_cart-12-/,
    );
    // outside CI, or with half the variables: no key
    expect(ciIdempotencyKey(body, {})).toBeUndefined();
    expect(ciIdempotencyKey(body, { GITHUB_RUN_ID: '99' })).toBeUndefined();
  });
});
