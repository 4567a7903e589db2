//! Redis and PostgreSQL for the scale-out tests. On a machine without them those tests skip with a
//! message; with VELOCHAT_REQUIRE_SERVICES=1 (CI) a missing service fails them instead.

use std::time::Duration;

pub const REDIS_ADDR: &str = "127.0.0.1:6379";
pub const POSTGRES_BASE: &str = "postgres://postgres@127.0.0.1:5432";

fn required() -> bool {
    std::env::var("VELOCHAT_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

async fn answers(addr: &str) -> bool {
    matches!(tokio::time::timeout(Duration::from_millis(500), tokio::net::TcpStream::connect(addr)).await, Ok(Ok(_)))
}

async fn need(service: &str, addr: &str, test: &str) -> bool {
    if answers(addr).await {
        return true;
    }
    if required() {
        panic!("{test} needs {service} on {addr} (VELOCHAT_REQUIRE_SERVICES=1)");
    }
    eprintln!("SKIPPED {test}: {service} is not reachable on {addr}");
    false
}

/// A Redis URL, or None (skipped) when Redis is not running.
pub async fn redis(test: &str) -> Option<String> {
    need("Redis", REDIS_ADDR, test).await.then(|| format!("redis://{REDIS_ADDR}"))
}

/// A fresh, empty PostgreSQL database for this test, or None (skipped).
pub async fn postgres(test: &str) -> Option<String> {
    if !need("PostgreSQL", "127.0.0.1:5432", test).await {
        return None;
    }
    let name = format!("velochat_test_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&format!("{POSTGRES_BASE}/test")).await.expect("connect to postgres");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.expect("create database");
    admin.close().await;
    Some(format!("{POSTGRES_BASE}/{name}"))
}

/// A unique key prefix, so tests sharing one Redis never see each other's keys.
pub fn redis_prefix() -> String {
    format!("vctest:{}:", uuid::Uuid::new_v4().simple())
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
            eprintln!("SKIPPED {test}: no redis-server binary");
            return None;
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

/// Drops a database made by `postgres` (best effort: a leftover only costs disk).
pub async fn drop_postgres(url: &str) {
    let Some(name) = url.rsplit('/').next().filter(|n| n.starts_with("velochat_test_")) else { return };
    if let Ok(admin) = sqlx::PgPool::connect(&format!("{POSTGRES_BASE}/test")).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&admin).await;
        admin.close().await;
    }
}
