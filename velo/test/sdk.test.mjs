// The official `openai` npm package against velochat's drop-in route, plain and streaming.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { fakeServer, startVelochat, CALLER_KEY } from './helpers.mjs';

let upstream;
let velochat;
let failNext = false;

function sse(events) {
  return events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join('') + 'data: [DONE]\n\n';
}

function chunk(delta, finish = null) {
  return { id: 'chatcmpl-up', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, delta, finish_reason: finish }] };
}

before(async () => {
  upstream = await fakeServer((req, body) => {
    if (failNext) {
      failNext = false;
      return { status: 503, body: { error: { message: 'overloaded', type: 'server_error' } } };
    }
    if (body.stream) {
      const events = [chunk({ role: 'assistant', content: '' }), chunk({ content: 'Streaming ' }), chunk({ content: 'works. ' }), chunk({ content: 'Bye.' }), chunk({}, 'stop'),
        { id: 'chatcmpl-up', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', choices: [], usage: { prompt_tokens: 20, completion_tokens: 4, total_tokens: 24 } }];
      return { headers: { 'content-type': 'text/event-stream' }, body: sse(events) };
    }
    return {
      body: {
        id: 'chatcmpl-up', object: 'chat.completion', created: 1, model: 'gpt-4o-mini-2024-07-18',
        choices: [{ index: 0, message: { role: 'assistant', content: `You said: ${body.messages.at(-1).content}` }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 20, completion_tokens: 5, total_tokens: 25 },
      },
    };
  });
  velochat = await startVelochat({ OPENAI_API_KEY: 'sk-sdk-test-0123456789', OPENAI_BASE_URL: `${upstream.url}/v1`, VELOCHAT__RETRY__MAX_RETRIES: '0' });
});

after(() => {
  velochat?.stop();
  upstream?.close();
});

const client = () => new OpenAI({ apiKey: CALLER_KEY, baseURL: `${velochat.url}/v1`, maxRetries: 0 });

test('a plain completion through the SDK', async () => {
  const completion = await client().chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello' }],
  });
  assert.equal(completion.object, 'chat.completion');
  assert.equal(completion.choices[0].message.content, 'You said: hello');
  assert.equal(completion.usage.total_tokens, 25);
  assert.notEqual(completion.system_fingerprint, 'velochat-fallback');
});

test('a streamed completion through the SDK, usage in the last chunk', async () => {
  const stream = await client().chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'stream please' }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let usage = null;
  let finish = null;
  for await (const part of stream) {
    text += part.choices[0]?.delta?.content ?? '';
    finish = part.choices[0]?.finish_reason ?? finish;
    usage = part.usage ?? usage;
  }
  assert.equal(text, 'Streaming works. Bye.');
  assert.equal(finish, 'stop');
  assert.equal(usage.completion_tokens, 4);
});

test('the wrong key is refused the way the SDK expects', async () => {
  const wrong = new OpenAI({ apiKey: 'nope', baseURL: `${velochat.url}/v1`, maxRetries: 0 });
  await assert.rejects(wrong.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }), (error) => error.status === 401);
});

test('an upstream failure is a normal completion carrying the fallback marker', async () => {
  failNext = true;
  const completion = await client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'are you there?' }] });
  assert.equal(completion.system_fingerprint, 'velochat-fallback');
  assert.ok(completion.choices[0].message.content.length > 0);
});

test('models lists the configured model', async () => {
  const models = await client().models.list();
  assert.deepEqual(models.data.map((m) => m.id), ['gpt-4o-mini']);
});
