//! Each site's admin routes on its own data: the knowledge base (the same document id in two
//! sites), what its visitors' questions are grounded in, suggestions drafted from its agents'
//! answers, its open handoffs, its report and overview, and its series in /metrics.

use crate::helpers::*;
use crate::sites::{call, chat, new_key, operator, put_site, spawn_with_operator};
use reqwest::Method;
use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

struct Keys {
    caller: String,
    admin: String,
}

async fn site(app: &TestApp, id: &str) -> Keys {
    put_site(app, id, json!({"name": id})).await;
    Keys { caller: new_key(app, id, "caller").await, admin: new_key(app, id, "admin").await }
}

async fn post(app: &TestApp, key: &str, route: &str, body: Option<Value>) -> (u16, Value) {
    call(app, Method::POST, route, key, body).await
}

async fn put_returns(app: &TestApp, keys: &Keys, days: u32) -> (u16, Value) {
    call(app, Method::PUT, "/admin/kb/documents/returns", &keys.admin, Some(returns(days))).await
}

fn returns(days: u32) -> Value {
    json!({"title": "Returns", "body": format!("You can return any item within {days} days of delivery for a full refund.")})
}

#[tokio::test]
async fn each_site_has_its_own_knowledge_base_and_its_visitors_are_grounded_in_it() {
    let app = spawn_with_operator("").await;
    let (acme, globex) = (site(&app, "acme").await, site(&app, "globex").await);
    assert_eq!(put_returns(&app, &acme, 30).await.0, 200);
    assert_eq!(put_returns(&app, &globex, 14).await.0, 200);

    for (keys, mine, theirs) in [(&acme, "30 days", "14 days"), (&globex, "14 days", "30 days")] {
        let (_, doc) = call(&app, Method::GET, "/admin/kb/documents/returns", &keys.admin, None).await;
        assert!(doc["body"].as_str().unwrap().contains(mine), "{doc}");
        let (_, listed) = call(&app, Method::GET, "/admin/kb/documents", &keys.admin, None).await;
        assert_eq!(listed["total"], 1);
        let (_, found) = call(&app, Method::GET, "/admin/kb/search?q=return%20refund", &keys.admin, None).await;
        assert!(found.to_string().contains(mine) && !found.to_string().contains(theirs), "{found}");
        let (_, status) = call(&app, Method::GET, "/admin/kb/status", &keys.admin, None).await;
        assert_eq!(status["documents"], 1);
    }
    let (_, default_docs) = operator(&app, Method::GET, "/admin/kb/documents", None).await;
    assert_eq!(default_docs["total"], 0, "default's knowledge base is its own too");

    // Each site's visitor is grounded in that site's page only.
    chat(&app, &acme.caller, "q-1", "How many days do I have to return an item?").await;
    chat(&app, &globex.caller, "q-1", "How many days do I have to return an item?").await;
    let bodies = app.upstream_bodies().await;
    let (to_acme, to_globex) = (bodies[0].to_string(), bodies[1].to_string());
    assert!(to_acme.contains("30 days") && !to_acme.contains("14 days"), "{to_acme}");
    assert!(to_globex.contains("14 days") && !to_globex.contains("30 days"), "{to_globex}");

    // Acme deleting "returns" deletes Acme's.
    assert_eq!(call(&app, Method::DELETE, "/admin/kb/documents/returns", &acme.admin, None).await.0, 204);
    assert_eq!(call(&app, Method::GET, "/admin/kb/documents/returns", &acme.admin, None).await.0, 404);
    assert_eq!(call(&app, Method::GET, "/admin/kb/documents/returns", &globex.admin, None).await.0, 200);
    let metrics = get_text(&app.client, &app.url("/metrics"), crate::sites::OPERATOR).await;
    assert_eq!(metric_value(&metrics, "velochat_site_kb_documents{site=\"globex\"}"), 1.0);
    assert!(metric_value(&metrics, "velochat_kb_index_bytes{site=\"globex\"}") > 0.0);
}

#[tokio::test]
async fn suggestions_handoffs_reports_and_series_are_per_site() {
    let app = spawn_with_operator("").await;
    let (acme, globex) = (site(&app, "acme").await, site(&app, "globex").await);
    chat(&app, &acme.caller, "h-1", "Do you ship waterproof tents to Iceland?").await;
    chat(&app, &globex.caller, "h-1", "Do you sell sleeping bags?").await;
    chat(&app, &globex.caller, "h-2", "What sizes do the boots come in?").await;
    assert_eq!(post(&app, &acme.caller, "/sessions/h-1/handoff", Some(json!({}))).await.0, 200);
    let answer = json!({"role": "agent", "text": "Yes: tents ship to Iceland in 5 to 7 working days, duties paid on delivery.", "author": "Ana"});
    assert_eq!(post(&app, &acme.caller, "/sessions/h-1/messages", Some(answer)).await.0, 202);

    // The open handoff is Acme's alone, shown with the visitor's own session id.
    let (_, acme_open) = call(&app, Method::GET, "/admin/handoffs", &acme.admin, None).await;
    let (_, globex_open) = call(&app, Method::GET, "/admin/handoffs", &globex.admin, None).await;
    assert_eq!(acme_open["handoffs"].as_array().unwrap().len(), 1, "{acme_open}");
    assert_eq!(acme_open["handoffs"][0]["sessionId"], "h-1");
    assert_eq!(globex_open["handoffs"], json!([]));

    assert_eq!(post(&app, &acme.caller, "/sessions/h-1/release", None).await.0, 200);
    let (_, acme_pending) = call(&app, Method::GET, "/admin/kb/suggestions", &acme.admin, None).await;
    let (_, globex_pending) = call(&app, Method::GET, "/admin/kb/suggestions", &globex.admin, None).await;
    assert_eq!(acme_pending["suggestions"].as_array().unwrap().len(), 1, "{acme_pending}");
    assert_eq!(acme_pending["suggestions"][0]["sessionId"], "h-1");
    assert_eq!(globex_pending["suggestions"], json!([]));
    let id = acme_pending["suggestions"][0]["id"].as_str().unwrap().to_owned();
    for verb in ["approve", "reject"] {
        let (status, refused) = post(&app, &globex.admin, &format!("/admin/kb/suggestions/{id}/{verb}"), None).await;
        assert_eq!((status, refused["error"]["code"].as_str()), (404, Some("suggestion_not_found")), "{verb}");
    }
    let (status, approved) = post(&app, &acme.admin, &format!("/admin/kb/suggestions/{id}/approve"), None).await;
    assert_eq!(status, 200, "{approved}");
    let document = format!("/admin/kb/documents/suggestion-{id}");
    assert_eq!(call(&app, Method::GET, &document, &acme.admin, None).await.0, 200);
    assert_eq!(call(&app, Method::GET, &document, &globex.admin, None).await.0, 404);

    // Reports and overviews count each site's own replies (events are written in batches).
    let started = std::time::Instant::now();
    loop {
        let (_, report) = call(&app, Method::GET, "/admin/report?since=1d", &globex.admin, None).await;
        if report["replies"] == 2 || started.elapsed() > std::time::Duration::from_secs(5) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, acme_report) = call(&app, Method::GET, "/admin/report?since=1d", &acme.admin, None).await;
    let (_, globex_report) = call(&app, Method::GET, "/admin/report?since=1d", &globex.admin, None).await;
    let (_, default_report) = operator(&app, Method::GET, "/admin/report?since=1d", None).await;
    assert_eq!(acme_report["handoffs"]["handoffs"], 1, "{acme_report}");
    assert_eq!(acme_report["suggestions"]["approved"], 1);
    assert_eq!(globex_report["handoffs"]["handoffs"], 0, "{globex_report}");
    assert_eq!(globex_report["suggestions"]["created"], 0);
    let replies = |report: &Value| report["replies"].as_u64();
    assert_eq!((replies(&acme_report), replies(&globex_report), replies(&default_report)), (Some(1), Some(2), Some(0)));
    let (_, overview) = call(&app, Method::GET, "/admin/overview?days=1", &globex.admin, None).await;
    assert_eq!(overview["totals"]["replies"], 2, "{overview}");
    assert_eq!(overview["totals"]["sessions"], 2);

    let metrics = get_text(&app.client, &app.url("/metrics"), crate::sites::OPERATOR).await;
    let series = |site: &str| {
        format!("velochat_site_requests_total{{route=\"send_chat_message\",site=\"{site}\",status=\"200\"}}")
    };
    assert_eq!((metric_value(&metrics, &series("acme")), metric_value(&metrics, &series("globex"))), (1.0, 2.0));
    assert_eq!(metric_value(&metrics, "velochat_site_tokens_total{kind=\"prompt\",site=\"globex\"}"), 240.0);
    assert_eq!(
        metric_value(&metrics, "velochat_requests_total{route=\"send_chat_message\",status=\"200\"}"),
        3.0,
        "the deployment's series as before"
    );
}

#[tokio::test]
async fn a_deleted_site_takes_its_keys_documents_and_sessions_with_it() {
    let app = spawn_with_operator("").await;
    let acme = site(&app, "acme").await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&app.upstream).await;
    call(&app, Method::PUT, "/admin/kb/documents/returns", &acme.admin, Some(returns(30))).await;
    chat(&app, &acme.caller, "d-1", "Where is my order?").await;
    call(&app, Method::POST, "/sessions/d-1/handoff", &acme.caller, Some(json!({}))).await;
    assert_eq!(operator(&app, Method::DELETE, "/admin/sites/acme", None).await.0, 204);
    assert_eq!(chat(&app, &acme.caller, "d-1", "Hello?").await.0, 401);
    assert_eq!(call(&app, Method::GET, "/admin/kb/documents", &acme.admin, None).await.0, 401);
    // Made again under the same id: nothing of the old site comes back.
    put_site(&app, "acme", json!({"name": "Acme again"})).await;
    let (caller, admin) = (new_key(&app, "acme", "caller").await, new_key(&app, "acme", "admin").await);
    let (_, docs) = call(&app, Method::GET, "/admin/kb/documents", &admin, None).await;
    assert_eq!(docs["total"], 0, "{docs}");
    assert_eq!(call(&app, Method::GET, "/admin/sessions/d-1", &admin, None).await.0, 404);
    let (_, handoffs) = call(&app, Method::GET, "/admin/handoffs", &admin, None).await;
    assert_eq!(handoffs["handoffs"], json!([]));
    let (_, reply) = chat(&app, &caller, "d-1", "Hello again").await;
    assert_eq!(reply["sessionMode"], "bot", "{reply}");
}
