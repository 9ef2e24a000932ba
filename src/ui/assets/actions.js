// Acting on a model where the page shows it: its description, aliases and
// tags, a version's status, deleting a version, uploading a new one. A
// control is offered only where the model route's `may` says the key may
// use it (the routes check again); removing or deleting asks first, in the
// page. Changes go to modelreg's own API, uploads to the model's door, and
// the page is then drawn again from the server's answer. A refusal (an
// invalid name, a 403) is shown where the action was taken, as the server
// worded it.

import { ApiError, ORIGIN, announce, bytes, h, key, keyRejected, messageOf, send, snippet, versionHref } from './core.js';

const MODELREG = '/api/modelreg/v1/models';
// Octomil's upload formats (registry::catalogue::weights::FORMATS); none
// lets the server infer it from the file name.
const FORMATS = ['pytorch', 'tensorflow', 'onnx', 'sklearn', 'xgboost', 'safetensors', 'gguf'];

// What the last upload did, shown once by the page drawn after it.
let lastUpload = null;

// The page's hook: `render(id, version)` draws the model page again (model.js's renderModel).
export function addActions(page, data, selected, render) {
  const { model, versions } = data;
  const may = data.may || {};
  const ctx = { model, versions, selected, render, base: `${MODELREG}/${encodeURIComponent(model.id)}` };
  const lead = page.querySelector('p.lead');
  if (!may.change) {
    if (lead) lead.after(h('p', { class: 'desc', id: 'read-only' }, 'This key may read this model but not change it.'));
    return;
  }
  if (lead) lead.after(descriptionEditor(ctx));
  const modelTags = page.querySelector('#model-tags');
  if (modelTags) tagEditor(ctx, modelTags, `${ctx.base}/tags`, 'model');
  const aliases = page.querySelector('#model-aliases');
  if (aliases) aliasRemovers(ctx, aliases);
  const table = page.querySelector('#versions');
  const where = table ? table.closest('.table-wrap') : page.querySelector('#no-versions');
  if (where) where.after(uploadPanel(ctx));
  if (!selected) return;
  const versionBase = `${ctx.base}/versions/${selected.number}`;
  const versionTags = page.querySelector('#version-tags');
  if (versionTags) tagEditor(ctx, versionTags, `${versionBase}/tags`, 'version');
  const versionAliases = page.querySelector('#version-aliases');
  if (versionAliases) versionAliases.parentElement.append(aliasForm(ctx));
  const fields = page.querySelector('#version-fields');
  if (fields) fields.after(versionActions(ctx, versionBase, may));
}

// Draws the page again showing `number` (null: the latest), where the
// reader was: the same scroll, and the focus on the same form when it is
// still there (a keyboard user adding tags stays in the tag form).
async function redraw(ctx, number, formId) {
  const y = window.scrollY;
  await ctx.render(ctx.model.id, number);
  window.scrollTo(0, y);
  const again = formId && document.getElementById(formId);
  const field = again && again.querySelector('input, textarea');
  if (field) field.focus({ preventScroll: true });
}

// Shows a version by its URL; when the URL already names it, draws it again.
function show(ctx, hash, number) {
  if (window.location.hash === hash) redraw(ctx, number);
  else window.location.hash = hash;
}

function errorLine(id) { return h('p', { class: 'error action-error', id, role: 'alert', hidden: true }); }
function showError(line, e) { line.textContent = e.message || String(e); line.hidden = false; }

// Runs `act` with `button` disabled; a failure is shown in `line`, success redraws.
async function perform(ctx, button, line, act, done) {
  const form = button.closest('form[id]');
  button.disabled = true;
  if (line) line.hidden = true;
  try {
    const result = await act();
    announce(done);
    await redraw(ctx, ctx.selected ? ctx.selected.number : null, form && form.id);
    return result;
  } catch (e) {
    if (e.status !== 401 && line) showError(line, e);
    button.disabled = false;
    return undefined;
  }
}

// "Really …? [Yes] [Cancel]" after `anchor` (by default `trigger`, which
// hides until the question is answered).
function confirmInline(trigger, question, yesLabel, onYes, anchor) {
  const yes = h('button', { type: 'button', class: 'danger confirm-yes' }, yesLabel);
  const no = h('button', { type: 'button', class: 'confirm-no' }, 'Cancel');
  const box = h('span', { class: 'confirm', role: 'group', 'aria-label': question }, h('span', { class: 'question' }, question), ' ', yes, ' ', no);
  trigger.hidden = true;
  (anchor || trigger).after(box);
  no.addEventListener('click', () => { box.remove(); trigger.hidden = false; trigger.focus(); });
  yes.addEventListener('click', () => onYes(yes));
  no.focus();
}

// --- description ---------------------------------------------------------

function descriptionEditor(ctx) {
  const box = h('div', { id: 'description-edit', class: 'inline-form' });
  const edit = h('button', { type: 'button', id: 'edit-description' }, ctx.model.description ? 'Edit description' : 'Add a description');
  box.append(edit);
  edit.addEventListener('click', () => {
    const text = h('textarea', { id: 'description-input', rows: 4, 'aria-label': 'Description' });
    text.value = ctx.model.description || '';
    const save = h('button', { type: 'submit', class: 'primary', id: 'save-description' }, 'Save');
    const cancel = h('button', { type: 'button', id: 'cancel-description' }, 'Cancel');
    const line = errorLine('description-error');
    const form = h('form', { class: 'stack' }, text, h('div', { class: 'buttons' }, save, ' ', cancel), line);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const value = text.value.trim();
      perform(ctx, save, line, () => send('PATCH', ctx.base, { description: value || null }), 'Description saved');
    });
    cancel.addEventListener('click', () => { form.remove(); edit.hidden = false; edit.focus(); });
    edit.hidden = true;
    box.append(form);
    text.focus();
  });
  return box;
}

// --- tags and aliases ----------------------------------------------------------

// A remove button (its × drawn by CSS, so a chip's text stays the tag's) on each chip of `list` and an add form after it; `which`
// ('model' or 'version') names the form's fields.
function tagEditor(ctx, list, tagsPath, which) {
  const line = errorLine(`${which}-tag-error`);
  for (const chip of list.querySelectorAll('li.chip[data-key]')) {
    const name = chip.dataset.key;
    const remove = h('button', { type: 'button', class: 'remove', 'data-key': name, 'aria-label': `Remove tag ${name}`, title: `Remove tag ${name}` });
    // Asked below the list: a chip cuts its text short, and would cut the question.
    remove.addEventListener('click', () => confirmInline(remove, `Remove tag ${name}?`, 'Remove', (yes) =>
      perform(ctx, yes, line, () => send('DELETE', `${tagsPath}/${encodeURIComponent(name)}`), `Tag ${name} removed`), list));
    // The chip's text keeps its ellipsis; the button stays whole beside it.
    const text = h('span', { class: 'chip-text' }, chip.textContent);
    chip.replaceChildren(text, remove);
    chip.classList.add('removable');
  }
  const keyInput = h('input', { type: 'text', id: `${which}-tag-key`, placeholder: 'key', 'aria-label': `New ${which} tag: key`, required: true, size: 12 });
  const valueInput = h('input', { type: 'text', id: `${which}-tag-value`, placeholder: 'value', 'aria-label': `New ${which} tag: value`, size: 14 });
  const add = h('button', { type: 'submit', id: `${which}-tag-add` }, 'Add tag');
  const form = h('form', { class: 'inline-form', id: `${which}-tag-form` }, keyInput, ' ', valueInput, ' ', add, line);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const name = keyInput.value.trim();
    perform(ctx, add, line, () => send('PUT', `${tagsPath}/${encodeURIComponent(name)}`, { value: valueInput.value }), `Tag ${name} set`);
  });
  list.parentElement.append(form);
}

// A remove button beside each of the model's aliases.
function aliasRemovers(ctx, list) {
  for (const link of list.querySelectorAll('a[data-alias]')) {
    const alias = link.dataset.alias;
    const remove = h('button', { type: 'button', class: 'remove', 'data-alias': alias, 'aria-label': `Remove alias @${alias}`, title: `Remove alias @${alias}` });
    const line = errorLine(null);
    remove.addEventListener('click', () => confirmInline(remove, `Remove @${alias}? Clients that name it will fail.`, 'Remove', (yes) =>
      perform(ctx, yes, line, () => send('DELETE', `${ctx.base}/aliases/${encodeURIComponent(alias)}`), `Alias @${alias} removed`)));
    link.after(' ', remove, line);
  }
}

// Sets an alias on the chosen version; one another version has moves here.
function aliasForm(ctx) {
  const v = ctx.selected;
  const options = h('datalist', { id: 'alias-names' }, Object.keys(ctx.model.aliases || {}).map((a) => h('option', { value: a })));
  const input = h('input', { type: 'text', id: 'alias-name', list: 'alias-names', placeholder: 'alias, e.g. champion', 'aria-label': `Alias to set on v${v.label}`, required: true, size: 18 });
  const set = h('button', { type: 'submit', id: 'alias-set' }, `Set on v${v.label}`);
  const line = errorLine('alias-error');
  const form = h('form', { class: 'inline-form', id: 'alias-form' }, options, input, ' ', set, line,
    h('div', { class: 'desc hint' }, 'An alias another version has moves to this one.'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const alias = input.value.trim().replace(/^@/, '');
    perform(ctx, set, line, () => send('PUT', `${ctx.base}/aliases/${encodeURIComponent(alias)}`, { version: v.number }), `@${alias} now names v${v.label}`);
  });
  return form;
}

// --- a version's status and deletion ----------------------------------------------

const STATUS_ACTIONS = [['published', 'Publish'], ['deprecated', 'Deprecate'], ['active', 'Make active']];

function versionActions(ctx, versionBase, may) {
  const v = ctx.selected;
  const line = errorLine('version-error');
  const buttons = STATUS_ACTIONS.filter(([status]) => status !== v.status).map(([status, label]) => {
    const b = h('button', { type: 'button', class: 'status-action', 'data-status': status }, label);
    b.addEventListener('click', () => perform(ctx, b, line, () => send('PATCH', versionBase, { status }), `v${v.label} is ${status}`));
    return [b, ' '];
  });
  const box = h('div', { class: 'version-actions', id: 'version-actions', role: 'group', 'aria-label': `Actions on version ${v.label}` }, buttons);
  if (may.delete) {
    const del = h('button', { type: 'button', class: 'danger', id: 'delete-version' }, `Delete v${v.label}…`);
    const files = v.files.length === 1 ? '1 file' : `${v.files.length} files`;
    del.addEventListener('click', () => confirmInline(del, `Delete version v${v.label} (${files}, ${bytes(v.size)})? This cannot be undone.`, `Delete v${v.label}`,
      async (yes) => {
        yes.disabled = true;
        line.hidden = true;
        try {
          await send('DELETE', versionBase);
          announce(`Version v${v.label} deleted`);
          show(ctx, `#/models/${encodeURIComponent(ctx.model.id)}`, null);
        } catch (e) {
          if (e.status !== 401) showError(line, e);
          yes.disabled = false;
        }
      }));
    box.append(del);
  }
  box.append(line);
  return box;
}

// --- uploading a version -------------------------------------------------------------

// Where and how the model's door takes a new version; null when it takes none.
function uploadRoute(ctx) {
  const id = encodeURIComponent(ctx.model.id);
  if (ctx.model.origin === 'octomil') return { url: `/api/v1/models/${id}/versions/upload`, door: 'Octomil' };
  if (ctx.model.origin === 'datarobot' && ctx.versions.length) return { url: `/api/v2/customModels/${id}/versions/`, door: 'DataRobot' };
  return null;
}

function uploadPanel(ctx) {
  const section = h('section', { id: 'upload', class: 'panel', 'aria-labelledby': 'upload-h' }, h('h2', { id: 'upload-h' }, 'Upload a new version'));
  const route = uploadRoute(ctx);
  if (!route) {
    section.append(...noUpload(ctx));
    return section;
  }
  const file = h('input', { type: 'file', id: 'upload-file', 'aria-label': 'File to upload' });
  const progress = h('progress', { id: 'upload-progress', max: 100, value: 0, hidden: true });
  const status = h('span', { id: 'upload-status', class: 'desc', role: 'status' });
  const start = h('button', { type: 'submit', class: 'primary', id: 'upload-start', disabled: true }, 'Upload');
  const cancel = h('button', { type: 'button', id: 'upload-cancel', hidden: true }, 'Cancel');
  const line = errorLine('upload-error');
  const extra = [];
  let format = null, path = null;
  if (ctx.model.origin === 'octomil') {
    format = h('select', { id: 'upload-format', 'aria-label': 'Format' }, h('option', { value: '' }, 'format from the file name'),
      FORMATS.map((f) => h('option', { value: f }, f)));
    extra.push(format);
  } else {
    path = h('input', { type: 'text', id: 'upload-path', placeholder: 'path in the version', 'aria-label': 'Path in the version', size: 18 });
    extra.push(path);
  }
  file.addEventListener('change', () => {
    start.disabled = !file.files.length;
    if (path && file.files.length && !path.value) path.value = file.files[0].name;
  });
  const form = h('form', { class: 'inline-form', id: 'upload-form' }, file, ' ', extra, ' ', start, ' ', cancel,
    h('div', { class: 'progress-line' }, progress, ' ', status), line);
  const hint = ctx.model.origin === 'datarobot'
    ? `Through ${route.door}'s route: the new version holds this one file, on the execution environment of v${ctx.versions[0].label}.`
    : `Through ${route.door}'s route: the file becomes the next version, streamed from disk.`;
  section.append(h('p', { class: 'desc' }, hint), form);
  if (lastUpload && lastUpload.model === ctx.model.id) {
    // The page drawn after an upload says how it went.
    const done = lastUpload;
    lastUpload = null;
    progress.hidden = false;
    progress.value = done.percent;
    progress.dataset.events = String(done.events);
    status.textContent = `${done.percent}% · ${bytes(done.loaded)} of ${bytes(done.total)} · ${done.name} uploaded`;
  }
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!file.files.length) return;
    const chosen = file.files[0];
    const body = new FormData();
    if (ctx.model.origin === 'datarobot') {
      send('GET', `/api/v2/customModels/${encodeURIComponent(ctx.model.id)}/versions/${encodeURIComponent(ctx.versions[0].id)}/`)
        .then((latest) => {
          if (latest.baseEnvironmentId) body.append('baseEnvironmentId', latest.baseEnvironmentId);
          body.append('file', chosen, chosen.name);
          body.append('filePath', path.value.trim() || chosen.name);
          upload(ctx, route.url, body, chosen, { progress, status, start, cancel, line });
        })
        .catch((err) => { if (err.status !== 401) showError(line, err); });
    } else {
      if (format.value) body.append('format', format.value);
      body.append('file', chosen, chosen.name);
      upload(ctx, route.url, body, chosen, { progress, status, start, cancel, line });
    }
  });
  return section;
}

// The browser streams the File from disk (XMLHttpRequest with FormData: no
// copy of it in JavaScript); `upload.onprogress` drives the bar.
function upload(ctx, url, body, chosen, ui) {
  const { progress, status, start, cancel, line } = ui;
  const seen = { percent: 0, loaded: 0, total: chosen.size, events: 0 };
  const xhr = new XMLHttpRequest();
  xhr.open('POST', url);
  xhr.setRequestHeader('Authorization', `Bearer ${key()}`);
  xhr.responseType = 'text';
  xhr.upload.addEventListener('progress', (e) => {
    if (!e.lengthComputable) return;
    seen.events += 1;
    seen.loaded = e.loaded;
    seen.total = e.total;
    seen.percent = Math.floor((100 * e.loaded) / e.total);
    progress.value = seen.percent;
    status.textContent = `${seen.percent}% · ${bytes(e.loaded)} of ${bytes(e.total)}`;
  });
  xhr.addEventListener('load', () => {
    cancel.hidden = true;
    if (xhr.status === 401) { keyRejected(new ApiError(401, messageOf(401, xhr.responseText))); return; }
    if (xhr.status < 200 || xhr.status >= 300) {
      start.disabled = false;
      showError(line, new Error(messageOf(xhr.status, xhr.responseText)));
      status.textContent = '';
      return;
    }
    lastUpload = { model: ctx.model.id, name: chosen.name, ...seen };
    announce(`${chosen.name} uploaded`);
    let number = null;
    try { number = JSON.parse(xhr.responseText).version; } catch (_) { /* the door's answer names no number */ }
    if (Number.isInteger(number)) show(ctx, versionHref(ctx.model.handle || ctx.model.id, number), number);
    else show(ctx, `#/models/${encodeURIComponent(ctx.model.id)}`, null);
  });
  const failed = (text) => () => {
    start.disabled = false;
    cancel.hidden = true;
    status.textContent = '';
    showError(line, new Error(text));
  };
  xhr.addEventListener('error', failed('The upload failed: the server did not answer. Is modelreg still running?'));
  xhr.addEventListener('abort', failed('Upload cancelled.'));
  cancel.onclick = () => xhr.abort();
  start.disabled = true;
  cancel.hidden = false;
  line.hidden = true;
  progress.hidden = false;
  progress.value = 0;
  status.textContent = `0% · 0 B of ${bytes(chosen.size)}`;
  xhr.send(body);
}

// Paperspace's API makes no versions (and a DataRobot model's first needs
// an execution environment): how versions are made instead.
function noUpload(ctx) {
  const id = ctx.model.id;
  if (ctx.model.origin === 'datarobot') {
    return [h('p', { class: 'desc', id: 'upload-howto' }, 'The first version of a DataRobot model needs an execution environment: create it through the DataRobot API; later versions can be uploaded here.')];
  }
  return [h('p', { class: 'desc', id: 'upload-howto' }, "Paperspace's API has no version upload. Versions of this model are made with the modelreg CLI (or Octomil's upload route, which takes any model):"),
    snippet('Upload a version with the CLI', `modelreg --server ${ORIGIN} versions upload ${id} model.pt`)];
}
