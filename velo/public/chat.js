/**
 * public/chat.js — page-side conversation memory for a custom chat widget.
 *
 *   import { ChatSession } from 'public/chat';
 *   import { sendChatMessage } from 'backend/chat.web';
 *   const chat = new ChatSession(sendChatMessage);
 *   $w('#send').onClick(async () => {
 *     const text = $w('#input').value;
 *     if (!text.trim()) return; // nothing to send
 *     const answer = await chat.send(text, { locale: wixWindow.multilingual.currentLanguage });
 *     $w('#answer').text = answer.reply;
 *   });
 *
 * When a person from your team takes over (`answer.handoff`), `followPerson(pollReplies, show)`
 * shows their replies as they come, until the conversation is the bot's again.
 *
 * It keeps the last turns, each bot reply with its `signature`, and sends them back as `history`.
 * The session id and those turns live in the tab's session storage, so a page reload continues the
 * conversation (a new tab starts a new one).
 */
import { session } from 'wix-storage-frontend';

const SESSION_KEY = 'velochatSessionId';
const HISTORY_KEY = 'velochatHistory';
const CURSOR_KEY = 'velochatReplyCursor';
const KEEP_TURNS = 8;
/** A poll that came back this fast with nothing (velochat unreachable) waits this long before the next. */
const QUIET_POLL_MS = 1000;
const RETRY_AFTER_QUIET_MS = 2000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The turns kept from before a reload; anything unreadable starts afresh. */
function loadHistory(storage) {
  try {
    const turns = JSON.parse(storage.getItem(HISTORY_KEY) || '[]');
    return Array.isArray(turns) ? turns.filter((t) => t && typeof t.content === 'string').slice(-KEEP_TURNS) : [];
  } catch (error) {
    return [];
  }
}

function newSessionId() {
  const random = Math.random().toString(36).slice(2, 12);
  return `web-${Date.now().toString(36)}-${random}`;
}

export class ChatSession {
  /** @param {(sessionId, userText, history, context) => Promise<object>} send the web method */
  constructor(send, storage = session) {
    this.sendToBackend = send;
    this.storage = storage;
    this.sessionId = storage.getItem(SESSION_KEY) || newSessionId();
    storage.setItem(SESSION_KEY, this.sessionId);
    this.history = loadHistory(storage);
  }

  /**
   * Sends one message; resolves with `{ reply, signature, source, handoff }`. An empty message is
   * not sent: it resolves with `null` (show nothing).
   */
  async send(userText, context) {
    if (typeof userText !== 'string' || !userText.trim()) return null;
    const answer = await this.sendToBackend(this.sessionId, userText, this.history.slice(-KEEP_TURNS), context);
    this.history.push({ role: 'user', content: userText });
    if (answer && answer.signature) {
      // Only signed replies are worth keeping: velochat would drop unsigned ones anyway.
      this.history.push({ role: 'assistant', content: answer.reply, signature: answer.signature });
    }
    this.history = this.history.slice(-KEEP_TURNS);
    this.storage.setItem(HISTORY_KEY, JSON.stringify(this.history));
    return answer;
  }

  /**
   * While a person has the conversation: asks `poll` (the `pollReplies` web method) for their
   * replies and calls `show({ id, text, author, at })` for each, until the conversation is the
   * bot's again; resolves with `'bot'` then. Calling it while it already runs does nothing.
   */
  async followPerson(poll, show) {
    if (this.following) return null;
    this.following = true;
    try {
      let cursor = this.storage.getItem(CURSOR_KEY);
      for (;;) {
        const started = Date.now();
        const answer = await poll(this.sessionId, cursor);
        for (const message of answer.messages || []) show(message);
        if (answer.cursor) {
          cursor = answer.cursor;
          this.storage.setItem(CURSOR_KEY, cursor);
        }
        if (answer.sessionMode === 'bot') return 'bot';
        if (!(answer.messages || []).length && Date.now() - started < QUIET_POLL_MS) await sleep(RETRY_AFTER_QUIET_MS);
      }
    } finally {
      this.following = false;
    }
  }
}
