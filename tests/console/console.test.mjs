// The operator console in a real browser (Debian's chromium, driven by playwright-core) against
// the velochat binary on loopback and a fake OpenAI. Asserts what a person sees: the plotted
// values, the transcript as text, the effect of each button. Screenshots of every page go to
// target/console-screenshots/ (test artefacts; CONSOLE_DOCS_SCREENSHOT=1 also refreshes docs/console.png).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execSync } from 'node:child_process';
import http from 'node:http';
import { once } from 'node:events';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { startVelochat as startBinary } from '../../velo/test/helpers.mjs';

const ADMIN = 'console-admin-key';
const CALLER = 'console-caller-key';
const ROOT = resolve(import.meta.dirname, '../..');
const SHOTS = join(ROOT, 'target', 'console-screenshots');
const XSS = '<img src=x onerror=alert(1)>';
let openai, velochat, browser, context, page;
const dialogs = [];

async function fakeOpenAI() {
  const server = http.createServer(async (req, res) => {
    for await (const _ of req);
    const content = JSON.stringify({ reply: 'Here is what I found.', confidence: 0.9, intent: 'other', needsHuman: false });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: 'c', object: 'chat.completion', created: 1, model: 'gpt-4o-mini-2024-07-18',
      choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 100, completion_tokens: 10, total_tokens: 110 } }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

/** The Velo kit's harness starts the binary; the console tests use their own keys and fake OpenAI. */
const startVelochat = (env = {}) => startBinary({ VELOCHAT_API_KEYS: CALLER, VELOCHAT_ADMIN_KEY: ADMIN,
  OPENAI_API_KEY: 'sk-console-0123456789', OPENAI_BASE_URL: `${openai.url}/v1`, ...env });

async function call(method, path, body, key = CALLER) {
  const response = await fetch(`${velochat.url}${path}`, { method, headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: response.status, body: await response.json().catch(() => null) };
}

const chat = (sessionId, userText) => call('POST', '/sendChatMessage', { sessionId, userText });

async function show(name) {
  await page.goto(`${velochat.url}/console#${name}`);
  await page.waitForSelector(`body[data-page="${name}"][data-ready="true"]`);
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

before(async () => {
  openai = await fakeOpenAI();
  velochat = await startVelochat();
  // Today, scripted: five sessions, two handed to a person (solved without handoff 3/5 = 60 %),
  // seven replies of which one repeats a question (1/7 = 14.3 %).
  assert.equal((await chat('c-a', 'Where is my order?')).body.source, 'model');
  await chat('c-a', 'Where is my order?');
  await chat('c-b', 'Do you ship tents to Iceland?');
  await chat('c-c', 'I want to speak with a person');
  await chat('c-x', 'I want to speak with a person');
  assert.equal((await chat('c-x', XSS)).body.handoffReason, 'human_mode');
  await chat('c-s', 'Do you rent kayaks for the weekend?');
  assert.equal((await call('POST', '/sessions/c-s/messages', { role: 'agent', text: 'Yes: kayak rental is 25 euros a day, paddles included.', author: 'Ana' })).status, 202);
  assert.equal((await call('POST', '/sessions/c-s/release')).status, 200);

  const executablePath = process.env.CHROMIUM_PATH || execSync('command -v chromium', { shell: '/bin/sh' }).toString().trim();
  browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
  context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  page = await context.newPage();
  page.on('dialog', async (dialog) => {
    dialogs.push(dialog.message());
    await (dialog.type() === 'confirm' ? dialog.accept() : dialog.dismiss());
  });
});

after(async () => {
  await browser?.close();
  velochat?.stop();
  openai?.close();
});

test('a wrong key is refused, the admin key signs in, with a strict policy and cookie', async () => {
  const first = await page.goto(`${velochat.url}/console`);
  const policy = first.headers()['content-security-policy'];
  assert.match(policy, /script-src 'self'/);
  assert.doesNotMatch(policy, /unsafe-inline|https?:/, 'no inline or third-party script');
  await page.fill('#key', 'not-the-key');
  await page.click('button[type=submit]');
  assert.equal(await page.textContent('.error'), 'That is not the admin key.');
  assert.equal((await context.cookies()).length, 0);
  await page.fill('#key', ADMIN);
  await page.fill('#name', 'Ana Operator');
  await page.click('button[type=submit]');
  await page.waitForSelector('body[data-ready="true"]');
  assert.equal(await page.textContent('#operator'), 'Ana Operator');
  const [cookie] = await context.cookies();
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.equal(cookie.secure, false, 'plain HTTP on loopback');
  assert.ok(cookie.expires - Date.now() / 1000 > 11.9 * 3600, '12 h');
});

test('the overview plots the scripted day', async () => {
  await show('overview');
  const today = new Date().toISOString().slice(0, 10);
  const value = (chart, series) => page.getAttribute(`figure[data-chart="${chart}"] circle[data-series="${series}"][data-date="${today}"]`, 'data-value');
  assert.equal(await value('solved-rate', 'solved'), '60');
  assert.equal(await value('repeat-rate', 'repeat'), '14.3');
  assert.ok(Number(await value('first-response', 'p50')) >= 0, 'a first-response point for today');
  assert.equal(await page.locator('figure[data-chart="solved-rate"] circle').count(), 1, 'no points on days without traffic');
  assert.equal(await page.textContent('#total-replies'), '7');
  assert.equal(await page.textContent('#circuit'), 'closed');
});

test('a released session leaves the handoff page, and visitor text is only ever text', async () => {
  await show('handoffs');
  assert.deepEqual(await page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.session).sort()), ['c-c', 'c-x']);
  await page.click('tr[data-session="c-x"] button');
  await page.waitForSelector('#transcript .turn');
  const texts = await page.locator('#transcript .turn.visitor .text').allTextContents();
  assert.ok(texts.includes(XSS), `shown literally: ${JSON.stringify(texts)}`);
  assert.equal(await page.locator('#transcript img').count(), 0, 'no element made from it');
  assert.deepEqual(dialogs, [], 'no script ran');
  await page.screenshot({ path: join(SHOTS, 'handoffs-transcript.png'), fullPage: true });

  await page.click('tr[data-session="c-c"] button');
  await page.waitForSelector('#transcript h3:text("Session c-c")');
  await page.click('#release');
  await page.waitForSelector('tr[data-session="c-c"]', { state: 'detached' });
  await page.waitForSelector('body[data-ready="true"] tbody tr[data-session="c-x"]');
  assert.equal(await page.locator('tr[data-session="c-c"]').count(), 0);
  assert.equal((await call('GET', '/admin/sessions/c-c', undefined, ADMIN)).body.mode, 'bot');
});

test('a reply from the console reaches the visitor\'s widget, signed with the operator\'s name', async () => {
  await show('handoffs');
  await page.click('tr[data-session="c-x"] button');
  await page.waitForSelector('#transcript h3:text("Session c-x")');
  const text = 'Hello from the console: your order ships today.';
  await page.fill('#reply textarea', text);
  await page.click('#reply button[type=submit]');
  await page.waitForSelector(`#transcript .turn.agent .text:text("${text}")`);
  assert.equal(await page.textContent('#transcript .turn.agent .who'), 'agent (Ana Operator)');
  await page.screenshot({ path: join(SHOTS, 'handoffs-reply.png'), fullPage: true });
  // What the kit's widget reads (pollReplies → GET /sessions/{id}/messages).
  const polled = await call('GET', '/sessions/c-x/messages?waitMs=0');
  assert.equal(polled.status, 200);
  assert.deepEqual(polled.body.messages.filter((m) => m.role === 'agent').map((m) => [m.text, m.author]), [[text, 'Ana Operator']]);
  assert.equal(polled.body.sessionMode, 'human');
});

test('an approved suggestion is found by the bot\'s search', async () => {
  await show('knowledge');
  const suggestion = page.locator('form.suggestion').first();
  assert.equal(await suggestion.locator('.question').textContent(), 'Do you rent kayaks for the weekend?');
  await suggestion.locator('input[name=title]').fill('Kayak rental');
  await suggestion.locator('button[type=submit]').click();
  await page.waitForSelector('#suggestions p.muted');
  await page.fill('#search input[name=q]', 'kayak rental per day');
  await page.click('#search button');
  await page.waitForSelector('#search-results li');
  const first = page.locator('#search-results li').first();
  assert.ok(await first.getAttribute('data-id'), `a result: ${await page.textContent('#search-results')}`);
  assert.match(await first.getAttribute('data-id'), /^suggestion-/);
  assert.equal(await first.locator('strong').textContent(), 'Kayak rental');
  assert.ok(Number(await first.locator('.score').textContent()) > 0, 'the score is shown');
  await page.screenshot({ path: join(SHOTS, 'knowledge-search.png'), fullPage: true });
});

test('the review shows the chosen days', async () => {
  await show('review');
  assert.equal(await page.textContent('#review-replies'), '7');
  const tomorrow = new Date(Date.now() + 86400000).toISOString().slice(0, 10);
  await page.fill('#range input[name=from]', tomorrow);
  await page.fill('#range input[name=to]', tomorrow);
  await page.click('#range button');
  await page.waitForFunction(() => document.querySelector('#review-replies')?.textContent === '0');
});

test('the kill switch asks first, then the next message falls back', async () => {
  await show('overview');
  await page.click('#kill-switch');
  await page.waitForFunction(() => document.querySelector('#kill-state')?.textContent.startsWith('ON'));
  assert.ok(dialogs.some((m) => m.startsWith('Turn the kill switch ON?')), 'it asked');
  const reply = await chat('c-after', 'Where is my order?');
  assert.equal(reply.body.fallbackReason, 'kill_switch');
  if (process.env.CONSOLE_DOCS_SCREENSHOT === '1') copyFileSync(join(SHOTS, 'overview.png'), join(ROOT, 'docs', 'console.png'));
});

test('the knowledge page pages through every document, filters them, and groups spellings of one question', async () => {
  assert.equal((await call('PUT', '/admin/kill-switch', { enabled: false }, ADMIN)).status, 200);
  const documents = Array.from({ length: 60 }, (_, i) => ({ id: `doc-${String(i).padStart(2, '0')}`, title: `Topic ${i}`, body: `Help text number ${i} about tents.` }));
  assert.equal((await call('POST', '/admin/kb/import', { documents }, ADMIN)).status, 200);
  for (const [session, question] of [['c-u1', 'How does the loyalty programme work?'], ['c-u2', 'how does the loyalty program work'], ['c-u3', 'Do you have a loyalty card?']]) {
    await chat(session, question);
  }
  await show('knowledge');
  assert.equal(await page.textContent('#document-count'), '50 of 61 documents');
  await page.click('#more-documents');
  await page.waitForFunction(() => document.querySelector('#document-count').textContent === '61 of 61 documents');
  assert.equal(await page.locator('#more-documents').isHidden(), true, 'nothing more to load');
  await page.fill('#document-filter input[name=q]', 'DOC-05');
  await page.click('#document-filter button');
  await page.waitForFunction(() => document.querySelector('#document-count').textContent.startsWith('1 of 1 document'));
  assert.deepEqual(await page.locator('#documents li').evaluateAll((items) => items.map((li) => li.dataset.id)), ['doc-05']);
  const loyalty = page.locator('#unanswered li', { hasText: 'loyalty program' });
  assert.equal(await loyalty.locator('.count').textContent(), '2 ×', 'programme and program are one question');
  await page.screenshot({ path: join(SHOTS, 'knowledge-documents.png'), fullPage: true });
});

test('a state change without the CSRF token is refused', async () => {
  const status = (headers) => page.evaluate(async (h) => (await fetch('/admin/kill-switch', { method: 'PUT', headers: { 'Content-Type': 'application/json', ...h }, body: '{"enabled": false}' })).status, headers);
  assert.equal(await status({}), 403);
  assert.equal(await status({ 'X-CSRF-Token': 'abc123' }), 403);
  const token = await page.getAttribute('meta[name="csrf-token"]', 'content');
  assert.equal(await status({ 'X-CSRF-Token': token }), 200, 'with the page\'s token it goes through');
  assert.equal((await call('GET', '/admin/kill-switch', undefined, ADMIN)).body.enabled, false);
});

test('signing out ends the session', async () => {
  await show('overview');
  await page.click('#logout button');
  await page.waitForSelector('#key');
  const status = await page.evaluate(async () => (await fetch('/admin/overview')).status);
  assert.equal(status, 401);
});

test('five wrong keys from one address in a minute are followed by 429', async () => {
  const other = await startVelochat();
  try {
    const attempt = (key) => fetch(`${other.url}/console/login`, { method: 'POST', redirect: 'manual',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: `key=${encodeURIComponent(key)}` });
    for (let i = 0; i < 5; i += 1) assert.equal((await attempt('wrong')).status, 401);
    const blocked = await attempt(ADMIN);
    assert.equal(blocked.status, 429, 'even the right key waits');
    const retry = Number(blocked.headers.get('retry-after'));
    assert.ok(retry >= 1 && retry <= 60, `Retry-After ${retry}`);
  } finally {
    other.stop();
  }
});

test('behind a trusted proxy speaking https the cookie is Secure; the console is off without an admin key', async () => {
  const proxied = await startVelochat({ VELOCHAT_TRUSTED_PROXIES: '127.0.0.1/32' });
  const off = await startVelochat({ VELOCHAT_ADMIN_KEY: '' });
  try {
    const signIn = await fetch(`${proxied.url}/console/login`, { method: 'POST', redirect: 'manual',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Forwarded-Proto': 'https' }, body: `key=${ADMIN}` });
    assert.equal(signIn.status, 303);
    // Attribute order is the cookie crate's; each attribute is asserted on its own.
    const attributes = signIn.headers.get('set-cookie').split('; ').slice(1);
    for (const wanted of ['HttpOnly', 'SameSite=Strict', 'Max-Age=43200', 'Secure', 'Path=/']) {
      assert.ok(attributes.includes(wanted), `${wanted} in ${attributes}`);
    }
    const offPage = await fetch(`${off.url}/console`);
    assert.equal(offPage.status, 404);
    assert.match(await offPage.text(), /The velochat console is off[\s\S]*VELOCHAT_ADMIN_KEY/, 'it says why and how to turn it on');
  } finally {
    proxied.stop();
    off.stop();
  }
});
