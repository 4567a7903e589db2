//! Sites: one deployment serves many Wix sites, each with its own keys and settings. The registry
//! lives in the durable store and is cached in every process, reloaded when its version moves
//! (polled), so a new key, a revoked key or a changed setting holds on every replica within a poll.
//! `default` always exists: a deployment that registers nothing behaves as a single site.

mod keys;
pub mod settings;

pub use keys::{MintedKey, SiteKey, SiteRole};
pub use settings::{SiteBudget, SiteSettings};

use crate::domain::{InvalidField, SiteId};
use crate::store::durable::{SessionScope, SiteRow, SiteScope, SiteStore};
use crate::store::StoreError;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::Arc;

/// One registered site, as every request sees it.
#[derive(Debug, Clone)]
pub struct Site {
    pub id: SiteId,
    pub name: String,
    pub settings: SiteSettings,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// `session_prefix`, made once.
    prefix: Option<String>,
}

impl Site {
    pub fn new(id: SiteId, name: String, settings: SiteSettings, created_ms: i64, updated_ms: i64) -> Self {
        let mut site = Self { id, name, settings, created_ms, updated_ms, prefix: None };
        site.prefix = (!site.id.is_default()).then(|| format!("{}/", site.incarnation()));
        site
    }

    /// `{id}.{createdMs}`: this site, told apart from one deleted earlier under the same id (`.` is
    /// in no site id). Its session keys, budget counters and alerts are named by it.
    pub fn incarnation(&self) -> String {
        format!("{}.{}", self.id, self.created_ms)
    }

    /// What every key of this site's sessions starts with (None for `default`, whose sessions keep
    /// their bare id, so a deployment's existing sessions stay where they are). `/` is in no session
    /// id: no two sites' keys ever meet, and a site made again starts with no sessions.
    pub fn session_prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }

    /// The listings of this site's sessions (handoffs, suggestions) cover.
    pub fn scope(&self) -> SessionScope<'_> {
        match &self.prefix {
            None => SessionScope::Default,
            Some(prefix) => SessionScope::Prefix(prefix),
        }
    }

    /// The `site` column of its events and questions: None for `default` (stored as `default`).
    pub fn stored_id(&self) -> Option<String> {
        (!self.id.is_default()).then(|| self.id.as_str().to_owned())
    }

    /// What this site's review and overview read.
    pub fn report_scope(&self) -> SiteScope<'_> {
        SiteScope { site: Some(self.id.as_str()), sessions: self.scope() }
    }

    fn from_row(row: SiteRow) -> Result<Self, SiteError> {
        let settings = serde_json::from_str::<serde_json::Value>(&row.settings)
            .ok()
            .and_then(|raw| SiteSettings::parse(Some(&raw)).ok())
            .unwrap_or_else(|| {
                tracing::warn!(site = %row.id, "stored site settings unreadable; using the deployment's");
                SiteSettings::default()
            });
        let id = SiteId::parse(&row.id, "siteId")?;
        Ok(Self::new(id, row.name, settings, row.created_ms, row.updated_ms))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error("no such site")]
    NotFound,
    #[error("no such key")]
    KeyNotFound,
    #[error("the default site cannot be deleted")]
    DefaultSite,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the process holds: every site and every key's digest, and what requests and background
/// loops ask of them, worked out once per reload.
struct Snapshot {
    version: i64,
    sites: HashMap<String, Arc<Site>>,
    keys: HashMap<[u8; 32], Arc<SiteKey>>,
    default: Arc<Site>,
    /// A site besides `default` is, or once was, registered.
    other_sites: bool,
    /// A site has a handoff or alert webhook of its own.
    own_webhooks: bool,
    /// The shortest SLA a site sets for itself.
    shortest_sla_ms: Option<u64>,
}

impl Snapshot {
    fn new(
        version: i64,
        ever_other_sites: bool,
        sites: HashMap<String, Arc<Site>>,
        keys: HashMap<[u8; 32], Arc<SiteKey>>,
    ) -> Self {
        let default = sites.get(SiteId::DEFAULT).cloned().unwrap_or_else(|| {
            Arc::new(Site::new(SiteId::default_site(), SiteId::DEFAULT.to_owned(), SiteSettings::default(), 0, 0))
        });
        let settings = || sites.values().map(|s| &s.settings);
        Self {
            other_sites: ever_other_sites || sites.keys().any(|id| id != SiteId::DEFAULT),
            own_webhooks: settings()
                .any(|s| s.alert_webhook_url.is_some() || s.handoff.as_ref().is_some_and(|h| h.webhook_url.is_some())),
            shortest_sla_ms: settings().filter_map(|s| s.handoff.as_ref()?.sla_ms).filter(|ms| *ms > 0).min(),
            version,
            default,
            sites,
            keys,
        }
    }
}

pub struct SiteRegistry {
    store: Arc<dyn SiteStore>,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Key id → when it was last used here; written back in batches by the refresh loop.
    used: Mutex<HashMap<String, i64>>,
    /// Reloads one at a time (a write's own reload and the poll may meet).
    reloading: tokio::sync::Mutex<()>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl SiteRegistry {
    /// Makes sure `default` exists, then loads everything.
    pub async fn load(store: Arc<dyn SiteStore>) -> Result<Arc<Self>, StoreError> {
        store.ensure_site(SiteId::DEFAULT, SiteId::DEFAULT, now_ms()).await?;
        let registry = Arc::new(Self {
            store,
            snapshot: RwLock::new(Arc::new(Snapshot::new(-1, false, HashMap::new(), HashMap::new()))),
            used: Mutex::new(HashMap::new()),
            reloading: tokio::sync::Mutex::new(()),
        });
        registry.refresh().await?;
        Ok(registry)
    }

    /// Reloads when the stored version moved; true when it did.
    pub async fn refresh(&self) -> Result<bool, StoreError> {
        let _one = self.reloading.lock().await;
        let version = self.store.registry_version().await?;
        if version == self.snapshot.read().version {
            return Ok(false);
        }
        let (rows, key_rows, ever_other_sites) =
            tokio::try_join!(self.store.list_sites(), self.store.list_site_keys(), self.store.sites_ever_registered())?;
        let mut sites = HashMap::with_capacity(rows.len());
        for row in rows {
            match Site::from_row(row) {
                Ok(site) => {
                    sites.insert(site.id.as_str().to_owned(), Arc::new(site));
                }
                Err(e) => tracing::warn!(error = %e, "a stored site id is invalid; skipped"),
            }
        }
        let keys = key_rows
            .into_iter()
            .filter(|row| sites.contains_key(&row.site))
            .filter_map(SiteKey::from_row)
            .map(|key| (key.digest, Arc::new(key)))
            .collect();
        *self.snapshot.write() = Arc::new(Snapshot::new(version, ever_other_sites, sites, keys));
        Ok(true)
    }

    /// Keeps this process's copy current until `stop` fires, and writes back when keys were used.
    pub fn spawn_refresh(
        self: &Arc<Self>,
        every: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let registry = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_flush = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                if let Err(e) = registry.refresh().await {
                    tracing::warn!(error = %crate::error_chain::describe(&e), "site registry refresh failed; retrying");
                }
                if last_flush.elapsed() >= std::time::Duration::from_secs(10) {
                    last_flush = tokio::time::Instant::now();
                    registry.flush_key_use().await;
                }
            }
            registry.flush_key_use().await;
        })
    }

    async fn flush_key_use(&self) {
        let used: Vec<(String, i64)> = self.used.lock().drain().collect();
        if let Err(e) = self.store.touch_site_keys(&used).await {
            tracing::warn!(error = %crate::error_chain::describe(&e), "key use not recorded");
        }
    }

    pub fn site(&self, id: &str) -> Option<Arc<Site>> {
        self.snapshot.read().sites.get(id).cloned()
    }

    /// `default`, always present (written at start-up; rebuilt here should a reload miss it).
    pub fn default_site(&self) -> Arc<Site> {
        self.snapshot.read().default.clone()
    }

    pub fn sites(&self) -> Vec<Arc<Site>> {
        let mut sites: Vec<_> = self.snapshot.read().sites.values().cloned().collect();
        sites.sort_by(|a, b| a.id.cmp(&b.id));
        sites
    }

    /// Whether a site besides `default` is, or ever was, registered: anonymous access ends with
    /// the first, and neither revoking keys nor deleting sites brings it back (a deleted site's
    /// key must not become an anonymous caller).
    pub fn has_other_sites(&self) -> bool {
        self.snapshot.read().other_sites
    }

    /// Whether a site has a webhook of its own (the outbox then has somewhere to deliver).
    pub fn has_own_webhooks(&self) -> bool {
        self.snapshot.read().own_webhooks
    }

    /// The shortest first-response SLA a site sets for itself, if any does.
    pub fn shortest_sla_ms(&self) -> Option<u64> {
        self.snapshot.read().shortest_sla_ms
    }

    pub fn has_caller_keys(&self) -> bool {
        self.snapshot.read().keys.values().any(|k| k.role == SiteRole::Caller)
    }

    /// The site a stored session key belongs to (`Site::session_prefix`): `default` for a bare id,
    /// None for a site since deleted (or deleted and made again).
    pub fn site_of_session(&self, key: &str) -> Option<Arc<Site>> {
        let Some((id, created)) = crate::domain::session_owner(key) else {
            return Some(self.default_site());
        };
        self.site(id).filter(|site| site.created_ms.to_string() == created)
    }

    /// Whether `key_id` is still an admin key of `site` (a console session ends with its key).
    pub fn admin_key_active(&self, site: &str, key_id: &str) -> bool {
        let snapshot = self.snapshot.read();
        snapshot.keys.values().any(|k| k.id == key_id && k.site.as_str() == site && k.role == SiteRole::Admin)
    }

    /// The site key whose digest this is, with its site (the use is recorded).
    pub fn identify(&self, digest: &[u8; 32]) -> Option<(Arc<SiteKey>, Arc<Site>)> {
        let snapshot = self.snapshot.read();
        let key = snapshot.keys.get(digest)?.clone();
        let site = snapshot.sites.get(key.site.as_str())?.clone();
        drop(snapshot);
        self.used.lock().insert(key.id.clone(), now_ms());
        Some((key, site))
    }

    /// Creates or updates a site (a stored webhook secret is kept when the write leaves it out).
    pub async fn put(&self, id: SiteId, name: String, mut settings: SiteSettings) -> Result<Arc<Site>, SiteError> {
        if let Some(previous) = self.site(id.as_str()) {
            settings.keep_secret_from(&previous.settings);
        }
        let json = serde_json::to_string(&settings).unwrap_or_else(|_| "{}".to_owned());
        self.store.put_site(id.as_str(), &name, &json, now_ms()).await?;
        self.refresh().await?;
        self.site(id.as_str()).ok_or(SiteError::NotFound)
    }

    /// Deletes a site with its keys, knowledge base and session records.
    pub async fn delete(&self, id: &str) -> Result<(), SiteError> {
        let site = self.site(id).ok_or(SiteError::NotFound)?;
        let Some(prefix) = site.session_prefix() else {
            return Err(SiteError::DefaultSite);
        };
        if !self.store.delete_site(id, prefix).await? {
            return Err(SiteError::NotFound);
        }
        self.refresh().await?;
        Ok(())
    }

    /// Makes a key for `site`; the key itself is in the answer and nowhere else.
    pub async fn create_key(&self, site: &str, role: SiteRole, label: Option<String>) -> Result<MintedKey, SiteError> {
        let site = self.site(site).ok_or(SiteError::NotFound)?;
        let minted = MintedKey::new(&site.id, role, label, now_ms());
        self.store.add_site_key(&minted.row()).await?;
        self.refresh().await?;
        Ok(minted)
    }

    /// How many keys `site` has, as this process last loaded them.
    pub fn key_count(&self, site: &str) -> usize {
        self.snapshot.read().keys.values().filter(|k| k.site.as_str() == site).count()
    }

    /// `site`'s keys, oldest first (their digests stay inside).
    pub async fn keys(&self, site: &str) -> Result<Vec<SiteKey>, SiteError> {
        self.site(site).ok_or(SiteError::NotFound)?;
        // From the store: `lastUsedAt` is written back there by every replica.
        self.flush_key_use().await;
        let rows = self.store.list_site_keys().await?;
        Ok(rows.into_iter().filter(|r| r.site == site).filter_map(SiteKey::from_row).collect())
    }

    pub async fn revoke_key(&self, site: &str, key_id: &str) -> Result<(), SiteError> {
        self.site(site).ok_or(SiteError::NotFound)?;
        if !self.store.delete_site_key(site, key_id).await? {
            return Err(SiteError::KeyNotFound);
        }
        self.refresh().await?;
        Ok(())
    }
}
