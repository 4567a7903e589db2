//! The operator console at `/console`: pages and assets compiled into the binary (no CDN, works
//! offline), sign-in with the admin key into a 12 h session cookie, sign-out. The pages' data
//! comes from the `/admin/*` JSON routes, which accept the session cookie in place of the admin
//! key — with the CSRF token for every state change (`authorize`).

use crate::api::error::ApiError;
use crate::api::extract::Path;
use crate::api::state::AppState;
use crate::guard::console_session as session;
pub use crate::guard::console_session::{ConsoleSession, Sessions};
use axum::extract::{Form, FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

const APP_HTML: &str = include_str!("assets/app.html");
const LOGIN_HTML: &str = include_str!("assets/login.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// No inline or third-party script, style or frame; data only from this origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The header the pages send their CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

pub fn router() -> Router<AppState> {
    use tower_http::set_header::SetResponseHeaderLayer;
    let overriding = |name, value| SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value));
    Router::new()
        .route("/console", get(page))
        .route("/console/login", post(login))
        .route("/console/logout", post(logout))
        .route("/console/assets/{name}", get(asset))
        .route("/favicon.ico", get(favicon))
        .route_layer(
            tower::ServiceBuilder::new()
                .layer(overriding(header::CONTENT_SECURITY_POLICY, CSP))
                .layer(overriding(header::X_FRAME_OPTIONS, "DENY"))
                // Not `no-referrer`: under it browsers post forms with `Origin: null`, which the
                // sign-in's login-CSRF check cannot tell from a sandboxed attacker. Other sites
                // still get no referrer.
                .layer(overriding(header::REFERRER_POLICY, "same-origin"))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                )),
        )
}

/// A speech bubble in the console's accent colour: browsers ask for `/favicon.ico` on every page.
const FAVICON_SVG: &str = include_str!("assets/favicon.svg");

async fn favicon() -> Response {
    let mut response = with_security_headers(FAVICON_SVG.into_response(), "image/svg+xml");
    // It never changes between releases worth a re-fetch per page.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    response
}

/// The security headers come from the router's layers (and `nosniff` from the edge's).
fn with_security_headers(mut response: Response, content_type: &'static str) -> Response {
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn html(status: StatusCode, body: String) -> Response {
    with_security_headers((status, body).into_response(), "text/html; charset=utf-8")
}

fn sessions(state: &AppState) -> Result<&Sessions, ApiError> {
    state.console.as_deref().ok_or(ApiError::NotFound)
}

/// The signed-in session the request's cookie names, if any. A site admin's session lasts only
/// as long as the key it signed in with.
pub async fn current(state: &AppState, headers: &HeaderMap) -> Option<ConsoleSession> {
    let sessions = state.console.as_deref()?;
    for value in console_cookies(headers) {
        if let Some(session) = sessions.verify(&value).await {
            let key_active = |s: &session::SiteSignIn| state.sites.admin_key_active(&s.site, &s.key_id);
            if session.site.as_ref().is_none_or(key_active) {
                return Some(session);
            }
        }
    }
    None
}

/// What the page says about its site: a site admin's site by name, or the operator's picker
/// (filled by the page from `/admin/sites`).
fn site_badge(state: &AppState, session: &ConsoleSession) -> String {
    match session.site.as_ref().and_then(|s| state.sites.site(&s.site)) {
        Some(site) => format!(
            r#"<span id="site" data-site="{}">{}</span>"#,
            html_escape(site.id.as_str()),
            html_escape(&site.name)
        ),
        None => r#"<label id="site-picker-label">Site <select id="site-picker" data-site="default"></select></label>"#
            .to_owned(),
    }
}

/// The values of every console cookie the request carries.
fn console_cookies(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    let cookies = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok());
    cookies.flat_map(|c| session::cookie_values(c, session::COOKIE))
}

/// Text for an HTML attribute or element.
fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn login_page(status: StatusCode, message: &str) -> Response {
    html(status, LOGIN_HTML.replace("{{MESSAGE}}", message))
}

/// What `/console` says when there is no admin key: how to turn it on (still a 404: there is no
/// console here).
const OFF_HTML: &str = include_str!("assets/off.html");

async fn page(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(sessions) = state.console.as_deref() else {
        return Ok(html(StatusCode::NOT_FOUND, OFF_HTML.to_owned()));
    };
    Ok(match current(&state, &headers).await {
        Some(session) => html(
            StatusCode::OK,
            APP_HTML
                .replace("{{CSRF}}", &sessions.csrf_token(&session))
                .replace("{{SITE}}", &site_badge(&state, &session))
                .replace("{{OPERATOR}}", &html_escape(&session.operator)),
        ),
        None => login_page(StatusCode::OK, ""),
    })
}

async fn asset(State(state): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    sessions(&state)?;
    let (body, content_type) = match name.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        _ => return Err(ApiError::NotFound),
    };
    Ok(with_security_headers(body.into_response(), content_type))
}

/// The cookie is `Secure` when the browser reached us over TLS: our own, or a trusted proxy's
/// (`X-Forwarded-Proto: https`).
fn over_https(state: &AppState, request: &Request) -> bool {
    if request.extensions().get::<crate::api::server::OverTls>().is_some_and(|t| t.0) {
        return true;
    }
    let peer = request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let forwarded_https = request
        .headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https")));
    forwarded_https && peer.is_some_and(|ip| state.ip_limiter.trusts(ip))
}

fn session_cookie(value: &str, max_age: std::time::Duration, secure: bool) -> HeaderValue {
    HeaderValue::from_str(&session::set_cookie(value, max_age, secure)).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn see_console(cookie: HeaderValue) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/console"));
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    with_security_headers(response, "text/plain; charset=utf-8")
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    key: Option<String>,
    /// Shown to visitors as the author of the replies sent from the console.
    name: Option<String>,
}

/// A sign-in posted from another site's page (login CSRF: signing a victim in to the attacker's
/// session). Browsers say where a form came from in `Sec-Fetch-Site` and `Origin`; either naming
/// another site refuses it. The console's own origin is the `Host` it was reached by, or a trusted
/// proxy's `X-Forwarded-Host`. Scripts and curl send neither header and are not browsers' victims.
fn cross_origin(state: &AppState, request: &Request) -> bool {
    let header_value = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    if header_value("sec-fetch-site").is_some_and(|site| !matches!(site, "same-origin" | "none")) {
        return true;
    }
    let Some(origin) = header_value(header::ORIGIN.as_str()) else { return false };
    let Some((_, origin_host)) = origin.split_once("://") else { return true };
    let origin_host = origin_host.trim_end_matches('/');
    let peer = request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let proxied_host = header_value("x-forwarded-host").filter(|_| peer.is_some_and(|ip| state.ip_limiter.trusts(ip)));
    let own = [header_value(header::HOST.as_str()), request.uri().host(), proxied_host];
    !own.into_iter().flatten().any(|host| host.eq_ignore_ascii_case(origin_host))
}

async fn login(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let sessions = sessions(&state)?;
    if cross_origin(&state, &request) {
        tracing::warn!(client = %state.ip_limiter.key_of(&request), "console sign-in refused: posted from another origin");
        return Ok(login_page(StatusCode::FORBIDDEN, "Sign in from this console's own page."));
    }
    // Every attempt counts against the address, on whichever replica it lands: five wrong keys
    // in a minute leave no room for a sixth try.
    let client = state.ip_limiter.key_of(&request);
    if let Some(decision) = sessions.sign_in_refused(&client).await {
        state.metrics.rate_limited.with_label_values(&["console_sign_in"]).inc();
        let message = "Too many sign-in attempts from this address: wait a minute.";
        let mut page = login_page(StatusCode::TOO_MANY_REQUESTS, message);
        if let Ok(value) = HeaderValue::from_str(&decision.retry_after_secs().max(1).to_string()) {
            page.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Ok(page);
    }
    let secure = over_https(&state, &request);
    let (typed, name) = match Form::<LoginForm>::from_request(request, &state).await {
        Ok(Form(form)) => (form.key.unwrap_or_default(), form.name.unwrap_or_default()),
        Err(_) => (String::new(), String::new()),
    };
    // The operator's key, or a site's admin key (that site's console only).
    let site = if sessions.key_matches(typed.trim()) {
        None
    } else {
        let digest: [u8; 32] =
            sha2::Digest::finalize(sha2::Digest::chain_update(sha2::Sha256::default(), typed.trim())).into();
        match state.sites.identify(&digest) {
            Some((key, site)) if key.role == crate::sites::SiteRole::Admin => {
                Some(session::SiteSignIn { site: site.id.as_str().to_owned(), key_id: key.id.clone() })
            }
            _ => {
                tracing::warn!(%client, "console sign-in refused: wrong admin key");
                return Ok(login_page(StatusCode::UNAUTHORIZED, "That is not the admin key."));
            }
        }
    };
    let signed_in_site = site.as_ref().map(|s| s.site.clone());
    let (cookie, _) = sessions.issue(&session::operator_name(&name), site);
    tracing::info!(%client, site = signed_in_site.as_deref().unwrap_or("(operator)"), "console sign-in");
    Ok(see_console(session_cookie(&cookie, session::LIFETIME, secure)))
}

#[derive(Debug, Deserialize)]
struct LogoutForm {
    csrf: Option<String>,
}

async fn logout(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let sessions = sessions(&state)?;
    let secure = over_https(&state, &request);
    let session = current(&state, request.headers()).await.ok_or(ApiError::CsrfRequired)?;
    let header_token = request.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let token = match header_token {
        Some(token) => Some(token),
        None => Form::<LogoutForm>::from_request(request, &state).await.ok().and_then(|Form(f)| f.csrf),
    };
    if !token.is_some_and(|t| sessions.csrf_matches(&session, &t)) {
        return Err(ApiError::CsrfRequired);
    }
    sessions.revoke(&session).await.map_err(|e| ApiError::Unavailable(crate::error_chain::describe(&e)))?;
    Ok(see_console(session_cookie("", std::time::Duration::ZERO, secure)))
}

/// For `/admin/*` (and session control) requests without a key: a console session, and for
/// anything but a read its CSRF token. None when the request carries no console cookie at all
/// (then it is simply unauthenticated).
pub async fn authorize(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Option<Result<ConsoleSession, ApiError>> {
    if state.console.is_none() || console_cookies(headers).next().is_none() {
        return None;
    }
    let read = matches!(*method, Method::GET | Method::HEAD);
    let Some(session) = current(state, headers).await else {
        return Some(Err(if read { ApiError::Unauthorized } else { ApiError::CsrfRequired }));
    };
    if read {
        return Some(Ok(session));
    }
    let sessions = state.console.as_deref()?;
    let token = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    Some(if token.is_some_and(|t| sessions.csrf_matches(&session, t)) {
        Ok(session)
    } else {
        Err(ApiError::CsrfRequired)
    })
}
