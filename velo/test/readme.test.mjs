// Every code snippet the READMEs show, run as written: the web method and the webhook verifier from
// the top-level README, the page code from velo/README.md (with $w played by a small fake page).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { fakeServer, structuredCompletion, startVelochat, waitFor, CALLER_KEY } from './helpers.mjs';
import { resetConnection } from 'backend/velochat';

const SECRET = 'readme-webhook-secret';
const dir = mkdtempSync(join(tmpdir(), 'velochat-readme-'));
let openai;
let hook;
let velochat;

/** The ```js blocks of a Markdown file whose text contains `marker`. */
function snippet(file, marker) {
  const text = readFileSync(new URL(file, import.meta.url), 'utf8');
  const blocks = [...text.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1].replace(/^ {3}/gm, ''));
  const found = blocks.find((block) => block.includes(marker));
  assert.ok(found, `${file} shows a snippet with ${marker}`);
  return found;
}

/** Loads a snippet as a module of its own (Velo's imports resolve to the test shims). */
async function load(name, code) {
  const path = join(dir, `${name}.mjs`);
  writeFileSync(path, code);
  return import(pathToFileURL(path).href);
}

/** A webhook receiver that keeps each delivery's raw body and headers. */
async function rawReceiver() {
  const deliveries = [];
  const server = http.createServer(async (req, res) => {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    deliveries.push({ headers: req.headers, raw });
    res.writeHead(204).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${server.address().port}`, deliveries, close: () => server.close() };
}

before(async () => {
  openai = await fakeServer(() => ({ body: structuredCompletion('From the README snippet.') }));
  hook = await rawReceiver();
  velochat = await startVelochat({
    OPENAI_API_KEY: 'sk-readme-test-0123456789',
    OPENAI_BASE_URL: `${openai.url}/v1`,
    VELOCHAT_HANDOFF_WEBHOOK_URL: `${hook.url}/hook`,
    VELOCHAT_WEBHOOK_SECRET: SECRET,
    VELOCHAT__WEBHOOK__POLL_INTERVAL_MS: '50',
  });
  globalThis.__wixSecrets = { velochat_url: velochat.url, velochat_api_key: CALLER_KEY };
  resetConnection();
});

after(() => {
  velochat?.stop();
  openai?.close();
  hook?.close();
});

test('the README web method is the kit\'s own, and runs as written to reach the model', async () => {
  const shown = snippet('../../README.md', "// backend/chat.web.js");
  // snippet() drops a list item's 3-space indent; the file gets the same treatment.
  const kit = readFileSync(new URL('../backend/chat.web.js', import.meta.url), 'utf8').replace(/^ {3}/gm, '');
  assert.ok(kit.includes(shown.replace('// backend/chat.web.js\n', '')), 'one chat.web.js: the README shows the kit file as it is');
  const { sendChatMessage } = await load('chat.web', shown);
  const answer = await sendChatMessage('readme-web-1', 'Where is my order?', [], { locale: 'en-US' });
  assert.equal(answer.reply, 'From the README snippet.');
  assert.equal(typeof answer.signature, 'string');
  assert.equal(openai.requests.at(-1).body.messages.at(-1).content, 'Where is my order?');
  assert.equal(sendChatMessage.permission, 'Anyone');
});

test('the README webhook verifier accepts a real signed delivery and refuses the rest without throwing', async () => {
  const { verify } = await load('verify', snippet('../../README.md', 'function verify('));
  const response = await fetch(`${velochat.url}/sendChatMessage`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${CALLER_KEY}` },
    body: JSON.stringify({ sessionId: 'readme-hook-1', userText: 'Can I talk to a person please?' }),
  });
  assert.equal((await response.json()).handoff, true);
  const delivery = await waitFor(() => hook.deliveries.find((d) => d.raw.includes('readme-hook-1')));
  assert.ok(delivery, 'the handoff was delivered');
  const header = delivery.headers['x-velochat-signature'];
  assert.equal(verify(SECRET, header, delivery.raw), true, 'a genuine delivery verifies');
  assert.equal(verify('another-secret', header, delivery.raw), false);
  assert.equal(verify(SECRET, header, delivery.raw.replace('readme-hook-1', 'readme-hook-2')), false, 'a changed body');
  assert.equal(verify(SECRET, undefined, delivery.raw), false, 'no header');
  assert.equal(verify(SECRET, 'garbage', delivery.raw), false);
  assert.equal(verify(SECRET, header.replace(/v1=\w+/, 'v1=abc'), delivery.raw), false, 'a signature of the wrong length');
  const old = header.replace(/t=\d+/, `t=${Math.floor(Date.now() / 1000) - 3600}`);
  assert.equal(verify(SECRET, old, delivery.raw), false, 'an old timestamp');
});

/** A page with the three elements the kit's README asks for. */
function fakePage() {
  const elements = { '#input': { value: '' }, '#answer': { text: '' }, '#send': {} };
  elements['#send'].onClick = (handler) => {
    elements['#send'].click = handler;
  };
  const $w = (id) => elements[id];
  $w.onReady = (ready) => ready();
  return { $w, elements };
}

test('the velo README page code answers a typed question and ignores an empty one', async () => {
  const code = snippet('../README.md', "$w('#send')");
  const { $w, elements } = fakePage();
  globalThis.$w = $w;
  const calls = openai.requests.length;
  await load('page', code);
  elements['#input'].value = '   ';
  await elements['#send'].click();
  assert.equal(openai.requests.length, calls, 'nothing sent for an empty input');
  assert.equal(elements['#answer'].text, '', 'and nothing shown');
  elements['#input'].value = 'Do you ship to Norway?';
  await elements['#send'].click();
  assert.equal(elements['#answer'].text, 'From the README snippet.');
  assert.equal(elements['#input'].value, '', 'the input is cleared');
});

test('the velo README page code shows a person\'s replies after a handoff, then the bot answers again', async () => {
  const { session } = await import('wix-storage-frontend');
  session.removeItem('velochatSessionId');
  const code = snippet('../README.md', "$w('#send')");
  const { $w, elements } = fakePage();
  globalThis.$w = $w;
  await load('page-handoff', code);
  elements['#input'].value = 'I want to speak with a person';
  const clicked = elements['#send'].click();
  const sessionId = session.getItem('velochatSessionId');
  await waitFor(() => elements['#answer'].text.includes('support team'));

  const post = (path, body) => fetch(`${velochat.url}${path}`, { method: 'POST',
    headers: { Authorization: `Bearer ${CALLER_KEY}`, 'Content-Type': 'application/json' }, body: body && JSON.stringify(body) });
  assert.equal((await post(`/sessions/${sessionId}/messages`, { role: 'agent', text: 'Hi, Ana here: your parcel left today.', author: 'Ana' })).status, 202);
  const shown = await waitFor(() => elements['#answer'].text.startsWith('Ana: ') && elements['#answer'].text);
  assert.equal(shown, 'Ana: Hi, Ana here: your parcel left today.', 'the person\'s reply reaches the page');
  assert.equal((await post(`/sessions/${sessionId}/release`)).status, 200);
  await clicked; // the widget noticed the release and stopped asking
  const calls = openai.requests.length;
  elements['#input'].value = 'Do you ship to Norway?';
  await elements['#send'].click();
  assert.equal(elements['#answer'].text, 'From the README snippet.', 'the bot answers again');
  assert.equal(openai.requests.length, calls + 1);
});
