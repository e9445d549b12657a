import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIXTURES } from './fixtures.ts';

const VANE = join(import.meta.dirname, '../../bin/vane.mjs');
const BOOKINFO = join(FIXTURES, 'bookinfo.yaml');

function vane(...args: string[]) {
  const r = spawnSync('node', [VANE, 'analyze', ...args], {
    encoding: 'utf8',
    env: { ...process.env, LOG_LEVEL: 'silent' },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const reviews = ['-n', 'bookinfo', '--virtual-service', 'reviews', '--destination-rule', 'reviews'];

describe('vane analyze', () => {
  it('exits 0 on a clean target and says so', () => {
    const r = vane(
      '-f',
      BOOKINFO,
      ...reviews,
      '--stable',
      'v1',
      '--canary',
      'v3',
      '--canary-labels',
      'version=v3',
    );
    expect(r.err).toBe('');
    expect(r.out).toBe('VirtualService bookinfo/reviews, DestinationRule bookinfo/reviews: no findings\n');
    expect(r.code).toBe(0);
  });

  it('exits 1 with the findings as JSON when there are errors; pods come from the files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vane-analyze-'));
    const pods = join(dir, 'pods.yaml');
    writeFileSync(
      pods,
      'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: reviews-v1, namespace: bookinfo }\nspec: { template: { metadata: { labels: { app: reviews, version: v1 } } } }\n',
    );
    const r = vane(
      '-f',
      BOOKINFO,
      '-f',
      pods,
      ...reviews,
      '--stable',
      'v1',
      '--canary',
      'v4',
      '--canary-labels',
      'version=v4',
      '--route',
      'canary',
      '-o',
      'json',
    );
    expect(r.code).toBe(1);
    const report = JSON.parse(r.out);
    expect(report.findings.map((f: { code: string }) => f.code)).toEqual(['VANE0102', 'VANE0106']);
    expect(report.errors).toBe(2);
  });

  it('writes readable text: severity, code, object, field, message and fix', () => {
    const r = vane('-f', BOOKINFO, ...reviews, '--stable', 'v0', '--canary', 'v3');
    expect(r.code).toBe(1);
    expect(r.out).toContain(
      'VirtualService bookinfo/reviews, DestinationRule bookinfo/reviews: 2 errors, 0 warnings',
    );
    expect(r.out).toContain(
      "error   VANE0103 SubsetNotFound\n  DestinationRule bookinfo/reviews  spec.subsets\n  DestinationRule bookinfo/reviews has no subset 'v0'",
    );
    expect(r.out).toContain('  fix: ');
  });

  it('exits 2 on bad usage and on unreadable files', () => {
    const missing = vane('-f', BOOKINFO, '--stable', 'v1', '--canary', 'v2');
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('vane analyze: --virtual-service is required');
    expect(vane('-f', BOOKINFO, ...reviews, '--stable', 'v1', '--canary', 'v2', '--bogus').code).toBe(2);
    const nofile = vane('-f', '/nonexistent/vs.yaml', ...reviews, '--stable', 'v1', '--canary', 'v2');
    expect(nofile.code).toBe(2);
    expect(nofile.err).toContain('cannot read /nonexistent/vs.yaml: ENOENT');
  });
});
