//! Structured output: the schema we ask for, and reading the answer, whether the upstream honoured
//! the schema or returned plain text.

use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::OnceLock;

/// `response_format` asking for `{reply, confidence, intent, needsHuman}` (strict JSON schema).
pub fn response_format() -> &'static Value {
    static FORMAT: OnceLock<Value> = OnceLock::new();
    FORMAT.get_or_init(|| {
        json!({
            "type": "json_schema",
            "json_schema": {
                "name": "support_reply",
                "strict": true,
                "schema": {
                    "type": "object",
                    "properties": {
                        "reply": {"type": "string", "description": "The answer shown to the visitor, plain text."},
                        "confidence": {"type": "number", "description": "0 to 1: how sure you are the reply answers the question from the given facts."},
                        "intent": {"type": "string", "description": "One word for the topic: order, billing, refund, technical, account, other."},
                        "needsHuman": {"type": "boolean", "description": "True when only a human agent can resolve this."}
                    },
                    "required": ["reply", "confidence", "intent", "needsHuman"],
                    "additionalProperties": false
                }
            }
        })
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelAnswer {
    pub reply: String,
    pub confidence: f64,
    pub intent: Option<String>,
    pub needs_human: bool,
    /// false when the upstream ignored the schema and the heuristic set the confidence
    pub structured: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    reply: String,
    #[serde(default)]
    confidence: Option<f64>,
    #[serde(default)]
    intent: Option<String>,
    #[serde(default)]
    needs_human: Option<bool>,
}

/// Confidence given to plain-text replies: high unless the text hedges.
pub const PLAIN_TEXT_CONFIDENCE: f64 = 0.8;
/// Confidence given to plain-text replies that hedge ("I'm not sure", "I don't know", ...).
pub const HEDGING_CONFIDENCE: f64 = 0.3;

const HEDGES: &[&str] = &[
    "i'm not sure",
    "i am not sure",
    "i don't know",
    "i do not know",
    "not certain",
    "i'm unable to",
    "i am unable to",
    "i can't help",
    "i cannot help",
    "i don't have access",
    "i do not have access",
    "i don't have information",
    "i do not have information",
    "unclear",
    "i can't find",
    "i cannot find",
];

/// Reads `content` as the schema's JSON; anything else is plain text with a heuristic confidence.
/// None when the JSON carries an empty reply.
pub fn read_answer(content: &str) -> Option<ModelAnswer> {
    if content.starts_with('{') {
        if let Ok(raw) = serde_json::from_str::<Raw>(content) {
            let reply = raw.reply.trim().to_owned();
            if reply.is_empty() {
                return None;
            }
            let confidence = raw.confidence.filter(|c| c.is_finite()).unwrap_or(PLAIN_TEXT_CONFIDENCE).clamp(0.0, 1.0);
            let intent = raw.intent.map(|i| i.trim().to_ascii_lowercase()).filter(|i| !i.is_empty());
            return Some(ModelAnswer {
                reply,
                confidence,
                intent,
                needs_human: raw.needs_human.unwrap_or(false),
                structured: true,
            });
        }
    }
    let lowered = content.to_lowercase().replace('’', "'");
    let hedges = HEDGES.iter().any(|h| lowered.contains(h));
    Some(ModelAnswer {
        reply: content.to_owned(),
        confidence: if hedges { HEDGING_CONFIDENCE } else { PLAIN_TEXT_CONFIDENCE },
        intent: None,
        needs_human: false,
        structured: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_structured_answer() {
        let answer =
            read_answer(r#"{"reply":" Shipped. ","confidence":0.92,"intent":"Order","needsHuman":false}"#).unwrap();
        assert_eq!(answer.reply, "Shipped.");
        assert_eq!(answer.confidence, 0.92);
        assert_eq!(answer.intent.as_deref(), Some("order"));
        assert!(answer.structured);
    }

    #[test]
    fn clamps_confidence_and_refuses_an_empty_reply() {
        let answer = read_answer(r#"{"reply":"x","confidence":7,"intent":"","needsHuman":true}"#).unwrap();
        assert_eq!(answer.confidence, 1.0);
        assert!(answer.needs_human);
        assert_eq!(answer.intent, None);
        assert!(read_answer(r#"{"reply":"  ","confidence":1,"intent":"x","needsHuman":false}"#).is_none());
    }

    #[test]
    fn plain_text_gets_a_heuristic_confidence() {
        let sure = read_answer("Your order shipped yesterday.").unwrap();
        assert!(!sure.structured);
        assert_eq!(sure.confidence, PLAIN_TEXT_CONFIDENCE);
        let unsure = read_answer("I’m not sure where your order is.").unwrap();
        assert_eq!(unsure.confidence, HEDGING_CONFIDENCE);
        let json_like = read_answer("{not json").unwrap();
        assert_eq!(json_like.reply, "{not json");
    }
}
