// The create-webhook wizard: pick a kind, say where to deliver, then the kind's own fields.
// Choices come from the catalog endpoint (the same lists the API validates against), and the
// form is checked by the API alone: its message is shown beside the field it names.

import { loadCatalog, post } from './api.js';
import { h, fill, field, nextId, notify } from './dom.js';

const KINDS = [
  ['scheduled', 'Scheduled', 'v2.0 endpoint data for each subscribed vehicle at every cadence boundary (UTC).'],
  ['dynamic', 'Dynamic', 'v2.0 battery, charge and location hourly, every 30 minutes while an EV is plugged in.'],
  ['eventBased', 'Event-based', 'v3.0 diagnostics: trouble codes or system alerts, when they change.'],
  ['vehicleState', 'Vehicle state', 'v4.0 signals whenever a trigger signal changes, plus vehicle errors.'],
];
const WEEKDAYS = ['MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY', 'SUNDAY'];
const EVENT_LABELS = {
  DIAGNOSTIC_TROUBLE_CODES: 'Diagnostic trouble codes (DTCs become active or clear)',
  DIAGNOSTIC_SYSTEM_ALERTS: 'System alerts (a system goes from OK to ALERT or back)',
};

function checkboxes(name, options, checked = []) {
  return h('div', { class: 'choices' }, options.map(([value, label]) =>
    h('label', {}, h('input', { type: 'checkbox', name, value, checked: checked.includes(value) }), label)));
}

function radios(name, options, checked) {
  return h('div', { class: 'choices' }, options.map(([value, label]) =>
    h('label', {}, h('input', { type: 'radio', name, value, checked: value === checked }), label)));
}

/** Signals picked from the catalog one group at a time; the picks show as removable chips. */
function signalPicker(title, hint, groups) {
  const selected = new Set();
  const groupSelect = h('select', { id: nextId('group') }, groups.map((g) => h('option', { value: g.group }, g.group)));
  const list = h('div', { class: 'choices' });
  const chips = h('ul', { class: 'chips', 'aria-label': `Selected ${title.toLowerCase()}` });

  function drawChips() {
    fill(chips, [...selected].map((code) => h('li', {},
      h('button', { type: 'button', 'aria-label': `Remove ${code}`, onclick: () => { selected.delete(code); drawChips(); drawList(); } }, `${code} ✕`))));
    if (!selected.size) chips.append(h('li', { class: 'hint' }, 'None selected yet.'));
  }
  function drawList() {
    const group = groups.find((g) => g.group === groupSelect.value) || groups[0];
    fill(list, group.signals.map((sig) => {
      const box = h('input', { type: 'checkbox', value: sig.code, checked: selected.has(sig.code) });
      box.addEventListener('change', () => {
        if (box.checked) selected.add(sig.code); else selected.delete(sig.code);
        drawChips();
      });
      return h('label', {}, box, h('span', {}, sig.name, ' ', h('span', { class: 'hint code' }, sig.code)));
    }));
  }
  groupSelect.addEventListener('change', drawList);
  drawList();
  drawChips();
  const element = h('fieldset', {},
    h('legend', {}, title),
    h('p', { class: 'hint' }, hint),
    h('div', { class: 'field' }, h('label', { for: groupSelect.id }, `${title}: signal group`), groupSelect),
    list, chips);
  return { element, selected };
}

export async function render(main) {
  const catalog = await loadCatalog();
  const inputs = {};
  const status = h('div');

  const kindSet = h('fieldset', { 'data-field': 'type' },
    h('legend', {}, '1. Kind of webhook'),
    h('div', { class: 'kinds' }, KINDS.map(([value, label, desc]) =>
      h('label', {}, h('input', { type: 'radio', name: 'type', value }), h('span', {}, h('strong', {}, label), h('span', { class: 'hint' }, desc))))));

  inputs.name = field('Name', h('input', { type: 'text', name: 'name', autocomplete: 'off' }), 'For you: shown in the dashboard and in v4.0 payloads.');
  inputs.callbackUri = field('Callback URI', h('input', { type: 'url', name: 'callbackUri', autocomplete: 'off', placeholder: 'https://example.com/webhooks/fleethook' }), 'Where payloads are POSTed. It must answer the verification challenge.');
  const where = h('fieldset', {}, h('legend', {}, '2. Where to deliver'), inputs.name.wrap, inputs.callbackUri.wrap);

  // scheduled
  inputs.frequency = field('Frequency', h('select', { name: 'frequency' }, catalog.frequencies.map((f) => h('option', { value: f, selected: f === 'hourly' }, f))));
  inputs.interval = field('Interval', h('input', { type: 'number', name: 'interval', min: '1', value: '1' }), 'Every N units of the frequency.');
  inputs.weekday = field('Day of the week', h('select', { name: 'weekday' }, WEEKDAYS.map((d) => h('option', { value: d }, d.toLowerCase()))));
  inputs.monthday = field('Day of the month', h('input', { type: 'number', name: 'monthday', min: '1', max: '31', value: '1' }));
  inputs.time = field('Time (UTC)', h('input', { type: 'time', name: 'time', value: '00:00' }));
  const endpoints = h('fieldset', { 'data-field': 'endpoints' }, h('legend', {}, 'Endpoints'),
    checkboxes('endpoints', catalog.endpoints.map((p) => [p, p]), ['/battery', '/location']));
  const units = h('fieldset', { 'data-field': 'units' }, h('legend', {}, 'Units'),
    radios('units', catalog.units.map((u) => [u, u]), 'metric'));
  const scheduled = h('div', {}, inputs.frequency.wrap, inputs.interval.wrap, inputs.weekday.wrap, inputs.monthday.wrap, inputs.time.wrap, endpoints, units);
  const cadence = () => {
    const f = inputs.frequency.input.value;
    inputs.weekday.wrap.hidden = f !== 'weekly';
    inputs.monthday.wrap.hidden = f !== 'monthly';
    inputs.time.wrap.hidden = !['daily', 'weekly', 'monthly'].includes(f);
  };
  inputs.frequency.input.addEventListener('change', cadence);
  cadence();

  // dynamic
  const dynamic = h('p', {}, 'Dynamic webhooks always deliver /battery, /charge and /location: hourly from subscription, every 30 minutes while an EV is plugged in. Nothing to choose.');

  // eventBased
  const events = h('fieldset', { 'data-field': 'events' }, h('legend', {}, 'Event type'),
    h('p', { class: 'hint' }, 'One per webhook: create a second webhook for the other.'),
    radios('events', catalog.events.map((e) => [e, EVENT_LABELS[e] || e]), null));

  // vehicleState
  const triggers = signalPicker('Trigger signals', 'A change in any of these sends a delivery.', catalog.signalGroups);
  triggers.element.dataset.field = 'triggers';
  const data = signalPicker('Data signals', 'Sent along with every delivery, but changes do not trigger one.', catalog.signalGroups);
  data.element.dataset.field = 'data';
  inputs.errorCallbackUri = field('Error callback URI (optional)', h('input', { type: 'url', name: 'errorCallbackUri', autocomplete: 'off' }), 'VEHICLE_ERROR payloads go here; empty sends them to the callback URI.');
  const vehicleState = h('div', {}, triggers.element, data.element, inputs.errorCallbackUri.wrap);

  const sections = { scheduled, dynamic, eventBased: events, vehicleState };
  const what = h('fieldset', {}, h('legend', {}, '3. What to deliver, and when'),
    h('p', { class: 'hint', id: 'pick-kind' }, 'Pick a kind first.'), Object.values(sections));
  const showKind = () => {
    const kind = kindSet.querySelector('input:checked')?.value;
    what.querySelector('#pick-kind').hidden = Boolean(kind);
    for (const [k, el] of Object.entries(sections)) el.hidden = k !== kind;
  };
  kindSet.addEventListener('change', showKind);
  showKind();

  function body() {
    const kind = kindSet.querySelector('input:checked')?.value;
    const b = { name: inputs.name.input.value, type: kind, callbackUri: inputs.callbackUri.input.value };
    if (kind === 'scheduled') {
      const f = inputs.frequency.input.value;
      const schedule = { frequency: f, interval: Number(inputs.interval.input.value) || inputs.interval.input.value };
      if (f === 'weekly') schedule.day = inputs.weekday.input.value;
      if (f === 'monthly') schedule.day = Number(inputs.monthday.input.value) || inputs.monthday.input.value;
      if (['daily', 'weekly', 'monthly'].includes(f) && inputs.time.input.value) schedule.time = inputs.time.input.value;
      b.schedule = schedule;
      b.endpoints = [...endpoints.querySelectorAll('input:checked')].map((i) => i.value);
      b.units = units.querySelector('input:checked')?.value;
    } else if (kind === 'eventBased') {
      const picked = events.querySelector('input:checked');
      b.events = picked ? [picked.value] : [];
    } else if (kind === 'vehicleState') {
      b.triggers = [...triggers.selected];
      b.data = [...data.selected];
      if (inputs.errorCallbackUri.input.value.trim()) b.errorCallbackUri = inputs.errorCallbackUri.input.value;
    }
    return b;
  }

  /** The control an API message is about: its first word names the field (`schedule.interval must …`). */
  function controlFor(message) {
    const path = message.split(/[\s:]/)[0];
    const [head, sub] = path.split(/[.[]/);
    if (head === 'schedule') {
      return { interval: inputs.interval, day: inputs.frequency.input.value === 'weekly' ? inputs.weekday : inputs.monthday, time: inputs.time }[sub]?.input || inputs.frequency.input;
    }
    if (inputs[head]) return inputs[head].input;
    return form.querySelector(`[data-field="${head}"]`);
  }

  const submit = h('button', { type: 'submit' }, 'Create webhook');
  const form = h('form', { novalidate: true, 'aria-describedby': 'wizard-status' },
    kindSet, where, what, h('div', { class: 'actions' }, submit, h('a', { class: 'button secondary', href: '#/webhooks' }, 'Cancel')));
  status.id = 'wizard-status';

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    for (const el of form.querySelectorAll('.field-error')) el.remove();
    submit.disabled = true;
    try {
      const created = await post('/api/v1/webhooks', body());
      notify(`Webhook “${created.name}” created. Verify it to start deliveries.`);
      location.hash = `#/webhooks/${encodeURIComponent(created.id)}`;
    } catch (e) {
      const message = e.message;
      const control = e.status === 400 ? controlFor(message) : null;
      fill(status, h('div', { class: 'alert', role: 'alert', tabindex: '-1' }, h('strong', {}, 'The webhook was not created: '), message));
      if (control) {
        control.setAttribute('aria-invalid', 'true');
        const note = h('span', { class: 'field-error' }, message);
        (control.closest('.field') || control).append(note);
        (control.matches('input, select') ? control : control.querySelector('input, select, button') || status.firstChild).focus();
      } else {
        status.firstChild.focus();
      }
    } finally {
      submit.disabled = false;
    }
  });

  fill(main, h('h1', {}, 'New webhook'), status, form);
}
