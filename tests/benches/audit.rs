//! The audit log's costs, printed as figures for BENCHMARKS.md:
//!
//! 1. the chain step alone, before and after the keyed chain, on the same
//!    entry in the same run: the old unkeyed SHA-256 link (rebuilt here, as
//!    it was) against the keyed link (HMAC under the chain key, then the
//!    public hash), and an Ed25519-signed checkpoint;
//! 2. the cost of one entry (a request or a response entry of an issuance,
//!    HMAC'd and chained) on a file device, with and without fsync;
//! 3. credential issuance (+ revocation) through the HTTP API against a real
//!    PostgreSQL, with no audit device and with a file device (fsync on),
//!    in the same run, and their ratio.
//!
//! Run: `cargo bench -p broker-tests --bench audit`. `BENCH_ENTRIES`,
//! `BENCH_PAIRS` and `BENCH_CLIENTS` change the counts.

use std::sync::Arc;
use std::time::Instant;

use broker::audit::chain::{ChainHead, Reason, canonical, checkpoint_entry, link};
use broker::audit::keys::ChainKeys;
use broker::audit::{
    AuditAuth, AuditPolicy, AuditRequest, AuditResponse, Auditor, DeviceConfig, DeviceOptions,
};
use broker::barrier::{Barrier, Keyring, SealedStorage};
use broker::core::CoreOptions;
use broker_tests::bench::{InProcess, env_or, percentile, sqlite};
use broker_tests::postgres;
use serde_json::json;
use sha2::Digest;

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
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let auth = AuditAuth {
        client_token: zeroize::Zeroizing::new("brk.0123456789abcdef0123456789abcdef".into()),
        accessor: String::new(),
        display_name: "root".into(),
        policies: vec!["root".into()],
        token_ttl: 0,
        token_type: "service",
    };
    let request = AuditRequest {
        id: "6a2f1c4e-0000-4000-8000-000000000000".into(),
        operation: "read",
        path: "database/creds/app".into(),
        mount_type: Some("database".into()),
        mount_accessor: Some("database_1234abcd".into()),
        remote: "127.0.0.1:50000".parse().unwrap_or_else(|e| panic!("{e}")),
        data: serde_json::Map::new(),
        clear_fields: vec!["lease_id"].into(),
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
        ..AuditResponse::default()
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

/// A response entry of an issuance as the log holds it (values HMAC'd).
fn issuance_entry() -> serde_json::Map<String, serde_json::Value> {
    let h = |s: &str| format!("hmac-sha256:{}", s.repeat(64 / s.len()));
    let serde_json::Value::Object(m) = json!({
        "time": "2026-11-30T15:00:00.123456789Z",
        "type": "response",
        "auth": { "client_token": h("a"), "accessor": h("b"), "display_name": "root",
                  "policies": ["root"], "token_policies": ["root"], "token_ttl": 0, "token_type": "service" },
        "request": { "id": "6a2f1c4e-0000-4000-8000-000000000000", "operation": "read",
                     "path": "database/creds/app", "mount_type": "database",
                     "mount_accessor": "database_1234abcd", "client_token": h("a"),
                     "client_token_accessor": h("b"), "remote_address": "127.0.0.1",
                     "remote_port": 50000, "data": null },
        "response": { "status": 200, "mount_type": "database",
                      "data": { "username": h("c"), "password": h("d") },
                      "secret": { "lease_id": "database/creds/app/0123456789abcdef0123456789abcdef",
                                  "lease_duration": 3600 } },
    }) else {
        unreachable!()
    };
    m
}

/// The chain as it was before it was keyed: SHA-256 over the canonical form.
fn unkeyed_link(
    mut entry: serde_json::Map<String, serde_json::Value>,
    head: &mut ChainHead,
) -> String {
    let seq = head.seq + 1;
    entry.insert("seq".into(), json!(seq));
    entry.insert("prev_hash".into(), json!(head.hash));
    let mut entry = serde_json::Value::Object(entry);
    let mut text = String::with_capacity(512);
    canonical(&entry, &mut text);
    let hash = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    entry["hash"] = json!(hash);
    *head = ChainHead { hash, seq };
    entry.to_string()
}

/// µs per chain step (no I/O): (unkeyed, keyed, signed checkpoint).
fn chain_step(n: usize) -> (f64, f64, f64) {
    let keys = ChainKeys::generate().unwrap_or_else(|e| panic!("{e}"));
    let entry = issuance_entry();
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    };
    let mut head = ChainHead::default();
    let mut bytes = 0;
    // Alternated, so neither runs only on a cold or a warm cache, or only
    // while something else loads the machine.
    const ROUNDS: usize = 5;
    let mut before = 0.0;
    let mut after = 0.0;
    for _ in 0..ROUNDS {
        before += time(&mut || bytes += unkeyed_link(entry.clone(), &mut head).len());
        after += time(&mut || bytes += link(entry.clone(), &mut head, &keys).len());
    }
    let signed = time(&mut || {
        bytes += link(
            checkpoint_entry(Reason::Interval, false, &keys),
            &mut head,
            &keys,
        )
        .len()
    });
    assert!(bytes > 0);
    (before / ROUNDS as f64, after / ROUNDS as f64, signed)
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

    let steps = env_or("BENCH_STEPS", 20_000);
    let (before, after, signed) = chain_step(steps);
    println!("audit chain step, one issuance response entry, no I/O ({steps} entries):");
    println!("  before, unkeyed SHA-256 link:          {before:.2} µs");
    println!("  after, keyed link (HMAC + SHA-256):    {after:.2} µs");
    println!("  signed checkpoint line (Ed25519):      {signed:.2} µs");
    println!(
        "  after, with a checkpoint per {} entries: {:.2} µs per entry ({:+.2} µs over before)",
        broker::audit::chain::CHECKPOINT_EVERY,
        after + signed / broker::audit::chain::CHECKPOINT_EVERY as f64,
        after + signed / broker::audit::chain::CHECKPOINT_EVERY as f64 - before
    );

    println!(
        "audit entry on a file device (request + response of an issuance, HMAC'd, keyed chain):"
    );
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
