//! The site registry from outside: sites and keys under the operator key, keys shown once and kept
//! only as hashes, and no anonymous access once a site besides `default` exists.

use crate::helpers::*;
use serde_json::{json, Value};
use sha2::Digest;
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

pub const OPERATOR: &str = "sites-operator-key";

pub async fn spawn_with_operator(overrides: &str) -> TestApp {
    let app = spawn_app_with(&format!("[auth]\nadmin_key = \"{OPERATOR}\"\n{overrides}")).await;
    let answer = structured("From the model.", 0.9, "other", false);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&app.upstream)
        .await;
    app
}

/// A request with the operator key (and the site it names, if any).
pub async fn operator(app: &TestApp, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    call(app, method, path, OPERATOR, body).await
}

pub async fn call(app: &TestApp, method: reqwest::Method, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

pub async fn put_site(app: &TestApp, id: &str, body: Value) -> Value {
    let (status, site) = operator(app, reqwest::Method::PUT, &format!("/admin/sites/{id}"), Some(body)).await;
    assert_eq!(status, 200, "{site}");
    site
}

/// A new key of `role` for site `id`: the key itself.
pub async fn new_key(app: &TestApp, id: &str, role: &str) -> String {
    let (status, key) =
        operator(app, reqwest::Method::POST, &format!("/admin/sites/{id}/keys"), Some(json!({"role": role}))).await;
    assert_eq!(status, 201, "{key}");
    key["key"].as_str().unwrap().to_owned()
}

pub async fn chat(app: &TestApp, key: &str, session: &str, text: &str) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/sendChatMessage"))
        .bearer_auth(key)
        .json(&message(session, text))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_registry_creates_lists_updates_and_deletes_sites() {
    let app = spawn_with_operator("").await;
    let (status, listed) = operator(&app, reqwest::Method::GET, "/admin/sites", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["sites"].as_array().unwrap().len(), 1);
    assert_eq!(listed["sites"][0]["id"], "default");

    let settings = json!({"instructions": "Answer as Acme Outdoor.", "killSwitch": false,
        "handoff": {"webhookUrl": "https://hooks.acme.example/h", "webhookSecret": "acme-secret-0123456789", "slaMs": 60000},
        "budget": {"dailyTokens": 5000}, "limits": {"sessionBurst": 4}});
    let created = put_site(&app, "acme", json!({"name": "Acme Outdoor", "settings": settings})).await;
    assert_eq!(created["id"], "acme");
    assert_eq!(created["name"], "Acme Outdoor");
    assert_eq!(created["settings"]["handoff"], json!({"webhookUrl": "https://hooks.acme.example/h", "slaMs": 60000}));
    assert!(created.to_string().find("acme-secret").is_none(), "the secret is write-only");
    assert!(created["createdAt"].as_str().unwrap().ends_with('Z'));

    // An update keeps the creation time and (left out) the secret; the list has both sites.
    let updated = put_site(&app, "acme", json!({"name": "Acme", "settings": {"handoff": {"slaMs": 1000}}})).await;
    assert_eq!(updated["createdAt"], created["createdAt"]);
    assert_eq!(updated["settings"], json!({"handoff": {"slaMs": 1000}}));
    let (_, one) = operator(&app, reqwest::Method::GET, "/admin/sites/acme", None).await;
    assert_eq!(one["name"], "Acme");
    let (_, listed) = operator(&app, reqwest::Method::GET, "/admin/sites", None).await;
    let ids: Vec<&str> = listed["sites"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["acme", "default"]);

    let (status, gone) = operator(&app, reqwest::Method::DELETE, "/admin/sites/acme", None).await;
    assert_eq!((status, gone), (204, Value::Null));
    let (status, missing) = operator(&app, reqwest::Method::GET, "/admin/sites/acme", None).await;
    assert_eq!((status, missing["error"]["code"].as_str()), (404, Some("site_not_found")));
    let (status, again) = operator(&app, reqwest::Method::DELETE, "/admin/sites/acme", None).await;
    assert_eq!((status, again["error"]["code"].as_str()), (404, Some("site_not_found")));
    let (status, kept) = operator(&app, reqwest::Method::DELETE, "/admin/sites/default", None).await;
    assert_eq!((status, kept["error"]["code"].as_str()), (409, Some("default_site")));
}

#[tokio::test]
async fn bad_site_ids_names_and_settings_are_refused_naming_the_field() {
    let app = spawn_with_operator("").await;
    for (path, body, field) in [
        ("/admin/sites/Acme", json!({"name": "x"}), "siteId"),
        ("/admin/sites/-acme", json!({"name": "x"}), "siteId"),
        ("/admin/sites/acme", json!({}), "name"),
        ("/admin/sites/acme", json!({"name": "x", "settings": {"colour": "red"}}), "settings.colour"),
        ("/admin/sites/acme", json!({"name": "x", "settings": {"killSwitch": "yes"}}), "settings.killSwitch"),
        (
            "/admin/sites/acme",
            json!({"name": "x", "settings": {"instructions": "x".repeat(4001)}}),
            "settings.instructions",
        ),
        (
            "/admin/sites/acme",
            json!({"name": "x", "settings": {"budget": {"dailyTokens": 0}}}),
            "settings.budget.dailyTokens",
        ),
        (
            "/admin/sites/acme",
            json!({"name": "x", "settings": {"handoff": {"webhookUrl": "file:///etc"}}}),
            "settings.handoff.webhookUrl",
        ),
    ] {
        let (status, refused) = operator(&app, reqwest::Method::PUT, path, Some(body.clone())).await;
        assert_eq!(status, 400, "{path} {body}: {refused}");
        assert_eq!(refused["error"]["field"], field, "{body}");
    }
    let (status, refused) =
        operator(&app, reqwest::Method::POST, "/admin/sites/default/keys", Some(json!({"role": "owner"}))).await;
    assert_eq!((status, refused["error"]["field"].as_str()), (400, Some("role")));
    let (status, refused) =
        operator(&app, reqwest::Method::POST, "/admin/sites/nowhere/keys", Some(json!({"role": "caller"}))).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (404, Some("site_not_found")));
    let (_, listed) = operator(&app, reqwest::Method::GET, "/admin/sites", None).await;
    assert_eq!(listed["sites"].as_array().unwrap().len(), 1, "nothing refused was stored");
}

#[tokio::test]
async fn a_key_is_shown_once_kept_as_a_hash_and_refused_once_revoked() {
    let app = spawn_with_operator("").await;
    put_site(&app, "acme", json!({"name": "Acme"})).await;
    let (status, made) = operator(
        &app,
        reqwest::Method::POST,
        "/admin/sites/acme/keys",
        Some(json!({"role": "caller", "label": "wix backend"})),
    )
    .await;
    assert_eq!(status, 201);
    let (key, key_id) = (made["key"].as_str().unwrap().to_owned(), made["id"].as_str().unwrap().to_owned());
    assert_eq!((made["role"].as_str(), made["label"].as_str()), (Some("caller"), Some("wix backend")));

    // Stored as its SHA-256 only; listed without it.
    let rows = app.durable.list_site_keys().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0].key_hash, key);
    assert_eq!(rows[0].key_hash, hex::encode(sha2::Sha256::digest(key.as_bytes())));
    let (_, listed) = operator(&app, reqwest::Method::GET, "/admin/sites/acme/keys", None).await;
    assert_eq!(listed["keys"][0]["id"], key_id.as_str());
    assert_eq!(listed["keys"][0]["lastUsedAt"], Value::Null);
    assert!(!listed.to_string().contains(&key), "the key is never listed");

    assert_eq!(chat(&app, &key, "visitor-1", "Do you ship to Norway?").await.0, 200);
    let (_, listed) = operator(&app, reqwest::Method::GET, "/admin/sites/acme/keys", None).await;
    assert!(listed["keys"][0]["lastUsedAt"].as_str().is_some_and(|t| t.ends_with('Z')), "{listed}");

    let (status, _) = operator(&app, reqwest::Method::DELETE, &format!("/admin/sites/acme/keys/{key_id}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(chat(&app, &key, "visitor-1", "Still there?").await.0, 401);
    let (status, missing) =
        operator(&app, reqwest::Method::DELETE, &format!("/admin/sites/acme/keys/{key_id}"), None).await;
    assert_eq!((status, missing["error"]["code"].as_str()), (404, Some("key_not_found")));
}

#[tokio::test]
async fn anonymous_access_ends_with_the_first_site_and_never_comes_back_on_revocation() {
    let app = spawn_with_operator("").await;
    let anonymous = |text: &'static str| {
        let app = &app;
        async move { app.send(&message("anon-1", text)).await.status().as_u16() }
    };
    assert_eq!(anonymous("Hello there").await, 200, "no keys, no sites: anonymous on loopback as before");
    put_site(&app, "acme", json!({"name": "Acme"})).await;
    assert_eq!(anonymous("Hello again").await, 401);
    let key = new_key(&app, "acme", "caller").await;
    let (_, keys) = operator(&app, reqwest::Method::GET, "/admin/sites/acme/keys", None).await;
    let key_id = keys["keys"][0]["id"].as_str().unwrap().to_owned();
    operator(&app, reqwest::Method::DELETE, &format!("/admin/sites/acme/keys/{key_id}"), None).await;
    assert_eq!(anonymous("And now?").await, 401, "revoking the last key does not reopen the door");
    operator(&app, reqwest::Method::DELETE, "/admin/sites/acme", None).await;
    assert_eq!(anonymous("And after the site is gone?").await, 401, "nor does deleting the site");
    assert_eq!(chat(&app, &key, "anon-1", "me?").await.0, 401);
    let session = app.client.post(app.url("/sessions/anon-1/release")).send().await.unwrap();
    assert_eq!(session.status(), 401, "session control is closed too");
    assert_eq!(app.upstream_calls().await, 1, "only the first, anonymous message reached the model");
}

#[tokio::test]
async fn a_sites_admin_key_is_refused_by_the_registry_and_outside_its_site() {
    let app = spawn_with_operator("").await;
    put_site(&app, "acme", json!({"name": "Acme"})).await;
    put_site(&app, "globex", json!({"name": "Globex"})).await;
    let acme_admin = new_key(&app, "acme", "admin").await;
    let acme_caller = new_key(&app, "acme", "caller").await;
    for (method, path) in [
        (reqwest::Method::GET, "/admin/sites"),
        (reqwest::Method::GET, "/admin/sites/acme"),
        (reqwest::Method::PUT, "/admin/sites/acme"),
        (reqwest::Method::DELETE, "/admin/sites/globex"),
        (reqwest::Method::POST, "/admin/sites/acme/keys"),
    ] {
        let (status, _) =
            call(&app, method.clone(), path, &acme_admin, Some(json!({"name": "x", "role": "admin"}))).await;
        assert_eq!(status, 403, "{method} {path}");
    }
    let named = app
        .client
        .get(app.url("/admin/kill-switch"))
        .bearer_auth(&acme_admin)
        .header("X-Velochat-Site", "globex")
        .send()
        .await
        .unwrap();
    assert_eq!(named.status(), 403, "naming another site");
    let (status, _) = call(&app, reqwest::Method::GET, "/admin/kill-switch", &acme_caller, None).await;
    assert_eq!(status, 401, "a caller key is no admin key");
    let (status, _) = call(&app, reqwest::Method::GET, "/metrics", &acme_admin, None).await;
    assert_eq!(status, 403, "deployment-wide metrics are not a site's");
    let unknown =
        app.client.get(app.url("/admin/kill-switch")).bearer_auth(OPERATOR).header("X-Velochat-Site", "nowhere");
    let unknown = unknown.send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.json::<Value>().await.unwrap()["error"]["code"], "site_not_found");
    let (_, listed) = operator(&app, reqwest::Method::GET, "/admin/sites", None).await;
    assert_eq!(listed["sites"].as_array().unwrap().len(), 3, "nothing was changed");
}

#[tokio::test]
async fn an_embeddings_endpoint_that_fails_is_asked_once_per_round_not_once_per_site() {
    // Every POST, /v1/embeddings included, gets a chat answer: not an embedding, so every
    // background round fails (the bench's fake does the same).
    let app = spawn_with_operator("[kb]\nembeddings_model = \"text-embedding-3-small\"\nsync_interval_ms = 50").await;
    let sites = ["alpha", "bravo", "charlie", "delta"];
    for site in sites {
        put_site(&app, site, json!({"name": site})).await;
        let page = json!({"documents": [{"id": "p", "title": "Shipping", "body": format!("{site} ships in 3 days.")}]});
        let imported = app
            .client
            .post(app.url("/admin/kb/import"))
            .bearer_auth(OPERATOR)
            .header("X-Velochat-Site", site)
            .json(&page)
            .send()
            .await
            .unwrap();
        assert_eq!(imported.status(), 200, "the import does not wait for vectors");
    }
    let embeddings = || async {
        let requests = app.upstream.received_requests().await.unwrap_or_default();
        requests.iter().filter(|r| r.url.path() == "/v1/embeddings").count()
    };
    let before = embeddings().await;
    // A failed round pauses 10 sync intervals (500 ms here): about two rounds in this window.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let asked = embeddings().await - before;
    assert!((1..=4).contains(&asked), "{asked} requests: one per round, not one per site and round (4 sites)");
}
