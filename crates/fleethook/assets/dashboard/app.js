// The dashboard's shell: hash routes to views, sign-in state, and focus on the new page's
// heading after each navigation so keyboard and screen-reader users land on what changed.

import { session, whenUnauthorized } from './api.js';
import { fill, h, notify } from './dom.js';
import * as signin from './signin.js';
import * as webhooks from './webhooks.js';
import * as wizard from './wizard.js';
import * as webhook from './webhook.js';
import * as delivery from './delivery.js';
import * as vehicles from './vehicles.js';

const ROUTES = [
  [/^#\/webhooks\/new$/, (main) => wizard.render(main), 'webhooks'],
  [/^#\/webhooks\/([^/]+)$/, (main, [id]) => webhook.render(main, decodeURIComponent(id)), 'webhooks'],
  [/^#\/webhooks$/, (main) => webhooks.render(main), 'webhooks'],
  [/^#\/deliveries\/([^/]+)$/, (main, [id]) => delivery.render(main, decodeURIComponent(id)), 'webhooks'],
  [/^#\/vehicles\/([^/]+)$/, (main, [id]) => vehicles.renderOne(main, decodeURIComponent(id)), 'vehicles'],
  [/^#\/vehicles$/, (main) => vehicles.renderList(main), 'vehicles'],
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
let cleanup = null;
let signInMessage = null;
// Whether the sign-in page is showing: it reports a refused token itself.
let onSignIn = false;

function markNav(section) {
  for (const a of nav.querySelectorAll('a')) {
    if (a.getAttribute('href') === `#/${section}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function route() {
  const hash = location.hash || '#/webhooks';
  // In-page anchors such as the skip link are not routes.
  if (!hash.startsWith('#/')) return;
  if (cleanup) { cleanup(); cleanup = null; }
  notify('');
  onSignIn = !session.token();
  if (onSignIn) {
    nav.hidden = true;
    document.title = 'Sign in · fleethook';
    const message = signInMessage;
    signInMessage = null;
    await signin.render(main, { message });
    return;
  }
  nav.hidden = false;
  if (hash === '#/signin') {
    location.replace('#/webhooks');
    return;
  }
  const found = ROUTES.find(([pattern]) => pattern.test(hash));
  if (!found) {
    fill(main, h('h1', { tabindex: '-1' }, 'Page not found'),
      h('p', {}, 'There is no such page. ', h('a', { href: '#/webhooks' }, 'Go to the webhooks.')));
    main.querySelector('h1').focus();
    return;
  }
  const [pattern, view, section] = found;
  markNav(section);
  fill(main, h('p', { class: 'muted' }, 'Loading…'));
  try {
    cleanup = (await view(main, hash.match(pattern).slice(1))) || null;
  } catch (e) {
    fill(main, h('h1', { tabindex: '-1' }, 'Something went wrong'),
      h('div', { class: 'alert', role: 'alert' }, e.message || String(e)));
  }
  const heading = main.querySelector('h1');
  document.title = `${heading ? heading.textContent : 'fleethook'} · fleethook`;
  if (heading && !main.contains(document.activeElement)) {
    heading.setAttribute('tabindex', '-1');
    heading.focus();
  }
}

function signOut(message) {
  session.signOut();
  signInMessage = message || null;
  if (location.hash === '#/signin') route();
  else location.hash = '#/signin';
}

whenUnauthorized((error) => {
  if (!onSignIn) signOut(`You were signed out: the management token was refused (${error.message}).`);
});
document.getElementById('sign-out').addEventListener('click', () => signOut('Signed out.'));
window.addEventListener('hashchange', route);
route();
