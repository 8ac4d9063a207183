//! The audit log's costs, printed as figures for BENCHMARKS.md:
//!
//! 1. the cost of one entry (a request or a response entry of an issuance,
//!    HMAC'd and chained) on a file device, with and without fsync;
//! 2. credential issuance (+ revocation) through the HTTP API against a real
//!    PostgreSQL, with no audit device and with a file device (fsync on),
//!    in the same run, and their ratio.
//!
//! Run: `cargo bench -p broker-tests --bench audit`. `BENCH_ENTRIES`,
//! `BENCH_PAIRS` and `BENCH_CLIENTS` change the counts.

use std::sync::Arc;
use std::time::Instant;

use broker::audit::{
    AuditAuth, AuditPolicy, AuditRequest, AuditResponse, Auditor, DeviceConfig, DeviceOptions,
};
use broker::barrier::{Barrier, Keyring, SealedStorage};
use broker::core::CoreOptions;
use broker_tests::bench::{InProcess, env_or, percentile, sqlite};
use broker_tests::postgres;
use serde_json::json;

fn device(file: &std::path::Path, fsync: bool) -> (String, DeviceConfig) {
    (
        "file".into(),
        DeviceConfig {
            kind: "file".into(),
            description: String::new(),
            options: DeviceOptions {
                file_path: file.display().to_string(),
                log_raw: false,
                hmac_accessor: true,
                fsync,
            },
            from_config: true,
        },
    )
}

/// µs per entry: request + response entries of an issuance, timed as a pair.
async fn per_entry(entries: usize, fsync: bool) -> (f64, f64, f64) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let keyring = Keyring::generate().unwrap_or_else(|e| panic!("{e}"));
    let store = SealedStorage::new(sqlite(dir.path()).await, Arc::new(Barrier::new(keyring)));
    let auditor = Auditor::open(
        store,
        AuditPolicy::default(),
        vec![device(&dir.path().join("audit.log"), fsync)],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let auth = AuditAuth {
        client_token: zeroize::Zeroizing::new("brk.0123456789abcdef0123456789abcdef".into()),
        accessor: String::new(),
        display_name: "root".into(),
        policies: vec!["root".into()],
        token_ttl: 0,
    };
    let request = AuditRequest {
        id: "6a2f1c4e-0000-4000-8000-000000000000".into(),
        operation: "read",
        path: "database/creds/app".into(),
        mount_type: Some("database".into()),
        mount_accessor: Some("database_1234abcd".into()),
        remote: "127.0.0.1:50000".parse().unwrap_or_else(|e| panic!("{e}")),
        data: serde_json::Map::new(),
    };
    let response = AuditResponse {
        status: 200,
        data: Some(
            json!({ "username": "v-root-app-Xk2mQ9aLp0Zr", "password": "Aa1-bench-password-0123" }),
        ),
        lease_id: Some("database/creds/app/0123456789abcdef0123456789abcdef".into()),
        lease_duration: 3600,
        error: None,
        credential: true,
    };
    let pairs = entries / 2;
    let mut times = Vec::with_capacity(pairs);
    let started = Instant::now();
    for _ in 0..pairs {
        let t = Instant::now();
        auditor
            .log_request(Some(&auth), &request)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        auditor
            .log_response(Some(&auth), &request, &response)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        times.push(t.elapsed() / 2);
    }
    let mean = started.elapsed().as_secs_f64() * 1e6 / (pairs * 2) as f64;
    times.sort();
    (mean, percentile(&times, 0.5), percentile(&times, 0.99))
}

/// Issue + revoke pairs per second through the HTTP API.
async fn issuance(pairs: usize, clients: usize, audit_file: Option<&std::path::Path>) -> f64 {
    let broker = InProcess::start(CoreOptions {
        audit_devices: audit_file.map(|f| device(f, true)).into_iter().collect(),
        ..CoreOptions::default()
    })
    .await;
    let http = reqwest::Client::new();
    let s = postgres();
    broker
        .post(&http, "sys/mounts/database", json!({ "type": "database" }))
        .await;
    broker
        .post(
            &http,
            "database/config/pg",
            json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": format!("postgresql://{{{{username}}}}:{{{{password}}}}@{}:{}/{}", s.host, s.port, s.database),
                "username": s.user, "password": s.password, "allowed_roles": "*",
                "max_open_connections": clients,
            }),
        )
        .await;
    broker
        .post(
            &http,
            "database/roles/app",
            json!({ "db_name": "pg", "default_ttl": "1h", "creation_statements":
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';" }),
        )
        .await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, base, token) = (http.clone(), broker.base.clone(), broker.token.clone());
        let count = pairs / clients + usize::from(c < pairs % clients);
        tasks.push(tokio::spawn(async move {
            for _ in 0..count {
                let creds: serde_json::Value = http
                    .get(format!("{base}/database/creds/app"))
                    .header("X-Vault-Token", &token)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                http.put(format!("{base}/sys/leases/revoke"))
                    .header("X-Vault-Token", &token)
                    .json(&json!({ "lease_id": creds["lease_id"] }))
                    .send()
                    .await?
                    .error_for_status()?;
            }
            Ok::<_, reqwest::Error>(())
        }));
    }
    for t in tasks {
        t.await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    pairs as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let entries = env_or("BENCH_ENTRIES", 20_000);
    let pairs = env_or("BENCH_PAIRS", 300);
    let clients = env_or("BENCH_CLIENTS", 4);

    println!("audit entry on a file device (request + response of an issuance, HMAC'd, chained):");
    let (mean, p50, p99) = per_entry(entries, false).await;
    println!(
        "  fsync off ({entries} entries): mean {mean:.1} µs   p50 {p50:.1} µs   p99 {p99:.1} µs"
    );
    let synced = entries / 10;
    let (mean, p50, p99) = per_entry(synced, true).await;
    println!(
        "  fsync on the response ({synced} entries): mean {mean:.1} µs   p50 {p50:.1} µs   p99 {p99:.1} µs"
    );

    let without = issuance(pairs, clients, None).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let with = issuance(pairs, clients, Some(&dir.path().join("audit.log"))).await;
    println!("PostgreSQL issue+revoke over HTTP ({pairs} pairs, {clients} clients):");
    println!("  no audit device:             {without:.0} pairs/s");
    println!("  file device, fsync on:       {with:.0} pairs/s");
    println!("  ratio with/without:          {:.2}", with / without);
}
