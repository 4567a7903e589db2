//! What operators switch and watch on the chat path: the kill switch, readiness, and the gauges
//! refreshed when metrics are scraped.

use super::ChatService;
use crate::store::{StoreError, StoreHealth};
use serde_json::{json, Value};

/// The chat path's health, as `/readyz` shows it.
pub struct Readiness {
    /// The shared store is degraded or events were dropped within the last minute.
    pub degraded: bool,
    pub body: Value,
}

impl ChatService {
    pub async fn kill_switch(&self) -> bool {
        self.store.kill_switch().await
    }

    /// Flips the kill switch on every replica sharing the store.
    pub async fn set_kill_switch(&self, enabled: bool) -> Result<(), StoreError> {
        self.store.set_kill_switch(enabled).await?;
        self.metrics.kill_switch.set(i64::from(enabled));
        Ok(())
    }

    pub fn circuit_state(&self) -> crate::completion::CircuitState {
        self.ladder.breaker.state()
    }

    pub async fn readiness(&self) -> Readiness {
        let store = self.store.health();
        let dropping = self.events.dropping();
        let degraded = store == StoreHealth::Degraded || dropping;
        let body = json!({
            "status": if degraded { "degraded" } else { "ready" },
            "store": store.as_str(),
            "events": if dropping { "dropping" } else { "ok" },
            "durable": self.durable.backend(),
            "upstream": {"apiKey": self.ladder.primary.has_key(), "circuit": self.circuit_state().as_str()},
            "killSwitch": self.kill_switch().await,
            "tokenizer": if self.tokenizer.is_loaded() { "loaded" } else { "loading" },
        });
        Readiness { degraded, body }
    }

    /// Sets the gauges that are read, not counted; `edge_limiter_keys` are the per-IP limiter's.
    pub async fn refresh_gauges(&self, edge_limiter_keys: usize) {
        let m = &self.metrics;
        m.circuit_state.set(self.circuit_state().gauge());
        m.kill_switch.set(i64::from(self.kill_switch().await));
        m.limiter_keys.set((self.store.tracked_limiter_keys() + edge_limiter_keys) as i64);
        m.kb_documents.set(self.knowledge.document_count() as i64);
        m.kb_chunks.set(self.knowledge.chunk_count() as i64);
    }
}
