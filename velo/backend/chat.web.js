/**
 * backend/chat.web.js — the web method your page calls to chat with the bot.
 *
 * From page code:
 *   import { sendChatMessage } from 'backend/chat.web';
 *   const answer = await sendChatMessage(sessionId, userText, history, context);
 *   // answer: { reply, signature, source, handoff }
 *
 * `Permissions.Anyone` lets anonymous visitors chat; velochat itself rate-limits each session and
 * each logged-in member, and your caller key never leaves the backend.
 */
import { Permissions, webMethod } from 'wix-web-module';
import { askVelochat, visitorHeaders } from 'backend/velochat';

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
