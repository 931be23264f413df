// Sign-in: the management token is checked against the API before it is kept, so a wrong
// token is refused here with the API's own words rather than failing later on another page.

import { get, session } from './api.js';
import { h, fill, field } from './dom.js';

export async function render(main, { message } = {}) {
  const status = h('div', { id: 'signin-status' });
  if (message) fill(status, h('div', { class: 'alert', role: 'alert' }, message));
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'off', spellcheck: 'false', required: true });
  const tokenField = field('Management token', input, 'The token fleethook printed when it first started (amt_…), or one from `fleethook apps create`.');
  const button = h('button', { type: 'submit' }, 'Sign in');

  const form = h('form', { novalidate: true }, tokenField.wrap, h('div', { class: 'actions' }, button));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) {
      input.setAttribute('aria-invalid', 'true');
      fill(status, h('div', { class: 'alert', role: 'alert' }, 'Enter the management token to sign in.'));
      input.focus();
      return;
    }
    button.disabled = true;
    fill(status, h('p', { class: 'muted' }, 'Checking the token…'));
    session.signIn(token);
    try {
      await get('/api/v1/webhooks');
      location.hash = '#/webhooks';
    } catch (e) {
      session.signOut();
      input.setAttribute('aria-invalid', 'true');
      const reason = e.status === 401
        ? `That management token was not accepted (${e.message}). Check that you copied the whole token.`
        : `Could not sign in: ${e.message}`;
      fill(status, h('div', { class: 'alert', role: 'alert' }, reason));
      input.focus();
    } finally {
      button.disabled = false;
    }
  });

  fill(main,
    h('h1', { tabindex: '-1' }, 'Sign in'),
    h('p', {}, 'The dashboard manages this fleethook server through its management API. The token stays in this browser tab only and is forgotten when the tab closes.'),
    status,
    h('div', { class: 'panel' }, form));
  input.focus();
}
