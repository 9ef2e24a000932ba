// A version's model card: the one place the page shows HTML it did not build.

import { ORIGIN, api, h, part, when } from './core.js';

export function cardSection(model, v) {
  const section = part(`Model card (v${v.label})`, 'card', () => loadCard(model, v));
  section.classList.add('card');
  return section;
}

// The version's card (its README.md, or one set through modelreg's API).
// This is the one place the page inserts HTML it did not build itself, and
// two walls stand in the way of a hostile card: the registry sanitised the
// HTML (ammonia: no script, no event handler, no javascript: or data: URL,
// no style, no id), and this page's Content-Security-Policy runs no inline
// script and no script from elsewhere, should the first wall ever fail.
// DOMParser makes an inert document (its scripts never run, it loads
// nothing); its nodes are then moved into the card's container.
async function loadCard(model, v) {
  const path = `/api/modelreg/v1/models/${encodeURIComponent(model.id)}/versions/${v.number}/card`;
  let card;
  try {
    card = await api(path);
  } catch (e) {
    if (e.status !== 404) throw e;
    return h('p', { class: 'desc', id: 'no-card' }, 'This version has no model card. Add a README.md to its files, or set one with ',
      h('code', {}, `PUT ${ORIGIN}${path}`), ' and {"markdown": "…"}.');
  }
  const origin = card.source === 'api'
    ? h('p', { class: 'desc' }, `Set through the API by ${card.updatedBy}, `, when(card.updatedAt), '.')
    : h('p', { class: 'desc' }, 'From the version\'s ', h('code', {}, card.path), '.');
  const out = [origin];
  if (card.note) out.push(h('p', { class: 'notice', id: 'card-note' }, card.note));
  if (card.html != null) {
    const rendered = new DOMParser().parseFromString(card.html, 'text/html');
    out.push(h('div', { class: 'card-body', id: 'card-body' }, [...rendered.body.childNodes]));
  }
  return out;
}
