// A version's files, their downloads, and how to fetch them from a shell or a client.

import { ORIGIN, bytes, errorBox, h, keyRejected, request, snippet } from './core.js';

export function fileRow(model, v, f) {
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
    if (e.status === 401) keyRejected(e);
    else status.replaceChildren(errorBox(e));
  } finally {
    button.disabled = false;
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
