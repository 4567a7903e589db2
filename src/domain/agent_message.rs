//! `POST /sessions/{id}/messages`: a message a person from the team sent in the chat.

use super::{InvalidField, UserText};
use serde_json::Value;

/// Agent messages may be longer than a visitor's: a worked answer with steps.
pub const MAX_AGENT_TEXT_CHARS: usize = 8000;
const MAX_AUTHOR_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentMessage {
    pub text: String,
    pub author: Option<String>,
}

impl AgentMessage {
    /// `{"role": "agent", "text", "author"?}`; anything else named in the error.
    pub fn parse(body: &Value) -> Result<Self, InvalidField> {
        let object = body
            .as_object()
            .ok_or_else(|| InvalidField::new("body", "invalid_field", "the body must be a JSON object"))?;
        match object.get("role") {
            None | Some(Value::Null) => return Err(InvalidField::missing("role")),
            Some(Value::String(role)) if role == "agent" => {}
            Some(_) => return Err(InvalidField::new("role", "invalid_field", "`role` must be \"agent\"")),
        }
        let text = match object.get("text") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.as_str()),
            Some(_) => return Err(InvalidField::new("text", "invalid_field", "`text` must be a string")),
        };
        let text = UserText::parse(text, "text", MAX_AGENT_TEXT_CHARS)?.into_string();
        let author = match object.get("author") {
            None | Some(Value::Null) => None,
            Some(Value::String(author)) => {
                let cleaned = super::clean_text(author).into_owned();
                if cleaned.chars().count() > MAX_AUTHOR_CHARS {
                    return Err(InvalidField::new(
                        "author",
                        "field_too_long",
                        format!("`author` must be at most {MAX_AUTHOR_CHARS} characters"),
                    ));
                }
                Some(cleaned).filter(|a| !a.is_empty())
            }
            Some(_) => return Err(InvalidField::new("author", "invalid_field", "`author` must be a string")),
        };
        Ok(Self { text, author })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_the_field_it_refuses() {
        let field = |body: Value| AgentMessage::parse(&body).unwrap_err().field;
        assert_eq!(field(json!({"text": "hi"})), "role");
        assert_eq!(field(json!({"role": "visitor", "text": "hi"})), "role");
        assert_eq!(field(json!({"role": "agent"})), "text");
        assert_eq!(field(json!({"role": "agent", "text": "  "})), "text");
        assert_eq!(field(json!({"role": "agent", "text": 5})), "text");
        assert_eq!(field(json!({"role": "agent", "text": "hi", "author": ["x"]})), "author");
        assert_eq!(field(json!([1])), "body");
    }

    #[test]
    fn keeps_text_and_author() {
        let m = AgentMessage::parse(&json!({"role": "agent", "text": " Hello \u{200B}", "author": "Ana"})).unwrap();
        assert_eq!((m.text.as_str(), m.author.as_deref()), ("Hello", Some("Ana")));
    }
}
