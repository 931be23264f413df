// Charts as inline SVG, drawn from the stats endpoint's series. No library: two chart shapes
// are all the dashboard needs, and a download at build time is not allowed.

import { s, ms } from './dom.js';

const W = 600;
const H = 220;
const PAD = { left: 46, right: 10, top: 12, bottom: 26 };
const PLOT_W = W - PAD.left - PAD.right;
const PLOT_H = H - PAD.top - PAD.bottom;

/** Tick label for a minute: `15:45`. */
function clock(iso) {
  return iso.slice(11, 16);
}

/** A maximum that reads well on an axis: 1, 2, 5, 10, 20, 50 … */
function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

function frame(title, desc, yMax, yLabel, series) {
  const titleId = `t${Math.random().toString(36).slice(2)}`;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': titleId },
    s('title', { id: titleId }, `${title}. ${desc}`));
  for (const fraction of [0, 0.5, 1]) {
    const y = PAD.top + PLOT_H * (1 - fraction);
    svg.append(
      s('line', { class: 'grid', x1: PAD.left, x2: W - PAD.right, y1: y, y2: y }),
      s('text', { x: PAD.left - 6, y: y + 4, 'text-anchor': 'end' }, yLabel(yMax * fraction)));
  }
  if (series.length) {
    const last = series.length - 1;
    svg.append(
      s('text', { x: PAD.left, y: H - 8 }, clock(series[0].minute)),
      s('text', { x: W - PAD.right, y: H - 8, 'text-anchor': 'end' }, `${clock(series[last].minute)} UTC`));
  }
  return svg;
}

/** Stacked bars per minute, one layer per key (`{key, label}`), bottom first. */
export function stackedBars(series, keys, title, desc) {
  const yMax = niceMax(Math.max(0, ...series.map((m) => keys.reduce((n, k) => n + (m[k.key] || 0), 0))));
  const svg = frame(title, desc, yMax, (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1)), series);
  const slot = PLOT_W / Math.max(series.length, 1);
  const width = Math.max(1, slot * 0.8);
  series.forEach((m, i) => {
    let base = 0;
    for (const k of keys) {
      const n = m[k.key] || 0;
      if (!n) continue;
      const y0 = PAD.top + PLOT_H * (1 - base / yMax);
      const y1 = PAD.top + PLOT_H * (1 - (base + n) / yMax);
      svg.append(s('rect', {
        class: `bar-${k.key}`, x: (PAD.left + i * slot + (slot - width) / 2).toFixed(1),
        y: y1.toFixed(1), width: width.toFixed(1), height: Math.max(0.5, y0 - y1).toFixed(1),
      }, s('title', {}, `${m.minute.slice(11, 16)}: ${n} ${k.label}`)));
      base += n;
    }
  });
  return svg;
}

/** One line per key over the minutes; minutes without a value break the line. */
export function lines(series, keys, title, desc) {
  const values = series.flatMap((m) => keys.map((k) => m[k.key])).filter((v) => v !== null && v !== undefined);
  const yMax = niceMax(Math.max(0, ...values));
  const svg = frame(title, desc, yMax, (v) => ms(v).replace(' ', ''), series);
  const slot = PLOT_W / Math.max(series.length, 1);
  for (const k of keys) {
    let path = '';
    let pen = 'M';
    series.forEach((m, i) => {
      const v = m[k.key];
      if (v === null || v === undefined) { pen = 'M'; return; }
      const x = PAD.left + i * slot + slot / 2;
      const y = PAD.top + PLOT_H * (1 - v / yMax);
      path += `${pen}${x.toFixed(1)},${y.toFixed(1)} `;
      pen = 'L';
      // A lone point would draw nothing: mark every value.
      svg.append(s('circle', { class: `dot-${k.key}`, cx: x.toFixed(1), cy: y.toFixed(1), r: 2.5 }));
    });
    if (path) svg.append(s('path', { class: `line line-${k.key}`, d: path.trim() }));
  }
  return svg;
}
