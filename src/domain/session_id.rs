//! `sessionId`: 1–128 characters of `[A-Za-z0-9._:-]`.

use super::InvalidField;

const MAX_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

/// The identifier rule shared by session and document ids: 1–128 of `[A-Za-z0-9._:-]`.
pub fn check_identifier(raw: &str, field: &str) -> Result<(), InvalidField> {
    if raw.is_empty() {
        return Err(InvalidField::new(field, "invalid_field", format!("`{field}` must not be empty")));
    }
    if raw.len() > MAX_LEN {
        return Err(InvalidField::new(
            field,
            "field_too_long",
            format!("`{field}` must be at most {MAX_LEN} characters"),
        ));
    }
    if !raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')) {
        return Err(InvalidField::new(
            field,
            "invalid_field",
            format!("`{field}` may contain only letters, digits and . _ : -"),
        ));
    }
    Ok(())
}

impl SessionId {
    pub fn parse(raw: Option<&str>, field: &str) -> Result<Self, InvalidField> {
        let raw = raw.ok_or_else(|| InvalidField::missing(field))?;
        check_identifier(raw, field)?;
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This id as its site keeps it: behind the site's prefix (`Site::session_key`), or bare for
    /// `default`. Every store, signature and limit then tells two sites' sessions apart.
    pub fn within(self, prefix: Option<&str>) -> Self {
        match prefix {
            Some(prefix) => Self(format!("{prefix}{}", self.0)),
            None => self,
        }
    }
}

impl AsRef<str> for SessionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        let id = SessionId::parse(Some("3f1c9e2a-visitor-42:a_b.c"), "sessionId").unwrap();
        assert_eq!(id.as_str(), "3f1c9e2a-visitor-42:a_b.c");
        assert!(SessionId::parse(Some(&"a".repeat(128)), "sessionId").is_ok());
    }

    #[test]
    fn refuses_missing_empty_long_and_foreign_characters() {
        assert_eq!(SessionId::parse(None, "sessionId").unwrap_err().code, "missing_field");
        assert_eq!(SessionId::parse(Some(""), "sessionId").unwrap_err().code, "invalid_field");
        assert_eq!(SessionId::parse(Some(&"a".repeat(129)), "sessionId").unwrap_err().code, "field_too_long");
        for bad in ["a b", "a/b", "é", "a\u{0}", "<script>", "a\nb"] {
            let err = SessionId::parse(Some(bad), "sessionId").unwrap_err();
            assert_eq!(err.field, "sessionId", "{bad}");
        }
    }
}
