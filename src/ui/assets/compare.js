// Two versions of a model side by side (#/models/NAME/compare/A/B, A and B
// any version handles): status, format, aliases, tags, who and when; every
// metric of either with B − A for numbers (which way is better is the
// reader's to say); files by path with sizes and hashes; lineage.

import { api, badge, bytes, compareHref, copyButton, h, handleOf, main, modelHref, part, setTitle, statusBadge, versionHref, when } from './core.js';
import { aliasBadges, aliasesOf, metricText, runLink, tagChips } from './facts.js';
import { chosen, loadModel } from './resolve.js';

// On the model page: "Compare with previous" for the chosen version, and two
// versions to pick.
export function compareBar(model, versions, selected) {
  if (versions.length < 2) return null;
  const index = versions.indexOf(selected);
  const previous = index >= 0 ? versions[index + 1] : null;
  const options = (id, chosenOne) => {
    const select = h('select', { id }, versions.map((v) => h('option', { value: String(v.number) }, `v${v.label}`)));
    select.value = String(chosenOne.number);
    return select;
  };
  const a = options('compare-a', previous || versions[1]);
  const b = options('compare-b', previous ? selected : versions[0]);
  const go = h('button', { type: 'button', id: 'compare-go' }, 'Compare');
  go.addEventListener('click', () => { window.location.hash = compareHref(model.handle, a.value, b.value); });
  return h('div', { class: 'compare-bar', id: 'compare-bar' },
    previous ? h('a', { href: compareHref(model.handle, previous.number, selected.number), id: 'compare-previous' },
      `Compare v${selected.label} with previous (v${previous.label})`) : null,
    h('span', { class: 'pick' }, h('label', { for: 'compare-a' }, 'Compare'), a, h('label', { for: 'compare-b' }, 'with'), b, go));
}

export async function renderCompare(asked, handleA, handleB) {
  setTitle('Compare');
  main.replaceChildren(h('p', { class: 'desc', 'aria-busy': 'true' }, 'Loading…'));
  const data = await loadModel(asked, [handleA, handleB]);
  if (!data) return;
  const { model, versions } = data;
  const crumbs = h('p', { class: 'crumbs' }, h('a', { href: '#/' }, '← Models'), ' / ',
    h('a', { href: modelHref(model.handle), id: 'compare-model' }, model.name || '(unnamed)'));
  const missing = data.handles.filter((r) => r.number == null);
  if (missing.length) {
    main.replaceChildren(crumbs, ...missing.map((r) => h('p', { class: 'error', role: 'alert' }, `No version ${r.handle} to compare: ${r.error}`)));
    return;
  }
  const va = chosen(data, 0), vb = chosen(data, 1);
  setTitle(`${model.name || 'unnamed model'}: v${va.label} and v${vb.label}`);
  const heads = (first, cls) => h('tr', {}, h('th', { scope: 'col' }, first),
    [va, vb].map((v, i) => h('th', { scope: 'col', class: cls }, h('a', { href: versionHref(model.handle, v.number), class: `side-${'ab'[i]}` }, `v${v.label}`))));
  main.replaceChildren(h('article', { id: 'compare', 'data-a': va.number, 'data-b': vb.number },
    crumbs,
    h('h1', { id: 'compare-h' }, h('span', { class: 'name' }, model.name || '(unnamed)'), `: v${va.label} and v${vb.label}`),
    compareBar(model, versions, vb),
    h('h2', {}, 'Version'),
    h('div', { class: 'table-wrap' }, h('table', { id: 'compare-fields', class: 'compare' }, h('thead', {}, heads('Field')),
      h('tbody', {}, fieldRows(model, va, vb)))),
    metricsPart(va, vb, heads),
    filesPart(va, vb, heads),
    part('Lineage', 'compare-lineage', () => loadLineage(model, va, vb, heads))));
}

function fieldRows(model, va, vb) {
  const rows = [
    ['Status', (v) => statusBadge(v.status)],
    ['Format', (v) => v.format || ''],
    ['Aliases', (v) => { const a = aliasesOf(model, v.number); return a.length ? aliasBadges(a) : h('span', { class: 'desc' }, 'none'); }],
    ['Tags', (v) => tagChips(v.tags)],
    ['Size', (v) => h('span', { title: `${v.size} bytes` }, bytes(v.size))],
    ['Created', (v) => when(v.created)],
    ['By', (v) => v.createdBy],
    ['Description', (v) => v.description || ''],
  ];
  return rows.map(([name, cell]) => h('tr', { 'data-field': name.toLowerCase() }, h('th', { scope: 'row' }, name), h('td', {}, cell(va)), h('td', {}, cell(vb))));
}

// Decimals enough for both inputs (0.931 − 0.902 is 0.029, not 0.029000000000000026).
function difference(a, b) {
  const places = (n) => { const t = String(n); return /e/i.test(t) ? null : (t.split('.')[1] || '').length; };
  const pa = places(a), pb = places(b);
  const d = b - a;
  const text = pa == null || pb == null ? String(Number(d.toPrecision(12))) : d.toFixed(Math.min(Math.max(pa, pb), 12));
  return d > 0 ? `+${text}` : text;
}

function metricsPart(va, vb, heads) {
  const names = [...new Set([...Object.keys(va.metrics || {}), ...Object.keys(vb.metrics || {})])];
  if (!names.length) return [h('h2', {}, 'Metrics'), h('p', { class: 'desc', id: 'compare-no-metrics' }, 'Neither version reports metrics.')];
  const has = (v, name) => v.metrics && Object.hasOwn(v.metrics, name);
  const value = (v, name) => (has(v, name) ? metricText(v.metrics[name], false) : h('span', { class: 'desc absent' }, 'not reported'));
  const diff = (name) => {
    if (!has(va, name)) return badge(`only in v${vb.label}`, 'only');
    if (!has(vb, name)) return badge(`only in v${va.label}`, 'only');
    const [a, b] = [va.metrics[name], vb.metrics[name]];
    return typeof a === 'number' && typeof b === 'number' ? difference(a, b) : '';
  };
  const head = heads('Metric', 'num');
  head.append(h('th', { scope: 'col', class: 'num' }, `v${vb.label} − v${va.label}`));
  return [h('h2', {}, 'Metrics'), h('div', { class: 'table-wrap' }, h('table', { id: 'compare-metrics', class: 'compare' }, h('thead', {}, head),
    h('tbody', {}, names.map((name) => h('tr', { 'data-metric': name }, h('th', { scope: 'row' }, name),
      [va, vb].map((v) => h('td', { class: has(v, name) && typeof v.metrics[name] !== 'number' ? null : 'num' }, value(v, name))),
      h('td', { class: 'num diff' }, diff(name)))))))];
}

function fileCell(v, f) {
  if (!f) return h('td', { class: 'absent' }, h('span', { class: 'desc' }, 'absent'));
  // Where the browser has no clipboard (plain http off localhost), Copy
  // selects the whole hash, kept off screen, for Ctrl+C.
  const full = h('code', { class: 'visually-hidden' }, f.sha256);
  return h('td', { 'data-sha256': f.sha256 },
    h('span', { class: 'size', title: `${f.size} bytes` }, bytes(f.size)), ' ',
    h('code', { class: 'sha-short', title: f.sha256 }, `${f.sha256.slice(0, 12)}…`), ' ',
    copyButton(`the sha256 of ${f.path} in v${v.label}`, f.sha256, full), full,
    f.weightFactsSummary ? h('div', { class: f.weightFacts && f.weightFacts.error ? 'desc weights unreadable' : 'desc weights' }, f.weightFactsSummary) : null);
}

function filesPart(va, vb, heads) {
  const paths = [...new Set([...va.files.map((f) => f.path), ...vb.files.map((f) => f.path)])].sort();
  if (!paths.length) return [h('h2', {}, 'Files'), h('p', { class: 'desc' }, 'Neither version holds files.')];
  return [h('h2', {}, 'Files'), h('div', { class: 'table-wrap' }, h('table', { id: 'compare-files', class: 'compare' }, h('thead', {}, heads('Path')),
    h('tbody', {}, paths.map((path) => {
      const fa = va.files.find((f) => f.path === path), fb = vb.files.find((f) => f.path === path);
      const same = !fa ? badge(`only in v${vb.label}`, 'only') : !fb ? badge(`only in v${va.label}`, 'only')
        : fa.sha256 === fb.sha256 ? badge('identical', 'same') : badge('changed', 'changed');
      return h('tr', { 'data-path': path }, h('th', { scope: 'row' }, h('code', {}, path), h('div', { class: 'same' }, same)), fileCell(va, fa), fileCell(vb, fb));
    }))))];
}

// Lineage from modelreg's version route, which resolves each parent by the
// registry's rule (visible, else "deleted").
async function loadLineage(model, va, vb, heads) {
  const [la, lb] = await Promise.all([va, vb].map((v) =>
    api(`/api/modelreg/v1/models/${encodeURIComponent(model.id)}/versions/${v.number}`).then((d) => d.lineage || {})));
  const parent = (p) => {
    if (!p) return '';
    if (p.deleted) return h('span', { class: 'desc', title: 'Deleted, or not visible to this key' }, 'deleted');
    const handle = p.model_id === model.id ? model.handle : handleOf({ id: p.model_id, name: p.model });
    return h('a', { href: versionHref(handle, p.version) }, p.model_id === model.id ? `v${p.version}` : `${p.model} v${p.version}`);
  };
  const rows = [
    ['Source commit', (l) => l.source_commit && h('code', { class: 'sha' }, l.source_commit)],
    ['Dataset', (l) => l.dataset],
    ['Run', (l) => l.run_url && runLink(l.run_url)],
    ['Parent version', (l) => parent(l.parent_version)],
  ];
  return h('div', { class: 'table-wrap' }, h('table', { id: 'compare-lineage-table', class: 'compare' }, h('thead', {}, heads('')),
    h('tbody', {}, rows.map(([name, cell]) => h('tr', {}, h('th', { scope: 'row' }, name), h('td', {}, cell(la) || ''), h('td', {}, cell(lb) || ''))))));
}
