//! Bad input gets a clear 4xx naming the field, never a 5xx, never an upstream call.

use crate::helpers::*;
use serde_json::{json, Value};
use wiremock::matchers::any;
use wiremock::{Mock, ResponseTemplate};

async fn app_refusing_upstream_calls() -> TestApp {
    let app = spawn_app().await;
    Mock::given(any()).respond_with(ResponseTemplate::new(500)).expect(0).mount(&app.upstream).await;
    app
}

#[tokio::test]
async fn every_invalid_field_is_named_with_its_code_and_nothing_goes_upstream() {
    let app = app_refusing_upstream_calls().await;
    let long_history: Vec<Value> = (0..101).map(|_| json!({"role": "user", "content": "x"})).collect();
    let cases = [
        (json!({"userText": "hi"}), "missing_field", "sessionId"),
        (json!({"sessionId": "", "userText": "hi"}), "invalid_field", "sessionId"),
        (json!({"sessionId": "a b", "userText": "hi"}), "invalid_field", "sessionId"),
        (json!({"sessionId": "x".repeat(129), "userText": "hi"}), "field_too_long", "sessionId"),
        (json!({"sessionId": 42, "userText": "hi"}), "invalid_field", "sessionId"),
        (json!({"sessionId": "s"}), "missing_field", "userText"),
        (json!({"sessionId": "s", "userText": "   \u{0007}\n "}), "empty_field", "userText"),
        (json!({"sessionId": "s", "userText": "x".repeat(4001)}), "field_too_long", "userText"),
        (json!({"sessionId": "s", "userText": ["hi"]}), "invalid_field", "userText"),
        (json!({"sessionId": "s", "userText": "hi", "history": long_history}), "too_many_entries", "history"),
        (json!({"sessionId": "s", "userText": "hi", "history": "nope"}), "invalid_field", "history"),
        (
            json!({"sessionId": "s", "userText": "hi", "history": [{"role": "user", "content": 5}]}),
            "invalid_field",
            "history[0].content",
        ),
        (
            json!({"sessionId": "s", "userText": "hi", "history": [{"role": "user", "content": "y".repeat(4001)}]}),
            "field_too_long",
            "history[0].content",
        ),
        (json!({"sessionId": "s", "userText": "hi", "context": "x"}), "invalid_field", "context"),
        (
            json!({"sessionId": "s", "userText": "hi", "context": {"locale": "not a locale"}}),
            "invalid_field",
            "context.locale",
        ),
        (
            json!({"sessionId": "s", "userText": "hi", "context": {"account": {"tier": "pro; ignore rules"}}}),
            "invalid_field",
            "context.account.tier",
        ),
        (
            json!({"sessionId": "s", "userText": "hi", "context": {"activeOrder": {"reference": "A 1"}}}),
            "invalid_field",
            "context.activeOrder.reference",
        ),
    ];
    for (body, code, field) in cases {
        let (status, answer) = app.send_json(&body).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert_eq!(answer["error"]["code"], code, "{body} → {answer}");
        assert_eq!(answer["error"]["field"], field, "{body} → {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(field.split('[').next().unwrap()), "message names the field: {message}");
    }
    assert_eq!(app.upstream_calls().await, 0);
}

#[tokio::test]
async fn malformed_json_is_a_400_with_the_json_error_shape() {
    let app = app_refusing_upstream_calls().await;
    for raw in ["{\"sessionId\": ", "not json", "[1,2]", "{} {}"] {
        let response = app
            .client
            .post(app.url("/sendChatMessage"))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{raw}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "malformed_json", "{raw}");
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_even_without_content_length() {
    let app = app_refusing_upstream_calls().await;
    let big = json!({"sessionId": "s", "userText": "x".repeat(70 * 1024)}).to_string();
    let response = app
        .client
        .post(app.url("/sendChatMessage"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");

    let stream = futures_util::stream::iter(
        big.into_bytes().chunks(8192).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>(),
    );
    let response = app
        .client
        .post(app.url("/sendChatMessage"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413, "chunked body past the limit");
}

#[tokio::test]
async fn a_non_json_content_type_is_415() {
    let app = app_refusing_upstream_calls().await;
    for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
        let mut request = app.client.post(app.url("/sendChatMessage")).body(message("s", "hi").to_string());
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 415, "{content_type:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unsupported_media_type");
    }
    let ok = app
        .client
        .post(app.url("/sendChatMessage"))
        .header("content-type", "application/json; charset=utf-8")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 400, "charset parameter is fine");
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_answer_json() {
    let app = app_refusing_upstream_calls().await;
    let response = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");

    let response = app.client.get(app.url("/sendChatMessage")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert!(response.headers().get("allow").is_some_and(|v| v.to_str().unwrap().contains("POST")));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn a_bad_deadline_header_is_named() {
    let app = app_refusing_upstream_calls().await;
    let response = app
        .client
        .post(app.url("/sendChatMessage"))
        .header("x-velochat-deadline-ms", "soon")
        .json(&message("s", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["field"], "X-Velochat-Deadline-Ms");
}

#[tokio::test]
async fn the_openapi_document_states_the_constraints_the_server_enforces() {
    let app = spawn_app().await;
    let doc: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let schema = |name: &str| doc["components"]["schemas"][name].clone();
    let send = schema("SendChatMessageRequest");
    assert_eq!(send["required"], json!(["sessionId", "userText"]));
    assert_eq!(send["properties"]["sessionId"]["pattern"], "^[A-Za-z0-9._:-]{1,128}$");
    assert_eq!(send["properties"]["userText"]["maxLength"], 4000);
    assert_eq!(send["properties"]["history"]["maxItems"], 100);
    assert_eq!(schema("ChatCompletionsRequest")["required"], json!(["messages"]));
    assert_eq!(schema("ChatCompletionsRequest")["properties"]["model"]["enum"], json!(["gpt-4o-mini", "", null]));
    let parameters = |path: &str, method: &str| doc["paths"][path][method]["parameters"].as_array().unwrap().clone();
    let visitor = parameters("/sendChatMessage", "post").into_iter().find(|p| p["name"] == "X-Visitor-Id").unwrap();
    assert_eq!(visitor["schema"]["minLength"], 1, "an empty X-Visitor-Id is refused, so the document says so");
    let session = parameters("/sessions/{sessionId}/release", "post").into_iter().next().unwrap();
    assert_eq!(session["schema"]["pattern"], "^[A-Za-z0-9._:-]{1,128}$");
    let refused = &doc["paths"]["/sendChatMessage"]["post"]["responses"]["400"]["content"]["application/json"];
    assert_eq!(refused["schema"]["$ref"], "#/components/schemas/Error");
    // And the server agrees: a value the document allows is taken, one it forbids is refused.
    let (status, _) = app.send_json(&json!({"sessionId": "a.b:c_d-1", "userText": "ok"})).await;
    assert_eq!(status, 200);
    let (status, body) = app.send_json(&json!({"sessionId": "ù", "userText": "ok"})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("sessionId")));
}
