//! Test harness: the real application on port 0, a fake OpenAI (wiremock) on a real socket.

use serde_json::{json, Value};
use std::sync::Arc;
use velochat::api::state::Lifecycle;
use velochat::config::Settings;
use velochat::guard::Signer;
use velochat::startup::Application;
use wiremock::MockServer;

pub const OPENAI_KEY: &str = "sk-test-openai-key-0123456789";
pub const SIGNING_KEY: &str = "test-signing-key";

#[allow(dead_code)] // not every test binary module uses every handle
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub upstream: MockServer,
    pub lifecycle: Arc<Lifecycle>,
    pub chat: Arc<velochat::chat::ChatService>,
    pub human_loop: Arc<velochat::human_loop::HumanLoop>,
    pub store: Arc<dyn velochat::store::StateStore>,
    pub durable: Arc<dyn velochat::store::DurableStore>,
    pub signer: Signer,
    pub db_dir: Arc<tempfile::TempDir>,
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Base settings every test starts from: the fake upstream, a temp SQLite file, quiet logs.
pub fn base_toml(upstream: &str, db_path: &str) -> String {
    format!(
        r#"
[server]
addr = "127.0.0.1:0"
drain_timeout_ms = 3000
[openai]
api_key = "{OPENAI_KEY}"
base_url = "{upstream}/v1"
[signing]
key = "{SIGNING_KEY}"
[storage]
database_url = "sqlite://{db_path}"
[telemetry]
log_level = "error"
[kb]
# Hybrid search is on by default with a key; the tests that want it say so (knowledge_hybrid.rs).
embeddings_model = "off"
"#
    )
}

/// Overrides are TOML merged over the base (a later table wins key by key).
pub async fn spawn_app_with(overrides: &str) -> TestApp {
    let upstream = MockServer::start().await;
    spawn_app_on(upstream, overrides, None).await
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with("").await
}

pub async fn spawn_app_on(upstream: MockServer, overrides: &str, db_dir: Option<Arc<tempfile::TempDir>>) -> TestApp {
    let db_dir = db_dir.unwrap_or_else(|| Arc::new(tempfile::tempdir().expect("tempdir")));
    let db_path = db_dir.path().join("velochat.db");
    let base = base_toml(&upstream.uri(), &db_path.display().to_string());
    let settings = Settings::from_toml_overrides(&merge_toml(&base, overrides)).expect("test settings");
    velochat::telemetry::init_logging(&settings);
    let app = Application::build(settings).await.expect("app builds");
    let address = format!("http://{}", app.address());
    let lifecycle = app.lifecycle();
    let (chat, human_loop) = (app.state().chat.clone(), app.state().human_loop.clone());
    let (store, durable) = app.stores();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::builder().build().expect("client"),
        upstream,
        lifecycle,
        chat,
        human_loop,
        store,
        durable,
        signer: Signer::new(SIGNING_KEY.as_bytes()),
        db_dir,
        server,
    }
}

/// Merges two TOML documents table by table (overrides win).
pub fn merge_toml(base: &str, overrides: &str) -> String {
    let mut base: toml::Table = base.parse().expect("base toml");
    let overrides: toml::Table = overrides.parse().expect("override toml");
    fn merge(into: &mut toml::Table, from: toml::Table) {
        for (key, value) in from {
            match (into.get_mut(&key), value) {
                (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
                (_, value) => {
                    into.insert(key, value);
                }
            }
        }
    }
    merge(&mut base, overrides);
    toml::to_string(&base).expect("toml")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn send(&self, body: &Value) -> reqwest::Response {
        self.client.post(self.url("/sendChatMessage")).json(body).send().await.expect("request")
    }

    pub async fn send_json(&self, body: &Value) -> (u16, Value) {
        let response = self.send(body).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Requests the fake OpenAI received, as JSON bodies.
    pub async fn upstream_bodies(&self) -> Vec<Value> {
        self.upstream
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
            .collect()
    }

    pub async fn upstream_calls(&self) -> usize {
        self.upstream.received_requests().await.map(|r| r.len()).unwrap_or(0)
    }

    pub fn sign(&self, session: &str, text: &str) -> String {
        self.signer.sign(session, text)
    }

    pub async fn metrics(&self) -> String {
        self.client.get(self.url("/metrics")).send().await.expect("metrics").text().await.expect("text")
    }
}

/// A `chat.completion` body whose content is `content`.
pub fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_764_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": null}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 12, "total_tokens": 132, "prompt_tokens_details": {"cached_tokens": 64}}
    })
}

/// A structured-output completion, as OpenAI returns it with our json_schema.
pub fn structured(reply: &str, confidence: f64, intent: &str, needs_human: bool) -> Value {
    let content =
        json!({"reply": reply, "confidence": confidence, "intent": intent, "needsHuman": needs_human}).to_string();
    completion(&content)
}

pub fn message(session: &str, text: &str) -> Value {
    json!({"sessionId": session, "userText": text})
}

/// The value of `name` in Prometheus text, for a series written exactly as `series`.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("series {series} not found"))
}

/// Sends a request and reads its JSON body.
pub async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.expect("request").json().await.expect("a JSON body")
}

/// A raw TCP connection to a server at `address` (`http://host:port`), for tests on the wire.
pub async fn raw_connect(address: &str) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(address.trim_start_matches("http://")).await.expect("connects")
}

/// Everything the server sends until it closes (a reset after the answer counts as a close);
/// panics if it keeps the connection open for 5 s.
pub async fn read_to_close(socket: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), socket.read_to_end(&mut received))
        .await
        .expect("the server closes the connection")
        .ok();
    String::from_utf8_lossy(&received).to_string()
}

/// Sends `raw` on a new connection and reads until the server closes it.
pub async fn raw_exchange(address: &str, raw: &[u8]) -> String {
    use tokio::io::AsyncWriteExt;
    let mut socket = raw_connect(address).await;
    socket.write_all(raw).await.expect("sent");
    read_to_close(&mut socket).await
}

/// A GET with a bearer key, its body as JSON (panics on a transport error).
pub async fn get_json(client: &reqwest::Client, url: &str, key: &str) -> Value {
    client.get(url).bearer_auth(key).send().await.unwrap().json().await.unwrap()
}

/// A GET with a bearer key, its body as text (for `/metrics`).
pub async fn get_text(client: &reqwest::Client, url: &str, key: &str) -> String {
    client.get(url).bearer_auth(key).send().await.unwrap().text().await.unwrap()
}
