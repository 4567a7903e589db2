//! Conversations that finish: a policy question the help pages answer is answered (a person
//! offered) instead of handed off, a request to act still hands off at once, and when the model
//! cannot answer, the help page's own sentences do.

use crate::handoff::model_says;
use crate::helpers::*;
use crate::knowledge::{import, ADMIN};
use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

fn help_pages() -> Value {
    json!({"documents": [
        {"id": "returns-refunds", "title": "Returns and refunds", "locale": "en",
         "body": "# Returns and refunds\n\nYou can return any unworn item within 30 days of delivery. Refunds take 5 to 7 business days to reach your card after we receive the item.\n\n## Exchanges\n\nExchanges for another size are **free**."},
        {"id": "cancel-order", "title": "Cancelling an order", "locale": "en",
         "body": "You can cancel an order from your account page until it ships. Once it has shipped, return it instead."},
        {"id": "remboursements", "title": "Retours et remboursements", "locale": "fr",
         "body": "Vous pouvez retourner un article sous 30 jours. Le remboursement prend 5 à 7 jours ouvrables après réception de l'article."},
        {"id": "reembolsos", "title": "Devoluciones y reembolsos", "locale": "es",
         "body": "Puedes devolver un artículo en 30 días. Los reembolsos tardan de 5 a 7 días hábiles después de recibir el artículo."},
        {"id": "rueckerstattung", "title": "Rücksendungen und Rückerstattungen", "locale": "de",
         "body": "Sie können Artikel innerhalb von 30 Tagen zurücksenden. Eine Rückerstattung dauert 5 bis 7 Werktage nach Eingang des Artikels."}
    ]})
}

async fn shop(extra: &str) -> TestApp {
    let app = spawn_app_with(&format!("[auth]\nadmin_key = \"{ADMIN}\"\n{extra}")).await;
    assert_eq!(import(&app, &help_pages()).await.0, 200);
    app
}

async fn ask(app: &TestApp, session: &str, text: &str, locale: &str) -> Value {
    let body = json!({"sessionId": session, "userText": text, "context": {"locale": locale}});
    let (status, reply) = app.send_json(&body).await;
    assert_eq!(status, 200, "{reply}");
    reply
}

#[tokio::test]
async fn a_policy_question_the_help_pages_answer_is_answered_with_a_person_offered_in_four_languages() {
    let app = shop("").await;
    model_says(&app, structured("Refunds take 5 to 7 business days.", 0.9, "refund", false)).await;
    let offers = velochat::config::Settings::from_toml_overrides("").unwrap().handoff.offer;
    for (i, (text, locale, document, intent)) in [
        ("How long do refunds take?", "en-US", "returns-refunds", "refund"),
        ("Combien de jours pour un remboursement ?", "fr-FR", "remboursements", "refund"),
        ("¿Cuánto tardan los reembolsos?", "es-ES", "reembolsos", "refund"),
        ("Wie lange dauert eine Rückerstattung?", "de-DE", "rueckerstattung", "refund"),
        ("How do I cancel my order?", "en-GB", "cancel-order", "cancellation"),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = ask(&app, &format!("kf-{i}"), text, locale).await;
        assert_eq!(
            (reply["source"].as_str(), reply["handoff"].as_bool()),
            (Some("model"), Some(false)),
            "{text}: {reply}"
        );
        assert_eq!(
            (reply["handoffOffered"].as_bool(), reply["intent"].as_str()),
            (Some(true), Some(intent)),
            "{reply}"
        );
        assert_eq!(reply["sessionMode"], "bot");
        assert_eq!(reply["sources"][0]["id"], document, "{text}: {reply}");
        let offer = offers.get(&locale[..2]).unwrap();
        assert!(reply["reply"].as_str().unwrap().ends_with(offer.as_str()), "{text}: {reply}");
        let sent = app.upstream_bodies().await.pop().unwrap();
        let reference = sent["messages"][2]["content"].as_str().unwrap();
        assert!(reference.contains(&format!("<passage id=\"{document}\"")), "the model saw the passage: {reference}");
    }
}

#[tokio::test]
async fn a_request_to_act_still_hands_off_at_once_in_four_languages() {
    let app = shop("").await;
    for (i, (text, locale)) in [
        ("I want my money back for order A-1001", "en-US"),
        ("cancel my order", "en-US"),
        ("Je veux être remboursé pour la commande A-1001", "fr-FR"),
        ("Annulez ma commande", "fr-FR"),
        ("Quiero un reembolso del pedido A-1001", "es-ES"),
        ("Cancela mi pedido", "es-ES"),
        ("Ich möchte mein Geld zurück für Bestellung A-1001", "de-DE"),
        ("Bitte stornieren Sie meine Bestellung", "de-DE"),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = ask(&app, &format!("act-{i}"), text, locale).await;
        assert_eq!(
            (reply["source"].as_str(), reply["handoff"].as_bool()),
            (Some("handoff"), Some(true)),
            "{text}: {reply}"
        );
        assert_eq!(reply["handoffReason"], "intent");
        assert!(reply.get("handoffOffered").is_none(), "{reply}");
    }
    assert_eq!(app.upstream_calls().await, 0, "no model call for a request to act");
}

#[tokio::test]
async fn a_policy_question_the_help_pages_do_not_cover_still_hands_off() {
    let app = spawn_app_with(&format!("[auth]\nadmin_key = \"{ADMIN}\"")).await;
    let reply = ask(&app, "kf-empty", "How long do refunds take?", "en-US").await;
    assert_eq!((reply["source"].as_str(), reply["handoffReason"].as_str()), (Some("handoff"), Some("intent")));
}

/// The answer every cause below must give: the page's sentence about the return window.
const QUESTION: &str = "How many days do I have to return an item?";

fn assert_extracted(reply: &Value, reason: &str) {
    assert_eq!(
        (reply["source"].as_str(), reply["fallbackReason"].as_str()),
        (Some("knowledge"), Some(reason)),
        "{reply}"
    );
    assert_eq!(reply["reply"], "You can return any unworn item within 30 days of delivery.", "{reply}");
    assert_eq!(reply["sources"][0]["id"], "returns-refunds");
    assert!(reply["signature"].is_string(), "signed like any reply");
}

#[tokio::test]
async fn without_a_key_the_help_pages_answer_and_the_fallback_is_counted() {
    let app = shop("[openai]\napi_key = \"\"").await;
    assert_extracted(&ask(&app, "ex-key", QUESTION, "en-US").await, "no_api_key");
    let metrics = get_text(&app.client, &app.url("/metrics"), ADMIN).await;
    assert_eq!(metric_value(&metrics, "velochat_fallbacks_total{reason=\"no_api_key\"}"), 1.0);
    assert_eq!(app.upstream_calls().await, 0);
    // Below the bar, or nothing relevant: the static reply stays.
    let unrelated = ask(&app, "ex-none", "Do you sell bicycles?", "en-US").await;
    assert_eq!(
        (unrelated["source"].as_str(), unrelated["fallbackReason"].as_str()),
        (Some("fallback"), Some("no_api_key"))
    );
    let strict = shop("[openai]\napi_key = \"\"\n[kb]\nextractive_min_score = 1.01").await;
    assert_eq!(ask(&strict, "ex-bar", QUESTION, "en-US").await["source"], "fallback");
    // A refund question answered from the pages keeps the person on offer, model or not.
    let refund = ask(&app, "ex-refund", "How long do refunds take?", "en-US").await;
    assert_eq!(
        (refund["source"].as_str(), refund["handoffOffered"].as_bool()),
        (Some("knowledge"), Some(true)),
        "{refund}"
    );
    assert!(refund["reply"].as_str().unwrap().starts_with("Refunds take 5 to 7 business days"), "{refund}");
}

#[tokio::test]
async fn a_near_deadline_an_upstream_error_and_an_open_circuit_are_answered_from_the_help_pages() {
    let app = shop("[retry]\nmax_retries = 0\n[breaker]\nconsecutive_failures = 1\nopen_ms = 60000").await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(500)).mount(&app.upstream).await;
    let near = app
        .client
        .post(app.url("/sendChatMessage"))
        .header("x-velochat-deadline-ms", "100")
        .json(&json!({"sessionId": "ex-deadline", "userText": QUESTION}))
        .send()
        .await
        .unwrap();
    assert_extracted(&near.json::<Value>().await.unwrap(), "deadline");
    assert_extracted(&ask(&app, "ex-500", QUESTION, "en-US").await, "upstream_error");
    assert_extracted(&ask(&app, "ex-open", QUESTION, "en-US").await, "circuit_open");
}

#[tokio::test]
async fn a_spent_budget_is_answered_from_the_help_pages_but_the_kill_switch_stays_static() {
    let app = shop("[budget]\nmonthly_tokens = 100").await;
    model_says(&app, structured("Within 30 days.", 0.9, "other", false)).await;
    assert_eq!(ask(&app, "ex-spend", QUESTION, "en-US").await["source"], "model", "spends 132 tokens");
    assert_extracted(&ask(&app, "ex-spent", QUESTION, "en-US").await, "budget_exhausted");

    let switch = app.client.put(app.url("/admin/kill-switch")).bearer_auth(ADMIN).json(&json!({"enabled": true}));
    assert_eq!(switch.send().await.unwrap().status(), 200);
    let stopped = ask(&app, "ex-killed", QUESTION, "en-US").await;
    assert_eq!(
        (stopped["source"].as_str(), stopped["fallbackReason"].as_str()),
        (Some("fallback"), Some("kill_switch"))
    );
}
