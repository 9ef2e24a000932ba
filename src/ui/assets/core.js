// The page's toolkit: building DOM from text (`h`, `s`), talking to the
// server with the signed-in key (`request`, `api`), and the small formatters
// every view shares. Every value from the registry reaches the page through
// textContent or a text node, never as HTML: model names and descriptions
// are user input.

export const KEY_ITEM = 'modelreg.key';
export const main = document.getElementById('main');
export const live = document.getElementById('live');
export const ORIGIN = window.location.origin;

export function key() { return sessionStorage.getItem(KEY_ITEM); }

// What a 401 does (app.js sets it: back to the sign-in form). A hook rather
// than an import, so that this module depends on nothing of the page's.
let unauthorized = () => {};
export function whenUnauthorized(f) { unauthorized = f; }
export function keyRejected(e) { unauthorized(`The server no longer accepts this key: ${e.message}`); }

// h('a', {href: '#/x', class: 'y'}, 'text', child…): attributes are set one
// by one and strings become text nodes, so nothing is ever parsed as markup.
export function h(tag, props, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  append(e, kids);
  return e;
}

export function append(parent, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k == null || k === false) continue;
    parent.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return parent;
}

// replaceChildren, but skipping null/false as h() does: the DOM's own
// replaceChildren and append turn a null into the text "null".
export function fill(parent, ...kids) {
  parent.replaceChildren();
  return append(parent, kids);
}

export const SVG = 'http://www.w3.org/2000/svg';
export function s(tag, attrs, ...kids) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return append(e, kids);
}

export function announce(text) { live.textContent = text; }

// `body` is the error's JSON when it was JSON (a 409 for a shared name lists its candidates).
export class ApiError extends Error {
  constructor(status, message, body) { super(message); this.status = status; this.body = body || null; }
}

// The message a dialect's error body carries, whichever dialect answered.
export function messageOf(status, text) {
  try {
    const body = JSON.parse(text);
    const m = body.message || body.description || body.error || body.detail;
    if (m) return typeof m === 'string' ? m : JSON.stringify(m);
  } catch (_) { /* not JSON */ }
  return text ? text.slice(0, 300) : `HTTP ${status}`;
}

export async function request(path, useKey) {
  const k = useKey === undefined ? key() : useKey;
  let res;
  try {
    res = await fetch(path, { headers: { Authorization: `Bearer ${k}` }, cache: 'no-store', credentials: 'omit' });
  } catch (e) {
    throw new ApiError(0, `The server did not answer (${e.message}). Is modelreg still running?`);
  }
  if (!res.ok) {
    const text = await res.text();
    let body = null;
    try { body = JSON.parse(text); } catch (_) { /* not JSON */ }
    throw new ApiError(res.status, messageOf(res.status, text), body);
  }
  return res;
}

// A JSON read with the signed-in key; a 401 means the key stopped working
// (revoked, or the data directory changed), so the page asks for a new one.
export async function api(path) {
  try {
    return await (await request(path)).json();
  } catch (e) {
    if (e.status === 401) keyRejected(e);
    throw e;
  }
}

export async function apiText(path) {
  return (await request(path)).text();
}

// A write with the signed-in key: `body` (if any) goes as JSON; the answer's
// JSON, or null when it has none (204). A 401 signs out, as for `api`.
export async function send(method, path, body) {
  let res;
  try {
    res = await fetch(path, {
      method, cache: 'no-store', credentials: 'omit',
      headers: body === undefined ? { Authorization: `Bearer ${key()}` } : { Authorization: `Bearer ${key()}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, `The server did not answer (${e.message}). Is modelreg still running?`);
  }
  const text = await res.text();
  if (!res.ok) {
    const e = new ApiError(res.status, messageOf(res.status, text));
    if (e.status === 401) keyRejected(e);
    throw e;
  }
  return text ? JSON.parse(text) : null;
}

// --- formatting ---------------------------------------------------------

export function bytes(n) {
  if (n == null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n), u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

export function when(iso) {
  if (!iso) return '';
  const t = h('time', { datetime: iso, title: iso }, iso.replace('T', ' ').slice(0, 16) + ' UTC');
  return t;
}

export function badge(text, cls) { return h('span', { class: `badge ${cls || ''}` }, text); }
export function doorBadge(origin) {
  const names = { octomil: 'Octomil', datarobot: 'DataRobot', paperspace: 'Paperspace' };
  return badge(names[origin] || origin, `door-${origin}`);
}
export function statusBadge(status, label) {
  const st = String(status || 'unknown');
  return badge(label ? `${label}: ${st}` : st, `st-${st.replace(/[^A-Za-z_]/g, '')}`);
}

// Copies `text`, or else selects `target` for Ctrl+C; the button says which.
export function copyButton(label, text, target) {
  const button = h('button', { type: 'button', class: 'copy', 'aria-label': `Copy ${label}` }, 'Copy');
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = 'Copied';
    } catch (_) {
      const range = document.createRange();
      range.selectNodeContents(target);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      button.textContent = 'Selected: press Ctrl+C';
    }
    setTimeout(() => { button.textContent = 'Copy'; }, 2000);
  });
  return button;
}

// A heading, its Copy button beside it (never over it), and the code below.
export function snippet(label, code) {
  const pre = h('pre', { tabindex: '0' }, h('code', {}, code));
  return h('div', { class: 'snippet' }, h('div', { class: 'snippet-head' }, h('h3', {}, label), copyButton(label, code, pre)), pre);
}

// A sha256 (or any long hash) cut short on one line, whole in its title and
// in the DOM (selecting it copies all of it), with a Copy button.
export function hash(text, label) {
  const code = h('code', { class: 'sha', title: text }, text);
  return h('span', { class: 'hash' }, code, copyButton(label || 'sha256', text, code));
}

// Marks a table to become stacked cards on a phone (app.css, `table.stack`):
// each cell is given its column's name to show beside it. Call again after
// adding rows.
export function stacked(table) {
  table.classList.add('stack');
  const names = [...table.querySelectorAll('thead th')].map((th) => (th.querySelector('.visually-hidden') ? '' : th.textContent.trim()));
  for (const row of table.querySelectorAll('tbody tr')) {
    [...row.children].forEach((cell, i) => { if (!cell.hasAttribute('data-label')) cell.setAttribute('data-label', names[i] || ''); });
  }
  return table;
}

export function errorBox(e) {
  return h('p', { class: 'error', role: 'alert' }, e.message || String(e));
}

export function setTitle(text) { document.title = text ? `${text} · modelreg` : 'modelreg'; }


// A definition list of [label, value] rows, the way every panel shows fields.
export function fieldList(rows, id) {
  return h('dl', { class: 'fields', id }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}


// At most `max` characters, an ellipsis marking a cut.
export function shorten(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}


// --- DataRobot extras ---------------------------------------------------------

// Each part loads on its own: one that fails (or does not apply) says so in
// its place and leaves the others alone.
export function part(title, id, load) {
  const body = h('div', { 'aria-busy': 'true' }, h('p', { class: 'desc' }, 'Loading…'));
  const section = h('section', { id, 'aria-labelledby': `${id}-h` }, h('h2', { id: `${id}-h` }, title), body);
  load().then((content) => { fill(body, content); })
    .catch((e) => { if (e.status !== 401) body.replaceChildren(h('p', { class: 'desc' }, e.message)); })
    .finally(() => body.removeAttribute('aria-busy'));
  return section;
}

// Links name a model by its `handle` (the UI route's: its name when that
// names it alone, else its id) and a version by any handle the registry
// takes (a number, a label, `@alias`, `latest`); `@` stays readable.
// What the list and other models' links name a model by: its name, unless
// it has none or it reads as an id (ids are looked up first).
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export function handleOf(m) { return m.name && !UUID.test(m.name) ? m.name : m.id; }
export function segment(text) { return encodeURIComponent(String(text)).replace(/^%40/, '@'); }
export function modelHref(handle) { return `#/models/${segment(handle)}`; }
export function versionHref(handle, version) { return `${modelHref(handle)}/versions/${segment(version)}`; }
export function compareHref(handle, a, b) { return `${modelHref(handle)}/compare/${segment(a)}/${segment(b)}`; }
