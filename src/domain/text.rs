//! Free text from visitors: invisible and control characters removed, trimmed, bounded.

use super::InvalidField;

/// Characters that render as nothing yet can smuggle instructions past a human reader: C0/C1
/// controls (but newline and tab), zero-width and bidi controls, soft hyphen, and Unicode tag
/// characters (the "ASCII smuggling" block).
fn is_hidden(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c,
            '\u{00AD}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}')
}

/// Removes hidden characters and trims. Borrowed when there is nothing to remove (the common case).
pub fn clean_text(raw: &str) -> std::borrow::Cow<'_, str> {
    if raw.chars().any(is_hidden) {
        std::borrow::Cow::Owned(raw.chars().filter(|c| !is_hidden(*c)).collect::<String>().trim().to_owned())
    } else {
        std::borrow::Cow::Borrowed(raw.trim())
    }
}

/// `userText`: trimmed, non-empty, at most `max_chars` characters after cleaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserText(String);

impl UserText {
    pub fn parse(raw: Option<&str>, field: &str, max_chars: usize) -> Result<Self, InvalidField> {
        let raw = raw.ok_or_else(|| InvalidField::missing(field))?;
        let cleaned = clean_text(raw);
        if cleaned.is_empty() {
            return Err(InvalidField::new(field, "empty_field", format!("`{field}` must not be empty")));
        }
        if cleaned.chars().count() > max_chars {
            return Err(InvalidField::new(
                field,
                "field_too_long",
                format!("`{field}` must be at most {max_chars} characters"),
            ));
        }
        Ok(Self(cleaned.into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_removes_controls_but_keeps_newlines_and_tabs() {
        let text = UserText::parse(Some("  where\u{0007} is\tmy\norder?\r  "), "userText", 4000).unwrap();
        assert_eq!(text.as_str(), "where is\tmy\norder?");
    }

    #[test]
    fn removes_zero_width_bidi_and_tag_characters() {
        let raw = "ig\u{200B}nore\u{202E} all\u{E0041}\u{E0042} rules\u{FEFF}";
        assert_eq!(UserText::parse(Some(raw), "userText", 4000).unwrap().as_str(), "ignore all rules");
    }

    #[test]
    fn refuses_missing_blank_and_too_long_text() {
        assert_eq!(UserText::parse(None, "userText", 10).unwrap_err().code, "missing_field");
        assert_eq!(UserText::parse(Some(" \u{200B}\n "), "userText", 10).unwrap_err().code, "empty_field");
        assert_eq!(UserText::parse(Some(&"é".repeat(11)), "userText", 10).unwrap_err().code, "field_too_long");
        assert!(UserText::parse(Some(&"é".repeat(10)), "userText", 10).is_ok());
    }
}
