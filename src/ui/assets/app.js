// modelreg's web UI. No framework and no build step: the binary serves
// these modules as they are (src/ui/mod.rs lists them). This one routes the
// fragment (#/models/…) to a view.

import { key, main, whenUnauthorized } from './core.js';
import { afterSignIn, renderSignIn, showWho, signOut } from './signin.js';
import { renderKeys } from './keys.js';
import { renderList } from './list.js';
import { renderModel } from './model.js';
import { renderCompare } from './compare.js';
import { renderMachine, renderMachines } from './machines.js';

// Shareable URLs live in the fragment: #/?q=…, #/models/<name or id>,
// #/models/<name or id>/versions/<handle>, …/compare/<handle>/<handle> (a
// handle: number, label, @alias or latest), #/machines, #/machines/<id>, #/keys.
function parseHash() {
  const raw = window.location.hash.replace(/^#/, '') || '/';
  const [path, query] = raw.split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query || '') };
}

function navCurrent(section) {
  for (const [id, name] of [['nav-models', 'models'], ['nav-machines', 'machines'], ['nav-keys', 'keys']]) {
    const a = document.getElementById(id);
    if (name === section) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
}

let lastView = '';
function route() {
  if (!key()) { renderSignIn(); return; }
  document.getElementById('sign-out').hidden = false;
  showWho();
  const { parts, params } = parseHash();
  const view = parts.slice(0, 2).join('/');
  const moved = view !== lastView;
  lastView = view;
  if (parts[0] === 'models' && parts[1] && parts[2] === 'compare' && parts[3] && parts[4]) {
    navCurrent('models');
    renderCompare(parts[1], parts[3], parts[4]);
  } else if (parts[0] === 'models' && parts[1]) {
    navCurrent('models');
    renderModel(parts[1], parts[2] === 'versions' && parts[3] ? parts[3] : null);
  } else if (parts[0] === 'keys') {
    navCurrent('keys');
    renderKeys();
  } else if (parts[0] === 'machines') {
    navCurrent('machines');
    if (parts[1]) renderMachine(parts[1]); else renderMachines();
  } else {
    navCurrent('models');
    renderList(params);
  }
  if (moved) main.focus({ preventScroll: true });
}

whenUnauthorized(signOut);
afterSignIn(route);
document.getElementById('sign-out').addEventListener('click', () => { signOut(); window.location.hash = '#/'; });
window.addEventListener('hashchange', route);
route();
