//! The security review's console and proxy findings, tried as an attacker would: a signed-out
//! cookie replayed on another replica and after a restart, forwarded-for lines a client adds
//! itself, anonymous control through a proxy, login CSRF, and what every admin answer may not be
//! kept as.

use crate::helpers::*;
use crate::process::{start, start_in, Process};
use crate::services;
use serde_json::json;

const ADMIN: &str = "hardening-console-admin";

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Signs in with the admin key: the `Cookie` header value and the page's CSRF token.
pub async fn sign_in(client: &reqwest::Client, address: &str) -> (String, String) {
    let response = client.post(format!("{address}/console/login")).form(&[("key", ADMIN)]).send().await.unwrap();
    assert_eq!(response.status(), 303, "signed in");
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let page = client.get(format!("{address}/console")).header("cookie", &cookie).send().await.unwrap();
    let html = page.text().await.unwrap();
    let csrf = html.split("name=\"csrf-token\" content=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    (cookie, csrf)
}

async fn sign_out(client: &reqwest::Client, address: &str, cookie: &str, csrf: &str) {
    let response = client
        .post(format!("{address}/console/logout"))
        .header("cookie", cookie)
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "signed out");
}

async fn kill_switch_read(client: &reqwest::Client, address: &str, cookie: &str) -> u16 {
    let response = client.get(format!("{address}/admin/kill-switch")).header("cookie", cookie).send().await.unwrap();
    response.status().as_u16()
}

async fn kill_switch_write(client: &reqwest::Client, address: &str, cookie: &str, csrf: &str) -> u16 {
    let response = client
        .put(format!("{address}/admin/kill-switch"))
        .header("cookie", cookie)
        .header("x-csrf-token", csrf)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

#[tokio::test]
async fn a_sign_out_on_one_replica_ends_the_session_on_the_other() {
    let Some(redis) = services::redis("hardening::sign_out_replicas").await else { return };
    let keys = services::RedisKeys::new();
    let envs = [
        ("REDIS_URL", redis.clone()),
        ("VELOCHAT__STORAGE__REDIS_KEY_PREFIX", keys.prefix.clone()),
        ("VELOCHAT_ADMIN_KEY", ADMIN.to_owned()),
    ];
    let (a, b) = (start(&envs).await, start(&envs).await);
    let client = no_redirects();
    let (cookie, csrf) = sign_in(&client, &a.address).await;
    assert_eq!(kill_switch_read(&client, &b.address, &cookie).await, 200, "the cookie works on B before");
    assert_eq!(kill_switch_write(&client, &b.address, &cookie, &csrf).await, 200);

    sign_out(&client, &a.address, &cookie, &csrf).await;
    assert_eq!(kill_switch_read(&client, &b.address, &cookie).await, 401, "signed out on A: refused on B");
    assert_eq!(kill_switch_write(&client, &b.address, &cookie, &csrf).await, 403, "no state change either");
    assert_eq!(kill_switch_read(&client, &a.address, &cookie).await, 401);
}

#[tokio::test]
async fn a_sign_out_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap().keep();
    let envs = [("DATABASE_URL", format!("sqlite://{}/v.db", dir.display())), ("VELOCHAT_ADMIN_KEY", ADMIN.to_owned())];
    let client = no_redirects();
    let mut first = start_in(&dir, &envs).await;
    let (signed_out, csrf) = sign_in(&client, &first.address).await;
    let (still_in, _) = sign_in(&client, &first.address).await;
    sign_out(&client, &first.address, &signed_out, &csrf).await;
    first.child.kill().await.unwrap();

    let second: Process = start_in(&dir, &envs).await;
    assert_eq!(kill_switch_read(&client, &second.address, &still_in).await, 200, "cookies outlive a restart");
    assert_eq!(kill_switch_read(&client, &second.address, &signed_out).await, 401, "and so does a sign-out");
}

/// An app behind a trusted proxy on loopback, with the console on.
async fn proxied_app(extra: &str) -> TestApp {
    spawn_app_with(&format!(
        "[auth]\nadmin_key = \"{ADMIN}\"\n[limits]\ntrusted_proxies = [\"127.0.0.1\"]\nip_burst = 3\nip_per_minute = 1\n{extra}"
    ))
    .await
}

/// A client that writes its own `X-Forwarded-For` line (a new address each time) before the line
/// the proxy appends.
fn with_forged_lines(request: reqwest::RequestBuilder, attempt: usize, lines: usize) -> reqwest::RequestBuilder {
    let mut request = request.header("x-forwarded-for", format!("203.0.113.{}", attempt % 250));
    if lines == 3 {
        request = request.header("x-forwarded-for", format!("198.18.0.{}, 192.0.2.{}", attempt % 250, attempt % 200));
    }
    request.header("x-forwarded-for", "198.51.100.7")
}

#[tokio::test]
async fn a_client_cannot_pick_its_sign_in_bucket_with_its_own_forwarded_for_line() {
    for lines in [2, 3] {
        let app = proxied_app("").await;
        let client = no_redirects();
        let mut statuses = Vec::new();
        for attempt in 0..30 {
            let request = client.post(app.url("/console/login")).form(&[("key", "wrong")]);
            statuses.push(with_forged_lines(request, attempt, lines).send().await.unwrap().status().as_u16());
        }
        assert_eq!(&statuses[..5], &[401; 5], "{lines} lines: five tries");
        assert!(
            statuses[5..].iter().all(|s| *s == 429),
            "{lines} lines: then refused, whatever the client wrote: {statuses:?}"
        );
    }
}

#[tokio::test]
async fn a_client_cannot_pick_its_chat_ip_bucket_with_its_own_forwarded_for_line() {
    for lines in [2, 3] {
        let app = proxied_app("").await;
        crate::handoff::model_says(&app, structured("Hello.", 0.9, "other", false)).await;
        let mut statuses = Vec::new();
        for attempt in 0..8 {
            let request = app.client.post(app.url("/sendChatMessage")).json(&message(&format!("ip-{attempt}"), "Hi"));
            statuses.push(with_forged_lines(request, attempt, lines).send().await.unwrap().status().as_u16());
        }
        assert_eq!(&statuses[..3], &[200; 3], "{lines} lines: the burst");
        assert!(statuses[3..].iter().all(|s| *s == 429), "{lines} lines: one bucket for 198.51.100.7: {statuses:?}");
    }
}

#[tokio::test]
async fn proxied_or_forwarded_requests_never_get_anonymous_session_control() {
    let behind_proxy = spawn_app_with("[limits]\ntrusted_proxies = [\"127.0.0.1\"]").await;
    let direct = spawn_app().await;
    let routes: [(reqwest::Method, &str, Option<serde_json::Value>); 5] = [
        (
            reqwest::Method::POST,
            "/sessions/s-1/messages",
            Some(json!({"role": "agent", "text": "Pay at http://evil.example"})),
        ),
        (reqwest::Method::POST, "/sessions/s-1/handoff", None),
        (reqwest::Method::POST, "/sessions/s-1/release", None),
        (reqwest::Method::GET, "/metrics", None),
        (reqwest::Method::GET, "/openapi.json", None),
    ];
    for (verb, route, body) in &routes {
        let send = |app: &TestApp, forwarded: bool| {
            let mut request = app.client.request(verb.clone(), app.url(route));
            if let Some(body) = body {
                request = request.json(body);
            }
            if forwarded {
                request = request.header("x-forwarded-for", "203.0.113.50");
            }
            request.send()
        };
        let through_proxy = send(&behind_proxy, true).await.unwrap();
        assert_eq!(through_proxy.status(), 401, "{verb} {route} through a trusted proxy");
        assert_eq!(through_proxy.json::<serde_json::Value>().await.unwrap()["error"]["code"], "unauthorized");
        assert_eq!(send(&behind_proxy, false).await.unwrap().status(), 401, "{verb} {route} from the proxy itself");
        assert_eq!(send(&direct, true).await.unwrap().status(), 401, "{verb} {route} with a forwarding header");
        let local = send(&direct, false).await.unwrap().status().as_u16();
        assert!((200..300).contains(&local), "{verb} {route}: a local unproxied caller still may ({local})");
    }
    assert_eq!(behind_proxy.upstream_calls().await, 0);
}

#[tokio::test]
async fn a_sign_in_posted_from_another_origin_gets_no_cookie() {
    let app = spawn_app_with(&format!("[auth]\nadmin_key = \"{ADMIN}\"")).await;
    let client = no_redirects();
    let host = app.address.trim_start_matches("http://").to_owned();
    let login =
        |origin: String| client.post(app.url("/console/login")).header("origin", origin).form(&[("key", ADMIN)]).send();
    let forged = login("https://evil.example".into()).await.unwrap();
    assert_eq!(forged.status(), 403);
    assert!(!forged.headers().contains_key("set-cookie"), "no session for a cross-site form");
    assert_eq!(login("null".into()).await.unwrap().status(), 403, "a sandboxed frame's opaque origin");
    let cross_site = client.post(app.url("/console/login")).header("sec-fetch-site", "cross-site");
    assert_eq!(cross_site.form(&[("key", ADMIN)]).send().await.unwrap().status(), 403);
    let own = login(format!("http://{host}")).await.unwrap();
    assert_eq!(own.status(), 303, "the console's own page signs in");
    assert!(own.headers().contains_key("set-cookie"));

    // Behind a trusted proxy the console's origin is the host the proxy was reached by.
    let proxied = proxied_app("").await;
    let login = |forwarded_host: Option<&str>| {
        let request = client.post(proxied.url("/console/login")).header("origin", "https://support.example.com");
        let request = match forwarded_host {
            Some(host) => request.header("x-forwarded-host", host),
            None => request,
        };
        request.form(&[("key", ADMIN)]).send()
    };
    assert_eq!(login(Some("support.example.com")).await.unwrap().status(), 303);
    assert_eq!(login(Some("evil.example")).await.unwrap().status(), 403);
    assert_eq!(login(None).await.unwrap().status(), 403);
}

#[tokio::test]
async fn failed_sign_ins_are_logged_with_the_client_address() {
    let node = start(&[("VELOCHAT_ADMIN_KEY", ADMIN.to_owned())]).await;
    let refused = no_redirects().post(format!("{}/console/login", node.address)).form(&[("key", "nope")]).send();
    assert_eq!(refused.await.unwrap().status(), 401);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let log = node.stderr.lock().await.clone();
    let line = log.lines().find(|l| l.contains("console sign-in refused")).expect("a refusal line");
    assert!(line.contains("\"client\":\"127.0.0.1\""), "{line}");
}

#[tokio::test]
async fn admin_answers_are_never_stored_and_the_favicon_is_served() {
    let app = spawn_app_with(&format!("[auth]\nadmin_key = \"{ADMIN}\"")).await;
    for route in ["/admin/kill-switch", "/admin/report", "/admin/kb/documents", "/admin/handoffs"] {
        let response = app.client.get(app.url(route)).bearer_auth(ADMIN).send().await.unwrap();
        assert_eq!(response.headers()["cache-control"], "no-store", "{route}");
    }
    let refused = app.client.get(app.url("/admin/report")).send().await.unwrap();
    assert_eq!((refused.status().as_u16(), &refused.headers()["cache-control"]), (401, &"no-store".parse().unwrap()));
    let icon = app.client.get(app.url("/favicon.ico")).send().await.unwrap();
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");
    assert!(icon.text().await.unwrap().starts_with("<svg"));
}
