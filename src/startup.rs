//! The application: checks its configuration, binds its listener first (port 0 in tests), wires
//! the layers together, runs until told to stop, and stops within its drain deadline.

use crate::api;
use crate::api::server::{is_loopback, serve, tls_acceptor, ServeOptions};
use crate::api::state::{AppState, Lifecycle};
use crate::chat::intents::IntentRouter;
use crate::chat::{ChatService, Collaborators};
use crate::completion::client::http_client;
use crate::config::Settings;
use crate::guard::ip_limit::IpLimiter;
use crate::guard::{Authenticator, Signer};
use crate::human_loop::{HumanLoop, HumanLoopParts};
use crate::rate::Quota;
use crate::review::Review;
use crate::store::memory::MemoryStore;
use crate::store::{durable, DurableStore, StateStore};
use crate::support::{OutboxWorker, SupportOutbox, TranscriptSink, WebhookClient};
use crate::telemetry::{EventSink, Metrics};
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    state: AppState,
    tls: Option<tokio_rustls::TlsAcceptor>,
    background: Vec<JoinHandle<()>>,
    /// Stops the background tasks once requests have drained.
    background_stop: CancellationToken,
    event_writer: JoinHandle<()>,
    transcript_writer: JoinHandle<()>,
    /// Installed before the ready line, so a SIGTERM right after start-up is not lost.
    terminate: Option<tokio::signal::unix::Signal>,
    store: Arc<dyn StateStore>,
    durable: Arc<dyn DurableStore>,
}

/// Proxies whose `X-Forwarded-For` is believed (validated at load, so none is dropped here).
fn trusted_proxies(settings: &Settings) -> Vec<ipnet::IpNet> {
    settings.limits.trusted_proxies.iter().filter_map(|p| crate::domain::parse_cidr(p).ok()).collect()
}

fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

/// The durable store, retried with backoff for `storage.connect_timeout_ms`: a replica started
/// together with its database waits for it rather than exiting.
async fn connect_durable(settings: &Settings) -> Result<Arc<dyn crate::store::DurableStore>, crate::store::StoreError> {
    use backon::Retryable;
    let give_up = tokio::time::Instant::now() + ms(settings.storage.connect_timeout_ms);
    (|| durable::connect(settings.storage.database_url.expose()))
        .retry(crate::retry::exponential(Duration::from_millis(250), Duration::from_secs(5)))
        .sleep(tokio::time::sleep)
        // Tries until the deadline, the last wait cut to end on it.
        .adjust(move |_, next| {
            let left = give_up.saturating_duration_since(tokio::time::Instant::now());
            next.filter(|_| !left.is_zero()).map(|wait| wait.min(left))
        })
        .notify(|e, wait| {
            tracing::warn!(error = %crate::error_chain::describe(e), retry_in_ms = wait.as_millis() as u64,
                           "database not reachable yet; retrying");
        })
        .await
}

async fn state_store(
    settings: &Settings,
    metrics: &Arc<Metrics>,
    stop: &CancellationToken,
) -> anyhow::Result<Arc<dyn StateStore>> {
    let s = settings;
    let local = MemoryStore::new(
        s.limits.max_tracked_keys,
        ms(s.sessions.ttl_ms),
        s.sessions.max_sessions,
        s.kill_switch.enabled,
    );
    if s.storage.redis_url.is_empty() {
        metrics.redis_up.set(-1);
        return Ok(Arc::new(local));
    }
    let store = crate::store::redis::RedisStore::connect(s, local, metrics.redis_up.clone(), stop.clone())
        .await
        .context("storage.redis_url (REDIS_URL)")?;
    Ok(store)
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let s = &settings;
        let addr: SocketAddr = s.server.addr.parse().context("server.addr")?;
        if s.auth.admin_key.is_empty() {
            tracing::warn!(
                "no VELOCHAT_ADMIN_KEY: the /admin routes (knowledge base, reports, kill switch) and the console at /console are off"
            );
        }
        if s.openai.api_key.is_empty() {
            tracing::warn!("no OPENAI_API_KEY configured: serving static replies only (fallbackReason \"no_api_key\")");
        }
        let signer = if s.signing.key.is_empty() {
            tracing::warn!("no VELOCHAT_SIGNING_KEY: using a random key; history signatures will not survive a restart or span replicas");
            Signer::random()
        } else {
            Signer::new(s.signing.key.expose().as_bytes())
        };
        let metrics = Arc::new(Metrics::new());
        let background_stop = CancellationToken::new();
        let durable = connect_durable(s).await.context("storage.database_url (DATABASE_URL)")?;
        let sites = crate::sites::SiteRegistry::load(durable.clone()).await.context("site registry")?;
        crate::api::server::refuse_open_door(s, &addr, sites.has_caller_keys())?;
        let store = state_store(s, &metrics, &background_stop).await?;
        if s.kill_switch.enabled {
            store.set_kill_switch(true).await.ok();
            tracing::warn!("kill switch on at start-up: static replies only");
        }
        let o = &s.openai;
        let http = http_client(ms(o.connect_timeout_ms), false, &o.ca_cert)?;
        // One client serves everything, unless h2c (prior knowledge applies to every host it calls).
        let upstream = if o.h2c { http_client(ms(o.connect_timeout_ms), true, &o.ca_cert)? } else { http.clone() };
        let (events, event_writer) =
            EventSink::start(durable.clone(), s.events.queue_capacity, metrics.clone(), background_stop.clone());
        let (transcripts, transcript_writer) = TranscriptSink::start(durable.clone(), background_stop.clone());
        let wake = Arc::new(Notify::new());
        let redactor = crate::chat::redactor(s);
        let knowledge = crate::chat::knowledge_base(s, &upstream, durable.clone(), &metrics)?;
        let intents = Arc::new(IntentRouter::new(&s.intents, &s.handoff.act_patterns));
        let person_rules = intents.clone();
        let outbox = SupportOutbox::new(durable.clone(), wake.clone(), s.privacy.hash_salt.expose());
        let human_loop = Arc::new(HumanLoop::new(HumanLoopParts {
            settings: settings.clone(),
            store: store.clone(),
            durable: durable.clone(),
            metrics: metrics.clone(),
            support: outbox.clone(),
            transcripts,
            redactor: redactor.clone(),
            knowledge: knowledge.clone(),
            asks_for_person: Box::new(move |text| person_rules.asks_for_person(text)),
            sites: sites.clone(),
        }));
        let chat = Arc::new(ChatService::new(
            settings.clone(),
            Collaborators {
                store: store.clone(),
                durable: durable.clone(),
                upstream,
                alerts: outbox,
                metrics: metrics.clone(),
                events,
                signer,
                redactor,
                knowledge: knowledge.clone(),
                intents,
                human: human_loop.clone(),
            },
        ));
        let review = Arc::new(Review::new(durable.clone(), chat.clone(), human_loop.clone(), metrics.clone()));
        if let Err(e) = human_loop.load_owners().await {
            tracing::warn!(error = %crate::error_chain::describe(&e), "human owners not listed: every new session is looked up");
        }
        // The index is built from the stored documents before the first request.
        knowledge.sync().await.context("knowledge base")?;
        let listener = bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
        let address = listener.local_addr()?;
        let tls = if s.server.tls_cert.is_empty() {
            None
        } else {
            Some(tls_acceptor(&s.server.tls_cert, &s.server.tls_key)?)
        };
        let ip_quota = Quota { burst: s.limits.ip_burst, per_minute: s.limits.ip_per_minute };
        let shared_limits = (!s.storage.redis_url.is_empty()).then(|| store.clone());
        let ip_limiter = Arc::new(IpLimiter::new(ip_quota, trusted_proxies(s), shared_limits).context("limits")?);
        let state = AppState {
            ip_limiter: ip_limiter.clone(),
            settings: settings.clone(),
            chat: chat.clone(),
            human_loop: human_loop.clone(),
            review,
            knowledge: knowledge.clone(),
            auth: Arc::new(Authenticator::new(&s.auth.api_keys, &s.auth.admin_key).with_sites(sites.clone())),
            sites: sites.clone(),
            lifecycle: Arc::new(Lifecycle::default()),
            metrics: metrics.clone(),
            public_listener: !is_loopback(&address),
            console: (!s.auth.admin_key.expose().is_empty()).then(|| {
                // Sign-outs must hold on every replica (Redis) or, alone, across a restart (the database).
                let revocations = if s.storage.redis_url.is_empty() {
                    crate::guard::console_session::Revocations::Durable(durable.clone())
                } else {
                    crate::guard::console_session::Revocations::Shared(store.clone())
                };
                let sessions =
                    crate::guard::console_session::Sessions::new(s.auth.admin_key.expose(), Some(revocations));
                Arc::new(sessions.with_sign_in_limit(store.clone()))
            }),
        };
        let worker = OutboxWorker {
            durable: durable.clone(),
            webhook: WebhookClient::new(http.clone(), &s.webhook.url, &s.webhook.secret, ms(s.webhook.timeout_ms)),
            alerts: WebhookClient::new(
                http.clone(),
                &s.budget.alert_webhook_url,
                &s.webhook.secret,
                ms(s.webhook.timeout_ms),
            ),
            settings: s.webhook.clone(),
            metrics: metrics.clone(),
            wake,
            worker_id: format!("{}-{}", address, uuid::Uuid::now_v7()),
            sites: sites.clone(),
            http: http.clone(),
        };
        let mut background = vec![
            tokio::spawn(worker.run(background_stop.clone())),
            knowledge.spawn_sync(background_stop.clone()),
            // Sites, keys and settings follow other replicas' changes as the knowledge base does.
            sites.spawn_refresh(ms(s.kb.sync_interval_ms.max(50)), background_stop.clone()),
            tokio::spawn(housekeeping(
                Housekeeping {
                    settings: settings.clone(),
                    store: store.clone(),
                    durable: durable.clone(),
                    human_loop,
                    ip_limiter,
                },
                background_stop.clone(),
            )),
        ];
        // Documents without vectors of the model in use are embedded in the background.
        background.extend(knowledge.spawn_embedding(background_stop.clone()));
        let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tracing::info!(%address, tls = tls.is_some(), durable = durable.backend(), store = store.health().as_str(),
                       model = %o.model, workers = crate::api::server::runtime::workers(), "velochat ready");
        Ok(Self {
            listener,
            address,
            state,
            tls,
            background,
            background_stop,
            event_writer,
            transcript_writer,
            terminate,
            store,
            durable,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn lifecycle(&self) -> Arc<Lifecycle> {
        self.state.lifecycle.clone()
    }

    /// The services, for tests that look behind the HTTP edge.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The shared and durable stores, for tests that look behind the services.
    pub fn stores(&self) -> (Arc<dyn StateStore>, Arc<dyn DurableStore>) {
        (self.store.clone(), self.durable.clone())
    }

    /// Serves until shutdown begins (SIGTERM, Ctrl-C, or `Lifecycle::begin_shutdown`): readiness
    /// flips at once, accepting continues for `server.shutdown_delay_ms`, in-flight requests get
    /// `server.drain_timeout_ms`, then queued events are written and the background stops.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let lifecycle = self.state.lifecycle.clone();
        let signals = tokio::spawn(shutdown_signal(lifecycle.clone(), self.terminate));
        let server = &self.state.settings.server;
        let delay = ms(server.shutdown_delay_ms);
        let options = ServeOptions {
            header_read_timeout: ms(server.header_read_timeout_ms),
            drain_timeout: ms(server.drain_timeout_ms),
            tls: self.tls,
        };
        let stop_accepting = {
            let lifecycle = lifecycle.clone();
            async move {
                lifecycle.shutdown.cancelled().await;
                tracing::info!(
                    delay_ms = delay.as_millis() as u64,
                    "shutdown: not ready; still accepting during the delay"
                );
                tokio::time::sleep(delay).await;
            }
        };
        let router = api::router(self.state.clone());
        serve(self.listener, router, options, stop_accepting).await;
        signals.abort();
        self.background_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.event_writer).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.transcript_writer).await;
        for task in self.background {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        tracing::info!("velochat stopped");
        Ok(())
    }
}

/// A listener with a deep accept queue: a burst of thousands of connects (a busy site, a load
/// balancer reconnecting) must not overflow the default 1,024 and wait out SYN retries.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

async fn shutdown_signal(lifecycle: Arc<Lifecycle>, terminate: Option<tokio::signal::unix::Signal>) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match terminate {
            Some(mut signal) => {
                signal.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown signal received");
    lifecycle.begin_shutdown();
}

/// What the periodic chores touch.
struct Housekeeping {
    settings: Arc<Settings>,
    store: Arc<dyn StateStore>,
    durable: Arc<dyn DurableStore>,
    human_loop: Arc<HumanLoop>,
    ip_limiter: Arc<IpLimiter>,
}

/// Sweeps limiters and sessions, releases sessions past their human timeout, purges old records.
async fn housekeeping(chores: Housekeeping, stop: CancellationToken) {
    let Housekeeping { settings: s, store, durable, human_loop, ip_limiter } = chores;
    let mut sweep = tokio::time::interval(ms(s.limits.sweep_interval_ms));
    let release_every = ms((s.handoff.release_after_ms / 10).clamp(1_000, 60_000));
    let mut release = tokio::time::interval(release_every);
    let mut purge = tokio::time::interval(Duration::from_secs(3600));
    // A breach is noticed within a fifth of the SLA, and within a second for a site's own shorter one.
    let sla_every = ms((s.handoff.sla_ms / 5).clamp(100, 1_000));
    let mut sla = tokio::time::interval(sla_every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = sweep.tick() => {
                store.sweep();
                ip_limiter.sweep();
            }
            _ = release.tick() => {
                let released = human_loop.release_expired().await;
                if released > 0 {
                    tracing::info!(released, "sessions returned to the bot after the human timeout");
                }
            }
            _ = sla.tick() => {
                human_loop.sla_sweep().await;
            }
            _ = purge.tick() => {
                let cutoff = chrono::Utc::now().timestamp_millis() - i64::from(s.events.retention_days) * 86_400_000;
                match durable.purge_before(cutoff).await {
                    Ok(0) => {}
                    Ok(rows) => tracing::info!(rows, "purged records past retention"),
                    Err(e) => tracing::warn!(error = %e, "retention purge failed"),
                }
            }
        }
    }
}
