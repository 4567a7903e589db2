// Sites in the console, in a real browser: the operator picks a site and sees that site's
// knowledge base; a site's admin key signs in to that site alone (no picker, nothing of another
// site), and its session ends when the key is revoked.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execSync } from 'node:child_process';
import { chromium } from 'playwright-core';
import { startVelochat } from '../../velo/test/helpers.mjs';

const OPERATOR = 'console-sites-operator';
let velochat, browser;

async function call(method, path, body, key = OPERATOR, site) {
  const headers = { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' };
  if (site) headers['X-Velochat-Site'] = site;
  const response = await fetch(`${velochat.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: response.status, body: await response.json().catch(() => null) };
}

async function signIn(key) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${velochat.url}/console`);
  await page.fill('#key', key);
  await page.click('button[type=submit]');
  await page.waitForSelector('body[data-ready="true"]');
  return { context, page };
}

async function knowledgePage(page) {
  await page.goto(`${velochat.url}/console#knowledge`);
  await page.waitForSelector('body[data-page="knowledge"][data-ready="true"]');
  await page.waitForSelector('#documents li');
  return page.locator('#documents li strong').allTextContents();
}

let acmeAdmin, acmeKeyId;

before(async () => {
  velochat = await startVelochat({ VELOCHAT_ADMIN_KEY: OPERATOR, VELOCHAT_API_KEYS: '' });
  for (const [id, name] of [['acme', 'Acme Outdoor'], ['globex', 'Globex']]) {
    assert.equal((await call('PUT', `/admin/sites/${id}`, { name })).status, 200);
  }
  const made = await call('POST', '/admin/sites/acme/keys', { role: 'admin', label: 'console' });
  assert.equal(made.status, 201);
  [acmeAdmin, acmeKeyId] = [made.body.key, made.body.id];
  const doc = (title) => ({ title, body: `${title}: everything about it.` });
  assert.equal((await call('PUT', '/admin/kb/documents/returns', doc('Acme returns'), OPERATOR, 'acme')).status, 200);
  assert.equal((await call('PUT', '/admin/kb/documents/returns', doc('Globex returns'), OPERATOR, 'globex')).status, 200);
  assert.equal((await call('PUT', '/admin/kb/documents/hours', doc('Default opening hours'))).status, 200);
  const executablePath = process.env.CHROMIUM_PATH || execSync('command -v chromium', { shell: '/bin/sh' }).toString().trim();
  browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  velochat?.stop();
});

test('the operator picks a site and the console shows that site\'s knowledge base', async () => {
  const { context, page } = await signIn(OPERATOR);
  assert.deepEqual(await page.locator('#site-picker option').allTextContents(), ['Acme Outdoor (acme)', 'default', 'Globex (globex)']);
  assert.equal(await page.inputValue('#site-picker'), 'default');
  assert.deepEqual(await knowledgePage(page), ['Default opening hours']);
  await page.selectOption('#site-picker', 'globex');
  await page.waitForSelector('#documents li[data-id="returns"]');
  assert.deepEqual(await page.locator('#documents li strong').allTextContents(), ['Globex returns']);
  // The choice holds across pages of the same tab.
  assert.deepEqual(await knowledgePage(page), ['Globex returns']);
  await context.close();
});

test('a site\'s admin key signs in to that site alone, until the key is revoked', async () => {
  const { context, page } = await signIn(acmeAdmin);
  assert.equal(await page.textContent('#site'), 'Acme Outdoor');
  assert.equal(await page.locator('#site-picker').count(), 0, 'no picker for a site admin');
  assert.deepEqual(await knowledgePage(page), ['Acme returns']);
  // Even asked directly from the page, another site and the registry are refused.
  const refused = await page.evaluate(async () => {
    const csrf = document.querySelector('meta[name="csrf-token"]').content;
    const other = await fetch('/admin/kb/documents', { headers: { 'X-Velochat-Site': 'globex' } });
    const registry = await fetch('/admin/sites');
    const create = await fetch('/admin/sites/evil', { method: 'PUT', headers: { 'X-CSRF-Token': csrf, 'Content-Type': 'application/json' }, body: '{"name":"x"}' });
    return [other.status, registry.status, create.status];
  });
  assert.deepEqual(refused, [403, 403, 403]);
  assert.equal((await call('DELETE', `/admin/sites/acme/keys/${acmeKeyId}`)).status, 204);
  await page.goto(`${velochat.url}/console`);
  await page.waitForSelector('#key');
  assert.equal(await page.locator('#site').count(), 0, 'signed out with its key');
  await context.close();
});
