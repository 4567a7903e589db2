//! The red-team regression suite: every case in tests/redteam/cases.json, against the real app and a
//! fake model (which, in the leak and output cases, obeys the attacker). Each case checks what
//! reached the fake OpenAI and what came back; invariants hold for every case.

use crate::helpers::*;
use regex::Regex;
use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

const ADMIN: &str = "redteam-admin-key-42";

fn expand(text: &str, prompt: &str) -> String {
    let slice = Regex::new(r"\$SYSTEM_PROMPT(_UPPER)?\[(\d+):(\d+)\]").unwrap();
    let expanded = slice.replace_all(text, |c: &regex::Captures| {
        let (a, b): (usize, usize) = (c[2].parse().unwrap(), c[3].parse().unwrap());
        let part: String = prompt.chars().skip(a).take(b - a).collect();
        if c.get(1).is_some() {
            part.to_uppercase()
        } else {
            part
        }
    });
    expanded.replace("$SYSTEM_PROMPT", prompt).replace("$OPENAI_KEY", OPENAI_KEY).replace("$ADMIN_KEY", ADMIN)
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

#[tokio::test]
async fn every_red_team_case_holds() {
    let cases: Vec<Value> = serde_json::from_str(include_str!("../redteam/cases.json")).unwrap();
    assert!(cases.len() >= 100, "at least 100 cases");
    let app = spawn_app_with(&format!(
        "[auth]\nadmin_key = \"{ADMIN}\"\n[limits]\nip_burst = 100000\nip_per_minute = 100000\n\
         [output]\nallowed_link_hosts = [\"help.example.com\"]"
    ))
    .await;
    let prompt = velochat::config::Settings::from_toml_overrides("").unwrap().prompt.system;
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        let expect = &case["expect"];
        let session = format!("rt-{index}");
        app.upstream.reset().await;
        let content = if let Some(reply) = case["model_reply"].as_str() {
            expand(reply, &prompt)
        } else if let Some(structured) = case.get("model_structured") {
            expand(&structured.to_string(), &prompt)
        } else {
            json!({"reply": "OK", "confidence": 0.9, "intent": "other", "needsHuman": false}).to_string()
        };
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(completion(&content)))
            .mount(&app.upstream)
            .await;

        let mut body = case["request"].clone();
        if body.get("sessionId").is_none() {
            body["sessionId"] = json!(session);
        }
        let session = body["sessionId"].as_str().unwrap_or_default().to_owned();
        for sign in case["sign"].as_array().into_iter().flatten() {
            let at = sign["index"].as_u64().unwrap() as usize;
            let signer_session = match sign["session"].as_str().unwrap() {
                "$self" => session.clone(),
                other => other.to_owned(),
            };
            let turn = &mut body["history"][at];
            let text = sign["text"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| turn["content"].as_str().unwrap().to_owned());
            turn["signature"] = json!(app.sign(&signer_session, &text));
        }

        let request = app.client.post(app.url("/sendChatMessage")).header("content-type", "application/json");
        let request = match case["raw_request"].as_str() {
            Some(raw) => request.body(raw.replace("$SESSION", &session)),
            None => request.body(body.to_string()),
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        let sent = app.upstream_bodies().await;
        let mut fail = |what: String| failures.push(format!("[{index}] {name}: {what}"));

        let expected_status = expect["status"].as_u64().unwrap_or(200) as u16;
        if status != expected_status {
            fail(format!("status {status}, expected {expected_status}: {answer}"));
            continue;
        }
        assert!(status < 500, "{name}: never a 5xx");
        if let Some(calls) = expect["upstream_calls"].as_u64() {
            if sent.len() as u64 != calls {
                fail(format!("{} upstream calls, expected {calls}", sent.len()));
            }
        }
        if let Some(field) = expect["error_field"].as_str() {
            if answer["error"]["field"] != field {
                fail(format!("error field {}, expected {field}", answer["error"]["field"]));
            }
        }
        for (key, value) in [("source", &expect["source"]), ("fallbackReason", &expect["fallbackReason"])] {
            if !value.is_null() && &answer[key] != value {
                fail(format!("{key} {}, expected {value}", answer[key]));
            }
        }
        // Invariants of everything sent: the configured system prompt first, system messages only
        // at the start, the visitor's text last and in a user message, no invisible characters.
        let mut sent_text = String::new();
        for request in &sent {
            let messages = request["messages"].as_array().cloned().unwrap_or_default();
            if messages.first().map(|m| m["content"].as_str()) != Some(Some(prompt.as_str())) {
                fail("the first message is not the configured system prompt".into());
            }
            let system_count = messages.iter().take_while(|m| m["role"] == "system").count();
            if messages.iter().filter(|m| m["role"] == "system").count() != system_count || system_count > 3 {
                fail("a system message outside the fixed prefix".into());
            }
            if messages.last().map(|m| m["role"].clone()) != Some(json!("user")) {
                fail("the last message is not the user's".into());
            }
            if let Some(expected) = expect["last_user_includes"].as_str() {
                let last = messages.last().and_then(|m| m["content"].as_str()).unwrap_or_default();
                if !last.contains(expected) {
                    fail(format!("the last user message does not carry `{expected}`"));
                }
            }
            for m in &messages {
                sent_text.push_str(m["content"].as_str().unwrap_or_default());
                sent_text.push('\n');
            }
        }
        if sent_text.chars().any(|c| matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{E0000}'..='\u{E007F}')) {
            fail("an invisible character reached the model".into());
        }
        for excluded in strings(&expect["sent_excludes"]) {
            if sent_text.contains(&excluded) {
                fail(format!("`{}` reached the model", excluded.escape_debug()));
            }
        }
        for included in strings(&expect["sent_includes"]) {
            if !sent_text.contains(&included) {
                fail(format!("`{included}` did not reach the model"));
            }
        }
        let reply = answer["reply"].as_str().unwrap_or_default();
        for excluded in strings(&expect["reply_excludes"]) {
            let excluded = expand(&excluded, &prompt);
            if reply.to_lowercase().contains(&excluded.to_lowercase()) {
                fail(format!("the reply carries `{excluded}`: {reply}"));
            }
        }
        for included in strings(&expect["reply_includes"]) {
            if !reply.contains(&included) {
                fail(format!("the reply lacks `{included}`: {reply}"));
            }
        }
        if let Some(exact) = expect["reply_equals"].as_str() {
            if reply != exact {
                fail(format!("the reply is `{reply}`, expected `{exact}`"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} red-team cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
