/**
 * backend/events.js — answers Wix Chat visitors through velochat.
 *
 * Wix calls wixChat_onMessage for every chat message, including the bot's own replies. So:
 *  - the bot tags what it sends (`metadata.velochat = 'bot'`) and ignores tagged messages, or it
 *    would answer itself forever;
 *  - an untagged business-side message means a person from your team wrote: velochat gets the
 *    message itself (POST /sessions/{sessionId}/messages), hands the conversation to them and stays
 *    quiet until it is released (POST /sessions/{sessionId}/release, or automatically after 24 h).
 *    What they wrote becomes a knowledge-base suggestion once the session is released.
 * The chat session id is the channel id, so every message of a conversation shares its state.
 */
import { sendMessage } from 'wix-chat-backend';
import { agentMessage, askVelochat } from 'backend/velochat';

const BOT_TAG = 'bot';

export function chatSessionId(channelId) {
  return `chat-${channelId}`;
}

export async function wixChat_onMessage(event) {
  const text = event && event.payload && event.payload.text;
  if (!event || !event.channelId || typeof text !== 'string' || !text.trim()) return;
  const sessionId = chatSessionId(event.channelId);

  if (event.direction === 'BusinessToVisitor') {
    if (event.metadata && event.metadata.velochat === BOT_TAG) return; // our own reply
    await agentMessage(sessionId, text, event.participantId); // a human stepped in
    return;
  }
  if (event.direction !== 'VisitorToBusiness') return;

  // participantId comes from Wix, not from the visitor: safe to use as their identity.
  const headers = event.participantId ? { 'X-Visitor-Id': `chat-${event.participantId}` } : {};
  const answer = await askVelochat({ sessionId, userText: text }, headers);

  // While a human owns the conversation, velochat forwards the message to them and the bot says
  // nothing here (the agent answers in the chat). Past the handoff SLA with no answer yet, the reply
  // is an apology (`handoffReason: 'sla_breached'`), which is sent.
  if (answer.source === 'handoff' && answer.handoffReason === 'human_mode') return;

  await sendMessage({
    channelId: event.channelId,
    messageText: answer.reply,
    metadata: { velochat: BOT_TAG, source: answer.source || 'fallback' },
  });
}
