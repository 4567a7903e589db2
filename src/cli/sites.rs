//! `velochat sites list|create|key`: the site registry in the store named by DATABASE_URL, for an
//! operator at a shell (running replicas pick the change up within their poll).

use crate::config::Settings;
use crate::domain::SiteId;
use crate::sites::{SiteRegistry, SiteRole, SiteSettings};
use anyhow::{bail, Context};
use std::sync::Arc;

async fn registry(settings: &Settings) -> anyhow::Result<Arc<SiteRegistry>> {
    let durable =
        crate::store::durable::connect(settings.storage.database_url.expose()).await.context("DATABASE_URL")?;
    SiteRegistry::load(durable).await.context("site registry")
}

/// One line per site: id, name, number of keys.
pub async fn list(settings: &Settings) -> anyhow::Result<()> {
    let sites = registry(settings).await?;
    for site in sites.sites() {
        let keys = sites.key_count(site.id.as_str());
        println!("{}\t{}\t{keys} key(s)", site.id, site.name);
    }
    Ok(())
}

/// Creates the site (or renames it, keeping its settings).
pub async fn create(settings: &Settings, id: &str, name: &str) -> anyhow::Result<()> {
    let id = SiteId::parse(id, "ID").map_err(|e| anyhow::anyhow!(e.message))?;
    if name.trim().is_empty() {
        bail!("--name must not be empty");
    }
    let sites = registry(settings).await?;
    let kept = sites.site(id.as_str()).map(|s| s.settings.clone()).unwrap_or_else(SiteSettings::default);
    let site = sites.put(id, name.to_owned(), kept).await?;
    println!("{}\t{}", site.id, site.name);
    Ok(())
}

/// Makes a key and prints it once (only its hash is stored).
pub async fn key(settings: &Settings, id: &str, role: &str, label: Option<String>) -> anyhow::Result<()> {
    let Some(role) = SiteRole::parse(role) else {
        bail!("--role must be caller or admin");
    };
    let sites = registry(settings).await?;
    let minted = sites.create_key(id, role, label).await.with_context(|| format!("site `{id}`"))?;
    eprintln!("key {} ({}) for site {}: shown this once, stored only as a hash", minted.key.id, role.as_str(), id);
    println!("{}", minted.secret);
    Ok(())
}
