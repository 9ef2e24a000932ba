// A model's page: its fields, its versions and the chosen version's facts,
// card, files and (DataRobot) extras.

import { ORIGIN, api, bytes, doorBadge, fieldList, h, main, setTitle, snippet, stacked, statusBadge, versionHref, when } from './core.js';
import { aliasBadges, aliasesOf, lineageSection, metricsInShort, metricsSummary, modelAliases, tagChips, versionInfo } from './facts.js';
import { cardSection } from './card.js';
import { fileRow, snippets } from './files.js';
import { dataRobotSections } from './datarobot.js';
import { metricCharts } from './chart.js';
import { compareBar } from './compare.js';
import { chosen, loadModel } from './resolve.js';
import { addActions } from './actions.js';
import { label, valueText } from './labels.js';

// `id` is the model's id or name, `wantedVersion` any version handle (resolve.js).
export async function renderModel(id, wantedVersion) {
  setTitle('Model');
  main.replaceChildren(h('p', { class: 'desc', 'aria-busy': 'true' }, 'Loading…'));
  const data = await loadModel(id, [wantedVersion]);
  if (!data) return;
  const { model, versions } = data;
  setTitle(model.name || 'unnamed model');
  const selected = (wantedVersion != null && chosen(data, 0)) || versions[0];
  const datarobot = model.origin === 'datarobot';

  const page = h('article', { id: 'model', 'data-id': model.id },
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, '← Models')),
    h('h1', { id: 'model-name' }, model.name || '(unnamed)'),
    h('p', { class: 'lead' }, doorBadge(model.origin), ' ', model.description || ''),
    fieldsPanel(model, versions),
    h('h2', { id: 'versions-h' }, `Versions (${versions.length})`),
    versions.length ? versionsTable(model, versions, selected) : noVersions(model),
    compareBar(model, versions, selected), metricCharts(versions));
  if (wantedVersion != null && !chosen(data, 0)) {
    page.append(h('p', { class: 'error', role: 'alert', id: 'no-such-version' }, `This model has no version ${wantedVersion}; showing the latest.`));
  }
  if (selected) page.append(versionInfo(model, versions, selected), lineageSection(model, versions, selected), cardSection(model, selected), versionSection(model, selected));
  if (datarobot) page.append(...dataRobotSections(model, selected));
  addActions(page, data, selected, renderModel);
  main.replaceChildren(page);
}

function fieldsPanel(model, versions) {
  const rows = [['Aliases', modelAliases(model, versions)], ['Tags', tagChips(model.tags, 'model-tags')],
    ['ID', h('code', {}, model.id)], ['Created', [when(model.created), ` by ${model.createdBy}`]], ['Modified', when(model.modified)]];
  // The framework by the registry's rule (its own, else its latest weights'), as the API and the list show it.
  if (model.framework) rows.push([label('framework'), h('span', { id: 'model-framework' }, model.framework)]);
  for (const [k, v] of Object.entries(model.attrs || {})) {
    if (v == null || v === '' || k === 'framework') continue;
    rows.push([label(k), v !== null && typeof v === 'object' && !Array.isArray(v) ? h('code', {}, valueText(v)) : valueText(v)]);
  }
  return h('section', { class: 'panel', 'aria-label': 'Fields' }, fieldList(rows));
}


function noVersions(model) {
  const upload = model.origin === 'datarobot'
    ? `curl -X POST ${ORIGIN}/api/v2/customModels/${model.id}/versions/ -H "Authorization: Bearer $MODELREG_TOKEN" \\\n  -F baseEnvironmentId=ENV_ID -F file=@custom.py -F filePath=custom.py`
    : `modelreg --server ${ORIGIN} versions upload ${model.id} model.pt`;
  return h('div', { class: 'empty', id: 'no-versions' }, h('p', {}, 'No versions yet. Upload the first one:'), snippet('Upload a version', upload));
}

function versionsTable(model, versions, selected) {
  return h('div', { class: 'table-wrap' }, stacked(h('table', { id: 'versions' },
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
        h('td', {}, h('a', { href: versionHref(model.handle, v.number), 'aria-current': current ? 'true' : null }, `v${v.label}`),
          v.description ? h('div', { class: 'desc' }, v.description) : null,
          Object.keys(v.tags || {}).length ? tagChips(v.tags) : null),
        h('td', { class: 'aliases' }, aliasBadges(aliasesOf(model, v.number))),
        h('td', { class: 'metrics-cell', title: metricsSummary(v.metrics) || null }, metricsInShort(v.metrics)),
        h('td', { class: 'num', title: `${v.size} bytes` }, bytes(v.size)),
        h('td', {}, sha),
        h('td', {}, v.format || '', v.status && v.status !== 'active' ? [' ', statusBadge(v.status)] : null),
        h('td', {}, v.createdBy),
        h('td', {}, when(v.created)));
    })))));
}

function versionSection(model, v) {
  const files = h('tbody', {}, v.files.map((f) => fileRow(model, v, f)));
  const section = h('section', { id: 'version', 'aria-labelledby': 'version-h', 'data-number': v.number },
    h('h2', { id: 'version-h' }, `Version ${v.label}: files`),
    v.files.length === 0 ? h('p', { class: 'desc' }, 'This version holds no files.') :
      h('div', { class: 'table-wrap' }, stacked(h('table', { id: 'files' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Path'), h('th', { scope: 'col', class: 'num' }, 'Size'),
          h('th', { scope: 'col' }, 'sha256'), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Download')))),
        files))),
    h('div', { id: 'download-status', role: 'status' }),
    h('h2', {}, 'Fetch this version'),
    snippets(model, v));
  return section;
}
