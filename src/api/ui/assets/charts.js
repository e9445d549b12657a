// Time-series charts with uPlot (served by vane from its npm package). Each chart sits in a
// <figure> with a caption and a text summary for screen readers; colours come from the page's
// CSS variables, so they follow prefers-color-scheme.

import uPlot from 'uplot';
import { h } from './dom.js';
import { formatTime } from './format.js';

const HEIGHT = 200;

function colour(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || 'gray';
}

function axes() {
  const stroke = colour('--fg-muted');
  const grid = { stroke: colour('--grid'), width: 1 };
  // Wall-clock times as the timeline shows them, whatever the span.
  const clock = (_u, splits) => splits.map((s) => formatTime(s * 1000));
  return [
    { stroke, grid, ticks: grid, values: clock, space: 90 },
    { stroke, grid, ticks: grid, size: 56 },
  ];
}

/**
 * A chart in `figure` that can be fed new data: returns { update(data, opts), destroy }.
 * `data` is [xs (seconds), ...ys]; `opts.series` the uPlot series after the x series (the chart
 * is rebuilt when their labels change), `opts.xRange` the time span shown (seconds), so that
 * every chart of a rollout spans the same time.
 */
function timeChart(figure, { yRange } = {}) {
  const plotHost = h('div', { class: 'plot', role: 'img' });
  figure.append(plotHost);
  let plot;
  let last;
  let shape = '';
  const build = () => {
    plot?.destroy();
    plot = new uPlot(
      {
        width: Math.max(280, plotHost.clientWidth || figure.clientWidth || 600),
        height: HEIGHT,
        series: [{}, ...last.series()],
        axes: axes(),
        scales: {
          x: { time: true, range: () => last.xRange },
          ...(yRange ? { y: { range: yRange } } : {}),
        },
        legend: { live: false },
        cursor: { drag: { x: false, y: false } },
      },
      last.data,
      plotHost,
    );
  };
  const resize = new ResizeObserver(() =>
    plot?.setSize({ width: Math.max(280, plotHost.clientWidth), height: HEIGHT }),
  );
  resize.observe(plotHost);
  const scheme = matchMedia('(prefers-color-scheme: dark)');
  const rebuild = () => last && build();
  scheme.addEventListener('change', rebuild);
  return {
    update(data, { series, xRange, summary }) {
      plotHost.setAttribute('aria-label', summary);
      last = { data, series, xRange };
      const labels = series()
        .map((s) => s.label)
        .join('|');
      if (!plot || labels !== shape) {
        shape = labels;
        build();
      } else plot.setData(data);
    },
    destroy() {
      resize.disconnect();
      scheme.removeEventListener('change', rebuild);
      plot?.destroy();
    },
  };
}

const sec = (ms) => ms / 1000;

/** The canary's weight over time, as the steps it took, from `from` up to `to` (ms). */
export function weightChart(figure) {
  const chart = timeChart(figure, { yRange: [0, 100] });
  const series = () => [
    {
      label: 'canary weight %',
      stroke: colour('--canary'),
      width: 2,
      paths: uPlot.paths.stepped({ align: 1 }),
      fill: colour('--canary-fill'),
    },
  ];
  return {
    update(points, from, to) {
      const pts = points.length ? [...points, { time: to, canary: points.at(-1).canary }] : [];
      chart.update([pts.map((p) => sec(p.time)), pts.map((p) => p.canary)], {
        series,
        xRange: [sec(from), sec(Math.max(to, from + 1000))],
        summary: `Canary weight over time: now ${points.at(-1)?.canary ?? 0}%, ${points.length} changes`,
      });
    },
    destroy: chart.destroy,
  };
}

const METRIC_SERIES = [
  { key: 'canary', label: 'canary', colour: '--canary', width: 2, points: { show: true } },
  { key: 'stable', label: 'stable', colour: '--stable', width: 2, points: { show: true } },
  { key: 'min', label: 'threshold (min)', colour: '--threshold', width: 1, dash: [6, 4] },
  { key: 'max', label: 'threshold (max)', colour: '--threshold', width: 1, dash: [6, 4] },
];

/** One metric over time: canary and stable, with its threshold lines (only the lines it has). */
export function metricChart(figure, name) {
  const chart = timeChart(figure);
  return {
    update(points, from, to) {
      const present = METRIC_SERIES.filter((s) => points.some((p) => p[s.key] !== null));
      const last = points.at(-1);
      chart.update([points.map((p) => sec(p.time)), ...present.map((s) => points.map((p) => p[s.key]))], {
        series: () =>
          present.map((s) => ({
            label: s.label,
            stroke: colour(s.colour),
            width: s.width,
            ...(s.dash ? { dash: s.dash } : {}),
            ...(s.points ? { points: s.points } : {}),
          })),
        xRange: [sec(from), sec(Math.max(to, from + 1000))],
        summary: `${name} over ${points.length} analyses; last canary ${last?.canary ?? 'none'}, stable ${last?.stable ?? 'none'}, verdict ${last?.verdict ?? 'none'}`,
      });
    },
    destroy: chart.destroy,
  };
}
