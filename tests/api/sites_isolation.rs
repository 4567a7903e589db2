//! Two sites on one SQLite instance, tried against each other as an attacker would: the same
//! session id in both, every key of one on the other's sessions, one site's kill switch, budget
//! and limits leaving the other answering, each site's handoff only to its own webhook.

use crate::helpers::*;
use crate::sites::{call, chat, new_key, operator, put_site, spawn_with_operator, OPERATOR};
use reqwest::Method;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Pair {
    app: TestApp,
    acme_caller: String,
    acme_admin: String,
    globex_caller: String,
    globex_admin: String,
}

async fn two_sites(acme_settings: Value, globex_settings: Value) -> Pair {
    let app = spawn_with_operator("").await;
    put_site(&app, "acme", json!({"name": "Acme", "settings": acme_settings})).await;
    put_site(&app, "globex", json!({"name": "Globex", "settings": globex_settings})).await;
    Pair {
        acme_caller: new_key(&app, "acme", "caller").await,
        acme_admin: new_key(&app, "acme", "admin").await,
        globex_caller: new_key(&app, "globex", "caller").await,
        globex_admin: new_key(&app, "globex", "admin").await,
        app,
    }
}

#[tokio::test]
async fn the_same_session_id_in_two_sites_is_two_sessions_no_key_reaches_across() {
    let p = two_sites(json!({}), json!({})).await;
    let app = &p.app;
    assert_eq!(chat(app, &p.acme_caller, "shared-7", "Where is my kayak order?").await.0, 200);
    assert_eq!(chat(app, &p.globex_caller, "shared-7", "Do you sell tents?").await.0, 200);
    // Acme's backend hands its visitor to a person; Globex's visitor with the same id is untouched.
    let (status, view) = call(app, Method::POST, "/sessions/shared-7/handoff", &p.acme_caller, Some(json!({}))).await;
    assert_eq!((status, view["mode"].as_str(), view["sessionId"].as_str()), (200, Some("human"), Some("shared-7")));
    let (_, globex) = chat(app, &p.globex_caller, "shared-7", "And sleeping bags?").await;
    assert_eq!(globex["source"], "model", "{globex}");
    let (_, acme) = chat(app, &p.acme_caller, "shared-7", "Hello?").await;
    assert_eq!((acme["source"].as_str(), acme["sessionMode"].as_str()), (Some("handoff"), Some("human")));

    // Every session route of one site's keys sees only its own session.
    let (_, mine) = call(app, Method::GET, "/admin/sessions/shared-7", &p.acme_admin, None).await;
    let (_, theirs) = call(app, Method::GET, "/admin/sessions/shared-7", &p.globex_admin, None).await;
    assert_eq!((mine["mode"].as_str(), theirs["mode"].as_str()), (Some("human"), Some("bot")));
    assert_eq!((mine["turns"].as_u64(), theirs["turns"].as_u64()), (Some(2), Some(2)));
    let (_, transcript) = call(app, Method::GET, "/admin/sessions/shared-7/transcript", &p.globex_admin, None).await;
    assert!(!transcript.to_string().contains("kayak"), "{transcript}");
    // Globex's keys release, message and erase: Acme's session stays human and keeps its records.
    for (method, route, body) in [
        (Method::POST, "/sessions/shared-7/release", None),
        (Method::POST, "/sessions/shared-7/messages", Some(json!({"role": "agent", "text": "Hi from Globex"}))),
        (Method::POST, "/admin/sessions/shared-7/release", None),
        (Method::DELETE, "/admin/sessions/shared-7", None),
    ] {
        let key = if route.starts_with("/admin") { &p.globex_admin } else { &p.globex_caller };
        let (status, _) = call(app, method.clone(), route, key, body).await;
        assert!(status < 500, "{method} {route}: {status}");
    }
    let (_, mine) = call(app, Method::GET, "/admin/sessions/shared-7", &p.acme_admin, None).await;
    assert_eq!(mine["mode"], "human", "{mine}");
    let (_, feed) = call(app, Method::GET, "/sessions/shared-7/messages", &p.acme_caller, None).await;
    let texts = feed["messages"].to_string();
    assert!(texts.contains("Hello?") && !texts.contains("Globex"), "{feed}");
    // The operator reaches Acme's session by naming the site, and `default` has no such session.
    let named =
        app.client.get(app.url("/admin/sessions/shared-7")).bearer_auth(OPERATOR).header("X-Velochat-Site", "acme");
    assert_eq!(named.send().await.unwrap().json::<Value>().await.unwrap()["mode"], "human");
    assert_eq!(operator(app, Method::GET, "/admin/sessions/shared-7", None).await.0, 404);
}

#[tokio::test]
async fn a_site_admin_key_cannot_name_another_site_on_any_admin_route() {
    let p = two_sites(json!({}), json!({})).await;
    let app = &p.app;
    chat(app, &p.globex_caller, "victim-1", "My card number ends in 4242").await;
    for (method, route) in [
        (Method::GET, "/admin/sessions/victim-1"),
        (Method::DELETE, "/admin/sessions/victim-1"),
        (Method::POST, "/admin/sessions/victim-1/release"),
        (Method::POST, "/admin/sessions/victim-1/handoff"),
        (Method::GET, "/admin/sessions/victim-1/transcript"),
        (Method::GET, "/admin/kill-switch"),
        (Method::PUT, "/admin/kill-switch"),
        (Method::GET, "/admin/kb/documents"),
        (Method::PUT, "/admin/kb/documents/faq-1"),
        (Method::GET, "/admin/kb/search?q=card"),
        (Method::GET, "/admin/kb/suggestions"),
        (Method::GET, "/admin/handoffs"),
        (Method::GET, "/admin/overview"),
        (Method::GET, "/admin/report"),
    ] {
        let request = app.client.request(method.clone(), app.url(route)).bearer_auth(&p.acme_admin);
        let request =
            request.header("X-Velochat-Site", "globex").json(&json!({"enabled": true, "title": "t", "body": "b"}));
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403, "{method} {route}");
    }
    let (_, view) = call(app, Method::GET, "/admin/sessions/victim-1", &p.globex_admin, None).await;
    assert_eq!((view["mode"].as_str(), view["turns"].as_u64()), (Some("bot"), Some(1)), "nothing changed");
    let (_, switch) = call(app, Method::GET, "/admin/kill-switch", &p.globex_admin, None).await;
    assert_eq!(switch["enabled"], false);
}

#[tokio::test]
async fn one_sites_kill_switch_leaves_the_other_answering_from_the_model() {
    let p = two_sites(json!({}), json!({})).await;
    let app = &p.app;
    let (status, switched) =
        call(app, Method::PUT, "/admin/kill-switch", &p.acme_admin, Some(json!({"enabled": true}))).await;
    assert_eq!((status, switched["enabled"].as_bool()), (200, Some(true)));
    let (_, acme) = chat(app, &p.acme_caller, "k-1", "Is the shop open?").await;
    assert_eq!((acme["source"].as_str(), acme["fallbackReason"].as_str()), (Some("fallback"), Some("kill_switch")));
    let (_, globex) = chat(app, &p.globex_caller, "k-1", "Is the shop open?").await;
    assert_eq!(globex["source"], "model");
    let (_, default_switch) = operator(app, Method::GET, "/admin/kill-switch", None).await;
    assert_eq!(default_switch["enabled"], false, "default's switch is its own");
    assert_eq!(app.upstream_calls().await, 1, "only Globex's question reached OpenAI");
}

#[tokio::test]
async fn one_sites_budget_used_up_leaves_the_other_answering_from_the_model() {
    // Every model reply costs 132 tokens: Acme's first reply uses its 100-token day.
    let p = two_sites(json!({"budget": {"dailyTokens": 100}}), json!({})).await;
    let app = &p.app;
    assert_eq!(chat(app, &p.acme_caller, "b-1", "What are your opening hours?").await.1["source"], "model");
    let (_, spent) = chat(app, &p.acme_caller, "b-2", "Do you ship abroad?").await;
    assert_eq!(
        (spent["source"].as_str(), spent["fallbackReason"].as_str()),
        (Some("fallback"), Some("budget_exhausted"))
    );
    for i in 0..3 {
        let (_, globex) = chat(app, &p.globex_caller, &format!("b-{i}"), "Do you ship abroad?").await;
        assert_eq!(globex["source"], "model", "{globex}");
    }
    assert_eq!(app.upstream_calls().await, 4);
}

#[tokio::test]
async fn instructions_model_and_limits_apply_to_their_own_site_only() {
    let acme = json!({"instructions": "You speak for Acme Outdoor. Mention our 30-day returns.",
                      "model": "gpt-4o", "limits": {"sessionBurst": 1, "sessionPerMinute": 1}});
    let p = two_sites(acme, json!({})).await;
    let app = &p.app;
    assert_eq!(chat(app, &p.acme_caller, "l-1", "Can I return boots?").await.0, 200);
    assert_eq!(chat(app, &p.globex_caller, "l-1", "Can I return boots?").await.0, 200);
    let (status, limited) = chat(app, &p.acme_caller, "l-1", "Again?").await;
    assert_eq!((status, limited["error"]["limit"].as_str()), (429, Some("session")));
    assert_eq!(chat(app, &p.globex_caller, "l-1", "Again?").await.0, 200, "Globex keeps the deployment's limits");

    let bodies = app.upstream_bodies().await;
    assert_eq!(bodies.len(), 3);
    let (acme, globex) = (&bodies[0], &bodies[1]);
    assert_eq!(acme["model"], "gpt-4o");
    assert_ne!(globex["model"], "gpt-4o");
    // The fixed system prompt is byte-identical for both; Acme's text follows in its own message.
    assert_eq!(acme["messages"][0], globex["messages"][0]);
    assert_eq!(
        acme["messages"][1],
        json!({"role": "system", "content": "You speak for Acme Outdoor. Mention our 30-day returns."})
    );
    assert!(!globex.to_string().contains("Acme"), "{globex}");
}

#[tokio::test]
async fn a_sites_handoff_goes_only_to_its_webhook_signed_with_its_secret() {
    let (acme_hook, globex_hook) = (MockServer::start().await, MockServer::start().await);
    for hook in [&acme_hook, &globex_hook] {
        Mock::given(method("POST")).and(path("/hook")).respond_with(ResponseTemplate::new(204)).mount(hook).await;
    }
    let secret = "acme-webhook-secret-0123456789";
    let acme = json!({"handoff": {"webhookUrl": format!("{}/hook", acme_hook.uri()), "webhookSecret": secret}});
    let globex = json!({"handoff": {"webhookUrl": format!("{}/hook", globex_hook.uri())}});
    let p = two_sites(acme, globex).await;
    let app = &p.app;
    chat(app, &p.acme_caller, "h-1", "My tent arrived torn").await;
    let (status, _) = call(app, Method::POST, "/sessions/h-1/handoff", &p.acme_caller, Some(json!({}))).await;
    assert_eq!(status, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let delivered = loop {
        let received = acme_hook.received_requests().await.unwrap_or_default();
        if let Some(request) = received.into_iter().next() {
            break request;
        }
        assert!(std::time::Instant::now() < deadline, "no webhook within 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let body: Value = serde_json::from_slice(&delivered.body).unwrap();
    assert_eq!((body["sessionId"].as_str(), body["site"].as_str()), (Some("h-1"), Some("acme")));
    let signature = delivered.headers.get("x-velochat-signature").unwrap().to_str().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(velochat::support::webhook::verify(secret, signature, &delivered.body, now, 300));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(globex_hook.received_requests().await.unwrap_or_default().is_empty(), "nothing reached Globex's hook");
}

#[tokio::test]
async fn a_sites_own_sla_and_link_hosts_hold_for_it_alone() {
    let hook = MockServer::start().await;
    Mock::given(method("POST")).and(path("/hook")).respond_with(ResponseTemplate::new(204)).mount(&hook).await;
    let acme = json!({"handoff": {"webhookUrl": format!("{}/hook", hook.uri()), "slaMs": 300},
                      "allowedLinkHosts": ["help.acme.example"]});
    let p = two_sites(acme, json!({"handoff": {"webhookUrl": format!("{}/hook", hook.uri())}})).await;
    let app = &p.app;
    let linked = structured("See [returns](https://help.acme.example/returns).", 0.9, "other", false);
    app.upstream.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(linked))
        .mount(&app.upstream)
        .await;
    let (_, acme_reply) = chat(app, &p.acme_caller, "s-1", "How do returns work?").await;
    let (_, globex_reply) = chat(app, &p.globex_caller, "s-1", "How do returns work?").await;
    assert_eq!(acme_reply["reply"], "See [returns](https://help.acme.example/returns).");
    assert_eq!(globex_reply["reply"], "See returns.", "not a host Globex allows");

    // Both handed to a person; only Acme's 300 ms SLA is breached (the deployment's is 5 minutes).
    for key in [&p.acme_caller, &p.globex_caller] {
        assert_eq!(call(app, Method::POST, "/sessions/s-1/handoff", key, Some(json!({}))).await.0, 200);
    }
    let started = std::time::Instant::now();
    let breaches = loop {
        let bodies: Vec<Value> = hook
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .filter(|b: &Value| b["event"] == "sla_breached")
            .collect();
        if !bodies.is_empty() || started.elapsed() > std::time::Duration::from_secs(10) {
            break bodies;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(breaches.len(), 1, "{breaches:?}");
    assert_eq!(breaches[0]["site"], "acme");
    let (_, acme_list) = call(app, Method::GET, "/admin/handoffs", &p.acme_admin, None).await;
    let (_, globex_list) = call(app, Method::GET, "/admin/handoffs", &p.globex_admin, None).await;
    assert_eq!(
        (acme_list["handoffs"][0]["slaState"].as_str(), globex_list["handoffs"][0]["slaState"].as_str()),
        (Some("breached"), Some("waiting"))
    );
    let late: Vec<Value> = hook
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(late.iter().filter(|b| b["event"] == "sla_breached").count(), 1, "Globex's handoff is not breached");
}

#[tokio::test]
async fn a_sites_static_texts_locale_and_alert_webhook_are_its_own() {
    let alerts = MockServer::start().await;
    Mock::given(method("POST")).and(path("/alerts")).respond_with(ResponseTemplate::new(204)).mount(&alerts).await;
    let acme = json!({"defaultLocale": "fr", "killSwitch": true,
        "staticReplies": {"default": {"fr": "Acme revient vite.", "en": "Acme is back soon."}},
        "holdingText": {"fr": "Une personne d'Acme arrive."}});
    let globex = json!({"budget": {"dailyTokens": 200}, "alertWebhookUrl": format!("{}/alerts", alerts.uri())});
    let p = two_sites(acme, globex).await;
    let app = &p.app;
    // No locale given: Acme's default locale picks its French text; an English visitor gets English.
    let (_, plain) = chat(app, &p.acme_caller, "t-1", "Is the shop open today?").await;
    assert_eq!(
        (plain["reply"].as_str(), plain["fallbackReason"].as_str()),
        (Some("Acme revient vite."), Some("kill_switch"))
    );
    let english = json!({"sessionId": "t-2", "userText": "Is the shop open?", "context": {"locale": "en-GB"}});
    let response =
        app.client.post(app.url("/sendChatMessage")).bearer_auth(&p.acme_caller).json(&english).send().await.unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["reply"], "Acme is back soon.");
    // A person has the session: Acme's holding text in its default locale.
    call(app, Method::POST, "/sessions/t-1/handoff", &p.acme_caller, Some(json!({}))).await;
    let (_, holding) = chat(app, &p.acme_caller, "t-1", "Hello?").await;
    assert_eq!(holding["reply"], "Une personne d'Acme arrive.");
    // Globex answers from the model with the deployment's texts, and its 200-token day crosses 50 %.
    let (_, globex_reply) = chat(app, &p.globex_caller, "t-1", "Is the shop open today?").await;
    assert_eq!(globex_reply["source"], "model");
    let started = std::time::Instant::now();
    let alert = loop {
        let received = alerts.received_requests().await.unwrap_or_default();
        if let Some(first) = received.first() {
            break serde_json::from_slice::<Value>(&first.body).unwrap();
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "no budget alert within 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!((alert["site"].as_str(), alert["budget"].as_str()), (Some("globex"), Some("daily_tokens")));
    assert_eq!(alert["thresholdPercent"], 50, "132 of 200 tokens: {alert}");
}
