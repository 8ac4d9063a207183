//! What KV costs, over HTTP against one broker process (SQLite storage, no
//! audit device): version 2 writes (a new version each, with and without
//! check-and-set), reads of the newest version and of an older one, with
//! the root token and with a service token holding a policy on
//! `secret/data/app/*`, metadata reads; and version 1 writes and reads
//! beside them, which store one record where version 2 stores two.
//!
//! Run: `cargo bench -p broker-tests --bench kv`. `BENCH_CLIENTS` (default
//! 4) and `BENCH_OPS` (operations per row, default 4000) change it. Each
//! client writes and reads its own secret, so writes never wait for one
//! another's lock.

use std::sync::Arc;

use broker_tests::bench::{BrokerProcess, Run, config_toml, drive, env_or, free_port};
use serde_json::{Value, json};

/// The application's policy: its own secrets, read only.
const APP_POLICY: &str = r#"path "secret/data/app/*" { capabilities = ["read"] }"#;

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, String> {
        let mut request = self
            .http
            .request(method, format!("{}/{path}", self.base))
            .header("X-Vault-Token", token);
        if !body.is_null() {
            request = request.json(&body);
        }
        let r = request.send().await.map_err(|e| e.to_string())?;
        let status = r.status();
        let text = r.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{path}: {status}: {text}"));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// A secret of a realistic size: a few credentials and a certificate.
fn secret(i: usize) -> Value {
    json!({
        "username": format!("app-{i}"),
        "password": "0123456789abcdef0123456789abcdef",
        "api_key": "k".repeat(64),
        "tls_cert": "c".repeat(1200),
    })
}

/// `ops` requests of `method` on `path(client, i)` with `body(client, i)`.
async fn run<P, B>(
    c: &Arc<Client>,
    token: &str,
    clients: usize,
    ops: usize,
    method: reqwest::Method,
    path: P,
    body: B,
) -> Run
where
    P: Fn(usize, usize) -> String + Send + Sync + 'static,
    B: Fn(usize, usize) -> Value + Send + Sync + 'static,
{
    let (c, token) = (c.clone(), Arc::new(token.to_owned()));
    let (path, body) = (Arc::new(path), Arc::new(body));
    drive(clients, ops, move |client, i| {
        let (c, token, method) = (c.clone(), token.clone(), method.clone());
        let (path, body) = (path(client, i), body(client, i));
        async move { c.call(&token, method, &path, body).await.map(drop) }
    })
    .await
}

#[tokio::main]
async fn main() {
    let clients = env_or("BENCH_CLIENTS", 4);
    let ops = env_or("BENCH_OPS", 4000);

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let config = dir.path().join("broker.toml");
    let storage = format!(
        "type = \"sqlite\"\npath = \"{}\"",
        dir.path().join("broker.db").display()
    );
    // No per-client budget: the bench is one client address at thousands
    // of requests a second.
    let limits = "[rate_limit]\nper_client_rate = 0\n";
    std::fs::write(&config, config_toml(dir.path(), port, &storage, limits))
        .unwrap_or_else(|e| panic!("{e}"));
    let exe = env!("CARGO_BIN_EXE_broker-under-test");
    let init = std::process::Command::new(exe)
        .args(["operator", "init", "--format", "json", "--config"])
        .arg(&config)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let root = serde_json::from_slice::<Value>(&init.stdout)
        .ok()
        .and_then(|v| v["root_token"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("operator init: no root token"));
    let process = BrokerProcess::start(
        std::path::Path::new(exe),
        &config,
        port,
        &dir.path().join("broker.log"),
    )
    .await;
    let c = Arc::new(Client {
        http: reqwest::Client::new(),
        base: process.base.clone(),
    });
    let post = |path: &'static str, body: Value| {
        let (c, root) = (c.clone(), root.clone());
        async move {
            c.call(&root, reqwest::Method::POST, path, body)
                .await
                .unwrap_or_else(|e| panic!("{path}: {e}"))
        }
    };
    post("sys/mounts/secret", json!({ "type": "kv-v2" })).await;
    post("sys/mounts/kv", json!({ "type": "kv" })).await;
    post("sys/policies/acl/app", json!({ "policy": APP_POLICY })).await;
    let service = post(
        "auth/token/create",
        json!({ "policies": ["app"], "ttl": "24h" }),
    )
    .await["auth"]["client_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no client_token"))
        .to_owned();

    use reqwest::Method;
    let mut rows: Vec<(String, Run)> = Vec::new();
    // Version 2: each write is a new version (the default max_versions, 10,
    // removes the oldest from the eleventh on: the steady state).
    let v2 = |client: usize, _| format!("secret/data/app/c{client}");
    rows.push((
        "v2 write (new version, root)".into(),
        run(
            &c,
            &root,
            clients,
            ops,
            Method::POST,
            v2,
            |_, i| json!({ "data": secret(i) }),
        )
        .await,
    ));
    // With check-and-set: each client knows its secret's current version.
    let current = Arc::new(
        (0..clients)
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect::<Vec<_>>(),
    );
    for client in 0..clients {
        let meta = c
            .call(
                &root,
                Method::GET,
                &format!("secret/metadata/app/c{client}"),
                Value::Null,
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let v = meta["data"]["current_version"].as_u64().unwrap_or(0);
        current[client].store(v, std::sync::atomic::Ordering::SeqCst);
    }
    let cas = current.clone();
    rows.push((
        "v2 write with cas (root)".into(),
        run(
            &c,
            &root,
            clients,
            ops,
            Method::POST,
            v2,
            move |client, i| {
                let v = cas[client].fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                json!({ "data": secret(i), "options": { "cas": v } })
            },
        )
        .await,
    ));
    for (kind, token) in [("root", &root), ("service token, policy", &service)] {
        rows.push((
            format!("v2 read, newest ({kind})"),
            run(&c, token, clients, ops, Method::GET, v2, |_, _| Value::Null).await,
        ));
    }
    // An older version: a different record, the same metadata.
    let older = move |client: usize, _| {
        let v = current[client].load(std::sync::atomic::Ordering::SeqCst);
        format!("secret/data/app/c{client}?version={}", v.saturating_sub(5))
    };
    rows.push((
        "v2 read, version newest-5 (root)".into(),
        run(&c, &root, clients, ops, Method::GET, older, |_, _| {
            Value::Null
        })
        .await,
    ));
    rows.push((
        "v2 metadata read (root)".into(),
        run(
            &c,
            &root,
            clients,
            ops,
            Method::GET,
            |client, _| format!("secret/metadata/app/c{client}"),
            |_, _| Value::Null,
        )
        .await,
    ));
    // Version 1 beside it: one record per secret.
    let v1 = |client: usize, _| format!("kv/app/c{client}");
    rows.push((
        "v1 write (root)".into(),
        run(&c, &root, clients, ops, Method::PUT, v1, |_, i| secret(i)).await,
    ));
    rows.push((
        "v1 read (root)".into(),
        run(&c, &root, clients, ops, Method::GET, v1, |_, _| Value::Null).await,
    ));
    drop(process);

    println!(
        "{clients} concurrent clients over HTTP against one broker process (SQLite storage, no audit device)"
    );
    println!();
    println!("| operation | ops | rate, p50, p99, p99.9 |");
    println!("| --- | --- | --- |");
    for (name, run) in &rows {
        println!("| {name} | {} | {run} |", run.ops);
    }
}
