// The DataRobot model page's extras: tests, feature impact, environment,
// datasets and access roles. Each part loads on its own.

import { ORIGIN, api, apiText, bytes, h, part, s, shorten, snippet, statusBadge, when } from './core.js';
import { label } from './labels.js';

export function dataRobotSections(model, v) {
  const base = `/api/v2/customModels/${encodeURIComponent(model.id)}`;
  const out = [];
  out.push(part('Custom model tests', 'tests', () => loadTests(model)));
  if (v) {
    out.push(part(`Feature impact (v${v.label})`, 'impact', () => loadImpact(model, base, v)));
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
    return [h('p', { class: 'desc', id: 'no-tests' }, 'No tests yet. A test starts the model in its environment, scores a dataset and checks how it copes with missing values and odd input. Run one:'),
      snippet('Test this model', `modelreg --server ${ORIGIN} custom-models test ${model.id} latest --dataset DATASET_ID`)];
  }
  return tests.map((t) => {
    const checks = Object.entries(t.testingStatus || {}).map(([name, c]) => {
      const b = statusBadge(c && c.status, label(name));
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

// Before a run, while one runs, after one failed: what feature impact is and
// how to get it, in words for a person (the route's message is for clients).
async function loadImpact(model, base, v) {
  let body;
  try {
    body = await api(`${base}/versions/${encodeURIComponent(v.id)}/featureImpact/`);
  } catch (e) {
    const run = snippet('Compute feature impact', `modelreg --server ${ORIGIN} custom-models feature-impact ${model.id} ${v.label}`);
    if (e.status === 422) {
      return h('p', { class: 'desc', id: 'impact-running' }, 'Feature impact is being computed for this version. Reload the page in a minute to see it.');
    }
    if (e.status === 404 && /failed/.test(e.message)) {
      return [h('p', { class: 'error', id: 'impact-failed' }, `The last run failed: ${e.message.replace(/^.*?failed:\s*/, '') || 'no reason given'}`),
        h('p', { class: 'desc' }, 'Fix the cause (often: no training data, or a model that does not start), then run it again:'), run];
    }
    if (e.status === 404) {
      return [h('p', { class: 'desc', id: 'no-impact' },
        'Feature impact shows which input columns this version relies on most: each column of its training data is shuffled in turn, ',
        'and the more the predictions change, the more that column matters. It has not been computed for this version yet. ',
        'It needs training data assigned to the model or the version; then run:'), run];
    }
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
  if (!ids.length) {
    return h('p', { class: 'desc', id: 'no-datasets' }, 'No training data assigned yet. Tests and feature impact need it: assign a dataset to the model with ',
      h('code', {}, `PATCH ${ORIGIN}/api/v2/customModels/${model.id}/trainingData/`), ' and {"datasetId": "…"}.');
  }
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
  return h('div', { class: 'table-wrap' }, h('table', { id: 'access' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'User'), h('th', { scope: 'col' }, 'Role'), h('th', { scope: 'col' }, 'Can share'))),
    h('tbody', {}, rows.map((r) => h('tr', {}, h('td', {}, r.username || r.userId), h('td', {}, r.role), h('td', {}, r.canShare ? 'yes' : 'no'))))));
}
