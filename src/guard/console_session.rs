//! Console sign-in: a stateless session cookie (expiry, nonce and operator, signed by the `cookie`
//! crate's signed jar with a key derived from the admin key, so rotating the key signs everyone
//! out), a CSRF token derived from the same nonce, and sign-out revocation.

use crate::store::{DurableStore, StateStore, StoreError};
use cookie::{Cookie, CookieJar, SameSite};
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

type HmacSha256 = Hmac<Sha256>;

pub const COOKIE: &str = "velochat_console";
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sign-in attempts allowed from one address: five, then one more every 12 s (GCRA, shared by
/// every replica through the state store).
pub const SIGN_IN_QUOTA: crate::rate::Quota = crate::rate::Quota { burst: 5, per_minute: 5 };

/// A verified session: its nonce names it (for the CSRF token and revocation); `operator` is the
/// name given at sign-in, the author of the replies sent from the console; `site` is set when a
/// site's admin key signed in (the console then shows that site only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub nonce: String,
    pub expires_at: i64,
    pub operator: String,
    pub site: Option<SiteSignIn>,
}

/// The site a site admin signed in to, and the key they used (the session ends with the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteSignIn {
    pub site: String,
    pub key_id: String,
}

/// The author of console replies when the operator gave no name at sign-in.
pub const DEFAULT_OPERATOR: &str = "Support team";
/// Longest operator name, in characters.
const OPERATOR_CHARS: usize = 80;

/// The name typed at sign-in as an author: one line, printable, at most 80 characters.
pub fn operator_name(typed: &str) -> String {
    let one_line: String = typed.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let name: String = one_line.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(OPERATOR_CHARS).collect();
    if name.is_empty() {
        DEFAULT_OPERATOR.to_owned()
    } else {
        name
    }
}

/// Where sign-outs are kept so that every replica, and this one after a restart, honours them:
/// the shared state store when there is one (Redis), the durable store otherwise.
#[derive(Clone)]
pub enum Revocations {
    Shared(Arc<dyn StateStore>),
    Durable(Arc<dyn DurableStore>),
}

impl Revocations {
    async fn record(&self, session: &ConsoleSession) -> Result<(), StoreError> {
        let now = now_secs();
        match self {
            Revocations::Shared(store) => {
                let left = Duration::from_secs(session.expires_at.saturating_sub(now).max(1) as u64);
                store.mark(&revocation_key(&session.nonce), left).await
            }
            Revocations::Durable(store) => {
                store.revoke_console_session(&session.nonce, session.expires_at * 1000, now * 1000).await
            }
        }
    }

    async fn contains(&self, nonce: &str) -> Result<bool, StoreError> {
        match self {
            Revocations::Shared(store) => store.is_marked(&revocation_key(nonce)).await,
            Revocations::Durable(store) => store.console_session_revoked(nonce).await,
        }
    }
}

fn revocation_key(nonce: &str) -> String {
    format!("console-signed-out:{nonce}")
}

pub struct Sessions {
    key: [u8; 32],
    /// Signs and verifies the cookie (HMAC-SHA256, derived from `key`).
    cookie_key: cookie::Key,
    admin_key: Vec<u8>,
    /// Sign-outs seen by this process (answers without a store round trip).
    revoked: Mutex<HashMap<String, i64>>,
    store: Option<Revocations>,
    /// Where sign-in attempts are counted (shared by the replicas); none: not limited.
    sign_ins: Option<std::sync::Arc<dyn crate::store::StateStore>>,
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Sessions {
    /// `store` None keeps sign-outs in this process only (unit tests).
    pub fn new(admin_key: &str, store: Option<Revocations>) -> Self {
        let key: [u8; 32] =
            Sha256::new().chain_update(b"velochat-console-session\0").chain_update(admin_key).finalize().into();
        let cookie_key = cookie::Key::derive_from(&key);
        Self {
            key,
            cookie_key,
            admin_key: admin_key.as_bytes().to_vec(),
            revoked: Mutex::default(),
            store,
            sign_ins: None,
        }
    }

    /// Counts sign-in attempts per client in `store`.
    pub fn with_sign_in_limit(mut self, store: std::sync::Arc<dyn crate::store::StateStore>) -> Self {
        self.sign_ins = Some(store);
        self
    }

    /// Counts one sign-in attempt from `client` against `SIGN_IN_QUOTA`: the refusal, if any
    /// (never one without a store to count in).
    pub async fn sign_in_refused(&self, client: &str) -> Option<crate::rate::Decision> {
        let store = self.sign_ins.as_ref()?;
        let decision = store.rate_check(crate::rate::LimitKind::ConsoleSignIn, client, SIGN_IN_QUOTA).await;
        (!decision.allowed).then_some(decision)
    }

    fn mac(&self, parts: &[&str]) -> HmacSha256 {
        #[allow(clippy::expect_used)] // HMAC accepts keys of any length
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("hmac takes any key length");
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(b"\0");
        }
        mac
    }

    /// Constant-time check of a typed admin key.
    pub fn key_matches(&self, typed: &str) -> bool {
        use subtle::ConstantTimeEq;
        let (a, b) = (Sha256::digest(typed.as_bytes()), Sha256::digest(&self.admin_key));
        !self.admin_key.is_empty() && bool::from(a.ct_eq(&b))
    }

    /// A new session's cookie value: expiry, nonce, operator name (base64url) and, for a site's
    /// admin, `site/key id` (neither has a `.`), signed.
    pub fn issue(&self, operator: &str, site: Option<SiteSignIn>) -> (String, ConsoleSession) {
        use base64::Engine;
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let expires_at = now_secs() + LIFETIME.as_secs() as i64;
        let expiry = expires_at.to_string();
        let name = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(operator);
        let mut value = format!("{expiry}.{nonce}.{name}");
        if let Some(signed_in) = &site {
            value.push_str(&format!(".{}/{}", signed_in.site, signed_in.key_id));
        }
        let mut jar = CookieJar::new();
        jar.signed_mut(&self.cookie_key).add(Cookie::new(COOKIE, value));
        let signed = jar.get(COOKIE).map(|c| c.value().to_owned()).unwrap_or_default();
        let session = ConsoleSession { nonce, expires_at, operator: operator.to_owned(), site };
        (signed, session)
    }

    /// The session a cookie value names, if it is genuine and unexpired (sign-outs not checked).
    fn genuine(&self, value: &str) -> Option<ConsoleSession> {
        use base64::Engine;
        let verified = CookieJar::new().signed(&self.cookie_key).verify(Cookie::new(COOKIE, value.to_owned()))?;
        let mut parts = verified.value().splitn(4, '.');
        let (expiry, nonce, name) = (parts.next()?, parts.next()?, parts.next()?);
        let site = match parts.next() {
            None => None,
            Some(scope) => {
                let (site, key_id) = scope.split_once('/')?;
                Some(SiteSignIn { site: site.to_owned(), key_id: key_id.to_owned() })
            }
        };
        let expires_at: i64 = expiry.parse().ok()?;
        if expires_at <= now_secs() {
            return None;
        }
        let operator = String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(name).ok()?).ok()?;
        Some(ConsoleSession { nonce: nonce.to_owned(), expires_at, operator, site })
    }

    /// The session a cookie value names, if it is genuine, unexpired and not signed out here, on
    /// another replica, or before a restart. A store that cannot answer counts as signed out: the
    /// admin key still works while it is away.
    pub async fn verify(&self, value: &str) -> Option<ConsoleSession> {
        let session = self.genuine(value)?;
        if self.revoked.lock().contains_key(&session.nonce) {
            return None;
        }
        let Some(store) = &self.store else { return Some(session) };
        match store.contains(&session.nonce).await {
            Ok(false) => Some(session),
            Ok(true) => None,
            Err(e) => {
                tracing::warn!(error = %crate::error_chain::describe(&e), "console sign-out list unreachable: session refused");
                None
            }
        }
    }

    pub fn csrf_token(&self, session: &ConsoleSession) -> String {
        hex::encode(self.mac(&["csrf", &session.nonce]).finalize().into_bytes())
    }

    pub fn csrf_matches(&self, session: &ConsoleSession, given: &str) -> bool {
        let Ok(given) = hex::decode(given) else { return false };
        self.mac(&["csrf", &session.nonce]).verify_slice(&given).is_ok()
    }

    /// Signs a session out everywhere until its cookie would have expired (the browser drops the
    /// cookie too). An error means other replicas may not know yet: the caller reports it.
    pub async fn revoke(&self, session: &ConsoleSession) -> Result<(), StoreError> {
        {
            let now = now_secs();
            let mut revoked = self.revoked.lock();
            revoked.retain(|_, expires_at| *expires_at > now);
            revoked.insert(session.nonce.clone(), session.expires_at);
        }
        match &self.store {
            Some(store) => store.record(session).await,
            None => Ok(()),
        }
    }
}

/// The values of cookie `name` in a `Cookie` header.
pub fn cookie_values(header: &str, name: &str) -> Vec<String> {
    Cookie::split_parse(header).flatten().filter(|c| c.name() == name).map(|c| c.value().to_owned()).collect()
}

/// The `Set-Cookie` value for a session (`max_age` 0 with an empty value signs the browser out).
pub fn set_cookie(value: &str, max_age: Duration, secure: bool) -> String {
    let max_age = cookie::time::Duration::seconds(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX));
    Cookie::build((COOKIE, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(max_age)
        .secure(secure)
        .build()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cookie_verifies_until_tampered_or_signed_out() {
        let sessions = Sessions::new("admin-key", None);
        let (cookie, session) = sessions.issue("Ana", None);
        assert_eq!(sessions.verify(&cookie).await, Some(session.clone()));
        assert_eq!(session.operator, "Ana");
        let site = SiteSignIn { site: "acme".into(), key_id: "key_0a1b".into() };
        let (site_cookie, site_session) = sessions.issue("Bo", Some(site.clone()));
        assert_eq!(sessions.verify(&site_cookie).await.and_then(|s| s.site), Some(site));
        assert_eq!(site_session.operator, "Bo");
        let forged = cookie.replacen(&session.expires_at.to_string(), &(session.expires_at + 999).to_string(), 1);
        assert_eq!(sessions.verify(&forged).await, None, "a longer life is not for the taking");
        assert_eq!(
            Sessions::new("another-key", None).verify(&cookie).await,
            None,
            "rotating the key signs everyone out"
        );
        let token = sessions.csrf_token(&session);
        assert!(sessions.csrf_matches(&session, &token));
        assert!(!sessions.csrf_matches(&session, "00"));
        sessions.revoke(&session).await.unwrap();
        assert_eq!(sessions.verify(&cookie).await, None);
    }

    #[tokio::test]
    async fn a_sign_out_in_the_shared_store_holds_for_another_process() {
        let shared: Arc<dyn StateStore> =
            Arc::new(crate::store::memory::MemoryStore::new(100, Duration::from_secs(60), 100, false));
        let here = Sessions::new("admin-key", Some(Revocations::Shared(shared.clone())));
        let there = Sessions::new("admin-key", Some(Revocations::Shared(shared)));
        let (cookie, session) = here.issue(DEFAULT_OPERATOR, None);
        assert!(there.verify(&cookie).await.is_some());
        here.revoke(&session).await.unwrap();
        assert_eq!(there.verify(&cookie).await, None);
    }

    #[test]
    fn only_the_admin_key_matches() {
        let sessions = Sessions::new("k", None);
        assert!(sessions.key_matches("k") && !sessions.key_matches("K") && !sessions.key_matches(""));
    }

    #[test]
    fn operator_names_are_one_printable_line() {
        assert_eq!(operator_name("  Ana\n<b>  "), "Ana <b>");
        assert_eq!(operator_name(""), DEFAULT_OPERATOR);
        assert_eq!(operator_name(&"x".repeat(200)).len(), 80);
    }

    #[test]
    fn finds_the_cookie_among_others() {
        assert_eq!(cookie_values("a=1; velochat_console=x.y.z; b=2", COOKIE), ["x.y.z"]);
        assert!(cookie_values("velochat_consoleX=1", COOKIE).is_empty());
    }
}
