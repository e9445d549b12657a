// The list of rollouts: target, phase, current weight, age and the last reason; live from the
// all-rollouts event stream.

import { listRollouts } from './api.js';
import { h, replace } from './dom.js';
import { formatAge, targetName } from './format.js';
import { applyListEvent } from './model.js';
import { followEvents } from './sse.js';

/** Event streams one list follows at most (one per namespace of a limited token); past that it polls. */
const MAX_STREAMS = 5;

/** A phase as a labelled badge (its colour repeats the text, never replaces it). */
export function phaseBadge(phase) {
  return h('span', { class: `phase phase-${phase}` }, phase);
}

/** The canary's share as a number and a bar (the number is what is read; the bar is decoration). */
export function weightCell(weights) {
  const canary = weights?.canary ?? 0;
  const fill = h('span', { class: 'bar-fill' });
  // Set through the CSSOM: the page's CSP allows no inline style attribute.
  fill.style.width = `${Math.max(0, Math.min(100, canary))}%`;
  return h(
    'span',
    { class: 'weight' },
    h('span', { class: 'bar', 'aria-hidden': 'true' }, fill),
    `${canary}%`,
  );
}

/** The table of rollouts, newest first. */
export function renderList(rollouts, now) {
  if (rollouts.length === 0) {
    return h(
      'p',
      { class: 'empty' },
      'No rollouts yet. Start one with POST /api/v1/rollouts or `vane rollout start`.',
    );
  }
  return h(
    'table',
    { class: 'rollouts' },
    h('caption', {}, `${rollouts.length} rollouts, newest first`),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['Target', 'Phase', 'Canary weight', 'Age', 'Last reason'].map((t) => h('th', { scope: 'col' }, t)),
      ),
    ),
    h(
      'tbody',
      {},
      rollouts.map((r) =>
        h(
          'tr',
          { dataset: { id: r.id, phase: r.phase } },
          h(
            'th',
            { scope: 'row' },
            h('a', { href: `#/rollouts/${encodeURIComponent(r.id)}` }, targetName(r)),
            h('div', { class: 'sub' }, r.id),
          ),
          h('td', {}, phaseBadge(r.phase)),
          h('td', {}, weightCell(r.weights)),
          h('td', { title: new Date(r.createdAt).toISOString() }, formatAge(now - r.createdAt)),
          h('td', { class: 'reason' }, r.reason),
        ),
      ),
    ),
  );
}

/** Mounts the list in `main`; returns the function that unmounts it. */
export function mountList(main, { namespaces, setLive }) {
  let rollouts = [];
  let stopped = false;
  const section = h(
    'section',
    { 'aria-labelledby': 'list-title' },
    h('h1', { id: 'list-title' }, 'Rollouts'),
  );
  const body = h('div', { 'aria-live': 'off' });
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  section.append(error, body);
  replace(main, section);

  const draw = () => {
    // Redrawing must not take the keyboard focus away from the link it was on.
    const focused = body.contains(document.activeElement)
      ? document.activeElement.getAttribute('href')
      : null;
    replace(body, renderList(rollouts, Date.now()));
    if (focused) body.querySelector(`a[href="${CSS.escape(focused)}"]`)?.focus();
  };
  let reloading;
  const reload = () => {
    reloading ??= listRollouts()
      .then((d) => {
        rollouts = d.rollouts;
        error.hidden = true;
        draw();
      })
      .catch((e) => {
        error.hidden = false;
        error.textContent = `Could not read the rollouts: ${e.message}`;
      })
      .finally(() => {
        reloading = undefined;
      });
    return reloading;
  };

  let poller;
  // A token limited to namespaces may follow each of its namespaces, not the whole stream.
  const paths = namespaces
    ? namespaces.map((ns) => `/api/v1/events?namespace=${encodeURIComponent(ns)}`)
    : ['/api/v1/events'];
  const streams = paths.slice(0, MAX_STREAMS).map((path) =>
    followEvents(path, {
      onEvent: (ev) => {
        const next = applyListEvent(rollouts, ev);
        rollouts = next.rollouts;
        if (next.unknown) reload();
        else draw();
      },
      onStatus: (state, detail) => {
        setLive(state, detail);
        // Without the stream, read the list again every few seconds.
        if (state === 'error' && !poller && !stopped) poller = setInterval(reload, 5_000);
        // The first connection (and each reconnection) may have missed changes: read the list again.
        if (state === 'live') reload();
      },
    }),
  );
  if (paths.length > MAX_STREAMS && !poller) poller = setInterval(reload, 5_000);
  // Ages move on even when nothing happens.
  const ticker = setInterval(draw, 10_000);
  reload();
  return () => {
    stopped = true;
    for (const s of streams) s.stop();
    clearInterval(ticker);
    if (poller) clearInterval(poller);
  };
}
