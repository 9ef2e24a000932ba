// Your API keys (#/keys): the ones this key may see (your own; a team
// admin's, the team's), a new one with a label (its secret shown this once),
// and revoking one after an in-page confirmation.

import { api, errorBox, h, main, send, setTitle, snippet, when, announce } from './core.js';
import { signOut, whoAmI } from './signin.js';

const KEYS = '/api/modelreg/v1/keys';

export async function renderKeys() {
  setTitle('API keys');
  const created = h('div', { id: 'new-key' });
  const list = h('div', { 'aria-busy': 'true' }, h('p', { class: 'desc' }, 'Loading…'));
  const label = h('input', { id: 'key-label', type: 'text', name: 'label', maxlength: '200', autocomplete: 'off', placeholder: 'laptop, CI, notebook…' });
  const formStatus = h('div', { id: 'key-form-status' });
  const form = h('form', { id: 'key-form', class: 'key-form', novalidate: true },
    h('div', { class: 'field grow' }, h('label', { for: 'key-label' }, 'Label'), label),
    h('button', { type: 'submit', class: 'primary' }, 'Create key'));
  main.replaceChildren(h('h1', {}, 'API keys'),
    h('p', { class: 'lead' }, 'Keys act as you on every route: the UI, the CLI and the clients of each door. Create one per machine or tool, and revoke it when it is done.'),
    h('section', { class: 'panel key-create', 'aria-labelledby': 'create-h' }, h('h2', { id: 'create-h' }, 'Create a key'), form, formStatus, created),
    h('h2', { id: 'keys-h' }, 'Keys'), list);

  let me;
  const load = async () => {
    let keys;
    try { [me, keys] = await Promise.all([whoAmI(), api(KEYS)]); } catch (e) { if (e.status !== 401) list.replaceChildren(errorBox(e)); return; }
    list.removeAttribute('aria-busy');
    list.replaceChildren(keysTable(keys, me, load));
  };

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    formStatus.replaceChildren();
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      const key = await send('POST', KEYS, { label: label.value.trim() });
      label.value = '';
      created.replaceChildren(secretPanel(key));
      announce(`Created key ${key.label || key.id}. Copy its secret now.`);
      await load();
    } catch (e) {
      if (e.status !== 401) formStatus.replaceChildren(errorBox(e));
    } finally {
      button.disabled = false;
    }
  });
  await load();
}

// The secret of a key just made: the one time anyone sees it.
function secretPanel(key) {
  return h('div', { class: 'secret', role: 'status' },
    h('p', {}, h('strong', {}, 'Copy this key now: you will not see it again. '),
      'The registry keeps only its hash; if you lose it, revoke it and create another.'),
    snippet(`Secret of key ${key.label || key.id}`, key.secret),
    h('p', { class: 'desc' }, 'Use it as ', h('code', {}, 'Authorization: Bearer …'), ', or ', h('code', {}, 'export MODELREG_TOKEN=…'), ' for the CLI.'));
}

function keysTable(keys, me, reload) {
  if (!keys.length) return h('p', { class: 'desc', id: 'no-keys' }, 'No keys.');
  const mine = me.key ? me.key.id : null;
  const rows = [...keys].reverse().map((k) => {
    const revoked = Boolean(k.revoked_at);
    const actions = h('td', { class: 'key-actions' });
    const row = h('tr', { 'data-id': k.id, class: k.id === mine ? 'current' : null },
      h('td', {}, k.label ? k.label : h('span', { class: 'desc' }, '(no label)'), k.id === mine ? [' ', h('span', { class: 'badge this-key' }, 'this tab')] : null,
        h('div', { class: 'desc' }, h('code', {}, k.id))),
      h('td', {}, k.username),
      h('td', { class: 'hide-narrow' }, when(k.created_at)),
      h('td', {}, revoked ? ['revoked ', when(k.revoked_at)] : 'active'),
      actions);
    if (!revoked) {
      const revoke = h('button', { type: 'button', class: 'revoke', 'aria-label': `Revoke key ${k.label || k.id}` }, 'Revoke');
      revoke.addEventListener('click', () => confirmRevoke(actions, k, k.id === mine, reload));
      actions.append(revoke);
    }
    return row;
  });
  return h('div', { class: 'table-wrap' }, h('table', { id: 'keys' },
    h('thead', {}, h('tr', {}, ['Label', 'User', 'Created', 'State', ''].map((c) => h('th', { scope: 'col', class: c === 'Created' ? 'hide-narrow' : null }, c)))),
    h('tbody', {}, rows)));
}

// "Really revoke? [Revoke] [Cancel]" in the row itself.
function confirmRevoke(cell, k, mine, reload) {
  const before = [...cell.childNodes];
  const yes = h('button', { type: 'button', class: 'danger confirm-revoke' }, 'Revoke');
  const no = h('button', { type: 'button', class: 'cancel-revoke' }, 'Cancel');
  const status = h('div');
  cell.replaceChildren(h('div', { class: 'confirm', role: 'alert' },
    h('p', {}, mine ? 'This is the key this tab is signed in with: revoking it signs you out. Revoke it?'
      : `Revoke ${k.label || 'this key'}? Anything using it stops working at once.`),
    yes, ' ', no, status));
  no.addEventListener('click', () => { cell.replaceChildren(...before); });
  no.focus();
  yes.addEventListener('click', async () => {
    yes.disabled = true;
    try {
      await send('DELETE', `/api/modelreg/v1/keys/${encodeURIComponent(k.id)}`);
    } catch (e) {
      if (e.status !== 401) status.replaceChildren(errorBox(e));
      yes.disabled = false;
      return;
    }
    if (mine) { signOut('You revoked the key this tab was signed in with. Sign in with another key.'); return; }
    announce(`Revoked key ${k.label || k.id}.`);
    await reload();
  });
}
