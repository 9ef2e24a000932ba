// A version's files, their downloads, and how to fetch them from a shell or a client.

import { ORIGIN, bytes, errorBox, h, hash, send, snippet } from './core.js';

export function fileRow(model, v, f) {
  const name = f.path.split('/').pop();
  const href = `/ui/api/models/${encodeURIComponent(model.id)}/versions/${v.number}/files/${encodeURIComponent(f.id)}/link`;
  // A link the browser follows itself once the registry signed it: it
  // streams the file to disk with its own progress, nothing in this page.
  const link = h('a', { href: '#', class: 'download button', 'data-file': f.id, download: name, 'aria-label': `Download ${f.path}` }, 'Download');
  link.addEventListener('click', (ev) => { ev.preventDefault(); download(href, f, name, link); });
  // A safetensors or GGUF file's header, as the registry read it (or why it could not).
  const facts = f.weightFactsSummary ? h('div', { class: f.weightFacts.error ? 'desc weights unreadable' : 'desc weights' }, f.weightFactsSummary) : null;
  const check = h('button', { type: 'button', class: 'copy-check', title: checkCommand(f, name), 'aria-label': `Copy the sha256sum check of ${f.path}` }, 'Copy check');
  check.addEventListener('click', async () => {
    try { await navigator.clipboard.writeText(checkCommand(f, name)); check.textContent = 'Copied'; } catch (_) { showCheck(f, name); }
    setTimeout(() => { check.textContent = 'Copy check'; }, 2000);
  });
  return h('tr', {}, h('td', {}, h('code', {}, f.path), facts), h('td', { class: 'num', title: `${f.size} bytes` }, bytes(f.size)),
    h('td', {}, hash(f.sha256, `sha256 of ${f.path}`)), h('td', { class: 'file-actions' }, link, ' ', check));
}

function showCheck(f, name, intro) {
  document.getElementById('download-status').replaceChildren(h('div', { class: 'notice', id: 'download-result', 'data-sha256': f.sha256 },
    h('p', {}, intro || '', 'Expected sha256: ', h('code', { class: 'sha' }, f.sha256), '. Check the saved file in its folder:'),
    snippet('Check the sha256', checkCommand(f, name))));
}

// What checks a downloaded file against the registry's sha256 in a shell.
function checkCommand(f, name) { return `echo "${f.sha256}  ${name}" | sha256sum -c`; }

// Downloads need the key, which a plain link cannot send: the registry signs
// a short-lived link to this one file, and the browser follows it as it would
// any download (no byte of it passes through this script). The sha256 to
// expect is shown beside it, with the command that checks it.
async function download(href, f, name, link) {
  const status = document.getElementById('download-status');
  if (link.getAttribute('aria-disabled') === 'true') return;
  link.setAttribute('aria-disabled', 'true');
  try {
    const signed = await send('POST', href);
    const go = h('a', { href: signed.url, download: name, class: 'visually-hidden' }, name);
    document.body.append(go);
    go.click();
    go.remove();
    showCheck(f, name, `Your browser is downloading ${name} (${bytes(f.size)}); its downloads show the progress. `);
  } catch (e) {
    if (e.status !== 401) status.replaceChildren(errorBox(e));
  } finally {
    link.removeAttribute('aria-disabled');
  }
}

export function snippets(model, v) {
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
