//! Caller authentication: bearer keys compared in constant time, never logged. The configured
//! keys belong to the site `default` (the admin key is the operator's); a site's own keys are
//! looked up by their digest in the site registry.

use crate::config::Secret;
use crate::sites::{Site, SiteKey, SiteRegistry};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Who is calling, as far as keys go.
#[derive(Debug, Clone)]
pub enum Credential {
    /// No Authorization header.
    Missing,
    /// A header that matches no key.
    Invalid,
    /// The caller key at this position in `VELOCHAT_API_KEYS` (a caller of `default`).
    Caller(usize),
    /// The operator: `VELOCHAT_ADMIN_KEY`.
    Admin,
    /// A key a site was given (`/admin/sites/{id}/keys`), with that site.
    Site(Arc<SiteKey>, Arc<Site>),
}

impl Credential {
    pub fn is_missing(&self) -> bool {
        matches!(self, Credential::Missing)
    }
}

pub struct Authenticator {
    callers: Vec<[u8; 32]>,
    admin: Option<[u8; 32]>,
    sites: Option<Arc<SiteRegistry>>,
}

/// Comparing digests makes every comparison the same length, so timing reveals neither the key
/// nor its length.
fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl Authenticator {
    pub fn new(callers: &[Secret], admin: &Secret) -> Self {
        Self {
            callers: callers.iter().filter(|k| !k.is_empty()).map(|k| digest(k.expose())).collect(),
            admin: (!admin.is_empty()).then(|| digest(admin.expose())),
            sites: None,
        }
    }

    /// Site keys are recognised too (looked up in `sites`, which follows every replica's changes).
    pub fn with_sites(mut self, sites: Arc<SiteRegistry>) -> Self {
        self.sites = Some(sites);
        self
    }

    /// Whether chat and session routes need a key: a caller key is configured, or a site besides
    /// `default` is registered (revoking a site's last key never opens the door again).
    pub fn keys_required(&self) -> bool {
        self.has_caller_keys() || self.sites.as_ref().is_some_and(|s| s.has_other_sites())
    }

    pub fn has_caller_keys(&self) -> bool {
        !self.callers.is_empty()
    }

    pub fn has_admin_key(&self) -> bool {
        self.admin.is_some()
    }

    /// Reads `Authorization: Bearer <key>`. Every key is compared, whatever matches first.
    pub fn identify(&self, authorization: Option<&str>) -> Credential {
        let Some(header) = authorization else {
            return Credential::Missing;
        };
        let Some(token) = header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")) else {
            return Credential::Invalid;
        };
        let presented = digest(token.trim());
        let admin = self.admin.map(|a| bool::from(a.ct_eq(&presented))).unwrap_or(false);
        let mut caller = None;
        for (index, key) in self.callers.iter().enumerate() {
            if bool::from(key.ct_eq(&presented)) && caller.is_none() {
                caller = Some(index);
            }
        }
        match (admin, caller) {
            (true, _) => Credential::Admin,
            (false, Some(index)) => Credential::Caller(index),
            (false, None) => match self.sites.as_ref().and_then(|sites| sites.identify(&presented)) {
                Some((key, site)) => Credential::Site(key, site),
                None => Credential::Invalid,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_rotated_caller_keys_and_the_admin_key() {
        let auth = Authenticator::new(&[Secret::new("old"), Secret::new("new")], &Secret::new("boss"));
        assert!(matches!(auth.identify(Some("Bearer old")), Credential::Caller(0)));
        assert!(matches!(auth.identify(Some("Bearer new")), Credential::Caller(1)));
        assert!(matches!(auth.identify(Some("Bearer boss")), Credential::Admin));
        assert!(matches!(auth.identify(Some("Bearer nope")), Credential::Invalid));
        assert!(matches!(auth.identify(Some("Basic b2xk")), Credential::Invalid));
        assert!(auth.identify(None).is_missing());
    }

    #[test]
    fn no_keys_means_nothing_matches() {
        let auth = Authenticator::new(&[], &Secret::default());
        assert!(!auth.has_caller_keys());
        assert!(!auth.has_admin_key());
        assert!(matches!(auth.identify(Some("Bearer ")), Credential::Invalid));
    }
}
