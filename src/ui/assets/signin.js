// Signing in with a pasted API key, kept in this tab's sessionStorage.

import { KEY_ITEM, h, main, request, setTitle } from './core.js';

let next = () => {};

// What a successful sign-in shows next (app.js: the current route).
export function afterSignIn(f) { next = f; }

export function signOut(message) {
  sessionStorage.removeItem(KEY_ITEM);
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
      await request('/ui/api/models?limit=1', k);
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
