// The live charts panel: attempts per minute by outcome and latency percentiles, for one
// webhook or the whole application. It polls the stats endpoint (computed from the store, so
// every node shows the same) and redraws at once when the page reports a change.

import { get, query } from './api.js';
import { h, fill, ms, percent, nextId } from './dom.js';
import { stackedBars, lines } from './charts.js';

const POLL_MS = 5000;
const OUTCOMES = [
  { key: 'succeeded', label: 'succeeded' },
  { key: 'retried', label: 'retried' },
  { key: 'failed', label: 'failed' },
];
const PERCENTILES = [
  { key: 'p50', label: 'p50' },
  { key: 'p90', label: 'p90' },
  { key: 'p99', label: 'p99' },
];

function legend(keys) {
  return h('ul', { class: 'legend', 'aria-hidden': 'true' }, keys.map((k) => h('li', { class: k.key }, k.label)));
}

/**
 * A panel that keeps itself up to date until `stop()`. `onData(stats)` sees every answer
 * (the webhook list takes its success rates from it).
 */
export function statsPanel({ webhookId = null, onData = () => {} } = {}) {
  const headingId = nextId('stats');
  const windowSelect = h('select', { id: nextId('window') },
    [15, 60, 180, 360].map((m) => h('option', { value: m, selected: m === 60 }, m < 60 ? `${m} minutes` : `${m / 60} hour${m > 60 ? 's' : ''}`)));
  const body = h('div', { class: 'charts' }, h('p', { class: 'muted' }, 'Loading charts…'));
  const error = h('div');
  const element = h('section', { class: 'panel stats', 'aria-labelledby': headingId },
    h('h2', { id: headingId }, webhookId ? 'Deliveries of this webhook' : 'Deliveries of all webhooks'),
    h('div', { class: 'field' }, h('label', { for: windowSelect.id }, 'Window'), windowSelect),
    error, body);

  let timer = null;
  let stopped = false;
  let inFlight = false;

  function draw(stats) {
    const t = stats.totals;
    const outcomeSummary = `${t.attempts} attempts in the last ${stats.minutes} minutes: ${t.succeeded} succeeded, ${t.retried} retried, ${t.failed} failed (success rate ${percent(t.successRate)}).`;
    const latencySummary = t.attempts
      ? `Attempt latency over the window: p50 ${ms(t.p50)}, p90 ${ms(t.p90)}, p99 ${ms(t.p99)}.`
      : 'No attempts in the window, so no latency yet.';
    fill(body,
      h('figure', { class: 'chart-outcomes', 'data-attempts': t.attempts, 'data-succeeded': t.succeeded, 'data-failed': t.failed },
        legend(OUTCOMES),
        stackedBars(stats.series, OUTCOMES, 'Delivery attempts per minute by outcome', outcomeSummary),
        h('figcaption', {}, outcomeSummary)),
      h('figure', { class: 'chart-latency' },
        legend(PERCENTILES),
        lines(stats.series, PERCENTILES, 'Attempt latency percentiles per minute', latencySummary),
        h('figcaption', {}, latencySummary)));
  }

  async function refresh() {
    if (stopped || inFlight) return;
    inFlight = true;
    clearTimeout(timer);
    try {
      const stats = await get(`/api/v1/stats${query({ webhookId, minutes: windowSelect.value })}`);
      if (stopped) return;
      fill(error);
      draw(stats);
      onData(stats);
    } catch (e) {
      if (!stopped) fill(error, h('div', { class: 'alert', role: 'alert' }, `Charts could not be loaded: ${e.message}`));
    } finally {
      inFlight = false;
      if (!stopped) timer = setTimeout(refresh, POLL_MS);
    }
  }

  const onChanged = () => refresh();
  window.addEventListener('fleethook:changed', onChanged);
  windowSelect.addEventListener('change', refresh);
  refresh();

  return {
    element,
    refresh,
    stop() {
      stopped = true;
      clearTimeout(timer);
      window.removeEventListener('fleethook:changed', onChanged);
    },
  };
}
