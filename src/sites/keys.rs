//! Site keys: minted from the OS's randomness, shown once, stored only as their SHA-256.

use crate::domain::SiteId;
use crate::store::durable::SiteKeyRow;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteRole {
    /// The chat and session routes, in its site.
    Caller,
    /// Every /admin route, on its site only; signs in to the console.
    Admin,
}

impl SiteRole {
    pub fn as_str(self) -> &'static str {
        match self {
            SiteRole::Caller => "caller",
            SiteRole::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "caller" => Some(SiteRole::Caller),
            "admin" => Some(SiteRole::Admin),
            _ => None,
        }
    }
}

/// A stored key: everything but the key itself.
#[derive(Debug, Clone)]
pub struct SiteKey {
    pub id: String,
    pub site: SiteId,
    pub role: SiteRole,
    pub label: Option<String>,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
    pub(super) digest: [u8; 32],
}

impl SiteKey {
    pub(super) fn from_row(row: SiteKeyRow) -> Option<Self> {
        let digest: [u8; 32] = hex::decode(&row.key_hash).ok()?.try_into().ok()?;
        Some(Self {
            id: row.id,
            site: SiteId::parse(&row.site, "site").ok()?,
            role: SiteRole::parse(&row.role)?,
            label: row.label,
            created_ms: row.created_ms,
            last_used_ms: row.last_used_ms,
            digest,
        })
    }
}

/// A key just made: `secret` is answered once and never kept.
#[derive(Debug, Clone)]
pub struct MintedKey {
    pub key: SiteKey,
    pub secret: String,
}

impl MintedKey {
    pub(super) fn new(site: &SiteId, role: SiteRole, label: Option<String>, now_ms: i64) -> Self {
        let mut random = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let secret = format!("vck_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random));
        let mut id = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let key = SiteKey {
            id: format!("key_{}", hex::encode(id)),
            site: site.clone(),
            role,
            label,
            created_ms: now_ms,
            last_used_ms: None,
            digest: Sha256::digest(secret.as_bytes()).into(),
        };
        Self { key, secret }
    }

    pub(super) fn row(&self) -> SiteKeyRow {
        let k = &self.key;
        SiteKeyRow {
            id: k.id.clone(),
            site: k.site.as_str().to_owned(),
            role: k.role.as_str().to_owned(),
            label: k.label.clone(),
            key_hash: hex::encode(k.digest),
            created_ms: k.created_ms,
            last_used_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_key_is_stored_only_as_its_digest() {
        let minted = MintedKey::new(&SiteId::default_site(), SiteRole::Caller, None, 1);
        let row = minted.row();
        assert!(minted.secret.starts_with("vck_") && minted.secret.len() == 47);
        assert!(!row.key_hash.contains(&minted.secret[4..]));
        assert_eq!(row.key_hash, hex::encode(Sha256::digest(minted.secret.as_bytes())));
        let again = MintedKey::new(&SiteId::default_site(), SiteRole::Caller, None, 1);
        assert_ne!(again.secret, minted.secret);
        assert_ne!(again.key.id, minted.key.id);
    }
}
