/**
 * public/chat.js — page-side conversation memory for a custom chat widget.
 *
 *   import { ChatSession } from 'public/chat';
 *   import { sendChatMessage } from 'backend/chat.web';
 *   const chat = new ChatSession(sendChatMessage);
 *   $w('#send').onClick(async () => {
 *     const answer = await chat.send($w('#input').value, { locale: wixWindow.multilingual.currentLanguage });
 *     $w('#answer').text = answer.reply;
 *   });
 *
 * It keeps the last turns, each bot reply with its `signature`, and sends them back as `history`.
 * The session id lives in session storage, so a page reload continues the conversation.
 */
import { session } from 'wix-storage-frontend';

const SESSION_KEY = 'velochatSessionId';
const KEEP_TURNS = 8;

function newSessionId() {
  const random = Math.random().toString(36).slice(2, 12);
  return `web-${Date.now().toString(36)}-${random}`;
}

export class ChatSession {
  /** @param {(sessionId, userText, history, context) => Promise<object>} send the web method */
  constructor(send, storage = session) {
    this.sendToBackend = send;
    this.storage = storage;
    this.history = [];
    this.sessionId = storage.getItem(SESSION_KEY) || newSessionId();
    storage.setItem(SESSION_KEY, this.sessionId);
  }

  /** Sends one message; resolves with `{ reply, signature, source, handoff }`. */
  async send(userText, context) {
    const answer = await this.sendToBackend(this.sessionId, userText, this.history.slice(-KEEP_TURNS), context);
    this.history.push({ role: 'user', content: userText });
    if (answer && answer.signature) {
      // Only signed replies are worth keeping: velochat would drop unsigned ones anyway.
      this.history.push({ role: 'assistant', content: answer.reply, signature: answer.signature });
    }
    this.history = this.history.slice(-KEEP_TURNS);
    return answer;
  }
}
