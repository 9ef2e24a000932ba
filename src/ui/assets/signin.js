// Signing in with a pasted API key, kept in this tab's sessionStorage.

import { KEY_ITEM, api, h, key, main, request, setTitle } from './core.js';

let next = () => {};

// Who the signed-in key is (GET /api/modelreg/v1/me), fetched once per key.
let me = null;
export async function whoAmI() {
  const k = key();
  if (me && me.key === k) return me.answer;
  const answer = await api('/api/modelreg/v1/me');
  me = { key: k, answer };
  return answer;
}

// The header's "USERNAME · TEAM" (and "admin" when so).
export async function showWho() {
  const who = document.getElementById('who');
  try {
    const m = await whoAmI();
    if (!key()) return;
    who.textContent = [m.user.username, m.team.name, m.user.admin ? 'admin' : null].filter(Boolean).join(' · ');
    who.title = m.key ? `Key: ${m.key.label || m.key.id}` : '';
  } catch (_) { /* a 401 already signed out; anything else leaves the header as it was */ }
}

// What a successful sign-in shows next (app.js: the current route).
export function afterSignIn(f) { next = f; }

export function signOut(message) {
  sessionStorage.removeItem(KEY_ITEM);
  me = null;
  renderSignIn(message);
}

export function renderSignIn(message) {
  setTitle('Sign in');
  document.getElementById('sign-out').hidden = true;
  document.getElementById('who').textContent = '';
  const input = h('input', { id: 'key', type: 'password', name: 'key', autocomplete: 'off', required: true, 'aria-describedby': 'key-help' });
  const status = h('div', { id: 'signin-status' });
  if (message) status.append(h('p', { class: 'error', role: 'alert' }, message));
  const form = h('form', { id: 'signin-form', novalidate: true },
    h('label', { for: 'key' }, 'API key'),
    input,
    h('p', { id: 'key-help', class: 'desc' },
      'The key is kept in this tab only (sessionStorage) and sent as Authorization: Bearer. ',
      'A new server writes its first key to admin.key in its data directory; ',
      h('code', {}, 'modelreg keys create --user NAME'), ' makes more.'),
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
    status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const k = input.value.trim();
    status.replaceChildren();
    if (!k) {
      status.append(h('p', { class: 'error', role: 'alert' }, 'Paste an API key first.'));
      input.focus();
      return;
    }
    try {
      const answer = await (await request('/api/modelreg/v1/me', k)).json();
      me = { key: k, answer };
    } catch (e) {
      const text = e.status === 401
        ? `This key was not accepted (401 Unauthorized): ${e.message}. Check that you pasted the whole key.`
        : `Signing in failed: ${e.message}`;
      status.append(h('p', { class: 'error', role: 'alert', id: 'signin-error' }, text));
      input.select();
      return;
    }
    sessionStorage.setItem(KEY_ITEM, k);
    next();
  });
  main.replaceChildren(h('section', { class: 'signin', 'aria-labelledby': 'signin-h' },
    h('h1', { id: 'signin-h' }, 'Sign in to modelreg'), form));
  input.focus();
}
