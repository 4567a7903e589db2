//! `velochat sites` at a shell, as an operator runs it: create a site, make its keys (printed once),
//! list them; then the service on a public address, refused with no key at all, starts once a
//! site has a caller key, and that key chats in its site.

use crate::process::{binary, start_in};
use serde_json::json;

async fn run(db: &str, args: &[&str]) -> (bool, String, String) {
    let output = binary().env("DATABASE_URL", db).args(args).output().await.unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

#[tokio::test]
async fn sites_are_made_at_a_shell_and_their_keys_count_for_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/v.db", dir.path().display());
    let public = binary().env("VELOCHAT_ADDR", "0.0.0.0:0").env("DATABASE_URL", &db).output().await.unwrap();
    assert!(!public.status.success(), "no caller key on a public address");

    let (ok, out, _) = run(&db, &["sites", "create", "acme", "--name", "Acme Outdoor"]).await;
    assert!(ok);
    assert_eq!(out.trim(), "acme\tAcme Outdoor");
    let (ok, _, err) = run(&db, &["sites", "create", "Not_An_Id", "--name", "x"]).await;
    assert!(!ok && err.contains("ID"), "{err}");
    let (ok, admin_key, _) = run(&db, &["sites", "key", "acme", "--role", "admin"]).await;
    assert!(ok && admin_key.trim().starts_with("vck_"));
    let (ok, _, err) = run(&db, &["sites", "key", "acme", "--role", "owner"]).await;
    assert!(!ok && err.contains("--role"), "{err}");
    let (ok, _, err) = run(&db, &["sites", "key", "nowhere", "--role", "caller"]).await;
    assert!(!ok && err.contains("nowhere"), "{err}");
    let public = binary().env("VELOCHAT_ADDR", "0.0.0.0:0").env("DATABASE_URL", &db).output().await.unwrap();
    assert!(!public.status.success(), "an admin key is no caller key");

    let (ok, caller_key, err) = run(&db, &["sites", "key", "acme", "--role", "caller", "--label", "wix"]).await;
    assert!(ok, "{err}");
    assert!(err.contains("shown this once"), "{err}");
    let caller_key = caller_key.trim().to_owned();
    let (_, listed, _) = run(&db, &["sites", "list"]).await;
    assert_eq!(listed.lines().collect::<Vec<_>>(), ["acme\tAcme Outdoor\t2 key(s)", "default\tdefault\t0 key(s)"]);
    let (ok, report, err) = run(&db, &["report", "--site", "acme", "--json"]).await;
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&report).unwrap()["replies"], 0);
    let (ok, _, err) = run(&db, &["report", "--site", "nowhere"]).await;
    assert!(!ok && err.contains("nowhere"), "{err}");
    let stored = std::fs::read(dir.path().join("v.db")).unwrap();
    assert!(!String::from_utf8_lossy(&stored).contains(&caller_key[4..]), "only the key's hash is stored");

    let node = start_in(dir.path(), &[("DATABASE_URL", db.clone()), ("VELOCHAT_ADDR", "0.0.0.0:0".to_owned())]).await;
    let port = node.address.rsplit(':').next().unwrap().to_owned();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/sendChatMessage");
    let body = json!({"sessionId": "cli-1", "userText": "Hello"});
    let reply = client.post(&url).bearer_auth(&caller_key).json(&body).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(client.post(&url).json(&body).send().await.unwrap().status(), 401);
}
