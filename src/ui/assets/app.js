// modelreg's web UI. No framework and no build step: the binary serves this
// file as it is. Every value from the registry reaches the page through
// textContent or a text node (see `h`), never as HTML: model names and
// descriptions are user input.
'use strict';

const KEY_ITEM = 'modelreg.key';
const main = document.getElementById('main');
const live = document.getElementById('live');
const ORIGIN = window.location.origin;

function key() { return sessionStorage.getItem(KEY_ITEM); }

// h('a', {href: '#/x', class: 'y'}, 'text', child…): attributes are set one
// by one and strings become text nodes, so nothing is ever parsed as markup.
function h(tag, props, ...kids) {
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

function append(parent, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k == null || k === false) continue;
    parent.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return parent;
}

const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...kids) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return append(e, kids);
}

function announce(text) { live.textContent = text; }

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// The message a dialect's error body carries, whichever dialect answered.
function messageOf(status, text) {
  try {
    const body = JSON.parse(text);
    const m = body.message || body.description || body.error || body.detail;
    if (m) return typeof m === 'string' ? m : JSON.stringify(m);
  } catch (_) { /* not JSON */ }
  return text ? text.slice(0, 300) : `HTTP ${status}`;
}

async function request(path, useKey) {
  const k = useKey === undefined ? key() : useKey;
  let res;
  try {
    res = await fetch(path, { headers: { Authorization: `Bearer ${k}` }, cache: 'no-store', credentials: 'omit' });
  } catch (e) {
    throw new ApiError(0, `The server did not answer (${e.message}). Is modelreg still running?`);
  }
  if (!res.ok) {
    const text = await res.text();
    throw new ApiError(res.status, messageOf(res.status, text));
  }
  return res;
}

// A JSON read with the signed-in key; a 401 means the key stopped working
// (revoked, or the data directory changed), so the page asks for a new one.
async function api(path) {
  try {
    return await (await request(path)).json();
  } catch (e) {
    if (e.status === 401) signOut(`The server no longer accepts this key: ${e.message}`);
    throw e;
  }
}

async function apiText(path) {
  return (await request(path)).text();
}

// --- formatting ---------------------------------------------------------

function bytes(n) {
  if (n == null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n), u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

function when(iso) {
  if (!iso) return '';
  const t = h('time', { datetime: iso, title: iso }, iso.replace('T', ' ').slice(0, 16) + ' UTC');
  return t;
}

function badge(text, cls) { return h('span', { class: `badge ${cls || ''}` }, text); }
function doorBadge(origin) {
  const names = { octomil: 'Octomil', datarobot: 'DataRobot', paperspace: 'Paperspace' };
  return badge(names[origin] || origin, `door-${origin}`);
}
function statusBadge(status, label) {
  const st = String(status || 'unknown');
  return badge(label ? `${label}: ${st}` : st, `st-${st.replace(/[^A-Za-z_]/g, '')}`);
}

function snippet(label, code) {
  const pre = h('pre', { tabindex: '0' }, h('code', {}, code));
  const button = h('button', { type: 'button', 'aria-label': `Copy ${label}` }, 'Copy');
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(code);
      button.textContent = 'Copied';
    } catch (_) {
      const range = document.createRange();
      range.selectNodeContents(pre);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      button.textContent = 'Selected: press Ctrl+C';
    }
    setTimeout(() => { button.textContent = 'Copy'; }, 2000);
  });
  return h('div', { class: 'snippet' }, h('h3', {}, label), pre, button);
}

function errorBox(e) {
  return h('p', { class: 'error', role: 'alert' }, e.message || String(e));
}

function setTitle(text) { document.title = text ? `${text} · modelreg` : 'modelreg'; }

// --- sign-in ------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(KEY_ITEM);
  renderSignIn(message);
}

function renderSignIn(message) {
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
    route();
  });
  main.replaceChildren(h('section', { class: 'signin', 'aria-labelledby': 'signin-h' },
    h('h1', { id: 'signin-h' }, 'Sign in to modelreg'), form));
  input.focus();
}

// --- routing ------------------------------------------------------------

// Shareable URLs live in the fragment: #/?q=…, #/models/<id>,
// #/models/<id>/versions/<n>, #/machines, #/machines/<id>.
function parseHash() {
  const raw = window.location.hash.replace(/^#/, '') || '/';
  const [path, query] = raw.split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query || '') };
}

function navCurrent(section) {
  for (const [id, name] of [['nav-models', 'models'], ['nav-machines', 'machines']]) {
    const a = document.getElementById(id);
    if (name === section) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
}

let lastView = '';
function route() {
  if (!key()) { renderSignIn(); return; }
  document.getElementById('sign-out').hidden = false;
  document.getElementById('who').textContent = 'Signed in';
  const { parts, params } = parseHash();
  const view = parts.slice(0, 2).join('/');
  const moved = view !== lastView;
  lastView = view;
  if (parts[0] === 'models' && parts[1]) {
    navCurrent('models');
    renderModel(parts[1], parts[2] === 'versions' ? parts[3] : null);
  } else if (parts[0] === 'machines') {
    navCurrent('machines');
    if (parts[1]) renderMachine(parts[1]); else renderMachines();
  } else {
    navCurrent('models');
    renderList(params);
  }
  if (moved) main.focus({ preventScroll: true });
}

// --- model list ---------------------------------------------------------

const TYPES = [
  ['Octomil framework', 'framework', ['pytorch', 'tensorflow', 'xgboost', 'sklearn']],
  ['DataRobot target type', 'targetType', ['Binary', 'Regression', 'Multiclass', 'Multilabel', 'Anomaly', 'Unstructured', 'TextGeneration', 'Transform']],
  ['Paperspace model type', 'modelType', ['Custom', 'Tensorflow', 'ONNX']],
];

let listSeq = 0;

function renderList(params) {
  setTitle('Models');
  const q = h('input', { id: 'search', type: 'search', value: params.get('q') || '', placeholder: 'Name or description', autocomplete: 'off' });
  const origin = h('select', { id: 'origin' },
    h('option', { value: '' }, 'All doors'),
    h('option', { value: 'octomil' }, 'Octomil'),
    h('option', { value: 'datarobot' }, 'DataRobot'),
    h('option', { value: 'paperspace' }, 'Paperspace'));
  origin.value = params.get('origin') || '';
  const type = h('select', { id: 'type' }, h('option', { value: '' }, 'Any type'),
    TYPES.map(([label, field, values]) => h('optgroup', { label }, values.map((v) => h('option', { value: `${field}:${v}` }, v)))));
  type.value = params.get('type') || '';
  const pub = h('input', { id: 'public', type: 'checkbox', checked: params.get('public') === 'true' });
  const results = h('div', { id: 'results', 'aria-live': 'polite' });
  const filters = h('form', { class: 'filters', role: 'search', onsubmit: (e) => e.preventDefault() },
    h('div', { class: 'field grow' }, h('label', { for: 'search' }, 'Search'), q),
    h('div', { class: 'field' }, h('label', { for: 'origin' }, 'Door'), origin),
    h('div', { class: 'field' }, h('label', { for: 'type' }, 'Framework or type'), type),
    h('div', { class: 'check' }, pub, h('label', { for: 'public' }, 'Public only')));
  main.replaceChildren(h('h1', {}, 'Models'), filters, results);

  const current = () => {
    const p = new URLSearchParams();
    if (q.value.trim()) p.set('q', q.value.trim());
    if (origin.value) p.set('origin', origin.value);
    if (type.value) p.set('type', type.value);
    if (pub.checked) p.set('public', 'true');
    return p;
  };
  const refresh = () => {
    const p = current().toString();
    // replaceState: typing should not push one history entry per key.
    history.replaceState(null, '', p ? `#/?${p}` : '#/');
    loadList(results, current());
  };
  let timer = null;
  q.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(refresh, 200); });
  for (const control of [origin, type, pub]) control.addEventListener('change', refresh);
  loadList(results, params);
}

function listQuery(params, after) {
  const p = new URLSearchParams({ limit: '50' });
  for (const name of ['q', 'origin']) if (params.get(name)) p.set(name, params.get(name));
  const t = params.get('type');
  if (t && t.includes(':')) { const [field, value] = t.split(':'); p.set(field, value); }
  if (params.get('public') === 'true') p.set('public', 'true');
  if (after) p.set('after', after);
  return `/ui/api/models?${p}`;
}

async function loadList(results, params) {
  const seq = ++listSeq;
  const started = performance.now();
  results.setAttribute('aria-busy', 'true');
  let page;
  try {
    page = await api(listQuery(params));
  } catch (e) {
    if (seq === listSeq && e.status !== 401) results.replaceChildren(errorBox(e));
    return;
  }
  // A slower answer to an older query must not replace a newer one.
  if (seq !== listSeq) return;
  const filtered = ['q', 'origin', 'type', 'public'].some((n) => params.get(n));
  if (!page.items.length) {
    results.replaceChildren(filtered
      ? h('p', { class: 'notice', id: 'no-match' }, 'No model matches these filters.')
      : emptyRegistry());
  } else {
    const body = h('tbody', {});
    const table = h('table', { id: 'models' },
      h('caption', { class: 'visually-hidden' }, 'Models, newest first'),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Door'),
        h('th', { scope: 'col' }, 'Framework / type'), h('th', { scope: 'col', class: 'num' }, 'Versions'),
        h('th', { scope: 'col' }, 'Latest'), h('th', { scope: 'col', class: 'hide-narrow' }, 'Created'))),
      body);
    const more = h('div', { class: 'more' });
    const count = h('p', { class: 'desc', id: 'count' });
    let shown = 0;
    const add = (p) => {
      for (const m of p.items) body.append(listRow(m));
      shown += p.items.length;
      count.textContent = `${shown} model${shown === 1 ? '' : 's'} shown${p.hasMore ? '; more below' : ''}`;
      more.replaceChildren();
      if (p.hasMore) {
        const button = h('button', { type: 'button', id: 'load-more' }, 'Load more');
        button.addEventListener('click', async () => {
          button.disabled = true;
          try { add(await api(listQuery(params, p.next))); } catch (e) { more.replaceChildren(errorBox(e)); }
        });
        more.append(button);
      }
    };
    add(page);
    results.replaceChildren(count, h('div', { class: 'table-wrap' }, table), more);
  }
  results.removeAttribute('aria-busy');
  // The bench reads this: request to rendered rows, in the page's own clock.
  document.body.dataset.listMs = (performance.now() - started).toFixed(1);
  announce(`${page.items.length}${page.hasMore ? '+' : ''} models`);
}

function listRow(m) {
  const type = m.framework || m.targetType || m.modelType || '';
  const latest = m.latestVersion;
  return h('tr', { 'data-id': m.id, 'data-origin': m.origin },
    h('td', { class: 'name-cell' },
      h('a', { href: `#/models/${encodeURIComponent(m.id)}` }, m.name || '(unnamed)'),
      m.description ? h('div', { class: 'desc' }, m.description) : null),
    h('td', {}, doorBadge(m.origin), m.isPublic === true ? [' ', badge('public', 'st-unknown')] : null),
    h('td', {}, type),
    h('td', { class: 'num' }, String(m.versionCount)),
    h('td', {}, latest ? [h('span', {}, `v${latest.label} `), when(latest.created)] : h('span', { class: 'desc' }, 'none yet')),
    h('td', { class: 'hide-narrow' }, when(m.created)));
}

function emptyRegistry() {
  const server = `--server ${ORIGIN}`;
  return h('section', { class: 'empty', id: 'empty' },
    h('h2', {}, 'No models yet'),
    h('p', {}, 'Create a model, upload its first version and download it again, from any machine that has the modelreg binary and a key (MODELREG_TOKEN):'),
    snippet('1. Create a model', `export MODELREG_TOKEN=<your key>\nmodelreg ${server} models create --name my-model --framework pytorch --description "My first model"`),
    snippet('2. Upload its first version', `modelreg ${server} versions upload MODEL_ID model.pt`),
    snippet('3. Download it (the sha256 is checked as it is written)', `modelreg ${server} versions download MODEL_ID 1 -o model.pt`),
    h('p', { class: 'desc' }, 'Clients of Octomil (/api/v1/), DataRobot (/api/v2/) and Paperspace (/v1/) work too: models made through any door show up here.'));
}

// --- model page -----------------------------------------------------------

async function renderModel(id, wantedVersion) {
  setTitle('Model');
  main.replaceChildren(h('p', { class: 'desc', 'aria-busy': 'true' }, 'Loading…'));
  let data;
  try {
    data = await api(`/ui/api/models/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e.status === 401) return;
    main.replaceChildren(h('p', { class: 'crumbs' }, h('a', { href: '#/' }, '← Models')),
      errorBox(e.status === 404 ? new Error(`No model ${id} is visible to this key: ${e.message}`) : e));
    return;
  }
  const { model, versions } = data;
  setTitle(model.name || 'unnamed model');
  const selected = versions.find((v) => String(v.number) === String(wantedVersion)) || versions[0];
  const datarobot = model.origin === 'datarobot';

  const page = h('article', { id: 'model', 'data-id': model.id },
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, '← Models')),
    h('h1', { id: 'model-name' }, model.name || '(unnamed)'),
    h('p', { class: 'lead' }, doorBadge(model.origin), ' ', model.description || ''),
    fieldsPanel(model, versions),
    h('h2', { id: 'versions-h' }, `Versions (${versions.length})`),
    versions.length ? versionsTable(model, versions, selected) : noVersions(model));
  if (wantedVersion && !versions.some((v) => String(v.number) === String(wantedVersion))) {
    page.append(h('p', { class: 'error', role: 'alert' }, `This model has no version ${wantedVersion}; showing the latest.`));
  }
  if (selected) page.append(versionInfo(model, versions, selected), lineageSection(model, versions, selected), cardSection(model, selected), versionSection(model, selected));
  if (datarobot) page.append(...dataRobotSections(model, selected));
  main.replaceChildren(page);
}

function fieldsPanel(model, versions) {
  const rows = [['Aliases', modelAliases(model, versions)], ['Tags', tagChips(model.tags, 'model-tags')],
    ['ID', h('code', {}, model.id)], ['Created', [when(model.created), ` by ${model.createdBy}`]], ['Modified', when(model.modified)]];
  for (const [k, v] of Object.entries(model.attrs || {})) {
    if (v == null || v === '') continue;
    rows.push([k, typeof v === 'object' ? h('code', {}, JSON.stringify(v)) : String(v)]);
  }
  return h('section', { class: 'panel', 'aria-label': 'Fields' }, fieldList(rows));
}

// A definition list of [label, value] rows, the way every panel shows fields.
function fieldList(rows, id) {
  return h('dl', { class: 'fields', id }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function versionHref(modelId, number) {
  return `#/models/${encodeURIComponent(modelId)}/versions/${number}`;
}

function noVersions(model) {
  const upload = model.origin === 'datarobot'
    ? `curl -X POST ${ORIGIN}/api/v2/customModels/${model.id}/versions/ -H "Authorization: Bearer $MODELREG_TOKEN" \\\n  -F baseEnvironmentId=ENV_ID -F file=@custom.py -F filePath=custom.py`
    : `modelreg --server ${ORIGIN} versions upload ${model.id} model.pt`;
  return h('div', { class: 'empty', id: 'no-versions' }, h('p', {}, 'No versions yet. Upload the first one:'), snippet('Upload a version', upload));
}

function versionsTable(model, versions, selected) {
  return h('div', { class: 'table-wrap' }, h('table', { id: 'versions' },
    h('caption', { class: 'visually-hidden' }, 'Versions, newest first'),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Version'), h('th', { scope: 'col' }, 'Aliases'), h('th', { scope: 'col' }, 'Metrics'),
      h('th', { scope: 'col', class: 'num' }, 'Size'),
      h('th', { scope: 'col' }, 'sha256'), h('th', { scope: 'col' }, 'Format / status'),
      h('th', { scope: 'col' }, 'By'), h('th', { scope: 'col' }, 'When'))),
    h('tbody', {}, versions.map((v) => {
      const current = v === selected;
      const sha = v.files.length === 1 ? h('code', { class: 'sha', title: v.files[0].sha256 }, v.files[0].sha256.slice(0, 16) + '…')
        : h('span', { class: 'desc' }, `${v.files.length} files`);
      return h('tr', { class: current ? 'current' : null, 'data-number': v.number },
        h('td', {}, h('a', { href: versionHref(model.id, v.number), 'aria-current': current ? 'true' : null }, `v${v.label}`),
          v.description ? h('div', { class: 'desc' }, v.description) : null,
          Object.keys(v.tags || {}).length ? tagChips(v.tags) : null),
        h('td', { class: 'aliases' }, aliasBadges(aliasesOf(model, v.number))),
        h('td', { class: 'metrics-cell', title: metricsSummary(v.metrics) || null }, metricsInShort(v.metrics)),
        h('td', { class: 'num', title: `${v.size} bytes` }, bytes(v.size)),
        h('td', {}, sha),
        h('td', {}, v.format || '', v.status && v.status !== 'active' ? [' ', statusBadge(v.status)] : null),
        h('td', {}, v.createdBy),
        h('td', {}, when(v.created)));
    }))));
}

function versionSection(model, v) {
  const files = h('tbody', {}, v.files.map((f) => fileRow(model, v, f)));
  const section = h('section', { id: 'version', 'aria-labelledby': 'version-h', 'data-number': v.number },
    h('h2', { id: 'version-h' }, `Version ${v.label}: files`),
    v.files.length === 0 ? h('p', { class: 'desc' }, 'This version holds no files.') :
      h('div', { class: 'table-wrap' }, h('table', { id: 'files' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Path'), h('th', { scope: 'col', class: 'num' }, 'Size'),
          h('th', { scope: 'col' }, 'sha256'), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Download')))),
        files)),
    h('div', { id: 'download-status', role: 'status' }),
    h('h2', {}, 'Fetch this version'),
    snippets(model, v));
  return section;
}

// --- aliases, tags, metrics and lineage ---------------------------------------

// The model's aliases that name version `number` (the route answers the
// model's aliases once, by name).
function aliasesOf(model, number) {
  return Object.entries(model.aliases || {}).filter(([, n]) => n === number).map(([alias]) => alias);
}

function aliasBadges(aliases) {
  return aliases.map((alias) => [badge(`@${alias}`, 'alias'), ' ']);
}

// `@champion → v3`, each a link to the version it names.
function modelAliases(model, versions) {
  const aliases = Object.entries(model.aliases || {});
  if (!aliases.length) return h('span', { class: 'desc', id: 'model-aliases' }, 'none');
  return h('ul', { class: 'chips', id: 'model-aliases' }, aliases.map(([alias, number]) => {
    const v = versions.find((x) => x.number === number);
    return h('li', {}, h('a', { href: versionHref(model.id, number), class: 'chip alias', 'data-alias': alias, title: `@${alias}` },
      `@${alias} → v${v ? v.label : number}`));
  }));
}

// Tags as chips `key: value`; a long one is cut short on screen (CSS) and
// whole in its title, so a value of a thousand characters cannot widen the page.
function tagChips(tags, id) {
  const entries = Object.entries(tags || {});
  if (!entries.length) return h('span', { class: 'desc', id }, 'none');
  return h('ul', { class: 'chips', id }, entries.map(([k, v]) => h('li', { class: 'chip', 'data-key': k, title: `${k}: ${v}` }, `${k}: ${v}`)));
}

// At most `max` characters, an ellipsis marking a cut.
function shorten(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

// A metric as text: numbers as the registry holds them, or to four
// significant digits where the view is compact; anything else a client
// stored (a string, a list) as its text.
function metricText(value, compact) {
  if (typeof value === 'number') return compact && !Number.isInteger(value) ? String(Number(value.toPrecision(4))) : String(value);
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return compact ? shorten(text, 24) : text;
}

// `auc 0.931 · f1 0.71`, whole: a cell's title.
function metricsSummary(metrics) {
  return Object.entries(metrics || {}).map(([name, value]) => `${name} ${metricText(value, false)}`).join(' · ');
}

// The same in short, for the versions table (names and text values cut at
// 24 characters); a line breaks between two metrics, never inside one.
function metricsInShort(metrics) {
  return Object.entries(metrics || {}).map(([name, value], i) =>
    [i ? ' · ' : null, h('span', { class: 'metric' }, `${shorten(name, 24)} ${metricText(value, true)}`)]);
}

function metricsTable(metrics) {
  const entries = Object.entries(metrics || {});
  if (!entries.length) return h('p', { class: 'desc', id: 'no-metrics' }, 'No metrics reported.');
  return h('div', { class: 'table-wrap' }, h('table', { id: 'metrics' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Metric'), h('th', { scope: 'col' }, 'Value'))),
    h('tbody', {}, entries.map(([name, value]) => h('tr', {},
      h('th', { scope: 'row' }, name), h('td', { class: typeof value === 'number' ? 'num' : null }, metricText(value, false)))))));
}

// The chosen version's aliases, tags and metrics, from the model's answer.
function versionInfo(model, versions, v) {
  const aliases = aliasesOf(model, v.number);
  return h('section', { id: 'version-info', 'aria-labelledby': 'version-info-h', 'data-number': v.number },
    h('h2', { id: 'version-info-h' }, `Version ${v.label}`),
    fieldList([
      ['Status', statusBadge(v.status)],
      ['Aliases', aliases.length ? h('span', { id: 'version-aliases' }, aliasBadges(aliases)) : h('span', { class: 'desc', id: 'version-aliases' }, 'none')],
      ['Tags', tagChips(v.tags, 'version-tags')],
    ], 'version-fields'),
    h('h3', {}, 'Metrics'),
    metricsTable(v.metrics));
}

function lineageSection(model, versions, v) {
  return part(`Lineage (v${v.label})`, 'lineage', () => loadLineage(model, versions, v));
}

// Lineage comes from modelreg's own version route: it resolves the parent
// by the registry's rule (a version this key can see, else "deleted"), for
// this one version rather than for every version of the model's answer.
async function loadLineage(model, versions, v) {
  const detail = await api(`/api/modelreg/v1/models/${encodeURIComponent(model.id)}/versions/${v.number}`);
  const l = detail.lineage || {};
  const rows = [
    ['Source commit', l.source_commit && h('code', { class: 'sha' }, l.source_commit)],
    ['Dataset', l.dataset],
    ['Run', l.run_url && runLink(l.run_url)],
    ['Parent version', l.parent_version && parentLink(model, versions, l.parent_version)],
  ].filter(([, value]) => value);
  if (!rows.length) {
    return h('p', { class: 'desc', id: 'no-lineage' }, 'No lineage recorded. ',
      h('code', {}, `modelreg versions update ${model.id} ${v.number} --source-commit … --dataset … --run-url … --parent …`), ' records it.');
  }
  return fieldList(rows, 'lineage-fields');
}

// A run's URL is a link only when it is http(s). The registry accepts no
// other, but a link is where a javascript: URL would run, so the page
// checks again rather than trust what it is given.
function runLink(text) {
  let url = null;
  try { url = new URL(text); } catch (_) { /* not a URL: shown as text */ }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) return h('span', { class: 'run-url' }, text);
  return h('a', { href: url.href, class: 'run-url', rel: 'noopener noreferrer' }, text);
}

// The parent as a link to its view, or "deleted": the registry answers a
// parent this key can no longer see the same way, so nothing leaks.
function parentLink(model, versions, parent) {
  if (parent.deleted) return h('span', { class: 'desc', id: 'parent-deleted', title: 'Deleted, or not visible to this key' }, 'deleted');
  const sibling = parent.model_id === model.id ? versions.find((x) => x.number === parent.version) : null;
  const text = sibling ? `v${sibling.label}` : `${parent.model} v${parent.version}`;
  return h('a', { href: versionHref(parent.model_id, parent.version), id: 'parent-link' }, text);
}

// --- model card ---------------------------------------------------------------

function cardSection(model, v) {
  const section = part(`Model card (v${v.label})`, 'card', () => loadCard(model, v));
  section.classList.add('card');
  return section;
}

// The version's card (its README.md, or one set through modelreg's API).
// This is the one place the page inserts HTML it did not build itself, and
// two walls stand in the way of a hostile card: the registry sanitised the
// HTML (ammonia: no script, no event handler, no javascript: or data: URL,
// no style, no id), and this page's Content-Security-Policy runs no inline
// script and no script from elsewhere, should the first wall ever fail.
// DOMParser makes an inert document (its scripts never run, it loads
// nothing); its nodes are then moved into the card's container.
async function loadCard(model, v) {
  const path = `/api/modelreg/v1/models/${encodeURIComponent(model.id)}/versions/${v.number}/card`;
  let card;
  try {
    card = await api(path);
  } catch (e) {
    if (e.status !== 404) throw e;
    return h('p', { class: 'desc', id: 'no-card' }, 'This version has no model card. Add a README.md to its files, or set one with ',
      h('code', {}, `PUT ${ORIGIN}${path}`), ' and {"markdown": "…"}.');
  }
  const origin = card.source === 'api'
    ? h('p', { class: 'desc' }, `Set through the API by ${card.updatedBy}, `, when(card.updatedAt), '.')
    : h('p', { class: 'desc' }, 'From the version\'s ', h('code', {}, card.path), '.');
  const out = [origin];
  if (card.note) out.push(h('p', { class: 'notice', id: 'card-note' }, card.note));
  if (card.html != null) {
    const rendered = new DOMParser().parseFromString(card.html, 'text/html');
    out.push(h('div', { class: 'card-body', id: 'card-body' }, [...rendered.body.childNodes]));
  }
  return out;
}

function fileRow(model, v, f) {
  const name = f.path.split('/').pop();
  const button = h('button', { type: 'button', class: 'download', 'data-file': f.id, 'aria-label': `Download ${f.path}` }, 'Download');
  button.addEventListener('click', () => download(model, v, f, name, button));
  // A safetensors or GGUF file's header, as the registry read it (or why it could not).
  const facts = f.weightFactsSummary ? h('div', { class: f.weightFacts.error ? 'desc weights unreadable' : 'desc weights' }, f.weightFactsSummary) : null;
  return h('tr', {}, h('td', {}, h('code', {}, f.path), facts), h('td', { class: 'num', title: `${f.size} bytes` }, bytes(f.size)),
    h('td', {}, h('code', { class: 'sha' }, f.sha256)), h('td', {}, button));
}

async function sha256Hex(buffer) {
  if (!crypto.subtle) return null;
  const digest = await crypto.subtle.digest('SHA-256', buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

// Downloads need the Bearer header, which a plain link cannot send: fetch
// the bytes, check their sha256 against the registry's, then hand them to
// the browser as a blob URL.
async function download(model, v, f, name, button) {
  const status = document.getElementById('download-status');
  button.disabled = true;
  status.replaceChildren(h('p', { class: 'desc' }, `Downloading ${f.path}…`));
  try {
    const res = await request(`/ui/api/models/${encodeURIComponent(model.id)}/versions/${v.number}/files/${encodeURIComponent(f.id)}`);
    const blob = await res.blob();
    const digest = await sha256Hex(await blob.arrayBuffer());
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: name, class: 'visually-hidden' }, name);
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    const verdict = digest == null ? 'sha256 not checked (this browser has no WebCrypto here)'
      : digest === f.sha256 ? 'sha256 verified' : `sha256 MISMATCH: got ${digest}`;
    status.replaceChildren(h('p', { class: digest && digest !== f.sha256 ? 'error' : 'notice', id: 'download-result', 'data-sha256': digest || '' },
      `Downloaded ${name} (${bytes(blob.size)}): ${verdict}.`));
  } catch (e) {
    if (e.status === 401) signOut(`The server no longer accepts this key: ${e.message}`);
    else status.replaceChildren(errorBox(e));
  } finally {
    button.disabled = false;
  }
}

function snippets(model, v) {
  const out = [];
  const single = v.files.length === 1 ? v.files[0] : null;
  const fileName = single ? single.path.split('/').pop() : null;
  const auth = '-H "Authorization: Bearer $MODELREG_TOKEN"';
  if (model.origin === 'datarobot') {
    const zip = `model-v${v.label}.zip`;
    out.push(snippet('curl (the version as a zip)', `curl -fL -o ${zip} ${auth} \\\n  ${ORIGIN}/api/v2/customModels/${model.id}/versions/${v.id}/download/`));
    out.push(snippet('Python: the datarobot client', [
      'import os, datarobot as dr',
      `dr.Client(endpoint="${ORIGIN}/api/v2", token=os.environ["MODELREG_TOKEN"])`,
      `dr.CustomModelVersion.get("${model.id}", "${v.id}").download("${zip}")`].join('\n')));
  } else if (single) {
    out.push(snippet('curl', `curl -fL -o ${fileName} ${auth} \\\n  ${ORIGIN}/api/v1/models/${model.id}/versions/${v.number}/download`));
  }
  if (single) {
    out.push(snippet('modelreg CLI (checks the sha256 as it writes)', `modelreg --server ${ORIGIN} versions download ${model.id} ${v.number} -o ${fileName}`));
    if (model.origin !== 'datarobot') {
      out.push(snippet('Python: the Octomil SDK', [
        'import os',
        'from octomil.python.octomil.registry import ModelRegistry',
        `reg = ModelRegistry(lambda: os.environ["MODELREG_TOKEN"], api_base="${ORIGIN}/api/v1")`,
        `reg.download_version("${model.id}", "${v.number}", "${v.format || 'original'}", "${fileName}")`].join('\n')));
    }
  } else if (model.origin !== 'datarobot') {
    out.push(h('p', { class: 'desc' }, 'This version holds more than one file; download them one by one above, or as a zip from the DataRobot route:'),
      snippet('curl (the version as a zip)', `curl -fL -o model.zip ${auth} \\\n  ${ORIGIN}/api/v2/customModels/${model.id}/versions/${v.id}/download/`));
  }
  return out;
}

// --- DataRobot extras ---------------------------------------------------------

// Each part loads on its own: one that fails (or does not apply) says so in
// its place and leaves the others alone.
function part(title, id, load) {
  const body = h('div', { 'aria-busy': 'true' }, h('p', { class: 'desc' }, 'Loading…'));
  const section = h('section', { id, 'aria-labelledby': `${id}-h` }, h('h2', { id: `${id}-h` }, title), body);
  load().then((content) => { body.replaceChildren(...[content].flat()); })
    .catch((e) => { if (e.status !== 401) body.replaceChildren(h('p', { class: 'desc' }, e.message)); })
    .finally(() => body.removeAttribute('aria-busy'));
  return section;
}

function dataRobotSections(model, v) {
  const base = `/api/v2/customModels/${encodeURIComponent(model.id)}`;
  const out = [];
  out.push(part('Custom model tests', 'tests', () => loadTests(model)));
  if (v) {
    out.push(part(`Feature impact (v${v.label})`, 'impact', () => loadImpact(base, v)));
    const drVersion = api(`${base}/versions/${encodeURIComponent(v.id)}/`);
    out.push(part('Execution environment', 'environment', () => loadEnvironment(drVersion)));
    out.push(part('Datasets', 'datasets', () => loadDatasets(model, drVersion)));
  }
  out.push(part('Access', 'access', () => loadAccess(base)));
  return out;
}

async function loadTests(model) {
  const page = await api(`/api/v2/customModelTests/?customModelId=${encodeURIComponent(model.id)}&limit=20`);
  const tests = page.data || [];
  if (!tests.length) {
    return h('p', { class: 'desc' }, 'No tests yet. ', h('code', {}, `POST ${ORIGIN}/api/v2/customModelTests/`), ' with the model, a version and a dataset runs one on DRUM.');
  }
  return tests.map((t) => {
    const checks = Object.entries(t.testingStatus || {}).map(([name, c]) => {
      const b = statusBadge(c && c.status, name);
      b.classList.add('check');
      b.setAttribute('data-check', name);
      if (c && c.message) b.title = c.message;
      return b;
    });
    const log = h('pre', { class: 'log', hidden: true });
    const button = h('button', { type: 'button', 'aria-expanded': 'false' }, 'Show log');
    button.addEventListener('click', async () => {
      if (!log.hidden) { log.hidden = true; button.textContent = 'Show log'; button.setAttribute('aria-expanded', 'false'); return; }
      log.textContent = 'Loading…';
      log.hidden = false;
      button.textContent = 'Hide log';
      button.setAttribute('aria-expanded', 'true');
      try { log.textContent = await apiText(`/api/v2/customModelTests/${encodeURIComponent(t.id)}/log/`); } catch (e) { log.textContent = e.message; }
    });
    return h('div', { class: 'panel test', 'data-test': t.id },
      h('p', {}, h('strong', {}, `${t.customModelVersion ? t.customModelVersion.label : ''} `), statusBadge(t.overallStatus, 'overall'), ' ', when(t.created), ` by ${t.createdBy}`),
      h('div', { class: 'checks' }, checks),
      button, log);
  });
}

async function loadImpact(base, v) {
  let body;
  try {
    body = await api(`${base}/versions/${encodeURIComponent(v.id)}/featureImpact/`);
  } catch (e) {
    if (e.status === 404 || e.status === 422) return h('p', { class: 'desc' }, e.message);
    throw e;
  }
  const rows = (body.featureImpacts || []).slice().sort((a, b) => (b.impactNormalized || 0) - (a.impactNormalized || 0));
  if (!rows.length) return h('p', { class: 'desc' }, 'Feature impact was computed but names no feature.');
  return [impactChart(rows), h('p', { class: 'desc' }, `Permutation importance over ${body.rowCount || 'the sampled'} rows; normalised so the strongest feature is 1.`)];
}

// A horizontal bar chart as inline SVG: no canvas, no library, and the
// numbers are in the DOM as text for screen readers.
function impactChart(rows) {
  const labelW = 170, barW = 460, rowH = 26, valueW = 60;
  const width = labelW + barW + valueW;
  const svg = s('svg', { class: 'chart', id: 'impact-chart', viewBox: `0 0 ${width} ${rows.length * rowH + 6}`, role: 'img', 'aria-labelledby': 'impact-title' },
    s('title', { id: 'impact-title' }, `Feature impact: ${rows.map((r) => `${r.featureName} ${Number(r.impactNormalized).toFixed(3)}`).join(', ')}`));
  rows.forEach((r, i) => {
    const y = i * rowH + 3;
    const value = Math.max(0, Math.min(1, Number(r.impactNormalized) || 0));
    const name = shorten(r.featureName, 24);
    svg.append(
      s('text', { x: labelW - 8, y: y + 16, 'text-anchor': 'end' }, name),
      s('rect', { class: 'track', x: labelW, y, width: barW, height: rowH - 6, rx: 3 }),
      s('rect', { class: 'bar', x: labelW, y, width: (barW * value).toFixed(1), height: rowH - 6, rx: 3, 'data-feature': r.featureName },
        s('title', {}, `${r.featureName}: ${Number(r.impactNormalized).toFixed(4)}`)),
      s('text', { x: labelW + barW + 6, y: y + 16 }, Number(r.impactNormalized).toFixed(3)));
  });
  return svg;
}

async function loadEnvironment(drVersionPromise) {
  const dv = await drVersionPromise;
  if (!dv.baseEnvironmentId) return h('p', { class: 'desc' }, 'This version names no execution environment.');
  const envBase = `/api/v2/executionEnvironments/${encodeURIComponent(dv.baseEnvironmentId)}`;
  const env = await api(`${envBase}/`);
  const out = [h('p', {}, h('strong', {}, env.name || dv.baseEnvironmentId), ' ', env.programmingLanguage ? `(${env.programmingLanguage})` : '')];
  if (dv.baseEnvironmentVersionId) {
    const ev = await api(`${envBase}/versions/${encodeURIComponent(dv.baseEnvironmentVersionId)}/`);
    const log = h('pre', { class: 'log', hidden: true });
    const button = h('button', { type: 'button', 'aria-expanded': 'false' }, 'Show build log');
    button.addEventListener('click', async () => {
      if (!log.hidden) { log.hidden = true; button.setAttribute('aria-expanded', 'false'); return; }
      log.hidden = false;
      button.setAttribute('aria-expanded', 'true');
      log.textContent = 'Loading…';
      try {
        const b = await api(`${envBase}/versions/${encodeURIComponent(dv.baseEnvironmentVersionId)}/buildLog/`);
        log.textContent = (b.log || '(empty)') + (b.error ? `\n\nerror: ${b.error}` : '');
      } catch (e) { log.textContent = e.message; }
    });
    out.push(h('p', {}, `Version ${ev.label || ev.id} `, statusBadge(ev.buildStatus, 'build'), ' ', when(ev.created)),
      ev.imageId ? h('p', { class: 'desc' }, 'Image ', h('code', {}, ev.imageId)) : null, button, log);
  }
  return out;
}

async function loadDatasets(model, drVersionPromise) {
  const dv = await drVersionPromise.catch(() => ({}));
  const ids = [];
  const add = (id, role) => { if (id && !ids.some((x) => x.id === id)) ids.push({ id, role }); };
  add(model.attrs && model.attrs.trainingDatasetId, 'training data (model)');
  add(dv.trainingData && dv.trainingData.datasetId, 'training data (version)');
  add(dv.holdoutData && dv.holdoutData.datasetId, 'holdout data');
  if (!ids.length) return h('p', { class: 'desc' }, 'No training data assigned. PATCH trainingData/ with a dataset id assigns some.');
  return Promise.all(ids.map(async ({ id, role }) => {
    try {
      const d = await api(`/ui/api/datasets/${encodeURIComponent(id)}`);
      return h('div', { class: 'panel dataset', 'data-dataset': d.id },
        h('p', {}, h('strong', {}, d.name), ` (${role}) `, statusBadge(d.state)),
        h('p', { class: 'desc' }, `${d.rowCount == null ? '?' : d.rowCount} rows · ${d.columns.length} columns · ${bytes(d.size)}`),
        d.columns.length ? h('p', {}, d.columns.map((c) => [h('code', {}, c), ' '])) : null,
        d.error ? h('p', { class: 'error' }, d.error) : null);
    } catch (e) {
      return h('p', { class: 'desc' }, `${role}: ${e.message}`);
    }
  }));
}

async function loadAccess(base) {
  const page = await api(`${base}/accessControl/`);
  const rows = page.data || [];
  if (!rows.length) return h('p', { class: 'desc' }, 'No roles: the whole team reads it, and its creator owns it.');
  return h('table', { id: 'access' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'User'), h('th', { scope: 'col' }, 'Role'), h('th', { scope: 'col' }, 'Can share'))),
    h('tbody', {}, rows.map((r) => h('tr', {}, h('td', {}, r.username || r.userId), h('td', {}, r.role), h('td', {}, r.canShare ? 'yes' : 'no')))));
}

// --- Paperspace machines ------------------------------------------------------

async function renderMachines() {
  setTitle('Machines');
  const results = h('div', { 'aria-busy': 'true' }, h('p', { class: 'desc' }, 'Loading…'));
  main.replaceChildren(h('h1', {}, 'Machines'), h('p', { class: 'lead' }, 'Paperspace machines: records with an emulated lifecycle (no VM runs).'), results);
  let page;
  try { page = await api('/v1/machines?limit=120'); } catch (e) { if (e.status !== 401) results.replaceChildren(errorBox(e)); return; }
  results.removeAttribute('aria-busy');
  if (!page.items.length) {
    results.replaceChildren(h('div', { class: 'empty', id: 'no-machines' }, h('p', {}, 'No machines yet. Make one:'),
      snippet('Create a machine', `modelreg --server ${ORIGIN} machines create --name my-machine --machine-type P4000 --template tz0ireoj`)));
    return;
  }
  results.replaceChildren(h('div', { class: 'table-wrap' }, h('table', { id: 'machines' },
    h('thead', {}, h('tr', {}, ['Name', 'State', 'Type', 'Region', 'Template', 'Created'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, page.items.map((m) => h('tr', {},
      h('td', {}, h('a', { href: `#/machines/${encodeURIComponent(m.id)}` }, m.name || m.id)),
      h('td', {}, statusBadge(m.state)), h('td', {}, m.machineType), h('td', {}, m.region), h('td', {}, h('code', {}, m.templateId || '')),
      h('td', {}, when(m.dtCreated))))))),
  page.hasMore ? h('p', { class: 'desc' }, 'The first 120 machines are shown.') : null);
}

async function renderMachine(id) {
  setTitle('Machine');
  main.replaceChildren(h('p', { class: 'desc' }, 'Loading…'));
  let m, events;
  try {
    [m, events] = await Promise.all([api(`/v1/machines/${encodeURIComponent(id)}`), api(`/v1/machines/${encodeURIComponent(id)}/events?limit=120`)]);
  } catch (e) {
    if (e.status !== 401) main.replaceChildren(h('p', { class: 'crumbs' }, h('a', { href: '#/machines' }, '← Machines')), errorBox(e));
    return;
  }
  setTitle(m.name || m.id);
  const fields = [['ID', h('code', {}, m.id)], ['State', statusBadge(m.state)], ['Type', m.machineType], ['Region', m.region],
    ['Template', h('code', {}, m.templateId || '')], ['OS', m.os], ['CPUs', m.cpus], ['RAM', bytes(m.ram)], ['Disk', bytes(m.storageTotal)],
    ['Auto-shutdown', m.autoShutdownEnabled ? `after ${m.autoShutdownTimeout} h` : 'off'], ['Created', when(m.dtCreated)]];
  main.replaceChildren(h('article', { id: 'machine' },
    h('p', { class: 'crumbs' }, h('a', { href: '#/machines' }, '← Machines')),
    h('h1', {}, m.name || m.id),
    h('section', { class: 'panel', 'aria-label': 'Fields' }, fieldList(fields)),
    h('h2', {}, 'Events'),
    (events.items || []).length ? h('ol', { class: 'timeline', id: 'events' }, events.items.map((e) => h('li', {},
      h('strong', {}, e.name), ' ', statusBadge(e.state), ' ', when(e.dtCreated),
      e.dtFinished ? [' → ', when(e.dtFinished)] : null, e.error ? h('div', { class: 'error' }, e.error) : null)))
      : h('p', { class: 'desc' }, 'No events.')));
}

// --- start ------------------------------------------------------------------

document.getElementById('sign-out').addEventListener('click', () => { signOut(); window.location.hash = '#/'; });
window.addEventListener('hashchange', route);
route();
