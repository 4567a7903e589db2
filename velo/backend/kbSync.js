/**
 * backend/kbSync.js — keeps velochat's knowledge base in step with a Wix CMS collection (an `FAQ`
 * with question/answer fields, say). Run every hour by backend/jobs.config; safe to run by hand.
 *
 * Each run pushes only the items changed since the newest one velochat already has (by
 * `_updatedDate`), in batches through POST /admin/kb/import, then deletes from velochat the
 * documents whose item was removed from the collection. velochat itself remembers where the last
 * run got to (a `wix-updated:` tag on each document), so no extra collection is needed.
 *
 * Needs the secret `velochat_admin_key` (velochat's VELOCHAT_ADMIN_KEY) beside `velochat_url`.
 */
import wixData from 'wix-data';
import { secrets } from 'wix-secrets-backend.v2';
import { elevate } from 'wix-auth';
import { callVelochat } from 'backend/velochat';

/** Which collection, and which of its fields hold what. Field names are your collection's keys. */
export const kbSyncSettings = {
  collection: 'FAQ',
  titleField: 'question',
  bodyField: 'answer',
  /** Optional: a field with the page's https URL, and one with the item's locale (en, fr, ...). */
  urlField: null,
  localeField: null,
  /** velochat document ids are this prefix + the item's _id. */
  idPrefix: 'wix-faq-',
  batchSize: 500,
};

const UPDATED_TAG = 'wix-updated:';
const getSecret = elevate(secrets.getSecretValue);

/** An admin route, with the admin key; an import may take longer than a chat reply. */
async function adminCall(method, path, body) {
  const { value: key } = await getSecret('velochat_admin_key');
  return callVelochat(path, body, {}, { method, key, timeoutMs: 60000 });
}

/** Every document velochat holds for this collection: id → the item's `_updatedDate` it was built from. */
async function syncedDocuments() {
  const known = new Map();
  let cursor = '';
  for (;;) {
    const page = await adminCall('get', `/admin/kb/documents?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    if (!page.ok) throw new Error(`velochat listed documents with ${page.status}`);
    for (const doc of page.json.documents) {
      if (!doc.id.startsWith(kbSyncSettings.idPrefix)) continue;
      const tag = (doc.tags || []).find((t) => t.startsWith(UPDATED_TAG));
      known.set(doc.id, tag ? tag.slice(UPDATED_TAG.length) : '');
    }
    if (!page.json.nextCursor) return known;
    cursor = page.json.nextCursor;
  }
}

async function allItems(query) {
  const items = [];
  let result = await query.limit(1000).find();
  items.push(...result.items);
  while (result.hasNext()) {
    result = await result.next();
    items.push(...result.items);
  }
  return items;
}

function toDocument(item) {
  const s = kbSyncSettings;
  const updated = new Date(item._updatedDate).toISOString();
  const doc = {
    id: `${s.idPrefix}${item._id}`.replace(/[^A-Za-z0-9._:-]/g, '-').slice(0, 128),
    title: String(item[s.titleField] ?? '').slice(0, 300),
    body: String(item[s.bodyField] ?? ''),
    tags: [`${UPDATED_TAG}${updated}`],
  };
  if (s.urlField && item[s.urlField]) doc.url = item[s.urlField];
  if (s.localeField && item[s.localeField]) doc.locale = item[s.localeField];
  return doc;
}

/** One sync; resolves with what it did: `{ pushed, deleted, skipped }`. */
export async function syncKnowledgeBase() {
  const s = kbSyncSettings;
  const known = await syncedDocuments();
  const newest = [...known.values()].filter(Boolean).sort().pop();
  let query = wixData.query(s.collection).ascending('_updatedDate');
  if (newest) query = query.gt('_updatedDate', new Date(newest));
  const changed = await allItems(query);
  // Items without a title or body cannot be documents; they are reported, not pushed.
  const documents = changed.map(toDocument).filter((d) => d.title.trim() && d.body.trim());
  for (let i = 0; i < documents.length; i += s.batchSize) {
    const batch = documents.slice(i, i + s.batchSize);
    const result = await adminCall('post', '/admin/kb/import', { documents: batch });
    if (!result.ok) throw new Error(`velochat refused the import (${result.status}): ${JSON.stringify(result.json?.error)}`);
  }
  const present = new Set((await allItems(wixData.query(s.collection))).map((item) => toDocument(item).id));
  let deleted = 0;
  for (const id of known.keys()) {
    if (present.has(id)) continue;
    const result = await adminCall('delete', `/admin/kb/documents/${encodeURIComponent(id)}`);
    if (result.ok || result.status === 404) deleted += 1;
  }
  return { pushed: documents.length, deleted, skipped: changed.length - documents.length };
}
