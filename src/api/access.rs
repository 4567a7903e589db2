//! Who may call what: each route group's authentication, and the site a request acts in
//! (`CurrentSite`): a site key's own, or the one the operator names with `X-Velochat-Site`.

use super::error::ApiError;
use super::middleware::{RequestContext, SITE_HEADER};
use crate::api::state::AppState;
use crate::domain::SiteId;
use crate::guard::{Authenticator, Credential};
use crate::sites::{Site, SiteRegistry, SiteRole};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use std::convert::Infallible;
use std::future::Ready;
use std::sync::Arc;

fn context(request: &Request) -> Credential {
    request.extensions().get::<RequestContext>().map(|c| c.credential.clone()).unwrap_or(Credential::Missing)
}

/// The site a request acts in, set by the route group's authentication before any handler runs.
#[derive(Debug, Clone)]
pub struct CurrentSite(pub Arc<Site>);

/// The site an operator (or a site's own admin key) names with `X-Velochat-Site`; absent = the
/// key's own site (`default` for the operator).
fn named_site(state: &AppState, request: &Request) -> Result<Option<Arc<Site>>, ApiError> {
    let Some(raw) = request.headers().get(SITE_HEADER) else {
        return Ok(None);
    };
    let id = SiteId::parse(raw.to_str().unwrap_or(""), "X-Velochat-Site")?;
    state.sites.site(id.as_str()).map(Some).ok_or(ApiError::SiteNotFound)
}

/// A site's admin (key or console session) acts on its own site; naming another is refused.
fn own_site(site: Arc<Site>, named: &Option<Arc<Site>>) -> Result<Arc<Site>, ApiError> {
    match named {
        Some(other) if other.id != site.id => Err(ApiError::Forbidden("a site's admin key acts on its own site only")),
        _ => Ok(site),
    }
}

/// The operator (key or console) acts on the site it names, else `default`.
fn operator_site(state: &AppState, named: &Option<Arc<Site>>) -> Arc<Site> {
    named.clone().unwrap_or_else(|| state.sites.default_site())
}

/// Chat routes: a caller key when keys are required (a configured caller key, or any site besides
/// `default`); anonymous otherwise. The request acts in the key's site. A tower layer whose
/// refusal is a ready future.
#[derive(Clone)]
pub struct RequireCaller {
    auth: Arc<Authenticator>,
    sites: Arc<SiteRegistry>,
}

impl RequireCaller {
    pub fn new(state: &AppState) -> Self {
        Self { auth: state.auth.clone(), sites: state.sites.clone() }
    }
}

impl<S> tower::Layer<S> for RequireCaller {
    type Service = RequireCallerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireCallerService { auth: self.auth.clone(), sites: self.sites.clone(), inner }
    }
}

#[derive(Clone)]
pub struct RequireCallerService<S> {
    auth: Arc<Authenticator>,
    sites: Arc<SiteRegistry>,
    inner: S,
}

impl<S> tower::Service<Request> for RequireCallerService<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let site = match context(&request) {
            Credential::Site(key, site) if key.role == SiteRole::Caller => site,
            Credential::Caller(_) => self.sites.default_site(),
            _ if !self.auth.keys_required() => self.sites.default_site(),
            _ => return Either::Left(std::future::ready(Ok(ApiError::Unauthorized.into_response()))),
        };
        request.extensions_mut().insert(CurrentSite(site));
        Either::Right(self.inner.call(request))
    }
}

/// Anonymous control (no key configured) is for a local caller only: not on a public listener,
/// not through a trusted proxy, and not from anything carrying a forwarding header — whoever sits
/// behind a proxy is a stranger, whatever address the proxy connects from.
fn local_unproxied(state: &AppState, request: &Request) -> bool {
    let peer = request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    !state.public_listener
        && !peer.is_some_and(|ip| state.ip_limiter.trusts(ip))
        && !crate::guard::client_ip::carries_forwarding(request.headers())
}

/// /metrics and /openapi.json: a caller or the admin key; anonymous only for a local, unproxied
/// caller with no keys configured.
pub async fn require_observer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let any_key = state.auth.keys_required() || state.auth.has_admin_key();
    match context(&request) {
        Credential::Caller(_) | Credential::Admin => next.run(request).await,
        // Metrics and the schema span every site: not a site's to read.
        Credential::Site(..) => ApiError::Forbidden("a site's key cannot read deployment-wide routes").into_response(),
        _ if !any_key && local_unproxied(&state, &request) => next.run(request).await,
        _ if !any_key && !state.public_listener => ApiError::Unauthorized.into_response(),
        _ if !any_key => ApiError::Disabled(
            "not served anonymously on a public address: set VELOCHAT_ADMIN_KEY or VELOCHAT_API_KEYS",
        )
        .into_response(),
        _ => ApiError::Unauthorized.into_response(),
    }
}

/// /admin/*: the operator key (acting on `default`, or the site `X-Velochat-Site` names), a
/// site's admin key (its own site only), or a console session; disabled while no admin key exists.
pub async fn require_admin(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let named = match named_site(&state, &request) {
        Ok(named) => named,
        Err(refused) => return refused.into_response(),
    };
    let acting = match context(&request) {
        Credential::Site(key, site) if key.role == SiteRole::Admin => own_site(site, &named).map(|site| (site, true)),
        _ if !state.auth.has_admin_key() => {
            return ApiError::Disabled("admin routes are disabled: set VELOCHAT_ADMIN_KEY").into_response()
        }
        Credential::Admin => Ok((operator_site(&state, &named), false)),
        Credential::Missing => {
            match crate::api::console::authorize(&state, request.method(), request.headers()).await {
                // A site admin's console session: that site only.
                Some(Ok(session)) => match session.site.and_then(|s| state.sites.site(&s.site)) {
                    Some(site) => own_site(site, &named).map(|site| (site, true)),
                    None => Ok((operator_site(&state, &named), false)),
                },
                Some(Err(refused)) => Err(refused),
                None => Err(ApiError::Unauthorized),
            }
        }
        _ => Err(ApiError::Unauthorized),
    };
    let (site, site_admin) = match acting {
        Ok(acting) => acting,
        Err(refused) => return refused.into_response(),
    };
    request.extensions_mut().insert(CurrentSite(site));
    if site_admin {
        request.extensions_mut().insert(SiteAdmin);
    }
    next.run(request).await
}

/// Set by `require_admin` when a site's admin (key or console session) is acting.
#[derive(Debug, Clone, Copy)]
pub struct SiteAdmin;

/// The registry (`/admin/sites`) is the operator's alone; runs after `require_admin`.
pub async fn require_operator(request: Request, next: Next) -> Response {
    if request.extensions().get::<SiteAdmin>().is_some() {
        return ApiError::Forbidden("only the operator key manages sites").into_response();
    }
    next.run(request).await
}

/// Who sent an agent message from the console: the name its operator signed in with.
#[derive(Debug, Clone)]
pub struct ConsoleOperator(pub String);

/// Session control for the site's backend (the Wix Chat handler, the widget's long poll): a caller
/// or the admin key, or a console session (with its CSRF token for a change); without any key
/// configured, a local unproxied caller only.
pub async fn require_backend(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let any_key = state.auth.keys_required() || state.auth.has_admin_key();
    let credential = context(&request);
    // The operator (key or console) may name a site; every other key acts in its own.
    let named = match named_site(&state, &request) {
        Ok(named) => named,
        Err(refused) => return refused.into_response(),
    };
    let site = match &credential {
        Credential::Site(_, site) => site.clone(),
        Credential::Admin | Credential::Missing => operator_site(&state, &named),
        _ => state.sites.default_site(),
    };
    request.extensions_mut().insert(CurrentSite(site));
    if credential.is_missing() {
        match crate::api::console::authorize(&state, request.method(), request.headers()).await {
            Some(Ok(session)) => {
                if let Some(site) = session.site.and_then(|s| state.sites.site(&s.site)) {
                    match own_site(site, &named) {
                        Ok(site) => request.extensions_mut().insert(CurrentSite(site)),
                        Err(refused) => return refused.into_response(),
                    };
                }
                request.extensions_mut().insert(ConsoleOperator(session.operator));
                return next.run(request).await;
            }
            Some(Err(refused)) => return refused.into_response(),
            None => {}
        }
    }
    match credential {
        Credential::Caller(_) | Credential::Admin | Credential::Site(..) => next.run(request).await,
        _ if !any_key && local_unproxied(&state, &request) => next.run(request).await,
        _ if !any_key && !state.public_listener => ApiError::Unauthorized.into_response(),
        _ if !any_key => {
            ApiError::Disabled("session control needs VELOCHAT_API_KEYS or VELOCHAT_ADMIN_KEY").into_response()
        }
        _ => ApiError::Unauthorized.into_response(),
    }
}
