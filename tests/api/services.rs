//! Redis and PostgreSQL for the scale-out tests. On a machine without them those tests skip with a
//! message; with VELOCHAT_REQUIRE_SERVICES=1 (CI) a missing service fails them instead.

use std::time::Duration;

/// The shared Redis the tests use (`VELOCHAT_TEST_REDIS_URL`, default redis://127.0.0.1:6379).
pub fn redis_url() -> String {
    std::env::var("VELOCHAT_TEST_REDIS_URL").ok().filter(|v| !v.is_empty()).unwrap_or("redis://127.0.0.1:6379".into())
}

/// A PostgreSQL database the tests may connect to and create databases from
/// (`VELOCHAT_TEST_DATABASE_URL`, default postgres://postgres@127.0.0.1:5432/test).
pub fn database_url() -> String {
    std::env::var("VELOCHAT_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or("postgres://postgres@127.0.0.1:5432/test".into())
}

/// The server part of `database_url()`, to name another database on it.
fn postgres_server() -> String {
    let url = database_url();
    let without_query = url.split('?').next().unwrap_or(&url).to_owned();
    match without_query.rfind('/') {
        Some(slash) if slash > "postgres://".len() => without_query[..slash].to_owned(),
        _ => without_query,
    }
}

fn required() -> bool {
    std::env::var("VELOCHAT_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Skips (None) with a message naming the cause, or fails under VELOCHAT_REQUIRE_SERVICES=1.
fn unavailable<T>(test: &str, service: &str, cause: &str) -> Option<T> {
    if required() {
        panic!("{test} needs {service}: {cause} (VELOCHAT_REQUIRE_SERVICES=1)");
    }
    let line = format!("SKIPPED {test}: {service} unusable: {cause}");
    eprintln!("{line}");
    // The test runner hides a passing test's output: scripts/test prints this file at the end.
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("velochat-skipped.txt");
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = std::io::Write::write_all(&mut file, format!("{line}\n").as_bytes());
    }
    None
}

/// A Redis URL that answers PING (authentication included), or None (skipped).
pub async fn redis(test: &str) -> Option<String> {
    let url = redis_url();
    let ping = async {
        let client = redis::Client::open(url.as_str())?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut connection).await
    };
    match tokio::time::timeout(Duration::from_secs(2), ping).await {
        Ok(Ok(_)) => Some(url),
        Ok(Err(e)) => unavailable(test, "Redis", &format!("{}: {e}", redact(&url))),
        Err(_) => unavailable(test, "Redis", &format!("{}: no answer in 2 s", redact(&url))),
    }
}

/// A fresh, empty PostgreSQL database for this test (dropped with the guard), or None (skipped).
pub async fn postgres(test: &str) -> Option<TestDatabase> {
    let admin_url = database_url();
    let admin = match tokio::time::timeout(Duration::from_secs(3), sqlx::PgPool::connect(&admin_url)).await {
        Ok(Ok(pool)) => pool,
        Ok(Err(e)) => return unavailable(test, "PostgreSQL", &format!("{}: {e}", redact(&admin_url))),
        Err(_) => return unavailable(test, "PostgreSQL", &format!("{}: no answer in 3 s", redact(&admin_url))),
    };
    let name = format!("velochat_test_{}", uuid::Uuid::new_v4().simple());
    if let Err(e) = sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await {
        return unavailable(test, "PostgreSQL", &format!("cannot create a database: {e}"));
    }
    admin.close().await;
    Some(TestDatabase { url: format!("{}/{name}", postgres_server()), name })
}

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// A database made for one test; dropped when the guard goes (even when the test panics).
pub struct TestDatabase {
    pub url: String,
    name: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.name);
        // Drop runs inside the test's runtime: the async drop gets a thread and a runtime of its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async move {
                if let Ok(admin) = sqlx::PgPool::connect(&database_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&admin).await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

/// A unique Redis key prefix, so tests sharing one Redis never see each other's keys; every key
/// under it is deleted when the guard goes (even when the test panics).
pub struct RedisKeys {
    pub prefix: String,
}

impl RedisKeys {
    pub fn new() -> Self {
        Self { prefix: format!("vctest:{}:", uuid::Uuid::new_v4().simple()) }
    }
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        let pattern = format!("{}*", self.prefix);
        let _ = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(redis_url()) else { return };
            let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_secs(2)) else { return };
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut connection).unwrap_or_default();
            for chunk in keys.chunks(500) {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(chunk).query(&mut connection);
            }
        })
        .join();
    }
}

/// A Redis server of this test's own on a free port (for stopping it mid-run), or None (skipped).
pub struct OwnRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    pub async fn start(test: &str) -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let mut redis = Self { port, child: None };
        if !redis.spawn() {
            if required() {
                panic!("{test} needs the redis-server binary");
            }
            return unavailable(test, "redis-server", "no redis-server binary to start a server of its own");
        }
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) -> bool {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn();
        let Ok(child) = child else { return false };
        self.child = Some(child);
        for _ in 0..50 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Stops the server we started (SIGKILL, by its PID).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        assert!(self.spawn(), "redis-server restarts on the same port");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
