//! The first-response SLA: one rule for when a visitor has waited too long for a person, used by
//! the chat (a holding notice becomes the SLA notice), the sweep and the review's handoff list.

use super::{now_ms, HumanLoop};
use crate::domain::{Role, Turn};
use crate::store::{Mode, SessionState};
use crate::support::{EventKind, SupportEvent};
use serde::Serialize;

/// Where a handoff stands against the SLA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaState {
    Waiting,
    Answered,
    Breached,
}

impl SlaState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Answered => "answered",
            Self::Breached => "breached",
        }
    }
}

/// The SLA in milliseconds; 0 means none.
#[derive(Debug, Clone, Copy)]
pub struct Sla(pub i64);

impl Sla {
    /// A recorded breach stays one; an answer before the limit is answered; otherwise the wait
    /// since `started_ms` decides.
    pub fn state(self, started_ms: i64, first_agent_ms: Option<i64>, recorded_breach: bool, now_ms: i64) -> SlaState {
        match (first_agent_ms, recorded_breach) {
            (_, true) => SlaState::Breached,
            (Some(_), false) => SlaState::Answered,
            (None, false) if self.0 > 0 && now_ms - started_ms >= self.0 => SlaState::Breached,
            (None, false) => SlaState::Waiting,
        }
    }
}

impl HumanLoop {
    /// The SLA of the session stored under `key`: its site's `handoff.slaMs`, else `handoff.sla_ms`.
    pub fn sla_of(&self, key: &str) -> Sla {
        let own = self.with.sites.site_of_session(key).and_then(|s| s.settings.handoff.as_ref().and_then(|h| h.sla_ms));
        Sla(own.unwrap_or(self.with.settings.handoff.sla_ms) as i64)
    }

    /// A visitor still waits for the first agent message past the session's SLA.
    pub fn sla_overdue(&self, key: &str, state: &SessionState) -> bool {
        state.mode == Mode::Human
            && state.human_since_ms.is_some_and(|since| {
                self.sla_of(key).state(since, state.first_agent_ms, false, now_ms()) == SlaState::Breached
            })
    }

    /// Records a breach once (whichever replica or request gets there first): the counter and one
    /// `sla_breached` event through the outbox.
    pub async fn breach(&self, id: &str, episode: i64, started_ms: i64, reason: Option<&str>) {
        self.with.transcripts.flush().await;
        match self.with.durable.handoff_breached(id, episode).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, "SLA breach not recorded; retried on the next sweep");
                return;
            }
        }
        self.with.metrics.handoff_sla_breaches.inc();
        let waited = now_ms() - started_ms;
        tracing::warn!(waited_ms = waited, "handoff SLA breached: no agent message yet");
        let transcript: Vec<Turn> = match self.with.durable.session_messages(id, episode).await {
            Ok(messages) => messages
                .into_iter()
                .map(|m| Turn { role: if m.role == "visitor" { Role::User } else { Role::Assistant }, content: m.text })
                .collect(),
            Err(_) => Vec::new(),
        };
        let _ = self
            .with
            .support
            .publish(SupportEvent {
                kind: EventKind::SlaBreached,
                session_id: id,
                reason,
                intent: None,
                context: None,
                transcript: &transcript,
                message: None,
                waited_ms: Some(waited),
            })
            .await;
    }

    /// Every open handoff past the SLA with no agent message yet: breached (housekeeping).
    pub async fn sla_sweep(&self) -> usize {
        // The shortest SLA in force lists every candidate; each is then held to its own site's.
        let deployment = Some(self.with.settings.handoff.sla_ms).filter(|ms| *ms > 0);
        let Some(shortest) = deployment.into_iter().chain(self.with.sites.shortest_sla_ms()).min() else {
            return 0;
        };
        let now = now_ms();
        let candidates = match self.with.durable.handoffs_awaiting(now - shortest as i64).await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(error = %e, "could not list handoffs awaiting an agent");
                return 0;
            }
        };
        let overdue: Vec<_> = candidates
            .iter()
            .filter(|h| self.sla_of(&h.session_id).state(h.started_ms, None, false, now) == SlaState::Breached)
            .collect();
        for handoff in &overdue {
            self.breach(&handoff.session_id, handoff.episode, handoff.started_ms, Some(&handoff.reason)).await;
        }
        overdue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::{Sla, SlaState};

    #[test]
    fn a_wait_past_the_sla_is_a_breach_until_someone_answers() {
        let sla = Sla(60_000);
        assert_eq!(sla.state(0, None, false, 59_999), SlaState::Waiting);
        assert_eq!(sla.state(0, None, false, 60_000), SlaState::Breached);
        assert_eq!(sla.state(0, Some(30_000), false, 90_000), SlaState::Answered);
        assert_eq!(sla.state(0, Some(30_000), true, 90_000), SlaState::Breached, "a recorded breach stays");
        assert_eq!(Sla(0).state(0, None, false, i64::MAX), SlaState::Waiting, "no SLA, no breach");
    }
}
