//! What operators switch and watch on the chat path: the kill switch, readiness, and the gauges
//! refreshed when metrics are scraped.

use super::ChatService;
use crate::sites::{Site, SiteError, SiteRegistry};
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

    /// A site's kill switch. `default`'s is the deployment's switch (the shared store's, as before
    /// sites), or its own setting; another site's is its `killSwitch` setting, else the
    /// deployment's configured one — never `default`'s live switch, so one site's emergency stop
    /// leaves the others answering.
    pub async fn site_kill_switch(&self, site: &Site) -> bool {
        if site.id.is_default() {
            site.settings.kill_switch == Some(true) || self.store.kill_switch().await
        } else {
            site.settings.kill_switch.unwrap_or(self.settings.kill_switch.enabled)
        }
    }

    /// Flips a site's kill switch on every replica: `default`'s in the shared store, another's in
    /// its settings (the registry carries it to every replica within a poll).
    pub async fn set_site_kill_switch(
        &self,
        site: &Site,
        enabled: bool,
        sites: &SiteRegistry,
    ) -> Result<(), SiteError> {
        if site.id.is_default() && site.settings.kill_switch.is_none() {
            return Ok(self.set_kill_switch(enabled).await?);
        }
        let mut settings = site.settings.clone();
        settings.kill_switch = Some(enabled);
        sites.put(site.id.clone(), site.name.clone(), settings).await?;
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
        let bases = self.knowledge.open_bases();
        m.kb_documents.set(bases.iter().map(|(_, kb)| kb.document_count() as i64).sum());
        m.kb_chunks.set(bases.iter().map(|(_, kb)| kb.chunk_count() as i64).sum());
        for (site, kb) in &bases {
            m.sites.kb_documents.with_label_values(&[site]).set(kb.document_count() as i64);
            m.sites.kb_index_bytes.with_label_values(&[site]).set(kb.memory_bytes() as i64);
        }
    }
}
