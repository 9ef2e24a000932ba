// The list of every door's models: search, filters and keyset pages.

import { ORIGIN, announce, api, badge, doorBadge, errorBox, h, handleOf, main, modelHref, setTitle, snippet, stacked, when } from './core.js';

const TYPES = [
  ['Octomil framework', 'framework', ['pytorch', 'tensorflow', 'xgboost', 'sklearn']],
  ['DataRobot target type', 'targetType', ['Binary', 'Regression', 'Multiclass', 'Multilabel', 'Anomaly', 'Unstructured', 'TextGeneration', 'Transform']],
  ['Paperspace model type', 'modelType', ['Custom', 'Tensorflow', 'ONNX']],
];

let listSeq = 0;

export function renderList(params) {
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
        h('th', { scope: 'col', class: 'name-col' }, 'Name'), h('th', { scope: 'col' }, 'Door'),
        h('th', { scope: 'col' }, 'Framework / type'), h('th', { scope: 'col', class: 'num' }, 'Versions'),
        h('th', { scope: 'col' }, 'Latest'), h('th', { scope: 'col', class: 'hide-narrow' }, 'Created'))),
      body);
    const more = h('div', { class: 'more' });
    const count = h('p', { class: 'desc', id: 'count' });
    let shown = 0;
    const add = (p) => {
      for (const m of p.items) body.append(listRow(m));
      stacked(table);
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
      // Long names and descriptions are clamped on screen (app.css, .clamp), whole in the title.
      h('a', { href: modelHref(handleOf(m)), class: 'clamp', title: m.name }, m.name || '(unnamed)'),
      m.description ? h('div', { class: 'desc clamp', title: m.description }, m.description) : null),
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
