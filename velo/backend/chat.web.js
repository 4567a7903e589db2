/**
 * backend/chat.web.js — the web method your page calls to chat with the bot.
 *
 * From page code:
 *   import { sendChatMessage, pollReplies } from 'backend/chat.web';
 *   const answer = await sendChatMessage(sessionId, userText, history, context);
 *   // answer: { reply, signature, source, handoff }
 *   const replies = await pollReplies(sessionId, cursor); // while a person has the conversation
 *   // replies: { messages: [{ id, text, author, at }], cursor, sessionMode }
 *
 * `Permissions.Anyone` lets anonymous visitors chat; velochat itself rate-limits each session and
 * each logged-in member, and your caller key never leaves the backend.
 */
import { Permissions, webMethod } from 'wix-web-module';
import { askVelochat, callVelochat, visitorHeaders } from 'backend/velochat';

export const sendChatMessage = webMethod(Permissions.Anyone, async (sessionId, userText, history, context) => {
  // Identity comes from the server (visitorHeaders), never from these arguments.
  const answer = await askVelochat(
    { sessionId, userText, history: Array.isArray(history) ? history : [], context: context || undefined },
    await visitorHeaders(),
  );
  return {
    reply: answer.reply,
    // Keep it with the reply and send it back in `history`: velochat drops assistant turns
    // without a valid signature, so nobody can put words in the bot's mouth.
    signature: answer.signature || null,
    source: answer.source || 'fallback',
    handoff: Boolean(answer.handoff),
  };
});

/** How long one poll waits for a reply from your team (Wix stops a backend call at 14 s). */
export const POLL_WAIT_MS = 9000;

/**
 * While a person from your team has the conversation, the page asks for their replies with this
 * (public/chat.js's `followPerson` does it in a loop). It waits up to 9 s for a new message and
 * returns `{ messages: [{ id, text, author, at }], cursor, sessionMode }`: pass `cursor` to the
 * next call; `sessionMode` is `bot` again once the conversation is handed back.
 */
export const pollReplies = webMethod(Permissions.Anyone, async (sessionId, cursor) => {
  const after = cursor ? `&after=${encodeURIComponent(cursor)}` : '';
  const path = `/sessions/${encodeURIComponent(sessionId)}/messages?waitMs=${POLL_WAIT_MS}${after}`;
  const unchanged = { messages: [], cursor: cursor || null, sessionMode: 'human' };
  try {
    const { ok, json } = await callVelochat(path, undefined, {}, { method: 'get' });
    if (!ok || !json || !Array.isArray(json.messages)) return unchanged;
    return {
      // Only what your team wrote: the visitor's own messages are already on the page.
      messages: json.messages
        .filter((m) => m.role === 'agent')
        .map(({ id, text, author, at }) => ({ id, text, author: author || null, at })),
      cursor: json.cursor,
      sessionMode: json.sessionMode,
    };
  } catch (error) {
    return unchanged; // velochat did not answer in time: the page simply asks again
  }
});
