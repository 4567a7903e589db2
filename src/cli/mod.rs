//! The binary's other commands: the container health check, the weekly report and the knowledge base.

pub mod kb;
pub mod sites;

use crate::config::Settings;
use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::time::Duration;

/// GETs /healthz on the configured address (0.0.0.0 becomes 127.0.0.1); needs no curl in the image.
pub async fn healthcheck(settings: &Settings) -> anyhow::Result<()> {
    let mut addr: SocketAddr = settings.server.addr.parse().context("server.addr")?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let scheme = if settings.server.tls_cert.is_empty() { "http" } else { "https" };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        // the certificate names the public host, not 127.0.0.1
        .danger_accept_invalid_certs(scheme == "https")
        .build()?;
    let response = client.get(format!("{scheme}://{addr}/healthz")).send().await.context("healthz unreachable")?;
    if !response.status().is_success() {
        bail!("healthz answered {}", response.status());
    }
    println!("ok");
    Ok(())
}

/// Prints only the report on stdout (logs go to stderr): the site `site`'s (`default` when none).
pub async fn report(settings: &Settings, site: Option<&str>, since: &str, json: bool) -> anyhow::Result<()> {
    let window = crate::review::parse_since(since)?;
    let durable =
        crate::store::durable::connect(settings.storage.database_url.expose()).await.context("DATABASE_URL")?;
    let sites = crate::sites::SiteRegistry::load(durable.clone()).await.context("site registry")?;
    let site = match site {
        None => sites.default_site(),
        Some(id) => sites.site(id).with_context(|| format!("no site `{id}` (velochat sites list)"))?,
    };
    let report = crate::review::build(durable.as_ref(), site.report_scope(), window, settings).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", crate::review::render_text(&report));
    }
    Ok(())
}
