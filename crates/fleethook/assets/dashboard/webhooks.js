// The webhook list: every webhook with its status (and why it is disabled) and its success
// rate over the last hour, under the live charts of all webhooks.

import { get } from './api.js';
import { h, fill, badge, percent, table } from './dom.js';
import { statsPanel } from './stats.js';

export const KIND_LABELS = {
  scheduled: 'Scheduled',
  dynamic: 'Dynamic',
  eventBased: 'Event-based',
  vehicleState: 'Vehicle state',
};

/** Status with its reason, as the list and the detail page show it. */
export function statusCell(webhook) {
  return h('span', {}, badge(webhook.status),
    webhook.status === 'disabled' && webhook.disabledReason ? h('span', { class: 'hint' }, ` ${webhook.disabledReason}`) : null,
    webhook.status === 'unverified' ? h('span', { class: 'hint' }, ' verify to start deliveries') : null);
}

export async function render(main) {
  const { webhooks } = await get('/api/v1/webhooks');
  const rates = new Map();
  const rateCells = new Map();

  const rows = webhooks.map((w) => {
    const rate = h('td', { class: 'num', 'data-webhook': w.id }, '…');
    rateCells.set(w.id, rate);
    return h('tr', {},
      h('td', {}, h('a', { href: `#/webhooks/${encodeURIComponent(w.id)}` }, w.name)),
      h('td', {}, KIND_LABELS[w.type] || w.type),
      h('td', {}, statusCell(w)),
      rate,
      h('td', { class: 'code' }, w.callbackUri));
  });

  const panel = statsPanel({
    onData(stats) {
      rates.clear();
      for (const w of stats.webhooks) rates.set(w.webhookId, w);
      for (const [id, cell] of rateCells) {
        const w = rates.get(id);
        fill(cell, w ? `${percent(w.successRate)} of ${w.attempts}` : 'no attempts');
      }
    },
  });

  fill(main,
    h('h1', {}, 'Webhooks'),
    h('div', { class: 'actions' }, h('a', { class: 'button', href: '#/webhooks/new' }, 'New webhook')),
    webhooks.length
      ? table('Webhooks', ['Name', 'Type', 'Status', { label: 'Success rate (chart window)', num: true }, 'Callback URI'], rows)
      : h('p', { class: 'panel' }, 'No webhooks yet. Create one to have vehicle data delivered to your application.'),
    panel.element);
  return () => panel.stop();
}
