// One webhook: what it is, the actions on it (verify, test, enable, disable, rotate the
// secret, delete), its live charts, its subscribed vehicles and its delivery log.

import { get, post, del, query } from './api.js';
import { h, fill, facts, time, table, badge, field, pretty, changed, notify } from './dom.js';
import { statsPanel } from './stats.js';
import { KIND_LABELS, statusCell } from './webhooks.js';

const LOG_PAGE = 20;
const LOG_POLL_MS = 5000;

function list(values) {
  return values && values.length ? h('span', { class: 'code' }, values.join(', ')) : h('span', { class: 'muted' }, 'none');
}

function kindFacts(w) {
  switch (w.type) {
    case 'scheduled': {
      const s = w.schedule || {};
      const when = [`every ${s.interval} × ${s.frequency}`];
      if (s.day) when.push(`day ${s.day}`);
      if (s.time) when.push(`at ${s.time} UTC`);
      return [['Schedule', when.join(', ')], ['Endpoints', list(w.endpoints)], ['Units', w.units]];
    }
    case 'eventBased':
      return [['Event type', list(w.events)]];
    case 'vehicleState':
      return [['Trigger signals', list(w.triggers)], ['Data signals', list(w.data)], ['Error callback URI', w.errorCallbackUri ? h('span', { class: 'code' }, w.errorCallbackUri) : null]];
    default:
      return [['Delivers', '/battery, /charge, /location']];
  }
}

/** The verification result as Smartcar shows it: the challenge, the hash, the answer. */
export function verifyResult(ok, data, reason) {
  return h('div', { class: ok ? 'alert ok verify-result' : 'alert verify-result', role: ok ? 'status' : 'alert', tabindex: '-1' },
    h('h3', {}, ok ? 'Verified: the callback answered the challenge correctly.' : 'Verification failed'),
    ok ? null : h('p', {}, reason),
    facts([
      ['Challenge sent', data.challenge ? h('code', {}, data.challenge) : null],
      ['Hash expected', data.expected ? h('span', {}, h('code', {}, data.expected), h('span', { class: 'hint' }, ' hex HMAC-SHA256 of the challenge, keyed with the management token')) : null],
      ['HTTP status', data.statusCode ?? 'no answer'],
      ['Body received', data.received ? h('pre', {}, pretty(data.received)) : h('span', { class: 'muted' }, 'nothing')],
      ['Delivery', data.deliveryId ? h('a', { href: `#/deliveries/${encodeURIComponent(data.deliveryId)}` }, 'open in the delivery log') : null],
    ]));
}

export async function render(main, id) {
  const path = `/api/v1/webhooks/${encodeURIComponent(id)}`;
  let webhook = await get(path);

  const heading = h('h1', {});
  const about = h('div');
  const actions = h('div', { class: 'actions', role: 'group', 'aria-label': 'Webhook actions' });
  const result = h('div', { id: 'action-result' });
  let secretShown = false;

  function showResult(...nodes) {
    fill(result, ...nodes);
    const first = result.firstElementChild;
    if (first && first.hasAttribute('tabindex')) first.focus();
  }
  function failure(title, e) {
    showResult(h('div', { class: 'alert', role: 'alert', tabindex: '-1' }, h('strong', {}, `${title}: `), e.message));
  }

  function drawAbout() {
    heading.textContent = webhook.name;
    const secret = h('span', {}, h('code', {}, secretShown ? webhook.signingSecret : 'whsec_••••••••'), ' ',
      h('button', { type: 'button', class: 'linkish', 'aria-pressed': String(secretShown), onclick: () => { secretShown = !secretShown; drawAbout(); } }, secretShown ? 'Hide' : 'Show'));
    fill(about, h('div', { class: 'panel' }, facts([
      ['Status', statusCell(webhook)],
      ['Kind', `${KIND_LABELS[webhook.type] || webhook.type} (${webhook.type})`],
      ['Callback URI', h('span', { class: 'code' }, webhook.callbackUri)],
      ...kindFacts(webhook),
      ['Signing secret', webhook.signingSecret ? secret : null],
      ['Webhook id', h('code', {}, webhook.id)],
      ['Created', time(webhook.createdAt)],
    ])));
    drawActions();
  }

  async function reload() {
    webhook = await get(path);
    drawAbout();
  }

  function button(label, handler, cls) {
    const b = h('button', { type: 'button', class: cls || null });
    b.textContent = label;
    b.addEventListener('click', async () => {
      b.disabled = true;
      try { await handler(); } finally { b.disabled = false; }
    });
    return b;
  }

  async function verify() {
    showResult(h('p', { class: 'muted' }, 'Sending the challenge…'));
    try {
      const data = await post(`${path}/verify`);
      showResult(verifyResult(true, data));
    } catch (e) {
      if (e.status === 422 && e.body) showResult(verifyResult(false, e.body, e.body.reason));
      else failure('Verification could not be sent', e);
    }
    await reload();
    changed();
  }

  async function sendTest() {
    try {
      const { deliveryId } = await post(`${path}/test`);
      showResult(h('div', { class: 'alert ok', role: 'status', tabindex: '-1' }, 'Test payload queued. ',
        h('a', { href: `#/deliveries/${encodeURIComponent(deliveryId)}` }, 'Open the test delivery'), '.'));
      changed();
    } catch (e) {
      failure('The test payload was not sent', e);
    }
  }

  async function setEnabled(enable) {
    try {
      await post(`${path}/${enable ? 'enable' : 'disable'}`);
      notify(enable ? 'Webhook enabled.' : 'Webhook disabled.');
      fill(result);
      await reload();
    } catch (e) {
      failure(enable ? 'Not enabled' : 'Not disabled', e);
    }
  }

  async function rotate() {
    try {
      const answer = await post(`${path}/rotate-secret`);
      showResult(h('div', { class: 'alert ok', role: 'status', tabindex: '-1' },
        'New signing secret: ', h('code', {}, answer.signingSecret),
        `. The previous one keeps signing beside it until ${time(answer.previousSecretExpiresAt)}.`));
      await reload();
    } catch (e) {
      failure('The secret was not rotated', e);
    }
  }

  function confirmDelete() {
    const yes = button('Delete webhook', async () => {
      try {
        await del(path);
        notify(`Webhook “${webhook.name}” deleted.`);
        location.hash = '#/webhooks';
      } catch (e) {
        failure('Not deleted', e);
      }
    }, 'danger');
    showResult(h('div', { class: 'alert', role: 'alert' },
      h('p', {}, `Delete “${webhook.name}”? Its subscriptions end; its delivery log stays.`),
      h('div', { class: 'actions' }, yes, button('Keep it', async () => fill(result), 'secondary'))));
    yes.focus();
  }

  function drawActions() {
    fill(actions,
      button('Verify', verify),
      button('Send test', sendTest, 'secondary'),
      // An unverified webhook is enabled by passing verification, not by hand.
      webhook.status === 'enabled' ? button('Disable', () => setEnabled(false), 'secondary') : null,
      webhook.status === 'disabled' ? button('Enable', () => setEnabled(true), 'secondary') : null,
      button('Rotate secret', rotate, 'secondary'),
      button('Delete', async () => confirmDelete(), 'danger'));
  }

  drawAbout();
  const panel = statsPanel({ webhookId: webhook.id });
  const subscriptions = await subscriptionsSection(webhook, failure);
  const log = deliveryLog(webhook.id);

  fill(main, heading, about, actions, result, panel.element, subscriptions, log.element);
  return () => { panel.stop(); log.stop(); };
}

/** Subscribed vehicles, with subscribe and unsubscribe. */
async function subscriptionsSection(webhook, failure) {
  const section = h('section', { 'aria-labelledby': 'subs-heading' });
  const base = `/api/v1/webhooks/${encodeURIComponent(webhook.id)}/subscriptions`;

  async function draw() {
    const [{ vehicles: subs, paging }, { vehicles }] = await Promise.all([
      get(`${base}?limit=200`), get('/api/v1/vehicles?limit=1000'),
    ]);
    const subscribed = new Set(subs.map((s) => s.vehicleId));
    const byId = new Map(vehicles.map((v) => [v.id, v]));
    const name = (id) => { const v = byId.get(id); return v ? `${v.make} ${v.model} ${v.year} (${id})` : id; };
    const rows = subs.map((s) => h('tr', {},
      h('td', {}, h('a', { href: `#/vehicles/${encodeURIComponent(s.vehicleId)}` }, name(s.vehicleId))),
      h('td', {}, time(s.subscribedAt)),
      h('td', {}, h('button', { type: 'button', class: 'secondary', 'aria-label': `Unsubscribe ${name(s.vehicleId)}`, onclick: async () => {
        try {
          await del(`/v2.0/vehicles/${encodeURIComponent(s.vehicleId)}/webhooks/${encodeURIComponent(webhook.id)}`);
          notify('Vehicle unsubscribed.');
          await draw();
        } catch (e) { failure('Not unsubscribed', e); }
      } }, 'Unsubscribe'))));
    const candidates = vehicles.filter((v) => !subscribed.has(v.id));
    const select = h('select', {}, candidates.map((v) => h('option', { value: v.id }, name(v.id))));
    const pick = field('Vehicle to subscribe', select);
    const form = h('form', { class: 'subscribe' }, pick.wrap, h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Subscribe')));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        await post(base, { vehicleId: select.value });
        notify('Vehicle subscribed.');
        await draw();
        changed();
      } catch (e) { failure('Not subscribed', e); }
    });
    fill(section,
      h('h2', { id: 'subs-heading' }, `Subscribed vehicles (${paging.count})`),
      subs.length ? table('Subscribed vehicles', ['Vehicle', 'Subscribed', ''], rows) : h('p', { class: 'muted' }, 'No vehicle is subscribed yet.'),
      candidates.length ? form : h('p', { class: 'hint' }, vehicles.length ? 'Every vehicle is subscribed.' : 'No vehicles yet: add them with the API (POST /api/v1/vehicles) or the simulator.'));
  }
  await draw();
  return section;
}

/** The delivery log with its filters, kept fresh while the page is open. */
export function deliveryLog(webhookId) {
  const statusSelect = h('select', {}, ['', 'pending', 'succeeded', 'failed'].map((s) => h('option', { value: s }, s || 'any')));
  const vehicleInput = h('input', { type: 'text', autocomplete: 'off', placeholder: 'vehicle id' });
  const statusField = field('Status', statusSelect);
  const vehicleField = field('Vehicle', vehicleInput, 'Only deliveries that speak of this vehicle.');
  // Not a live region: it refreshes every few seconds and would talk over everything.
  const body = h('div');
  const pager = h('div', { class: 'actions' });
  const element = h('section', { 'aria-labelledby': 'log-heading', class: 'delivery-log' },
    h('h2', { id: 'log-heading' }, 'Delivery log'),
    h('form', { class: 'filters', role: 'search', onsubmit: (e) => { e.preventDefault(); offset = 0; load(); } },
      h('div', { class: 'choices' }, statusField.wrap, vehicleField.wrap),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'secondary' }, 'Apply filters'))),
    body, pager);
  let offset = 0;
  let timer = null;
  let stopped = false;

  async function load() {
    clearTimeout(timer);
    try {
      const q = query({ status: statusSelect.value, vehicleId: vehicleInput.value.trim(), limit: LOG_PAGE, offset });
      const { deliveries, paging } = await get(`/api/v1/webhooks/${encodeURIComponent(webhookId)}/deliveries${q}`);
      if (stopped) return;
      const rows = deliveries.map((d) => h('tr', { 'data-delivery': d.id },
        h('td', {}, h('a', { href: `#/deliveries/${encodeURIComponent(d.id)}` }, time(d.createdAt))),
        h('td', {}, d.eventType),
        h('td', {}, d.purpose),
        h('td', {}, badge(d.status)),
        h('td', { class: 'num' }, d.attemptCount),
        h('td', {}, d.lastError || '')));
      fill(body, deliveries.length
        ? table('Deliveries, newest first', ['Created', 'Event', 'Purpose', 'Status', { label: 'Attempts', num: true }, 'Last error'], rows)
        : h('p', { class: 'muted' }, 'No deliveries match.'));
      const older = h('button', { type: 'button', class: 'secondary', disabled: offset + LOG_PAGE >= paging.count, onclick: () => { offset += LOG_PAGE; load(); } }, 'Older');
      const newer = h('button', { type: 'button', class: 'secondary', disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - LOG_PAGE); load(); } }, 'Newer');
      fill(pager, newer, older, h('span', { class: 'hint' }, paging.count ? `${offset + 1}–${Math.min(offset + LOG_PAGE, paging.count)} of ${paging.count}` : ''));
    } catch (e) {
      if (!stopped) fill(body, h('div', { class: 'alert', role: 'alert' }, `The log could not be loaded: ${e.message}`));
    } finally {
      if (!stopped) timer = setTimeout(load, LOG_POLL_MS);
    }
  }
  statusSelect.addEventListener('change', () => { offset = 0; load(); });
  const onChanged = () => load();
  window.addEventListener('fleethook:changed', onChanged);
  load();
  return {
    element,
    stop() {
      stopped = true;
      clearTimeout(timer);
      window.removeEventListener('fleethook:changed', onChanged);
    },
  };
}
