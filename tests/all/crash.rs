//! `kill -9` mid-stream leaves no database user uncovered by a lease.

use std::time::{Duration, Instant};

use broker_tests::{postgres, unique};
use serde_json::{Value, json};

use crate::api::pg_users_with_prefix;
use crate::process::Broker;

async fn call(
    http: &reqwest::Client,
    token: &str,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> reqwest::StatusCode {
    let mut req = http.request(method, url).header("X-Vault-Token", token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send()
        .await
        .map(|r| r.status())
        .unwrap_or(reqwest::StatusCode::SERVICE_UNAVAILABLE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_leaves_no_orphaned_user() {
    let mut broker = Broker::start().await;
    let (base, http, token) = (
        broker.base.clone(),
        broker.http.clone(),
        broker.token.clone(),
    );

    let s = postgres();
    let tag = unique("k").replace('_', "");
    let prefix = format!("crash{}", &tag[tag.len() - 8..]);
    use reqwest::Method;
    assert!(
        call(
            &http,
            &token,
            Method::POST,
            format!("{base}/sys/mounts/database"),
            Some(json!({"type": "database"}))
        )
        .await
        .is_success()
    );
    let config = json!({
        "plugin_name": "postgresql-database-plugin",
        "connection_url": format!("postgresql://{{{{username}}}}:{{{{password}}}}@{}:{}/{}?sslmode=disable", s.host, s.port, s.database),
        "username": s.user, "password": s.password, "allowed_roles": "*",
        "username_template": format!("{prefix}-{{{{random 12}}}}"),
    });
    assert!(
        call(
            &http,
            &token,
            Method::POST,
            format!("{base}/database/config/pg"),
            Some(config)
        )
        .await
        .is_success()
    );
    let role = json!({ "db_name": "pg", "default_ttl": "1h",
        "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';"] });
    assert!(
        call(
            &http,
            &token,
            Method::POST,
            format!("{base}/database/roles/app"),
            Some(role)
        )
        .await
        .is_success()
    );

    // Eight clients ask for credentials as fast as they can...
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (http, token, url) = (
            http.clone(),
            token.clone(),
            format!("{base}/database/creds/app"),
        );
        clients.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..200 {
                if call(&http, &token, Method::GET, url.clone(), None)
                    .await
                    .is_success()
                {
                    ok += 1;
                }
            }
            ok
        }));
    }
    // ...and the broker dies mid-stream.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    broker.kill(); // SIGKILL
    let mut issued = 0;
    for c in clients {
        issued += c.await.unwrap();
    }
    assert!(issued > 0, "no credential was issued before the kill");

    broker.restart().await;
    // Pending leases are held 2 s, the worker runs every second.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (users, active) = loop {
        let users = pg_users_with_prefix(&prefix).await;
        let listed = http
            .request(
                Method::from_bytes(b"LIST").unwrap(),
                format!("{base}/sys/leases/lookup/database/creds/app/"),
            )
            .header("X-Vault-Token", &token)
            .send()
            .await
            .unwrap();
        let list_status = listed.status();
        let keys: Vec<String> = if list_status.is_success() {
            let v: Value = listed.json().await.unwrap();
            v["data"]["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_owned())
                .collect()
        } else {
            Vec::new()
        };
        let mut active = 0;
        let mut pending = 0;
        for k in &keys {
            let resp = http
                .put(format!("{base}/sys/leases/lookup"))
                .header("X-Vault-Token", &token)
                .json(&json!({ "lease_id": format!("database/creds/app/{k}") }))
                .send()
                .await
                .unwrap();
            if let Ok(v) = resp.json::<Value>().await {
                match v["data"]["state"].as_str() {
                    Some("active") => active += 1,
                    _ => pending += 1,
                }
            }
        }
        if Instant::now() > deadline {
            eprintln!(
                "list {list_status}, {} keys, {active} active, {pending} other, {users} users",
                keys.len()
            );
        }
        if pending == 0 && users == active || Instant::now() > deadline {
            break (users, active);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        users, active,
        "every broker-made user must be covered by an active lease"
    );
    assert!(
        active > 0,
        "the credentials issued before the kill are still leased"
    );

    // Clean up: revoke everything the broker still holds.
    call(
        &http,
        &token,
        Method::PUT,
        format!("{base}/sys/leases/revoke-prefix/database/"),
        None,
    )
    .await;
    assert_eq!(pg_users_with_prefix(&prefix).await, 0);
}
