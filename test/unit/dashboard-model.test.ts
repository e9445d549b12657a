import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { COMMAND_PHASES } from '../../src/rollouts/phases.ts';

// The dashboard's modules are plain browser JavaScript; their pure parts run here as they are.
const assets = join(import.meta.dirname, '../../src/api/ui/assets');
const load = (f: string) => import(pathToFileURL(join(assets, f)).href);
const { sseParser, compareIds } = await load('sse.js');
const { availableActions, applyEvent, applyListEvent, rolloutModel, gateHistory } = await load('model.js');
const { formatBounds, formatAge } = await load('format.js');

type Msg = { event: string; data: string; id?: string };

describe('the SSE parser', () => {
  it('splits messages however the bytes are cut, with ids, event names, comments and retry', () => {
    const text =
      'retry: 3000\n\n: heartbeat\n\nid: 1-0\ndata: {"a":1}\n\nid: 2-0\r\ndata: line1\r\ndata: line2\r\n\r\nevent: end\ndata: {"phase":"aborted"}\n\n';
    for (const size of [1, 2, 3, 7, text.length]) {
      const got: Msg[] = [];
      const retries: number[] = [];
      const feed = sseParser(
        (m: Msg) => got.push(m),
        (ms: number) => retries.push(ms),
      );
      for (let i = 0; i < text.length; i += size) feed(text.slice(i, i + size));
      expect(retries).toEqual([3000]);
      expect(got).toEqual([
        { event: 'message', data: '{"a":1}', id: '1-0' },
        { event: 'message', data: 'line1\nline2', id: '2-0' },
        { event: 'end', data: '{"phase":"aborted"}', id: undefined },
      ]);
    }
  });

  it('orders stream ids numerically, not as text', () => {
    expect(compareIds('1718000000000-10', '1718000000000-9')).toBeGreaterThan(0);
    expect(compareIds('999-0', '1000-0')).toBeLessThan(0);
    expect(compareIds('5-1', '5-1')).toBe(0);
  });
});

describe('the actions offered', () => {
  const all = ['read', 'trigger', 'operate', 'admin'];
  const types = (r: object, scopes = all) =>
    availableActions(r, scopes, COMMAND_PHASES).map((a: { type: string }) => a.type);

  it('none without the operate scope, whatever the phase', () => {
    for (const phase of Object.values(COMMAND_PHASES).flat()) {
      expect(types({ phase }, ['read'])).toEqual([]);
      expect(types({ phase }, ['read', 'trigger', 'admin'])).toEqual([]);
    }
  });

  it("by the API's own table of command phases; approve only at a gate", () => {
    expect(types({ phase: 'progressing' })).toEqual(['promote', 'pause', 'abort']);
    expect(types({ phase: 'paused', pause: { kind: 'manual' } })).toEqual(['resume', 'abort']);
    expect(
      types({ phase: 'paused', pause: { kind: 'gate' }, gate: { key: 'confirm-traffic-increase:2' } }),
    ).toEqual(['promote', 'approve', 'resume', 'abort']);
    expect(types({ phase: 'awaiting-promotion' })).toEqual(['promote', 'approve', 'pause', 'abort']);
    for (const phase of ['rolling-back', 'succeeded', 'failed', 'aborted'])
      expect(types({ phase })).toEqual([]);
  });
});

describe('the rollout model', () => {
  const rollout = { id: 'ro-1', phase: 'pending', reason: 'created', weights: { stable: 100, canary: 0 } };
  const events = [
    { id: '1-0', time: 1000, type: 'created', reason: 'rollout created', to: 'pending' },
    {
      id: '2-0',
      time: 2000,
      type: 'transition',
      reason: 'canary ready',
      from: 'initializing',
      to: 'progressing',
    },
    { id: '3-0', time: 3000, type: 'weight', reason: 'step 1', weights: { stable: 90, canary: 10 } },
    {
      id: '4-0',
      time: 4000,
      type: 'analysis',
      reason: 'analysis: pass',
      verdict: 'pass',
      results: [
        { name: 'success-rate', verdict: 'pass', value: 99.5, stableValue: 99.9, bounds: { min: 99 } },
      ],
    },
    { id: '5-0', time: 5000, type: 'gate', reason: 'confirm-promotion open: approved', by: 'alice' },
    {
      id: '6-0',
      time: 6000,
      type: 'transition',
      reason: 'aborted by bob',
      from: 'rolling-back',
      to: 'aborted',
    },
  ];

  it('follows phase, weights, metrics and gates from the events, leaving the old model as it was', () => {
    const start = rolloutModel(rollout);
    let end = start;
    for (const e of events) end = applyEvent(end, e);
    expect(start.events).toEqual([]);
    expect(end.rollout).toMatchObject({ phase: 'aborted', reason: 'aborted by bob', endedAt: 6000 });
    expect(end.rollout.weights).toEqual({ stable: 90, canary: 10 });
    expect(end.weights).toEqual([
      { time: 1000, canary: 0 },
      { time: 3000, canary: 10 },
    ]);
    expect(end.metrics['success-rate']).toEqual([
      { time: 4000, canary: 99.5, stable: 99.9, min: 99, max: null, verdict: 'pass' },
    ]);
    expect(end.rollout.lastAnalysis).toMatchObject({ verdict: 'pass', at: 4000 });
    expect(gateHistory(end.events)).toEqual([
      { time: 5000, reason: 'confirm-promotion open: approved', by: 'alice' },
    ]);
  });

  it('updates a row of the list, and says when an event is about a rollout the list lacks', () => {
    const list = [{ ...rollout, id: 'ro-1' }];
    const moved = applyListEvent(list, { rolloutId: 'ro-1', ...events[2] });
    expect(moved.unknown).toBe(false);
    expect(moved.rollouts[0].weights.canary).toBe(10);
    expect(list[0]!.weights.canary).toBe(0);
    expect(applyListEvent(list, { rolloutId: 'ro-2', ...events[1] }).unknown).toBe(true);
  });

  it('formats thresholds and ages as people read them', () => {
    expect(formatBounds({ min: 99 })).toBe('≥ 99');
    expect(formatBounds({ min: 1, max: 5 })).toBe('≥ 1 and ≤ 5');
    expect(formatBounds({ kind: 'relative', maxIncrease: 0.2 })).toBe('at most +20% of stable');
    expect(formatAge(59_000)).toBe('59s');
    expect(formatAge(3_723_000)).toBe('1h 2m');
  });
});

describe('the colours', () => {
  const css = readFileSync(join(assets, 'style.css'), 'utf8');
  const palette = (block: string) =>
    Object.fromEntries([...block.matchAll(/--([a-z-]+):\s*(#[0-9a-f]{6})/g)].map((m) => [m[1]!, m[2]!]));
  const light = palette(css.slice(css.indexOf(':root'), css.indexOf('@media')));
  const dark = palette(css.slice(css.indexOf('@media (prefers-color-scheme: dark)')));
  const luminance = (hex: string) => {
    const [r, g, b] = [1, 3, 5].map((i) => {
      const c = Number.parseInt(hex.slice(i, i + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    }) as [number, number, number];
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const contrast = (a: string, b: string) => {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x) as [number, number];
    return (hi + 0.05) / (lo + 0.05);
  };
  // Text against the backgrounds it is drawn on: at least 4.5:1 (WCAG AA); chart lines at least 3:1.
  const text: [string, string][] = [
    ['fg', 'bg'],
    ['fg', 'bg-alt'],
    ['fg-muted', 'bg'],
    ['fg-muted', 'bg-alt'],
    ['link', 'bg'],
    ['link', 'bg-alt'],
    ['ok-fg', 'ok-bg'],
    ['bad-fg', 'bad-bg'],
    ['warn-fg', 'warn-bg'],
    ['info-fg', 'info-bg'],
    ['danger-fg', 'danger'],
  ];
  const lines: [string, string][] = [
    ['canary', 'bg'],
    ['stable', 'bg'],
    ['threshold', 'bg'],
  ];
  for (const [name, p] of [
    ['light', light],
    ['dark', dark],
  ] as const) {
    it(`${name}: text at least 4.5:1, chart lines at least 3:1`, () => {
      for (const [fg, bg] of text)
        expect(contrast(p[fg]!, p[bg]!), `${fg} on ${bg}`).toBeGreaterThanOrEqual(4.5);
      for (const [fg, bg] of lines)
        expect(contrast(p[fg]!, p[bg]!), `${fg} on ${bg}`).toBeGreaterThanOrEqual(3);
    });
  }
});
