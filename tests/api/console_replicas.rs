//! The console's sign-in limit across replicas sharing Redis: wrong keys count wherever they land.

use crate::process::{start, Process};
use crate::services;

const ADMIN: &str = "console-replica-admin";

#[tokio::test]
async fn wrong_console_keys_on_two_replicas_count_together() {
    let Some(redis) = services::redis("console::sign_in_replicas").await else { return };
    let keys = services::RedisKeys::new();
    let envs = [
        ("REDIS_URL", redis.clone()),
        ("VELOCHAT__STORAGE__REDIS_KEY_PREFIX", keys.prefix.clone()),
        ("VELOCHAT_ADMIN_KEY", ADMIN.to_owned()),
    ];
    let nodes = [start(&envs).await, start(&envs).await];
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let attempt =
        |node: &Process, key: &str| client.post(format!("{}/console/login", node.address)).form(&[("key", key)]).send();
    for i in 0..5 {
        assert_eq!(attempt(&nodes[i % 2], "wrong").await.unwrap().status(), 401, "attempt {i}");
    }
    for node in &nodes {
        let refused = attempt(node, ADMIN).await.unwrap();
        assert_eq!(refused.status(), 429, "five wrong keys across both replicas: no sixth try on either");
        assert!(refused.headers().contains_key("retry-after"));
    }
}
