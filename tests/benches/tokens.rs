//! What tokens and policies cost, over HTTP against one broker process:
//! creating service and batch tokens, `lookup-self`, the per-request
//! overhead of a token lookup and a policy check (a cheap read with a
//! service or batch token beside the same read with the root token, which
//! skips both), and database credentials (PostgreSQL issue + revoke) with
//! a token holding a policy beside the root token, alternated in one run.
//!
//! Then logins: AppRole (role id and secret id) and JWT (an ES256 token
//! checked against a configured public key), each issuing a service token
//! and a batch token, so the login's own cost shows beside the token's.
//!
//! Run: `cargo bench -p broker-tests --bench tokens`. `BENCH_CLIENTS`
//! (default 4), `BENCH_OPS` (token and read operations, default 4000) and
//! `BENCH_PAIRS` (credential pairs per round, default 400) change it. The
//! database comes from `BROKER_TEST_POSTGRES_URL` as in the tests.

use std::sync::Arc;

use broker_tests::bench::{BrokerProcess, Run, config_toml, drive, env_or, free_port};
use broker_tests::postgres;
use serde_json::{Value, json};

const PG_CREATE: &str =
    r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"#;

/// What the benchmark's application token may do.
const APP_POLICY: &str = r#"
path "database/creds/pg" { capabilities = ["read"] }
path "database/roles/pg" { capabilities = ["read"] }
path "sys/leases/revoke" { capabilities = ["update"] }
path "auth/token/create" { capabilities = ["update"] }
"#;

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
        let mut request = self.http.request(method, format!("{}/{path}", self.base));
        if !token.is_empty() {
            request = request.header("X-Vault-Token", token);
        }
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

    async fn create_token(&self, parent: &str, body: Value) -> Result<String, String> {
        let created = self
            .call(parent, reqwest::Method::POST, "auth/token/create", body)
            .await?;
        created["auth"]["client_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "no client_token".to_owned())
    }

    async fn issue_revoke(&self, token: &str) -> Result<(), String> {
        let creds = self
            .call(
                token,
                reqwest::Method::GET,
                "database/creds/pg",
                Value::Null,
            )
            .await?;
        let lease_id = creds["lease_id"].as_str().ok_or("no lease_id")?.to_owned();
        self.call(
            token,
            reqwest::Method::PUT,
            "sys/leases/revoke",
            json!({ "lease_id": lease_id }),
        )
        .await
        .map(drop)
    }
}

async fn reads(
    c: &Arc<Client>,
    token: &str,
    clients: usize,
    ops: usize,
    path: &'static str,
) -> Run {
    let (c, token) = (c.clone(), Arc::new(token.to_owned()));
    drive(clients, ops, move |_, _| {
        let (c, token) = (c.clone(), token.clone());
        async move {
            c.call(&token, reqwest::Method::GET, path, Value::Null)
                .await
                .map(drop)
        }
    })
    .await
}

#[tokio::main]
async fn main() {
    let clients = env_or("BENCH_CLIENTS", 4);
    let ops = env_or("BENCH_OPS", 4000);
    let pairs = env_or("BENCH_PAIRS", 400);

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
    let setup = |path: &'static str, body: Value| {
        let (c, root) = (c.clone(), root.clone());
        async move {
            c.call(&root, reqwest::Method::POST, path, body)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
    };
    let s = postgres();
    setup("sys/mounts/database", json!({ "type": "database" })).await;
    setup(
        "database/config/pg",
        json!({ "plugin_name": "postgresql-database-plugin",
            "connection_url": format!("postgresql://{{{{username}}}}:{{{{password}}}}@{}:{}/{}", s.host, s.port, s.database),
            "username": s.user, "password": s.password, "allowed_roles": "*",
            "max_open_connections": clients }),
    )
    .await;
    setup(
        "database/roles/pg",
        json!({ "db_name": "pg", "default_ttl": "1h", "creation_statements": PG_CREATE }),
    )
    .await;
    setup("sys/policies/acl/app", json!({ "policy": APP_POLICY })).await;
    let service = c
        .create_token(&root, json!({ "policies": ["app"], "ttl": "24h" }))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let batch = c
        .create_token(
            &root,
            json!({ "policies": ["app"], "ttl": "24h", "type": "batch" }),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let mut rows: Vec<(String, Run)> = Vec::new();
    for (kind, body) in [
        ("service", json!({ "policies": ["app"], "ttl": "1h" })),
        (
            "batch",
            json!({ "policies": ["app"], "ttl": "1h", "type": "batch" }),
        ),
    ] {
        let (c2, parent, body) = (c.clone(), Arc::new(service.clone()), Arc::new(body));
        let run = drive(clients, ops, move |_, _| {
            let (c, parent, body) = (c2.clone(), parent.clone(), body.clone());
            async move { c.create_token(&parent, (*body).clone()).await.map(drop) }
        })
        .await;
        rows.push((
            format!("token create ({kind}, child of a service token)"),
            run,
        ));
    }
    for (kind, token) in [("root", &root), ("service", &service), ("batch", &batch)] {
        let run = reads(&c, token, clients, ops, "auth/token/lookup-self").await;
        rows.push((format!("lookup-self ({kind})"), run));
    }
    // The same read three ways, twice, alternated: the difference to root
    // is the token lookup and the policy check.
    let mut read_runs: Vec<(&str, Run)> = Vec::new();
    for _ in 0..2 {
        for (kind, token) in [("root", &root), ("service", &service), ("batch", &batch)] {
            read_runs.push((
                kind,
                reads(&c, token, clients, ops, "database/roles/pg").await,
            ));
        }
    }
    for (kind, run) in &read_runs {
        rows.push((format!("read database/roles/pg ({kind})"), *run));
    }
    let mut cred_runs: Vec<(&str, Run)> = Vec::new();
    for _ in 0..2 {
        for (kind, token) in [("root", &root), ("service token, policy app", &service)] {
            let (c2, token) = (c.clone(), Arc::new(token.clone()));
            let run = drive(clients, pairs, move |_, _| {
                let (c, token) = (c2.clone(), token.clone());
                async move { c.issue_revoke(&token).await }
            })
            .await;
            cred_runs.push((kind, run));
        }
    }
    for (kind, run) in &cred_runs {
        rows.push((
            format!("PostgreSQL credential, issue + revoke ({kind})"),
            *run,
        ));
    }
    // Logins: the method's checks, then a token of the role's type.
    setup("sys/auth/approle", json!({ "type": "approle" })).await;
    setup("sys/auth/jwt", json!({ "type": "jwt" })).await;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap_or_else(|e| panic!("{e}"));
    setup(
        "auth/jwt/config",
        json!({ "jwt_validation_pubkeys": [key.public_key_pem()], "jwt_supported_algs": ["ES256"] }),
    )
    .await;
    let encoding = jsonwebtoken::EncodingKey::from_ec_der(&key.serialize_der());
    let now = broker_tests::now();
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &json!({ "iss": "bench", "sub": "bench-job", "aud": "bench", "iat": now, "exp": now + 3600 }),
        &encoding,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for kind in ["service", "batch"] {
        let role = format!("auth/approle/role/{kind}");
        let body = json!({ "token_policies": "app", "token_type": kind, "token_ttl": "10m" });
        c.call(&root, reqwest::Method::POST, &role, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let role_id = c
            .call(
                &root,
                reqwest::Method::GET,
                &format!("{role}/role-id"),
                Value::Null,
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"))["data"]["role_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let secret_id = c
            .call(
                &root,
                reqwest::Method::POST,
                &format!("{role}/secret-id"),
                Value::Null,
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"))["data"]["secret_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (c2, login) = (
            c.clone(),
            Arc::new(json!({ "role_id": role_id, "secret_id": secret_id })),
        );
        let run = drive(clients, ops, move |_, _| {
            let (c, login) = (c2.clone(), login.clone());
            async move {
                c.call(
                    "",
                    reqwest::Method::POST,
                    "auth/approle/login",
                    (*login).clone(),
                )
                .await
                .map(drop)
            }
        })
        .await;
        rows.push((format!("AppRole login ({kind} token)"), run));

        let role = format!("auth/jwt/role/{kind}");
        let body = json!({ "role_type": "jwt", "bound_audiences": ["bench"], "user_claim": "sub",
            "token_policies": "app", "token_type": kind, "token_ttl": "10m" });
        c.call(&root, reqwest::Method::POST, &role, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (c2, login) = (c.clone(), Arc::new(json!({ "role": kind, "jwt": jwt })));
        let run = drive(clients, ops, move |_, _| {
            let (c, login) = (c2.clone(), login.clone());
            async move {
                c.call(
                    "",
                    reqwest::Method::POST,
                    "auth/jwt/login",
                    (*login).clone(),
                )
                .await
                .map(drop)
            }
        })
        .await;
        rows.push((format!("JWT login, ES256 ({kind} token)"), run));
    }
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
    let median = |kind: &str, runs: &[(&str, Run)]| -> (f64, f64, f64) {
        let picked: Vec<&Run> = runs
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, r)| r)
            .collect();
        let n = picked.len() as f64;
        (
            picked.iter().map(|r| r.p50).sum::<f64>() / n,
            picked.iter().map(|r| r.p99).sum::<f64>() / n,
            picked.iter().map(|r| r.rate).sum::<f64>() / n,
        )
    };
    let (root50, root99, _) = median("root", &read_runs);
    println!();
    for kind in ["service", "batch"] {
        let (p50, p99, _) = median(kind, &read_runs);
        println!(
            "token lookup + policy check ({kind}): p50 {:+.0} µs, p99 {:+.0} µs per request (vs root)",
            p50 - root50,
            p99 - root99
        );
    }
    let (cred_root, _, rate_root) = median("root", &cred_runs);
    let (cred_token, _, rate_token) = median("service token, policy app", &cred_runs);
    println!(
        "credential pair with a policy token vs root: p50 {:.0} vs {:.0} µs, rate {:.0} vs {:.0}/s ({:+.1}% rate)",
        cred_token,
        cred_root,
        rate_token,
        rate_root,
        (rate_token / rate_root - 1.0) * 100.0
    );
}
