//! Every site's knowledge base: `default`'s built at start-up, another site's on first use and kept
//! in step with the store from then on. A site whose store holds no document gets no index at all
//! (asked again after a sync interval), so a thousand registered sites cost nothing until they have
//! help content.

use super::embed::Embedder;
use super::{KbError, KnowledgeBase, SITE};
use crate::config::KbSettings;
use crate::sites::Site;
use crate::store::DurableStore;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct KnowledgeBases {
    settings: KbSettings,
    durable: Arc<dyn DurableStore>,
    embedder: Option<Arc<Embedder>>,
    default: Arc<KnowledgeBase>,
    /// Open bases of other sites, with the creation time of the site they were opened for (a site
    /// deleted and made again gets a new, empty base).
    others: RwLock<HashMap<String, (i64, Arc<KnowledgeBase>)>>,
    /// Sites found with no document, and when: not looked up again until a sync interval passed.
    empty: RwLock<HashMap<String, Instant>>,
    /// One opening at a time (two requests of a new site build one index).
    opening: tokio::sync::Mutex<()>,
}

impl KnowledgeBases {
    pub fn new(
        settings: &KbSettings,
        durable: Arc<dyn DurableStore>,
        embedder: Option<Embedder>,
    ) -> Result<Self, KbError> {
        let embedder = embedder.map(Arc::new);
        let default = Arc::new(KnowledgeBase::new(settings, durable.clone(), embedder.clone())?);
        Ok(Self {
            settings: settings.clone(),
            durable,
            embedder,
            default,
            others: RwLock::new(HashMap::new()),
            empty: RwLock::new(HashMap::new()),
            opening: tokio::sync::Mutex::new(()),
        })
    }

    pub fn settings(&self) -> &KbSettings {
        &self.settings
    }

    pub fn default_base(&self) -> &Arc<KnowledgeBase> {
        &self.default
    }

    /// The site's base if this process has it open (`default`'s always).
    pub fn loaded(&self, site: &Site) -> Option<Arc<KnowledgeBase>> {
        if site.id.is_default() {
            return Some(self.default.clone());
        }
        self.others
            .read()
            .get(site.id.as_str())
            .filter(|(created, _)| *created == site.created_ms)
            .map(|(_, kb)| kb.clone())
    }

    /// The site's base for an admin route: opened (and read from the store) on first use.
    pub async fn of(&self, site: &Site) -> Result<Arc<KnowledgeBase>, KbError> {
        if let Some(kb) = self.loaded(site) {
            return Ok(kb);
        }
        let _one = self.opening.lock().await;
        if let Some(kb) = self.loaded(site) {
            return Ok(kb);
        }
        let id = site.id.as_str();
        let kb = Arc::new(KnowledgeBase::for_site(id, &self.settings, self.durable.clone(), self.embedder.clone())?);
        kb.sync().await?;
        self.others.write().insert(id.to_owned(), (site.created_ms, kb.clone()));
        self.empty.write().remove(id);
        Ok(kb)
    }

    /// The site's base for a chat message: None while the store holds no document of the site
    /// (checked at most once per sync interval), so a site without help content builds no index.
    pub async fn for_search(&self, site: &Site) -> Option<Arc<KnowledgeBase>> {
        if let Some(kb) = self.loaded(site) {
            return Some(kb);
        }
        let site_id = site.id.as_str();
        let recheck = Duration::from_millis(self.settings.sync_interval_ms.max(50));
        if self.empty.read().get(site_id).is_some_and(|at| at.elapsed() < recheck) {
            return None;
        }
        match self.durable.kb_version(site_id).await {
            Ok(0) => {
                self.empty.write().insert(site_id.to_owned(), Instant::now());
                None
            }
            Ok(_) => self
                .of(site)
                .await
                .inspect_err(|e| tracing::error!(error = %e, site_id, "knowledge base not opened"))
                .ok(),
            Err(e) => {
                tracing::error!(error = %crate::error_chain::describe(&e), site_id, "knowledge base not looked up");
                None
            }
        }
    }

    /// Forgets a deleted site's index (its documents were erased with it).
    pub fn forget(&self, site: &str) {
        self.others.write().remove(site);
        self.empty.write().remove(site);
    }

    /// Every open base, `default` first, with its site.
    pub fn open_bases(&self) -> Vec<(String, Arc<KnowledgeBase>)> {
        let mut all = vec![(SITE.to_owned(), self.default.clone())];
        let mut others: Vec<_> = self.others.read().iter().map(|(s, (_, kb))| (s.clone(), kb.clone())).collect();
        others.sort_by(|a, b| a.0.cmp(&b.0));
        all.extend(others);
        all
    }

    /// Brings every open base up to date with the store.
    pub async fn sync(&self) -> Result<usize, KbError> {
        let mut changed = 0;
        for (_, kb) in self.open_bases() {
            changed += kb.sync().await?;
        }
        Ok(changed)
    }

    /// Syncs the open bases whose site's version moved: one read for every site, however many are
    /// open (a hundred sites' indexes polled one by one would keep the database busy).
    async fn sync_moved(&self) {
        let versions: HashMap<String, i64> = match self.durable.kb_versions().await {
            Ok(versions) => versions.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %crate::error_chain::describe(&e), "knowledge base versions not read; retrying");
                return;
            }
        };
        for (site, kb) in self.open_bases() {
            let Some(version) = versions.get(&site) else { continue };
            if let Err(e) = kb.sync_to(*version).await {
                tracing::warn!(error = %crate::error_chain::describe(&e), site, "knowledge base sync failed; retrying");
            }
        }
    }

    /// Keeps every open base current until `stop` fires.
    pub fn spawn_sync(self: &Arc<Self>, stop: tokio_util::sync::CancellationToken) -> tokio::task::JoinHandle<()> {
        let bases = self.clone();
        let every = Duration::from_millis(self.settings.sync_interval_ms.max(50));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                bases.sync_moved().await;
            }
        })
    }

    /// Embeds, in the background, whatever any open base lacks vectors for.
    pub fn spawn_embedding(
        self: &Arc<Self>,
        stop: tokio_util::sync::CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        self.embedder.as_ref()?;
        let bases = self.clone();
        let every = Duration::from_millis(self.settings.sync_interval_ms.max(50));
        Some(tokio::spawn(async move {
            loop {
                let mut pause = every;
                for (site, kb) in bases.open_bases() {
                    match kb.embed_round().await {
                        Ok(0) => {}
                        Ok(_) => pause = Duration::ZERO,
                        Err(e) => {
                            tracing::warn!(error = %crate::error_chain::describe(&e), site, "background embedding round failed");
                            pause = every * super::vectors::INTERVALS_AFTER_FAILURE;
                            // Every site shares the endpoint: the others would fail alike, each
                            // sending its whole batch first (a thousand doomed uploads per round).
                            if matches!(e, KbError::Embeddings) {
                                break;
                            }
                        }
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }))
    }
}
