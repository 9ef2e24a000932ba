// A version's aliases, tags, metrics and lineage as the model page shows them.

import { api, badge, fieldList, h, handleOf, part, shorten, statusBadge, versionHref } from './core.js';

// The model's aliases that name version `number` (the route answers the
// model's aliases once, by name).
export function aliasesOf(model, number) {
  return Object.entries(model.aliases || {}).filter(([, n]) => n === number).map(([alias]) => alias);
}

export function aliasBadges(aliases) {
  return aliases.map((alias) => [badge(`@${alias}`, 'alias'), ' ']);
}

// `@champion → v3`, each a link to the version it names.
export function modelAliases(model, versions) {
  const aliases = Object.entries(model.aliases || {});
  if (!aliases.length) return h('span', { class: 'desc', id: 'model-aliases' }, 'none');
  return h('ul', { class: 'chips', id: 'model-aliases' }, aliases.map(([alias, number]) => {
    const v = versions.find((x) => x.number === number);
    return h('li', {}, h('a', { href: versionHref(model.handle, `@${alias}`), class: 'chip alias', 'data-alias': alias, title: `@${alias}` },
      `@${alias} → v${v ? v.label : number}`));
  }));
}

// Tags as chips `key: value`; a long one is cut short on screen (CSS) and
// whole in its title, so a value of a thousand characters cannot widen the page.
export function tagChips(tags, id) {
  const entries = Object.entries(tags || {});
  if (!entries.length) return h('span', { class: 'desc', id }, 'none');
  return h('ul', { class: 'chips', id }, entries.map(([k, v]) => h('li', { class: 'chip', 'data-key': k, title: `${k}: ${v}` }, `${k}: ${v}`)));
}
// A metric as text: numbers as the registry holds them, or to four
// significant digits where the view is compact; anything else a client
// stored (a string, a list) as its text.
export function metricText(value, compact) {
  if (typeof value === 'number') return compact && !Number.isInteger(value) ? String(Number(value.toPrecision(4))) : String(value);
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return compact ? shorten(text, 24) : text;
}

// `auc 0.931 · f1 0.71`, whole: a cell's title.
export function metricsSummary(metrics) {
  return Object.entries(metrics || {}).map(([name, value]) => `${name} ${metricText(value, false)}`).join(' · ');
}

// The same in short, for the versions table (names and text values cut at
// 24 characters); a line breaks between two metrics, never inside one.
export function metricsInShort(metrics) {
  return Object.entries(metrics || {}).map(([name, value], i) =>
    [i ? ' · ' : null, h('span', { class: 'metric' }, `${shorten(name, 24)} ${metricText(value, true)}`)]);
}

export function metricsTable(metrics) {
  const entries = Object.entries(metrics || {});
  if (!entries.length) return h('p', { class: 'desc', id: 'no-metrics' }, 'No metrics reported.');
  return h('div', { class: 'table-wrap' }, h('table', { id: 'metrics' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Metric'), h('th', { scope: 'col' }, 'Value'))),
    h('tbody', {}, entries.map(([name, value]) => h('tr', {},
      h('th', { scope: 'row' }, name), h('td', { class: typeof value === 'number' ? 'num' : null }, metricText(value, false)))))));
}

// The chosen version's aliases, tags and metrics, from the model's answer.
export function versionInfo(model, versions, v) {
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

export function lineageSection(model, versions, v) {
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
export function runLink(text) {
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
  const handle = parent.model_id === model.id ? model.handle : handleOf({ id: parent.model_id, name: parent.model });
  return h('a', { href: versionHref(handle, parent.version), id: 'parent-link' }, text);
}
