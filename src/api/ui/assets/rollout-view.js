// One rollout: its summary, the actions the caller may take, the weight and each metric over
// time, the last analysis, its gates and the timeline of events; live from its event stream.

import { command, getRollout, rolloutEvents } from './api.js';
import { metricChart, weightChart } from './charts.js';
import { h, replace } from './dom.js';
import { formatAge, formatBounds, formatTime, formatValue, targetName } from './format.js';
import { phaseBadge, weightCell } from './list-view.js';
import { applyEvent, availableActions, gateHistory, isTerminal, rolloutModel, withRollout } from './model.js';
import { followEvents } from './sse.js';

/** Timeline entries shown at most (newest first); the API has the rest. */
const TIMELINE_MAX = 300;

export function renderSummary(r, now) {
  const s = r.spec ?? {};
  const rows = [
    ['Phase', phaseBadge(r.phase)],
    ['Reason', r.reason],
    ['Canary weight', weightCell(r.weights)],
    ['Stable → canary', `${s.stable?.subset ?? '?'} → ${s.canary?.subset ?? '?'}`],
    [
      'Strategy',
      `${s.strategy?.type ?? '?'}${s.strategy?.steps ? ` (${s.strategy.steps.join(', ')}%)` : ''}`,
    ],
    ['Age', formatAge(now - r.createdAt)],
    ...(r.endedAt ? [['Ran for', formatAge(r.endedAt - r.createdAt)]] : []),
    ['Id', r.id],
  ];
  if (r.lastError) rows.push(['Last error', r.lastError]);
  return h(
    'dl',
    { class: 'summary' },
    rows.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', { dataset: { field: k } }, v))),
  );
}

/** The buttons for the actions allowed; nothing at all when there are none. */
export function renderActions(actions, onAction) {
  if (actions.length === 0) return null;
  return h(
    'div',
    { class: 'actions', role: 'group', 'aria-label': 'Actions' },
    actions.map((a) =>
      h(
        'button',
        {
          type: 'button',
          class: a.danger ? 'danger' : '',
          dataset: { action: a.type },
          onclick: () => onAction(a),
        },
        a.label,
      ),
    ),
  );
}

export function renderAnalysis(report, now) {
  if (!report || !Array.isArray(report.results) || report.results.length === 0) {
    return h('p', { class: 'empty' }, 'No analysis yet.');
  }
  const requests =
    report.requests !== undefined
      ? `; canary requests in the window: ${report.requests}${report.minRequests ? ` (minimum ${report.minRequests})` : ''}`
      : '';
  return h(
    'table',
    { class: 'analysis' },
    h('caption', {}, `Verdict ${report.verdict} at ${formatTime(report.at, now)}${requests}`),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['Metric', 'Canary', 'Stable', 'Threshold', 'Verdict', 'Why'].map((t) =>
          h('th', { scope: 'col' }, t),
        ),
      ),
    ),
    h(
      'tbody',
      {},
      report.results.map((m) =>
        h(
          'tr',
          { dataset: { metric: m.name } },
          h(
            'th',
            { scope: 'row' },
            m.name,
            m.critical ? h('span', { class: 'sub' }, ' critical') : null,
            // Judged and shown, never counted in the verdict.
            m.dryRun ? h('span', { class: 'sub' }, ' dry run') : null,
          ),
          h('td', { class: 'num' }, formatValue(m.value)),
          h('td', { class: 'num' }, formatValue(m.stableValue)),
          h('td', {}, formatBounds(m.bounds)),
          h('td', {}, h('span', { class: `verdict verdict-${m.verdict}` }, m.verdict)),
          h('td', { class: 'reason' }, m.message ?? m.reason ?? ''),
        ),
      ),
    ),
  );
}

export function renderGates(rollout, history, now) {
  const waiting = rollout.gate
    ? h(
        'p',
        { class: 'gate-waiting' },
        `Waiting at ${rollout.gate.key} for ${formatAge(now - rollout.gate.since)}: ${rollout.gate.message}`,
      )
    : h('p', { class: 'empty' }, 'Not waiting at a gate.');
  return [
    waiting,
    history.length
      ? h(
          'ul',
          { class: 'gates' },
          history.map((g) =>
            h(
              'li',
              {},
              h('time', { datetime: new Date(g.time).toISOString() }, formatTime(g.time, now)),
              ' ',
              g.reason,
              g.by && !g.reason.includes(`by ${g.by}`) ? h('span', { class: 'by' }, ` — by ${g.by}`) : null,
            ),
          ),
        )
      : null,
  ];
}

export function renderTimeline(events, now) {
  if (events.length === 0) return h('p', { class: 'empty' }, 'No events yet.');
  const shown = events.slice(-TIMELINE_MAX).reverse();
  return h(
    'ol',
    { class: 'timeline', reversed: true },
    shown.map((e) =>
      h(
        'li',
        { dataset: { type: e.type } },
        h('time', { datetime: new Date(e.time).toISOString() }, formatTime(e.time, now)),
        h('span', { class: `kind kind-${e.type}` }, e.type),
        h(
          'span',
          { class: 'what' },
          e.to ? [e.from ? `${e.from} → ` : '', h('strong', {}, e.to), ': '] : null,
          e.reason,
          e.weights && !e.reason.includes(`${e.weights.canary}%`) ? ` (canary ${e.weights.canary}%)` : null,
          e.by && !e.reason.includes(`by ${e.by}`) ? h('span', { class: 'by' }, ` — by ${e.by}`) : null,
        ),
      ),
    ),
  );
}

function section(id, title, ...children) {
  return h('section', { 'aria-labelledby': id }, h('h2', { id }, title), ...children);
}

/** Mounts the page of rollout `id` in `main`; returns the function that unmounts it. */
export function mountRollout(main, id, { scopes, commandPhases, setLive, confirm }) {
  let model;
  let stopped = false;
  const title = h('h1', { id: 'rollout-title' }, 'Rollout');
  const status = h('p', { class: 'status', role: 'status', 'aria-live': 'polite' });
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  const summary = h('div');
  const actions = h('div');
  const weightFig = h('figure', {}, h('figcaption', {}, 'Canary weight (%) over time'));
  const metricsBox = h('div', { class: 'metrics' });
  const analysis = h('div');
  const gates = h('div');
  const timeline = h('div');
  replace(
    main,
    h(
      'article',
      { 'aria-labelledby': 'rollout-title' },
      h('p', {}, h('a', { href: '#/' }, '← All rollouts')),
      title,
      error,
      summary,
      actions,
      status,
      section('weight-title', 'Weight', weightFig),
      section('metrics-title', 'Metrics', metricsBox),
      section('analysis-title', 'Current analysis', analysis),
      section('gates-title', 'Gates', gates),
      section('timeline-title', 'Timeline', timeline),
    ),
  );
  const weights = weightChart(weightFig);
  const metricCharts = new Map();
  let actionsKey = '';

  const fail = (what, e) => {
    error.hidden = false;
    error.textContent = `${what}: ${e.message}`;
  };

  async function act(a) {
    const r = model.rollout;
    const answer = await confirm({
      title: `${a.label} ${targetName(r)}?`,
      text: `${a.explain} Rollout ${r.id} is ${r.phase}.`,
      danger: !!a.danger,
    });
    if (!answer) return;
    status.textContent = `${a.label}: sending…`;
    try {
      await command(r.id, a.type, answer.reason);
      status.textContent = `${a.label}: accepted; the rollout carries it out now.`;
      error.hidden = true;
      refetch();
    } catch (e) {
      status.textContent = '';
      fail(`${a.label} was refused`, e);
    }
  }

  function drawActions() {
    const list = availableActions(model.rollout, scopes, commandPhases);
    const key = list.map((a) => a.type).join(',');
    if (key === actionsKey) return;
    actionsKey = key;
    const focused = actions.contains(document.activeElement)
      ? document.activeElement.dataset.action
      : undefined;
    replace(actions, renderActions(list, act));
    if (focused) (actions.querySelector(`[data-action="${focused}"]`) ?? title).focus?.();
  }

  function metricNames() {
    const names = (model.rollout.spec?.analysis?.metrics ?? []).map((m) => m.name);
    for (const n of Object.keys(model.metrics)) if (!names.includes(n)) names.push(n);
    return names;
  }

  function draw() {
    const now = Date.now();
    const r = model.rollout;
    title.textContent = `Rollout of ${targetName(r)}`;
    document.title = `${targetName(r)} — ${r.phase} — vane`;
    replace(summary, renderSummary(r, now));
    drawActions();
    const to = isTerminal(r.phase) ? (r.endedAt ?? now) : now;
    weights.update(model.weights, r.createdAt, to);
    const names = metricNames();
    if (names.length === 0)
      replace(metricsBox, h('p', { class: 'empty' }, 'This rollout checks no metrics.'));
    for (const name of names) {
      if (!metricCharts.has(name)) {
        if (metricCharts.size === 0) metricsBox.replaceChildren();
        // Until the first analysis, a sentence instead of empty axes.
        const note = h('p', { class: 'empty' }, 'No analysis recorded yet.');
        const fig = h(
          'figure',
          { dataset: { metric: name } },
          h('figcaption', {}, `${name}: canary and stable against the threshold`),
          note,
        );
        metricsBox.append(fig);
        metricCharts.set(name, { chart: metricChart(fig, name), note });
      }
      const points = model.metrics[name] ?? [];
      const { chart, note } = metricCharts.get(name);
      note.hidden = points.length > 0;
      if (points.length) chart.update(points, r.createdAt, to);
    }
    replace(analysis, renderAnalysis(r.lastAnalysis, now));
    replace(gates, renderGates(r, gateHistory(model.events), now));
    replace(timeline, renderTimeline(model.events, now));
  }

  let frame;
  const schedule = () => {
    if (!frame && !stopped)
      frame = requestAnimationFrame(() => {
        frame = undefined;
        if (!stopped) draw();
      });
  };
  let refetchTimer;
  function refetch() {
    clearTimeout(refetchTimer);
    refetchTimer = setTimeout(async () => {
      try {
        const r = await getRollout(id);
        if (stopped) return;
        model = withRollout(model, r);
        schedule();
      } catch (e) {
        fail('Could not read the rollout', e);
      }
    }, 250);
  }

  let stream;
  const ticker = setInterval(() => model && schedule(), 10_000);
  getRollout(id)
    .then((r) => {
      if (stopped) return;
      model = rolloutModel(r);
      schedule();
      stream = followEvents(`/api/v1/rollouts/${encodeURIComponent(id)}/events`, {
        onEvent: (ev) => {
          model = applyEvent(model, ev);
          schedule();
          refetch();
        },
        onEnd: () => refetch(),
        onStatus: setLive,
        poll: (after) => rolloutEvents(id, after),
      });
    })
    .catch((e) => {
      title.textContent = 'Rollout not found';
      fail(`Could not read rollout ${id}`, e);
    });

  return () => {
    stopped = true;
    stream?.stop();
    clearInterval(ticker);
    clearTimeout(refetchTimer);
    if (frame) cancelAnimationFrame(frame);
    for (const m of metricCharts.values()) m.chart.destroy();
    weights.destroy();
  };
}
