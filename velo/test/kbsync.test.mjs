// The knowledge-base sync job against a live velochat: a Wix CMS collection (the wix-data shim)
// pushed incrementally by _updatedDate, deletions followed, and the result searchable.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startVelochat, admin } from './helpers.mjs';
import { syncKnowledgeBase, kbSyncSettings } from 'backend/kbSync';
import { resetConnection } from 'backend/velochat';

let velochat;

before(async () => {
  velochat = await startVelochat();
  globalThis.__wixSecrets = { velochat_url: velochat.url, velochat_api_key: 'unused', velochat_admin_key: 'kit-admin-key' };
  resetConnection();
});

after(() => velochat?.stop());

const at = (minutes) => new Date(Date.UTC(2026, 10, 1, 10, minutes));

test('jobs.config schedules the sync function that the module exports', () => {
  const config = JSON.parse(readFileSync(new URL('../backend/jobs.config', import.meta.url)));
  assert.equal(config.jobs[0].functionLocation, '/kbSync.js');
  assert.equal(config.jobs[0].functionName, 'syncKnowledgeBase');
  assert.match(config.jobs[0].executionConfig.cronExpression, /^\S+ \S+ \S+ \S+ \S+$/);
});

test('a collection is pushed, then only its changes, and removed items are deleted', async () => {
  kbSyncSettings.titleField = 'question';
  kbSyncSettings.bodyField = 'answer';
  globalThis.__wixCollections = {
    FAQ: [
      { _id: 'a1', _updatedDate: at(1), question: 'Do you ship to Canada?', answer: 'Yes, in 5 to 8 days with Canada Post.' },
      { _id: 'a2', _updatedDate: at(2), question: 'Can I return an item?', answer: 'Within 30 days, for a full refund.' },
      { _id: 'a3', _updatedDate: at(3), question: 'Empty answer', answer: '' },
    ],
  };
  assert.deepEqual(await syncKnowledgeBase(), { pushed: 2, deleted: 0, skipped: 1 });
  const first = await admin(velochat.url, '/admin/kb/documents');
  assert.deepEqual(first.body.documents.map((d) => d.id), ['wix-faq-a1', 'wix-faq-a2']);
  const canadaVersion = first.body.documents[0].version;

  // Nothing changed: nothing pushed (the item without an answer is reported again until fixed).
  assert.deepEqual(await syncKnowledgeBase(), { pushed: 0, deleted: 0, skipped: 1 });

  // One answer edited, one item removed.
  const faq = globalThis.__wixCollections.FAQ;
  faq[1] = { ...faq[1], _updatedDate: at(9), answer: 'Within 60 days now, for a full refund.' };
  faq.splice(0, 1);
  assert.deepEqual(await syncKnowledgeBase(), { pushed: 1, deleted: 1, skipped: 1 });
  const gone = await admin(velochat.url, '/admin/kb/documents/wix-faq-a1');
  assert.equal(gone.status, 404);
  assert.ok(canadaVersion >= 1);
  const found = await admin(velochat.url, `/admin/kb/search?q=${encodeURIComponent('How many days to return an item?')}`);
  assert.equal(found.body.results[0].id, 'wix-faq-a2');
  assert.match(found.body.results[0].passage, /60 days/);
});

test('a refused import fails the job loudly instead of skipping items', async () => {
  globalThis.__wixCollections = { FAQ: [{ _id: 'b1', _updatedDate: at(30), question: 'x'.repeat(400), answer: 'ok' }] };
  kbSyncSettings.titleField = 'answer';
  kbSyncSettings.bodyField = 'question';
  globalThis.__wixCollections.FAQ[0].question = 'y'.repeat(200_001);
  await assert.rejects(syncKnowledgeBase(), /velochat refused the import \(4\d\d\)/);
});
