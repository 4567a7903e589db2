// Test harness: a live velochat process, a fake OpenAI and a webhook receiver, all on loopback.
import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import readline from 'node:readline';

export const CALLER_KEY = 'kit-caller-key';
export const ADMIN_KEY = 'kit-admin-key';

/** An HTTP server on a free loopback port; `handler(req, body)` returns {status, headers, body}. */
export async function fakeServer(handler) {
  const requests = [];
  const server = http.createServer(async (req, res) => {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const body = raw ? JSON.parse(raw) : null;
    requests.push({ method: req.method, url: req.url, headers: req.headers, body });
    const answer = await handler(req, body);
    if (answer === null) return; // never answer
    res.writeHead(answer.status ?? 200, answer.headers ?? { 'content-type': 'application/json' });
    res.end(typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body ?? {}));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}`, requests, close: () => server.close() };
}

/** A chat.completion whose content is the structured answer velochat asks for. */
export function structuredCompletion(reply, { confidence = 0.9, intent = 'other', needsHuman = false } = {}) {
  return {
    id: 'chatcmpl-fake',
    object: 'chat.completion',
    created: 1764000000,
    model: 'gpt-4o-mini-2024-07-18',
    choices: [{ index: 0, message: { role: 'assistant', content: JSON.stringify({ reply, confidence, intent, needsHuman }), refusal: null }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 100, completion_tokens: 10, total_tokens: 110 },
  };
}

/** Starts the velochat binary (VELOCHAT_BIN) on port 0 and waits for its ready line. */
export async function startVelochat(env = {}) {
  const bin = process.env.VELOCHAT_BIN ? resolve(process.env.VELOCHAT_BIN) : resolve(import.meta.dirname, '../../target/debug/velochat');
  const dir = mkdtempSync(join(tmpdir(), 'velochat-kit-'));
  const child = spawn(bin, ['serve'], {
    env: {
      PATH: process.env.PATH,
      VELOCHAT_ADDR: '127.0.0.1:0',
      DATABASE_URL: `sqlite://${join(dir, 'velochat.db')}`,
      VELOCHAT_API_KEYS: CALLER_KEY,
      VELOCHAT_ADMIN_KEY: ADMIN_KEY,
      VELOCHAT_SIGNING_KEY: 'kit-signing-key',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines = readline.createInterface({ input: child.stderr });
  const address = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('velochat did not become ready')), 20000);
    child.once('exit', (code) => fail(new Error(`velochat exited with ${code}`)));
    lines.on('line', (line) => {
      if (!line.includes('velochat ready')) return;
      clearTimeout(timer);
      ok(JSON.parse(line).address);
    });
  });
  return { url: `http://${address}`, stop: () => child.kill('SIGTERM') };
}

export async function admin(url, path) {
  const response = await fetch(`${url}${path}`, { headers: { Authorization: `Bearer ${ADMIN_KEY}` } });
  return { status: response.status, body: await response.json() };
}

export async function waitFor(check, { timeoutMs = 5000, everyMs = 50 } = {}) {
  const started = Date.now();
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() - started > timeoutMs) return value;
    await new Promise((ok) => setTimeout(ok, everyMs));
  }
}
