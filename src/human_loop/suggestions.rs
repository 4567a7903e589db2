//! Operators' decisions on suggestions: approve (optionally edited) makes the answer a
//! knowledge-base document `suggestion-{id}`, searchable at once; reject keeps it out.

use super::HumanLoop;
use crate::domain::InvalidField;
use crate::knowledge::{DocumentInput, KbError, Written};
use crate::sites::Site;
use crate::store::durable::SuggestionRecord;
use crate::store::StoreError;

/// What an operator may change before approving.
#[derive(Debug, Clone, Default)]
pub struct SuggestionEdit {
    pub title: Option<String>,
    pub body: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SuggestionError {
    #[error("no such suggestion")]
    NotFound,
    #[error("already {0}")]
    Decided(String),
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Knowledge(#[from] KbError),
}

/// Longest title made from an answer, in characters.
const TITLE_CHARS: usize = 80;

/// The document title when the operator gives none: the team's answer, not the visitor's words
/// (a title reaches other visitors' prompts; visitor text must not get there unreviewed). Its
/// first sentence on one line, cut at a word.
fn default_title(answer: &str) -> String {
    let one_line = answer.split_whitespace().collect::<Vec<_>>().join(" ");
    let sentence = one_line.split_inclusive(['.', '?', '!']).next().unwrap_or(&one_line).trim();
    if sentence.chars().count() <= TITLE_CHARS {
        return sentence.trim_end_matches(['.', '!']).to_owned();
    }
    let cut: String = sentence.chars().take(TITLE_CHARS).collect();
    let at_word = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
    format!("{}…", at_word.trim_end_matches([',', ';', ':']))
}

/// The document body: the team's answer, then the visitor's question as quoted text (so search
/// finds it by the words visitors use, and nobody mistakes it for the site's own words).
fn default_body(answer: &str, question: &str) -> String {
    let quoted: Vec<String> =
        question.lines().filter(|l| !l.trim().is_empty()).map(|l| format!("> {}", l.trim())).collect();
    if quoted.is_empty() {
        return answer.to_owned();
    }
    format!("{answer}\n\nA visitor asked:\n{}", quoted.join("\n"))
}

pub fn document_id(suggestion_id: &str) -> String {
    format!("suggestion-{suggestion_id}")
}

impl HumanLoop {
    /// A site's suggestions, newest first (at most 1,000).
    pub async fn suggestions(&self, site: &Site, status: Option<&str>) -> Result<Vec<SuggestionRecord>, StoreError> {
        self.with.durable.suggestions(site.scope(), status, 0).await
    }

    /// The site's suggestion `id`; another site's is as good as absent.
    async fn pending_suggestion(&self, site: &Site, id: &str) -> Result<SuggestionRecord, SuggestionError> {
        let record = self.with.durable.suggestion(id).await?.ok_or(SuggestionError::NotFound)?;
        if !site.scope().covers(&record.session_id) {
            return Err(SuggestionError::NotFound);
        }
        if record.status != "pending" {
            return Err(SuggestionError::Decided(record.status));
        }
        Ok(record)
    }

    /// Claims the decision (exactly one operator or replica wins it).
    async fn decide(&self, id: &str, to: &str) -> Result<(), SuggestionError> {
        let at = chrono::Utc::now().timestamp_millis();
        if self.with.durable.move_suggestion(id, "pending", to, Some(at)).await? {
            return Ok(());
        }
        let now = self.with.durable.suggestion(id).await?.ok_or(SuggestionError::NotFound)?;
        Err(SuggestionError::Decided(now.status))
    }

    pub async fn approve_suggestion(
        &self,
        site: &Site,
        id: &str,
        edit: SuggestionEdit,
    ) -> Result<(SuggestionRecord, Written), SuggestionError> {
        let mut record = self.pending_suggestion(site, id).await?;
        let base = self.with.knowledge.of(site).await?;
        let title = edit.title.unwrap_or_else(|| default_title(edit.body.as_deref().unwrap_or(&record.answer)));
        let input = DocumentInput {
            title: Some(title),
            body: Some(edit.body.unwrap_or_else(|| default_body(&record.answer, &record.question))),
            tags: Some(vec!["suggestion".to_owned()]),
            ..DocumentInput::default()
        };
        let document = input.validate(Some(&document_id(id)), "")?;
        self.decide(id, "approved").await?;
        match base.write(vec![document]).await {
            Ok(written) => {
                self.with.metrics.kb_suggestions.with_label_values(&["approved"]).inc();
                record.status = "approved".to_owned();
                Ok((record, written))
            }
            Err(e) => {
                // Not in the knowledge base, so not approved: the operator can try again.
                let _ = self.with.durable.move_suggestion(id, "approved", "pending", None).await;
                Err(e.into())
            }
        }
    }

    pub async fn reject_suggestion(&self, site: &Site, id: &str) -> Result<SuggestionRecord, SuggestionError> {
        let mut record = self.pending_suggestion(site, id).await?;
        self.decide(id, "rejected").await?;
        self.with.metrics.kb_suggestions.with_label_values(&["rejected"]).inc();
        record.status = "rejected".to_owned();
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_title_is_the_answers_first_sentence_on_one_line() {
        assert_eq!(super::default_title("We ship\nto Canada. It takes a week."), "We ship to Canada");
        let long = super::default_title(&"word ".repeat(100));
        assert!(long.chars().count() <= 81 && long.ends_with('…'), "{long}");
    }

    #[test]
    fn the_visitors_question_is_quoted_in_the_body() {
        let body = super::default_body("Yes, in a week.", "Do you ship\nto Canada?");
        assert_eq!(body, "Yes, in a week.\n\nA visitor asked:\n> Do you ship\n> to Canada?");
    }
}
