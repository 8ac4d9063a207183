//! Lease scale: millions of active leases in SQLite and in PostgreSQL
//! storage, and what they cost a broker process started on top of them.
//!
//! For each storage and each lease count it
//!
//! 1. initializes a store and writes that many active leases (sealed exactly
//!    as issuance seals them, each bound to its own id) plus `BENCH_DUE`
//!    already-expired ones, in bulk through the storage's own driver;
//! 2. starts the real broker process (`broker server --config`) on it and
//!    measures the time to its first `200` from `sys/health`;
//! 3. measures the expiration worker draining the expired leases, revoking
//!    each through a no-op plugin (the sandbox's `hostile` fixture with
//!    `ok` behaviour: a real fresh instance per revocation, nothing done);
//! 4. reads the process's resident memory (VmRSS, VmHWM);
//! 5. looks random leases up over HTTP (`sys/leases/lookup`), one at a time.
//!
//! Run: `cargo bench -p broker-tests --bench leases`.
//! `BENCH_LEASES` (comma-separated counts, default `1000000`), `BENCH_DUE`
//! (default 100000), `BENCH_LOOKUPS` (default 5000), `BENCH_STORAGE`
//! (`sqlite,postgres`) and `BENCH_POSTGRES_URL` (an admin URL, default the
//! local server as user `postgres`; a database is created and dropped)
//! change it.

use std::path::Path;
use std::time::{Duration, Instant};

use broker::config::Config;
use broker::lease::LeaseData;
use broker_tests::HOSTILE_WASM;
use broker_tests::bench::{
    BrokerProcess, ScratchDatabase, config_toml, env_or, free_port, percentile,
};
use serde_json::json;
use sqlx::Connection;

/// Lease ids: a rising counter, then a random-looking tail (SplitMix64).
/// Rising ids append to the primary key's B-tree, which lets the bench
/// write ten million rows in minutes; lookups still land anywhere in it.
/// (Real ids are random, so a real store's pages are less full.)
struct Ids(u64);

impl Ids {
    fn next(&mut self) -> String {
        self.0 = self.0.wrapping_add(1);
        let mut z = self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        format!("noop/creds/bench/{:010x}{z:016x}", self.0)
    }
}

/// One synthetic lease row, as storage keeps it.
struct Row {
    id: String,
    expires_at: i64,
    sealed: Vec<u8>,
}

enum Store {
    Sqlite(std::path::PathBuf),
    Postgres(ScratchDatabase),
}

impl Store {
    fn name(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    fn toml(&self) -> String {
        match self {
            Store::Sqlite(path) => format!("type = \"sqlite\"\npath = \"{}\"", path.display()),
            Store::Postgres(db) => format!("type = \"postgres\"\nurl = \"{}\"", db.url),
        }
    }

    /// Writes `rows` in one transaction per batch.
    async fn insert(&self, rows: &[Row], now: i64) {
        let state = "active";
        match self {
            Store::Sqlite(path) => {
                let mut c =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                let mut tx = c.begin().await.unwrap_or_else(|e| panic!("{e}"));
                // Many rows per statement: one trip through the driver each.
                for chunk in rows.chunks(500) {
                    let values = vec!["(?, ?, ?, ?, ?, ?, 0, ?)"; chunk.len()].join(", ");
                    let sql = format!(
                        "INSERT INTO leases (id, state, issued_at, expires_at, max_expires_at, \
                         next_attempt_at, attempts, sealed) VALUES {values}"
                    );
                    let mut q = sqlx::query(&sql);
                    for r in chunk {
                        q = q
                            .bind(&r.id)
                            .bind(state)
                            .bind(now)
                            .bind(r.expires_at)
                            .bind(r.expires_at)
                            .bind(r.expires_at)
                            .bind(&r.sealed);
                    }
                    q.execute(&mut *tx).await.unwrap_or_else(|e| panic!("{e}"));
                }
                tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
            }
            Store::Postgres(db) => {
                let mut c = sqlx::PgConnection::connect(&db.url)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
                let expires: Vec<i64> = rows.iter().map(|r| r.expires_at).collect();
                let sealed: Vec<&[u8]> = rows.iter().map(|r| r.sealed.as_slice()).collect();
                sqlx::query(
                    "INSERT INTO leases (id, state, issued_at, expires_at, max_expires_at, \
                     next_attempt_at, attempts, sealed) \
                     SELECT id, $2, $3, e, e, e, 0, s FROM UNNEST($1::text[], $4::bigint[], $5::bytea[]) AS t(id, e, s)",
                )
                .bind(&ids)
                .bind(state)
                .bind(now)
                .bind(&expires)
                .bind(&sealed)
                .execute(&mut c)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }

    async fn drop_database(&self) {
        if let Store::Postgres(db) = self {
            db.drop_database().await;
        }
    }
}

/// `VmRSS` and `VmHWM` of `pid`, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_else(|e| panic!("{e}"));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The broker's `broker_revocations_total` counter, from `sys/metrics`.
async fn revocations(http: &reqwest::Client, base: &str, token: &str) -> u64 {
    let text = http
        .get(format!("{base}/sys/metrics"))
        .header("X-Vault-Token", token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    text.lines()
        .find_map(|l| l.strip_prefix("broker_revocations_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

struct Figures {
    fill_secs: f64,
    start_ms: f64,
    revocations_per_sec: f64,
    rss_mib: f64,
    hwm_mib: f64,
    lookup: (f64, f64, f64),
}

async fn run(store: &Store, leases: usize, due: usize, lookups: usize) -> Figures {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(plugins.join("noop.wasm"), HOSTILE_WASM).unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let config_path = dir.path().join("broker.toml");
    let config_text = config_toml(
        dir.path(),
        port,
        &store.toml(),
        &format!(
            "[plugins]\ndirectory = \"{}\"\n\n[leases]\nworker_interval = \"1s\"",
            plugins.display()
        ),
    );
    std::fs::write(&config_path, &config_text).unwrap_or_else(|e| panic!("{e}"));
    let config = Config::parse(&config_text).unwrap_or_else(|e| panic!("{e}"));
    let request = broker::unseal::InitRequest {
        recovery_shares: Some(0),
        ..Default::default()
    };
    let token = broker::server::initialize(&config, &request)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .root_token
        .to_string();

    // Fill: seal each lease under the core's keyring, write in batches.
    let fill = Instant::now();
    let core = broker::server::open(&config)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .core()
        .unwrap_or_else(|| panic!("the local seal did not unseal the broker"));
    // A plugin in the directory runs only once registered by its hash.
    core.register_plugin(broker::plugin::Registration {
        name: "hostile".into(),
        kind: "database".into(),
        command: "noop.wasm".into(),
        sha256: broker::plugin::sha256_hex(HOSTILE_WASM),
        version: String::new(),
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let data = LeaseData {
        kind: Some(broker::lease::LeaseKind::Credential),
        mount: "noop/".into(),
        config_name: "bench".into(),
        plugin: "hostile".into(),
        connection: json!({}),
        revocation: Some(json!({ "ok": true })),
        ..LeaseData::default()
    };
    let now = broker::clock::unix_now_signed();
    let mut ids = Ids(0);
    let mut sample = Vec::with_capacity(lookups);
    let total = leases + due;
    let batch = 20_000;
    let step = (total / lookups.max(1)).max(1);
    let spread = (total / due.max(1)).max(1);
    let mut written = 0;
    while written < total {
        let n = batch.min(total - written);
        let mut rows = Vec::with_capacity(n);
        for i in written..written + n {
            let id = ids.next();
            // Every `spread`-th lease expired a minute ago, so the expired
            // ones lie scattered through the index as they would in a real
            // store; the rest expire in 30 days.
            let expired = i % spread == 0 && i / spread < due;
            let expires_at = if expired { now - 60 } else { now + 30 * 86_400 };
            if !expired && (i + 1).is_multiple_of(step) && sample.len() < lookups {
                sample.push(id.clone());
            }
            let sealed = core
                .leases()
                .seal(&id, &data)
                .unwrap_or_else(|e| panic!("{e}"));
            rows.push(Row {
                id,
                expires_at,
                sealed,
            });
        }
        store.insert(&rows, now).await;
        written += n;
    }
    drop(core);
    let fill_secs = fill.elapsed().as_secs_f64();
    if let Store::Sqlite(path) = store {
        // Leave the page cache as a restart would find it, not the WAL.
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    // Start the real server on it.
    let http = reqwest::Client::new();
    let broker = BrokerProcess::start(
        Path::new(env!("CARGO_BIN_EXE_broker-under-test")),
        &config_path,
        port,
        &dir.path().join("broker.log"),
    )
    .await;
    let base = broker.base.clone();
    let start_ms = broker.startup.as_secs_f64() * 1e3;

    // The worker drains the expired leases.
    let serving = Instant::now();
    loop {
        let done = revocations(&http, &base, &token).await;
        if done >= due as u64 {
            break;
        }
        assert!(
            serving.elapsed() < Duration::from_secs(600),
            "only {done} of {due} revoked in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let revocations_per_sec = due as f64 / serving.elapsed().as_secs_f64();
    let (rss_mib, hwm_mib) = memory(broker.pid());

    let mut times = Vec::with_capacity(sample.len());
    for id in &sample {
        let t = Instant::now();
        let r = http
            .put(format!("{base}/sys/leases/lookup"))
            .header("X-Vault-Token", &token)
            .json(&json!({ "lease_id": id }))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), 200, "lookup of {id}");
        times.push(t.elapsed());
    }
    times.sort();
    drop(broker);
    Figures {
        fill_secs,
        start_ms,
        revocations_per_sec,
        rss_mib,
        hwm_mib,
        lookup: (
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            percentile(&times, 0.999),
        ),
    }
}

#[tokio::main]
async fn main() {
    let counts: Vec<usize> = std::env::var("BENCH_LEASES")
        .unwrap_or_else(|_| "1000000".into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .unwrap_or_else(|e| panic!("BENCH_LEASES: {e}"))
        })
        .collect();
    let due = env_or("BENCH_DUE", 100_000);
    let lookups = env_or("BENCH_LOOKUPS", 5000);
    let storages = std::env::var("BENCH_STORAGE").unwrap_or_else(|_| "sqlite,postgres".into());

    println!(
        "| storage | active leases | fill (s) | start-up to serving | revocations/s ({due} due, no-op plugin) | RSS after | peak RSS | lookup p50 / p99 / p99.9 |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for storage in storages.split(',') {
        for &leases in &counts {
            let scratch = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let store = match storage.trim() {
                "sqlite" => Store::Sqlite(scratch.path().join("broker.db")),
                "postgres" => Store::Postgres(
                    ScratchDatabase::create(&format!("broker_lease_bench_{}", std::process::id()))
                        .await,
                ),
                other => panic!("BENCH_STORAGE: unknown storage {other}"),
            };
            let f = run(&store, leases, due, lookups).await;
            store.drop_database().await;
            println!(
                "| {} | {leases} | {:.0} | {:.0} ms | {:.0} | {:.0} MiB | {:.0} MiB | {:.0} / {:.0} / {:.0} µs |",
                store.name(),
                f.fill_secs,
                f.start_ms,
                f.revocations_per_sec,
                f.rss_mib,
                f.hwm_mib,
                f.lookup.0,
                f.lookup.1,
                f.lookup.2,
            );
        }
    }
}
