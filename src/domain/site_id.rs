//! A site's id: `[a-z0-9][a-z0-9-]{0,62}`. `default` always exists and is every route's site when
//! nothing names one.

use super::InvalidField;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteId(String);

impl SiteId {
    pub const DEFAULT: &'static str = "default";

    pub fn parse(raw: &str, field: &str) -> Result<Self, InvalidField> {
        let bytes = raw.as_bytes();
        let first_ok = bytes.first().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let rest_ok = bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if !first_ok || !rest_ok || bytes.len() > 63 {
            return Err(InvalidField::new(
                field,
                "invalid_field",
                format!("`{field}` must be 1–63 of a-z, 0-9 and -, starting with a letter or digit"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn default_site() -> Self {
        Self(Self::DEFAULT.to_owned())
    }

    pub fn is_default(&self) -> bool {
        self.0 == Self::DEFAULT
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SiteId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The session id a caller sees for a stored session key (a site's prefix removed: `/` is in no
/// session id).
pub fn visible_session_id(key: &str) -> &str {
    key.split_once('/').map_or(key, |(_, id)| id)
}

/// The site id and creation time a stored session key starts with (`{site}.{createdMs}/{id}`);
/// None for `default`'s bare keys.
pub fn session_owner(key: &str) -> Option<(&str, &str)> {
    let (owner, _) = key.split_once('/')?;
    owner.split_once('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet_only() {
        assert!(SiteId::parse("acme-shop-2", "siteId").is_ok());
        assert!(SiteId::parse("0", "siteId").is_ok());
        assert!(SiteId::parse(&"a".repeat(63), "siteId").is_ok());
        for bad in ["", "-acme", "Acme", "acme_shop", "acme/x", "a b", &"a".repeat(64)] {
            let refused = SiteId::parse(bad, "siteId").unwrap_err();
            assert_eq!(refused.field, "siteId", "{bad:?}");
        }
    }

    #[test]
    fn a_caller_sees_the_session_id_without_its_site() {
        assert_eq!(visible_session_id("acme.17/visitor-1"), "visitor-1");
        assert_eq!(visible_session_id("visitor-1"), "visitor-1");
        assert_eq!(session_owner("acme.17/visitor-1"), Some(("acme", "17")));
        assert_eq!(session_owner("visitor-1:a.b"), None);
    }
}
