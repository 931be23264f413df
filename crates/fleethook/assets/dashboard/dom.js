// Small DOM helpers. Text always goes in as text nodes, never as HTML: payloads and names come
// from outside, and the page holds a management token.

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'for') {
      el.htmlFor = value;
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, value);
    }
  }
}

/** An HTML element: h('a', {href: '#/x'}, 'text', child, [more]). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

let uid = 0;
/** A fresh id for label/field pairs. */
export function nextId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** `2024-09-20 15:45:00 UTC` from an ISO time: platform times are UTC, and so are schedules. */
export function time(iso) {
  if (!iso) return '—';
  return `${iso.replace('T', ' ').replace(/\.\d+Z$/, '').replace(/Z$/, '')} UTC`;
}

/** Milliseconds for people: `0.4 ms`, `120 ms`, `2.3 s`. */
export function ms(value) {
  if (value === null || value === undefined) return '—';
  if (value >= 1000) return `${(value / 1000).toFixed(1)} s`;
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`;
}

export function percent(rate) {
  if (rate === null || rate === undefined) return 'no attempts';
  return `${(rate * 100).toFixed(rate === 1 || rate === 0 ? 0 : 1)} %`;
}

/** A status pill; the word is the information, the colour only repeats it. */
export function badge(status) {
  return h('span', { class: `badge ${status}` }, status);
}

/** A message that screen readers announce at once. */
export function alertBox(message, title) {
  return h('div', { class: 'alert', role: 'alert' }, title ? h('strong', {}, `${title}: `) : null, message);
}

/** A definition list of [term, value] pairs, skipping empty values. */
export function facts(pairs) {
  return h('dl', { class: 'facts' },
    pairs.filter(([, v]) => v !== undefined && v !== null && v !== '')
      .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

/** A table in a scrolling wrapper (wide tables scroll sideways on narrow screens). */
export function table(caption, headers, rows) {
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col', class: x.num ? 'num' : null }, x.label ?? x)))),
      h('tbody', {}, rows)));
}

/** A labelled form field: returns {wrap, input}. `control` is an input or select element. */
export function field(label, control, hint) {
  const id = control.id || nextId('f');
  control.id = id;
  let hintEl = null;
  if (hint) {
    hintEl = h('span', { class: 'hint', id: `${id}-hint` }, hint);
    control.setAttribute('aria-describedby', hintEl.id);
  }
  return { wrap: h('div', { class: 'field' }, h('label', { for: id }, label), hintEl, control), input: control };
}

/** Pretty JSON for a `<pre>`; strings that are not JSON stay as they are. */
export function pretty(value) {
  if (typeof value === 'string') {
    try { return JSON.stringify(JSON.parse(value), null, 2); } catch { return value; }
  }
  return JSON.stringify(value, null, 2);
}

/** Tells every live panel that something changed (a test sent, a delivery retried). */
export function changed() {
  window.dispatchEvent(new CustomEvent('fleethook:changed'));
}

/** Shows a short confirmation in the page's status region. */
export function notify(message) {
  const el = document.getElementById('notice');
  if (el) el.textContent = message;
}
