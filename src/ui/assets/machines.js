// Paperspace machines and their event timelines.

import { ORIGIN, api, bytes, errorBox, fieldList, fill, h, main, setTitle, snippet, stacked, statusBadge, when } from './core.js';

export async function renderMachines() {
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
  fill(results, h('div', { class: 'table-wrap' }, stacked(h('table', { id: 'machines' },
    h('thead', {}, h('tr', {}, ['Name', 'State', 'Type', 'Region', 'Template', 'Created'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, page.items.map((m) => h('tr', {},
      h('td', {}, h('a', { href: `#/machines/${encodeURIComponent(m.id)}` }, m.name || m.id)),
      h('td', {}, statusBadge(m.state)), h('td', {}, m.machineType), h('td', {}, m.region), h('td', {}, h('code', {}, m.templateId || '')),
      h('td', {}, when(m.dtCreated)))))))),
  page.hasMore ? h('p', { class: 'desc' }, 'The first 120 machines are shown.') : null);
}

export async function renderMachine(id) {
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
