// Vehicles: the list, and one vehicle's page with its current signals, active errors, the
// webhooks it feeds (subscribe, unsubscribe) and its latest deliveries over every webhook.

import { get, post, del, loadCatalog, query } from './api.js';
import { h, fill, facts, time, table, badge, field, changed, notify } from './dom.js';

const PAGE = 50;
const POLL_MS = 5000;

export async function renderList(main) {
  let offset = 0;
  const body = h('div');
  const pager = h('div', { class: 'actions' });
  async function load() {
    const { vehicles, paging } = await get(`/api/v1/vehicles${query({ limit: PAGE, offset })}`);
    const rows = vehicles.map((v) => h('tr', {},
      h('td', {}, h('a', { href: `#/vehicles/${encodeURIComponent(v.id)}` }, `${v.make} ${v.model} ${v.year}`)),
      h('td', { class: 'code' }, v.vin),
      h('td', {}, v.simulated ? 'simulated' : v.mode),
      h('td', { class: 'code' }, v.id)));
    fill(body, vehicles.length
      ? table('Vehicles', ['Vehicle', 'VIN', 'Source', 'Id'], rows)
      : h('p', { class: 'panel' }, 'No vehicles yet. Add one with POST /api/v1/vehicles, or start fleethook with --simulated-vehicles N.'));
    fill(pager,
      h('button', { type: 'button', class: 'secondary', disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE); load(); } }, 'Previous'),
      h('button', { type: 'button', class: 'secondary', disabled: offset + PAGE >= paging.count, onclick: () => { offset += PAGE; load(); } }, 'Next'),
      h('span', { class: 'hint' }, `${paging.count} vehicle${paging.count === 1 ? '' : 's'}`));
  }
  await load();
  fill(main, h('h1', {}, 'Vehicles'), body, pager);
}

/** A signal body for people: `78 percent`, `latitude 37.77, longitude -122.42`. */
function signalValue(body) {
  if (body && typeof body === 'object' && 'value' in body) {
    return body.unit ? `${body.value} ${body.unit}` : String(body.value);
  }
  if (body && typeof body === 'object' && !Array.isArray(body)) {
    return Object.entries(body)
      .map(([k, v]) => `${k} ${v !== null && typeof v === 'object' ? JSON.stringify(v) : v}`)
      .join(', ');
  }
  return JSON.stringify(body);
}

export async function renderOne(main, id) {
  const path = `/api/v1/vehicles/${encodeURIComponent(id)}`;
  const [vehicle, catalog] = await Promise.all([get(path), loadCatalog()]);
  const names = new Map();
  for (const g of catalog.signalGroups) for (const sig of g.signals) names.set(sig.code, { ...sig, group: g.group });

  const signalsSection = h('section', { 'aria-labelledby': 'signals-heading' });
  const webhooksSection = h('section', { 'aria-labelledby': 'vwh-heading' });
  const deliveriesSection = h('section', { 'aria-labelledby': 'vdl-heading' });
  const result = h('div');
  let timer = null;
  let stopped = false;

  function drawSignals(v) {
    const rows = v.signals.map((sig) => {
      const def = names.get(sig.code) || { name: sig.code, group: '' };
      return h('tr', {},
        h('td', {}, def.group),
        h('td', {}, def.name, h('div', { class: 'hint code' }, sig.code)),
        h('td', {}, signalValue(sig.body)),
        h('td', {}, sig.retrievedAt ? time(new Date(sig.retrievedAt).toISOString()) : '—'));
    });
    fill(signalsSection, h('h2', { id: 'signals-heading' }, `Current signals (${v.signals.length})`),
      rows.length ? table('Current signals', ['Group', 'Signal', 'Value', 'Retrieved'], rows) : h('p', { class: 'muted' }, 'No signal has been received for this vehicle yet.'),
      v.errors && v.errors.length
        ? [h('h2', {}, 'Active errors'), h('ul', {}, v.errors.map((e) => h('li', {}, h('strong', {}, `${e.type} ${e.code}`), e.description ? `: ${e.description}` : '')))]
        : null);
  }

  async function drawWebhooks() {
    const [{ webhooks: subscribed }, { webhooks: all }] = await Promise.all([get(`${path}/webhooks`), get('/api/v1/webhooks')]);
    const ids = new Set(subscribed.map((w) => w.id));
    const rows = subscribed.map((w) => h('tr', {},
      h('td', {}, h('a', { href: `#/webhooks/${encodeURIComponent(w.id)}` }, w.name)),
      h('td', {}, w.type),
      h('td', {}, badge(w.status)),
      h('td', {}, h('button', { type: 'button', class: 'secondary', 'aria-label': `Unsubscribe from ${w.name}`, onclick: async () => {
        try {
          await del(`/v2.0/vehicles/${encodeURIComponent(id)}/webhooks/${encodeURIComponent(w.id)}`);
          notify(`Unsubscribed from “${w.name}”.`);
          await drawWebhooks();
        } catch (e) { fill(result, h('div', { class: 'alert', role: 'alert' }, `Not unsubscribed: ${e.message}`)); }
      } }, 'Unsubscribe'))));
    const candidates = all.filter((w) => !ids.has(w.id));
    const select = h('select', {}, candidates.map((w) => h('option', { value: w.id }, `${w.name} (${w.type}, ${w.status})`)));
    const pick = field('Webhook to subscribe to', select);
    const form = h('form', {}, pick.wrap, h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Subscribe')));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        await post(`/api/v1/webhooks/${encodeURIComponent(select.value)}/subscriptions`, { vehicleId: id });
        notify('Subscribed.');
        await drawWebhooks();
        changed();
        await drawDeliveries();
      } catch (e) { fill(result, h('div', { class: 'alert', role: 'alert' }, `Not subscribed: ${e.message}`)); }
    });
    fill(webhooksSection, h('h2', { id: 'vwh-heading' }, `Webhooks (${subscribed.length})`),
      rows.length ? table('Webhooks this vehicle is subscribed to', ['Webhook', 'Kind', 'Status', ''], rows) : h('p', { class: 'muted' }, 'Not subscribed to any webhook.'),
      candidates.length ? form : null);
  }

  async function drawDeliveries() {
    const { deliveries } = await get(`${path}/deliveries?limit=20`);
    const rows = deliveries.map((d) => h('tr', {},
      h('td', {}, h('a', { href: `#/deliveries/${encodeURIComponent(d.id)}` }, time(d.createdAt))),
      h('td', {}, d.eventType),
      h('td', {}, badge(d.status)),
      h('td', { class: 'num' }, d.attemptCount),
      h('td', {}, h('a', { href: `#/webhooks/${encodeURIComponent(d.webhookId)}` }, 'webhook'))));
    fill(deliveriesSection, h('h2', { id: 'vdl-heading' }, 'Recent deliveries'),
      rows.length ? table('Recent deliveries, newest first', ['Created', 'Event', 'Status', { label: 'Attempts', num: true }, 'Webhook'], rows) : h('p', { class: 'muted' }, 'No delivery has spoken of this vehicle yet.'));
  }

  async function poll() {
    try {
      drawSignals(await get(path));
      await drawDeliveries();
    } catch (e) {
      if (!stopped) fill(result, h('div', { class: 'alert', role: 'alert' }, e.message));
    } finally {
      if (!stopped) timer = setTimeout(poll, POLL_MS);
    }
  }

  drawSignals(vehicle);
  await Promise.all([drawWebhooks(), drawDeliveries()]);
  timer = setTimeout(poll, POLL_MS);
  fill(main,
    h('h1', {}, `${vehicle.make} ${vehicle.model} ${vehicle.year}`),
    h('div', { class: 'panel' }, facts([
      ['VIN', h('code', {}, vehicle.vin)],
      ['Source', vehicle.simulated ? 'simulated' : vehicle.mode],
      ['User', h('code', {}, vehicle.userId)],
      ['Vehicle id', h('code', {}, vehicle.id)],
      ['Created', time(vehicle.createdAt)],
    ])),
    result, signalsSection, webhooksSection, deliveriesSection);
  return () => { stopped = true; clearTimeout(timer); };
}
