-- Console sessions signed out before their cookie expires (kept until then), so a sign-out holds
-- after a restart.
CREATE TABLE IF NOT EXISTS velochat_console_revocations (nonce TEXT PRIMARY KEY, expires_ms INTEGER NOT NULL);
