//! Reply signatures (so a browser cannot forge what the bot said) and salted hashes of visitor
//! identifiers (so logs, events and OpenAI never see the raw ids).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl Signer {
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    /// A random key for this process only.
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
        Self::new(&key)
    }

    fn mac(&self, session_id: &str, text: &str) -> HmacSha256 {
        #[allow(clippy::expect_used)] // HMAC accepts keys of any length
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("hmac takes any key length");
        // Length-prefix the session id so ("ab","c") and ("a","bc") never collide.
        mac.update(&(session_id.len() as u32).to_be_bytes());
        mac.update(session_id.as_bytes());
        mac.update(text.as_bytes());
        mac
    }

    /// base64url(HMAC-SHA256(key, len(session) ‖ session ‖ text)).
    pub fn sign(&self, session_id: &str, text: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(session_id, text).finalize().into_bytes())
    }

    /// Constant-time check of a signature a caller sent back.
    pub fn verify(&self, session_id: &str, text: &str, signature: &str) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(signature.trim_end_matches('=')) else {
            return false;
        };
        self.mac(session_id, text).verify_slice(&bytes).is_ok()
    }
}

/// SHA-256 of salt, purpose and id, hex, 32 characters: stable across restarts and replicas,
/// useless for recovering the id without the salt.
pub fn hashed_id(salt: &str, purpose: &str, id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update([0]);
    hasher.update(purpose.as_bytes());
    hasher.update([0]);
    hasher.update(id.as_bytes());
    hex::encode(&hasher.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_binds_session_and_text() {
        let signer = Signer::new(b"k");
        let sig = signer.sign("s1", "Your order shipped.");
        assert!(signer.verify("s1", "Your order shipped.", &sig));
        assert!(!signer.verify("s2", "Your order shipped.", &sig), "another session");
        assert!(!signer.verify("s1", "Your order shipped!", &sig), "edited text");
        assert!(!signer.verify("s", "1Your order shipped.", &signer.sign("s", "1Your order shipped.")[1..]));
        assert!(!Signer::new(b"other").verify("s1", "Your order shipped.", &sig), "another key");
        assert!(!signer.verify("s1", "Your order shipped.", "not base64!"));
    }

    #[test]
    fn hashed_ids_are_stable_and_purpose_bound() {
        assert_eq!(hashed_id("salt", "session", "abc"), hashed_id("salt", "session", "abc"));
        assert_ne!(hashed_id("salt", "session", "abc"), hashed_id("salt", "safety", "abc"));
        assert_ne!(hashed_id("salt", "session", "abc"), hashed_id("pepper", "session", "abc"));
        assert_eq!(hashed_id("s", "p", "x").len(), 32);
    }
}
