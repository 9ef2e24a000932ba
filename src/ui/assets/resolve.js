// A model and its versions as a URL names them: the model by its id or its
// name, each version by any handle the API and the CLI take (a number, a
// label, `@alias`, `latest`). The server resolves both by the registry's
// rules (`/ui/api/models/{id}?version=…`), so the page has no rule of its own.

import { api, doorBadge, errorBox, h, main, modelHref, when } from './core.js';

// The model's answer with `handles[i]` for each of `versions` (its
// `number`, or its `error`); null when the page showed why there is none.
export async function loadModel(asked, versions) {
  const query = new URLSearchParams();
  for (const handle of versions) if (handle != null) query.append('version', handle);
  const q = query.toString();
  try {
    return await api(`/ui/api/models/${encodeURIComponent(asked)}${q ? `?${q}` : ''}`);
  } catch (e) {
    if (e.status !== 401) main.replaceChildren(h('p', { class: 'crumbs' }, h('a', { href: '#/' }, '← Models')), modelError(e, asked));
    return null;
  }
}

// A name two visible models share: the registry's message, then a link to
// each by its id, keeping the rest of the URL (its version or comparison).
function modelError(e, asked) {
  const candidates = e.status === 409 && e.body && Array.isArray(e.body.candidates) ? e.body.candidates : null;
  if (!candidates) return errorBox(e.status === 404 ? new Error(`No model ${asked} is visible to this key: ${e.message}`) : e);
  const rest = window.location.hash.split('/').slice(3).join('/');
  return h('section', { id: 'ambiguous', 'aria-labelledby': 'ambiguous-h' },
    h('h1', { id: 'ambiguous-h' }, `Which ${asked}?`),
    errorBox(e),
    h('ul', { class: 'candidates' }, candidates.map((c) => h('li', { 'data-id': c.id },
      h('a', { href: `${modelHref(c.id)}${rest ? `/${rest}` : ''}` }, h('code', {}, c.id)), ' ', doorBadge(c.origin), ' created ', when(c.created),
      c.description ? h('div', { class: 'desc' }, c.description) : null))));
}

// The version `handles[i]` names, or null.
export function chosen(data, i) {
  const r = data.handles[i];
  return r && r.number != null ? data.versions.find((v) => v.number === r.number) || null : null;
}
