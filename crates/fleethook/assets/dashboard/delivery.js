// One delivery: its body (pretty-printed), the headers and result of every attempt, and a
// retry. A pending delivery keeps refreshing until it settles.

import { get, post } from './api.js';
import { h, fill, facts, time, table, badge, pretty, changed, notify } from './dom.js';

const POLL_MS = 3000;

function attemptsTable(attempts) {
  const rows = attempts.map((a) => h('tr', { 'data-attempt': a.number },
    h('td', { class: 'num' }, a.number),
    h('td', {}, time(a.at)),
    h('td', {}, a.statusCode ?? 'no answer'),
    h('td', { class: 'num' }, `${a.durationMs} ms`),
    h('td', {}, a.error ? h('span', { class: 'code' }, a.error) : h('span', { class: 'muted' }, 'none')),
    h('td', {},
      h('details', {}, h('summary', {}, 'Request headers'),
        h('pre', {}, Object.entries(a.requestHeaders || {}).map(([k, v]) => `${k}: ${v}`).join('\n'))),
      a.responseBody ? h('details', {}, h('summary', {}, 'Response body'), h('pre', {}, pretty(a.responseBody))) : null)));
  return table('Attempts, first to last', [{ label: '#', num: true }, 'At', 'Status', { label: 'Took', num: true }, 'Error', 'Request and answer'], rows);
}

export async function render(main, id) {
  const path = `/api/v1/deliveries/${encodeURIComponent(id)}`;
  const heading = h('h1', {});
  const about = h('div');
  const actions = h('div', { class: 'actions' });
  const result = h('div');
  const attempts = h('section', { 'aria-labelledby': 'attempts-heading' });
  const bodySection = h('section', { 'aria-labelledby': 'body-heading' });
  let timer = null;
  let stopped = false;

  function draw(d) {
    heading.textContent = `Delivery: ${d.eventType}`;
    fill(about, h('div', { class: 'panel' }, facts([
      ['Status', badge(d.status)],
      ['Webhook', h('a', { href: `#/webhooks/${encodeURIComponent(d.webhookId)}` }, 'open the webhook')],
      ['Purpose', d.purpose],
      ['Sent to', h('span', { class: 'code' }, d.targetUri)],
      ['Event id (webhook-id)', h('code', {}, d.eventId)],
      // A test payload speaks of a made-up sample vehicle: nothing to link to.
      ['Vehicles', d.vehicleIds.length ? d.vehicleIds.map((v, i) => [i ? ', ' : '', d.purpose === 'test' ? h('code', {}, v) : h('a', { href: `#/vehicles/${encodeURIComponent(v)}` }, v)]) : null],
      ['Created', time(d.createdAt)],
      ['Next attempt', d.status === 'pending' ? time(d.nextAttemptAt) : null],
      ['Last error', d.lastError],
      ['Delivery id', h('code', {}, d.id)],
    ])));
    const retry = h('button', { type: 'button', disabled: d.status === 'pending' || d.purpose === 'verify' }, 'Retry now');
    retry.addEventListener('click', async () => {
      retry.disabled = true;
      try {
        const after = await post(`${path}/retry`);
        const last = after.attempts[after.attempts.length - 1];
        notify(`Retried: attempt ${last.number} ${after.status === 'succeeded' ? 'succeeded' : `failed (${last.error || last.statusCode})`}.`);
        fill(result);
        draw(after);
        changed();
      } catch (e) {
        fill(result, h('div', { class: 'alert', role: 'alert' }, h('strong', {}, 'Not retried: '), e.message));
        retry.disabled = false;
      }
    });
    fill(actions, retry,
      d.status === 'pending' ? h('span', { class: 'hint' }, 'Pending deliveries are retried automatically.') : null,
      d.purpose === 'verify' ? h('span', { class: 'hint' }, 'A challenge is not retried: verify the webhook again.') : null);
    fill(attempts, h('h2', { id: 'attempts-heading' }, `Attempts (${d.attempts.length})`),
      d.attempts.length ? attemptsTable(d.attempts) : h('p', { class: 'muted' }, 'No attempt yet.'));
    fill(bodySection, h('h2', { id: 'body-heading' }, 'Body'),
      h('p', { class: 'hint' }, 'As rendered. v3.0 and v4.0 bodies get a fresh deliveryId and delivery time in each attempt.'),
      h('pre', { class: 'payload' }, pretty(d.body)));
    clearTimeout(timer);
    if (d.status === 'pending' && !stopped) timer = setTimeout(refresh, POLL_MS);
  }

  async function refresh() {
    try {
      draw(await get(path));
    } catch (e) {
      if (!stopped) fill(result, h('div', { class: 'alert', role: 'alert' }, e.message));
    }
  }

  draw(await get(path));
  fill(main, heading, about, actions, result, attempts, bodySection);
  return () => { stopped = true; clearTimeout(timer); };
}
