//! Operators' decisions on suggestions: approve (optionally edited) makes the answer a
//! knowledge-base document `suggestion-{id}`, searchable at once; reject keeps it out.

use super::Orchestrator;
use crate::domain::InvalidField;
use crate::knowledge::{DocumentInput, KbError, Written};
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

/// The document title when the operator gives none: the question on one line.
fn default_title(question: &str) -> String {
    let one_line = question.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(300).collect()
}

pub fn document_id(suggestion_id: &str) -> String {
    format!("suggestion-{suggestion_id}")
}

impl Orchestrator {
    async fn pending_suggestion(&self, id: &str) -> Result<SuggestionRecord, SuggestionError> {
        let record = self.durable.suggestion(id).await?.ok_or(SuggestionError::NotFound)?;
        if record.status != "pending" {
            return Err(SuggestionError::Decided(record.status));
        }
        Ok(record)
    }

    /// Claims the decision (exactly one operator or replica wins it).
    async fn decide(&self, id: &str, to: &str) -> Result<(), SuggestionError> {
        let at = chrono::Utc::now().timestamp_millis();
        if self.durable.move_suggestion(id, "pending", to, Some(at)).await? {
            return Ok(());
        }
        let now = self.durable.suggestion(id).await?.ok_or(SuggestionError::NotFound)?;
        Err(SuggestionError::Decided(now.status))
    }

    pub async fn approve_suggestion(
        &self,
        id: &str,
        edit: SuggestionEdit,
    ) -> Result<(SuggestionRecord, Written), SuggestionError> {
        let mut record = self.pending_suggestion(id).await?;
        let input = DocumentInput {
            title: Some(edit.title.unwrap_or_else(|| default_title(&record.question))),
            body: Some(edit.body.unwrap_or_else(|| record.answer.clone())),
            tags: Some(vec!["suggestion".to_owned()]),
            ..DocumentInput::default()
        };
        let document = input.validate(Some(&document_id(id)), "")?;
        self.decide(id, "approved").await?;
        match self.knowledge.write(vec![document]).await {
            Ok(written) => {
                self.metrics.kb_suggestions.with_label_values(&["approved"]).inc();
                record.status = "approved".to_owned();
                Ok((record, written))
            }
            Err(e) => {
                // Not in the knowledge base, so not approved: the operator can try again.
                let _ = self.durable.move_suggestion(id, "approved", "pending", None).await;
                Err(e.into())
            }
        }
    }

    pub async fn reject_suggestion(&self, id: &str) -> Result<SuggestionRecord, SuggestionError> {
        let mut record = self.pending_suggestion(id).await?;
        self.decide(id, "rejected").await?;
        self.metrics.kb_suggestions.with_label_values(&["rejected"]).inc();
        record.status = "rejected".to_owned();
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_title_is_the_question_on_one_line() {
        assert_eq!(super::default_title("Do you ship\nto Canada?"), "Do you ship to Canada?");
        assert_eq!(super::default_title(&"a".repeat(400)).len(), 300);
    }
}
