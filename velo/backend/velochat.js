/**
 * backend/velochat.js — how your site's backend talks to velochat. Used by chat.web.js (the chat
 * widget) and events.js (Wix Chat). Nothing here runs in the browser.
 *
 * Set up once in the Secrets Manager (Developer Tools → Secrets Manager):
 *   velochat_api_key  one of the keys in velochat's VELOCHAT_API_KEYS
 *   velochat_url      where velochat runs, e.g. https://velochat.example.com (HTTPS: wix-fetch
 *                     does not call plain HTTP)
 * The OpenAI key never comes near your site: it lives in velochat only.
 */
import { fetch } from 'wix-fetch';
import { secrets } from 'wix-secrets-backend.v2';
import { elevate } from 'wix-auth';
import { currentMember } from 'wix-members-backend';

/**
 * Wix stops any backend call at 14 s and drops its answer. velochat answers within 10 s by itself;
 * we still give up at 11.5 s so this code always returns something the page can show.
 */
export const settings = { timeoutMs: 11500 };

export const FALLBACK_REPLY =
  'Sorry, our assistant is not available right now. Please try again in a moment, or leave us your email and we will get back to you.';
export const TOO_FAST_REPLY = 'You are sending messages a little fast. Please wait a moment and try again.';

// Reading a secret needs elevated permissions: site visitors cannot read secrets themselves.
const getSecret = elevate(secrets.getSecretValue);

let cached = null;
async function connection() {
  if (!cached) {
    const [{ value: url }, { value: key }] = await Promise.all([getSecret('velochat_url'), getSecret('velochat_api_key')]);
    cached = { url: url.replace(/\/+$/, ''), key };
  }
  return cached;
}

/** Forget the cached URL and key (after rotating them, or in tests). */
export function resetConnection() {
  cached = null;
}

/**
 * Who the visitor is, decided here on the server. Never take this from the page's arguments: a
 * visitor could claim to be anyone and dodge their rate limit. Logged-in members are identified by
 * their member id; anonymous visitors are limited per session instead.
 */
export async function visitorHeaders() {
  try {
    const member = await currentMember.getMember();
    if (member && member._id) return { 'X-Visitor-Id': `member-${member._id}` };
  } catch (error) {
    // Not logged in, or called outside a visitor's request: no visitor header.
  }
  return {};
}

/**
 * Sends `body` to velochat's `path` (POST with the caller key unless `method` and `key` say otherwise). Resolves with `{ ok, status, json }`; rejects only on network
 * failure or the timeout. wix-fetch resolves on 4xx/5xx too, so callers must look at `ok`.
 */
export async function callVelochat(path, body, headers = {}, { method = 'post', key: ownKey, timeoutMs } = {}) {
  const { url, key: callerKey } = await connection();
  const key = ownKey ?? callerKey;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs ?? settings.timeoutMs);
  try {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}`, ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: controller.signal,
    });
    let json = null;
    try {
      json = await response.json();
    } catch (error) {
      json = null;
    }
    return { ok: response.ok, status: response.status, json };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Asks velochat for a reply. Always resolves: on any failure it returns a friendly fallback, so the
 * visitor never sees an error.
 */
export async function askVelochat({ sessionId, userText, history, context }, headers = {}) {
  try {
    const { ok, status, json } = await callVelochat('/sendChatMessage', { sessionId, userText, history, context }, headers);
    if (ok && json && typeof json.reply === 'string') return json;
    if (status === 429) return { reply: TOO_FAST_REPLY, source: 'fallback', handoff: false, signature: null };
    console.error('velochat answered', status, json && json.error ? json.error.code : '');
  } catch (error) {
    console.error('velochat unreachable or too slow:', error && error.name);
  }
  return { reply: FALLBACK_REPLY, source: 'fallback', handoff: false, signature: null };
}

/**
 * Tells velochat what a person from your team wrote in the chat: the session becomes theirs (the
 * bot goes quiet), the message joins the transcript, the first one times the visitor's wait, and
 * once the session is released the answer is drafted as a knowledge-base suggestion.
 */
export async function agentMessage(sessionId, text, author) {
  const body = { role: 'agent', text, ...(author ? { author } : {}) };
  const { ok, status } = await callVelochat(`/sessions/${encodeURIComponent(sessionId)}/messages`, body);
  if (!ok) console.error('velochat agent message failed', status);
  return ok;
}

/** Tells velochat that a human agent took over (`handoff`) or handed back (`release`). */
export async function sessionControl(sessionId, action) {
  const { ok, status } = await callVelochat(`/sessions/${encodeURIComponent(sessionId)}/${action}`);
  if (!ok) console.error(`velochat ${action} failed`, status);
  return ok;
}
