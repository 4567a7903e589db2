//! What the server enforces, stated in the OpenAPI document: patterns, lengths, required fields and
//! headers, and the JSON error body of every refusal. The handlers' annotations give the routes;
//! this fills in what their Rust types cannot say, so client generators and API testers trust the
//! document (a schema-valid request is never refused; tests/api/validation.rs and the schemathesis run
//! in scripts/test check it).

use crate::config::Settings;
use serde_json::{json, Value};

/// One or more characters, at least one of them visible: velochat removes control, zero-width and
/// bidi characters and trims, and refuses what is left empty.
const VISIBLE: &str = "[^\\s\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u180e\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff\\ufff9-\\ufffb]";

fn session_id() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9._:-]{1,128}$"})
}

fn user_text(max: usize) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": VISIBLE})
}

/// A context slug: velochat lower-cases it; empty means "not given".
fn slug(max: usize) -> Value {
    json!({"type": ["string", "null"], "maxLength": max, "pattern": format!("^[A-Za-z0-9_-]{{0,{max}}}$")})
}

fn schemas(settings: &Settings) -> Value {
    let h = &settings.history;
    let text_part = json!({"type": "object", "required": ["type", "text"], "properties": {
        "type": {"const": "text"}, "text": {"type": "string", "maxLength": 1000}}});
    let visible_part = json!({"type": "object", "required": ["type", "text"], "properties": {
        "type": {"const": "text"}, "text": user_text(1000)}});
    json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                           "field": {"type": "string"}}}}},
        "SendChatMessageRequest": {"type": "object", "required": ["sessionId", "userText"], "properties": {
            "sessionId": session_id(),
            "userText": user_text(4000),
            "history": {"type": ["array", "null"], "maxItems": h.max_entries,
                        "items": {"$ref": "#/components/schemas/HistoryEntry"}},
            "context": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Context"}]}}},
        "HistoryEntry": {"type": "object", "description": "Turns with other roles, or empty, are dropped.",
            "properties": {
                "role": {"type": ["string", "null"]},
                "content": {"type": ["string", "null"], "maxLength": h.max_content_chars},
                "signature": {"type": ["string", "null"]}}},
        "Context": {"type": "object", "description": "Only these fields reach the model, typed.", "properties": {
            "locale": {"type": ["string", "null"], "maxLength": 35,
                       "pattern": "^([A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*)?$"},
            "account": {"type": ["object", "null"], "properties": {"tier": slug(32), "status": slug(32)}},
            "activeOrder": {"type": ["object", "null"], "properties": {
                "reference": {"type": ["string", "null"], "maxLength": 64, "pattern": "^[A-Za-z0-9_-]{0,64}$"},
                "stage": slug(32)}}}},
        "DocumentInput": document(false),
        "ImportRequest": {"type": "object", "required": ["documents"], "properties": {
            "documents": {"type": "array", "minItems": 1, "maxItems": 5000, "items": document(true)}}},
        "AgentMessageRequest": {"type": "object", "required": ["role", "text"], "properties": {
            "role": {"const": "agent"},
            "text": user_text(crate::domain::MAX_AGENT_TEXT_CHARS),
            "author": {"type": ["string", "null"], "maxLength": 200}}},
        "ApproveRequest": {"type": "object", "description": "Edits before approving; both optional.", "properties": {
            "title": {"oneOf": [{"type": "null"}, user_text(300)]},
            "body": {"oneOf": [{"type": "null"}, user_text(200_000)]}}},
        "SitePut": site_put(),
        "KeyCreate": {"type": "object", "required": ["role"], "properties": {
            "role": {"type": "string", "enum": ["caller", "admin"]},
            "label": {"type": ["string", "null"], "maxLength": 200, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$"}}},
        "KillSwitch": {"type": "object", "required": ["enabled"], "properties": {
            "enabled": {"type": "boolean", "description": "true: every reply is a static one."}}},
        "ChatCompletionsRequest": {
            "type": "object",
            "required": ["messages"],
            "description": "OpenAI's chat completions request. The newest `user` message is the question.",
            "properties": {
                "model": {"type": ["string", "null"], "enum": model_values(settings)},
                "messages": {"type": "array", "minItems": 1, "maxItems": h.max_entries + 2,
                    "contains": {"type": "object", "required": ["role"], "properties": {"role": {"const": "user"}}},
                    "items": {"$ref": "#/components/schemas/ChatMessage"}},
                "max_tokens": {"type": ["integer", "null"], "minimum": 0, "maximum": 4_294_967_295_u64},
                "max_completion_tokens": {"type": ["integer", "null"], "minimum": 0, "maximum": 4_294_967_295_u64},
                "temperature": {"type": ["number", "null"]},
                "stream": {"type": ["boolean", "null"]},
                "stream_options": {"type": ["object", "null"], "properties": {"include_usage": {"type": ["boolean", "null"]}}},
                "response_format": {"type": ["object", "null"]},
                "n": {"type": ["integer", "null"], "minimum": 0, "maximum": 1},
                "user": {"type": ["string", "null"]},
                "safety_identifier": {"type": ["string", "null"]},
                "tools": {"type": "null", "description": "Not supported."},
                "functions": {"type": "null", "description": "Not supported."},
                "tool_choice": {"type": "null", "description": "Not supported."},
                "function_call": {"type": "null", "description": "Not supported."}}},
        "ChatMessage": {
            "type": "object",
            "required": ["role"],
            "properties": {
                "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
                "content": {"oneOf": [{"type": "null"}, {"type": "string", "maxLength": 4000},
                                      {"type": "array", "maxItems": 4, "items": text_part}]}},
            // The question must have something to answer.
            "if": {"properties": {"role": {"const": "user"}}},
            "then": {"required": ["content"], "properties": {"content": {"oneOf": [
                user_text(4000), {"type": "array", "minItems": 1, "maxItems": 4, "items": visible_part}]}}}},
    })
}

/// `PUT /admin/sites/{siteId}`: every setting exactly as `SiteSettings::parse` takes it.
fn site_put() -> Value {
    let url = json!({"type": ["string", "null"], "maxLength": 2048,
        "pattern": "^https?://[A-Za-z][A-Za-z0-9-]{0,30}(\\.[A-Za-z][A-Za-z0-9-]{0,30}){0,4}(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~/-]*)?$"});
    let count = json!({"type": ["integer", "null"], "minimum": 1, "maximum": 9_007_199_254_740_991_u64});
    let per_minute = json!({"type": ["integer", "null"], "minimum": 1, "maximum": 4_294_967_295_u64});
    let text = json!({"type": "string", "maxLength": 2000, "pattern": "[^\\s\\u0085]"});
    let by_locale =
        json!({"type": "object", "propertyNames": {"minLength": 1, "maxLength": 35}, "additionalProperties": text});
    let settings = json!({"type": ["object", "null"], "additionalProperties": false, "properties": {
        "instructions": {"type": ["string", "null"], "maxLength": crate::sites::settings::MAX_INSTRUCTIONS_CHARS},
        "model": {"type": ["string", "null"], "minLength": 1, "maxLength": 100, "pattern": "^[^\\s\\u0085]+$"},
        "defaultLocale": {"type": ["string", "null"], "minLength": 1, "maxLength": 35},
        "staticReplies": {"type": ["object", "null"], "additionalProperties": by_locale},
        "holdingText": {"oneOf": [{"type": "null"}, by_locale]},
        "killSwitch": {"type": ["boolean", "null"]},
        "budget": {"type": ["object", "null"], "additionalProperties": false, "properties": {
            "dailyTokens": count, "monthlyTokens": count,
            "monthlyUsd": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1e15}}},
        "handoff": {"type": ["object", "null"], "additionalProperties": false, "properties": {
            "webhookUrl": url, "webhookSecret": {"type": ["string", "null"], "minLength": 16, "maxLength": 512},
            "slaMs": {"type": ["integer", "null"], "minimum": 0, "maximum": 9_007_199_254_740_991_u64}}},
        "alertWebhookUrl": url,
        "limits": {"type": ["object", "null"], "additionalProperties": false, "properties": {
            "callerPerMinute": per_minute, "sessionBurst": per_minute, "sessionPerMinute": per_minute}},
        "allowedLinkHosts": {"type": ["array", "null"], "items": {"type": "string", "pattern": "^[A-Za-z0-9.*-]{1,253}$"}}}});
    json!({"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "maxLength": 200,
                 "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"},
        "settings": settings}})
}

/// A knowledge-base document; `id` is required in an import (the path names it on `PUT`).
fn document(with_id: bool) -> Value {
    let mut required = vec!["title", "body"];
    if with_id {
        required.push("id");
    }
    json!({"type": "object", "required": required, "properties": {
        "id": if with_id { session_id() } else { json!({"type": ["string", "null"]}) },
        "title": user_text(300),
        "body": user_text(200_000),
        "url": {"type": ["string", "null"], "maxLength": 2048,
                "pattern": "^https://[A-Za-z][A-Za-z0-9-]{0,30}(\\.[A-Za-z][A-Za-z0-9-]{0,30}){0,4}(/[A-Za-z0-9._~/-]*)?$"},
        "locale": {"type": ["string", "null"], "maxLength": 16, "pattern": "^([A-Za-z0-9]{2,3}([-_][A-Za-z0-9]{2,8}){0,3})?$"},
        "tags": {"type": ["array", "null"], "maxItems": 32, "items": user_text(64)}}})
}

fn query_schema(path: &str, name: &str) -> Option<Value> {
    match (path, name) {
        ("/admin/kb/search", "q") => Some(user_text(4000)),
        ("/admin/kb/search", "k") => Some(json!({"type": "integer", "minimum": 1, "maximum": 50})),
        ("/admin/kb/documents", "limit") => Some(json!({"type": "integer", "minimum": 1, "maximum": 500})),
        ("/admin/report", "from" | "to") => Some(json!({"type": "string", "format": "date"})),
        ("/admin/overview", "days") => Some(json!({"type": "integer", "minimum": 1, "maximum": 90})),
        ("/admin/kb/suggestions", "status") => {
            Some(json!({"type": "string", "enum": ["pending", "approved", "rejected"]}))
        }
        ("/admin/kb/documents", "cursor") => Some(json!({"type": "string", "pattern": "^[A-Za-z0-9._:-]{0,128}$"})),
        ("/admin/kb/documents", "q") => Some(json!({"type": "string", "maxLength": 200})),
        ("/sessions/{sessionId}/messages", "after") => Some(json!({"type": "string", "pattern": "^[0-9]{0,18}$"})),
        ("/sessions/{sessionId}/messages", "waitMs") => {
            Some(json!({"type": "integer", "minimum": 0, "maximum": 10000}))
        }
        (_, "id") => Some(session_id()),
        _ => None,
    }
}

/// What `model` may be: an allowed model, or empty or absent for the configured one.
fn model_values(settings: &Settings) -> Vec<Value> {
    let mut models: Vec<Value> = settings.openai.allowed_models().into_iter().map(Value::from).collect();
    models.extend([Value::from(""), Value::Null]);
    models
}

fn header_schema(name: &str) -> Option<Value> {
    match name {
        "X-Session-Id" | "X-Visitor-Id" => Some(session_id()),
        "X-Velochat-Deadline-Ms" => {
            Some(json!({"type": "integer", "minimum": 1, "maximum": 9_007_199_254_740_991_u64}))
        }
        "X-Visitor-Ip" => Some(json!({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]})),
        _ => None,
    }
}

/// Tightens the generated document in place.
pub fn constrain(doc: &mut Value, settings: &Settings) {
    if let (Some(Value::Object(existing)), Value::Object(ours)) =
        (doc.pointer_mut("/components/schemas"), schemas(settings))
    {
        existing.extend(ours);
    }
    if let Some(body) =
        doc.pointer_mut("/paths/~1v1~1chat~1completions/post/requestBody/content/application~1json/schema")
    {
        *body = json!({"$ref": "#/components/schemas/ChatCompletionsRequest"});
    }
    if let Some(body) =
        doc.pointer_mut("/paths/~1sessions~1{sessionId}~1messages/post/requestBody/content/application~1json/schema")
    {
        *body = json!({"$ref": "#/components/schemas/AgentMessageRequest"});
    }
    if let Some(query) = doc.pointer_mut("/paths/~1admin~1report/get/parameters/0/schema") {
        *query = json!({"type": "string", "pattern": "^[1-9][0-9]{0,5}[mhdw]$"});
    }
    let Some(Value::Object(paths)) = doc.get_mut("paths") else { return };
    let operations = paths
        .iter_mut()
        .filter_map(|(path, item)| Some((path.clone(), item.as_object_mut()?)))
        .flat_map(|(path, item)| item.values_mut().map(move |operation| (path.clone(), operation)));
    for (path, operation) in operations {
        if let Some(Value::Array(parameters)) = operation.get_mut("parameters") {
            for parameter in parameters.iter_mut() {
                let name = parameter["name"].as_str().unwrap_or_default().to_owned();
                let schema = match name.as_str() {
                    "sessionId" => Some(session_id()),
                    "siteId" => Some(json!({"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"})),
                    "keyId" => Some(json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"})),
                    _ => query_schema(&path, &name).or_else(|| header_schema(&name)),
                };
                if let Some(schema) = schema {
                    parameter["schema"] = schema;
                }
            }
        }
        // Every refusal is the JSON error body.
        if let Some(Value::Object(responses)) = operation.get_mut("responses") {
            for (status, response) in responses.iter_mut() {
                if status.starts_with('4') || status.starts_with('5') {
                    response["content"] =
                        json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}});
                }
            }
        }
    }
}
