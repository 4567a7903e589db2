// Test shim for wix-chat-backend: sendMessage records what the bot sent.
export async function sendMessage(message) {
  (globalThis.__wixChatSent ??= []).push(message);
  return { ok: true };
}
