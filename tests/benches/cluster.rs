//! Credentials per second with 1, 2 and 3 broker nodes on one PostgreSQL
//! database, in one run: each node a process of its own, the clients
//! spread over the nodes, each operation an issue and a revoke of a
//! PostgreSQL credential (as `load`'s `postgres` scenario). Beside each
//! rate, the CPU each node and PostgreSQL spent per credential (from
//! `/proc`, the storage database apart from the one the credentials are
//! made on), so that on a machine with few cores — where more nodes cannot
//! go faster — the cost of a node and the database's share still show.
//!
//! Run: `cargo bench -p broker-tests --bench cluster`. `BENCH_CLIENTS`
//! (default 6) and `BENCH_PAIRS` (default 600) change it. Storage is a
//! scratch database on `BENCH_POSTGRES_URL` (an admin URL, default the
//! local server as user `postgres`); the credentials are made on the test
//! PostgreSQL (`BROKER_TEST_POSTGRES_URL`, else a throwaway cluster).

use std::path::PathBuf;
use std::sync::Arc;

use broker_tests::bench::{BrokerProcess, ScratchDatabase, config_toml, drive, env_or, free_port};
use broker_tests::postgres;
use serde_json::{Value, json};

const PG_CREATE: &str =
    r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"#;

/// Clock ticks per second in `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// User + system CPU of `pid` so far, in seconds.
fn cpu_of(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The fields after the command name (which may hold spaces) in parens.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12
    // after the state.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / TICKS
}

/// The parent of `pid`, from `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn is_postgres(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres")
}

/// CPU of the PostgreSQL processes on the machine (servers and their
/// backends), in seconds: (the broker's storage server, the server the
/// credentials are made on). A process belongs to the server whose
/// postmaster it descends from; the tests' throwaway server runs from a
/// `broker-test-pg-` directory. Processes that ended in between are lost,
/// so the figures are floors. When both are one server, all is storage.
fn postgres_cpu() -> (f64, f64) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return (0.0, 0.0);
    };
    let (mut storage, mut credentials) = (0.0, 0.0);
    for pid in entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| is_postgres(*pid))
    {
        let mut root = pid;
        while let Some(parent) = parent_of(root).filter(|p| is_postgres(*p)) {
            root = parent;
        }
        let cmdline = std::fs::read(format!("/proc/{root}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("broker-test-pg-") {
            credentials += cpu_of(pid);
        } else {
            storage += cpu_of(pid);
        }
    }
    (storage, credentials)
}

/// Transactions committed in the database at `url` so far (its
/// statistics are flushed about once a second: read after a pause).
async fn commits(url: &str) -> i64 {
    use sqlx::Connection;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let mut c = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query_scalar(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&mut c)
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A node's client.
struct Node {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Node {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, String> {
        let mut request = self
            .http
            .request(method, format!("{}/{path}", self.base))
            .header("X-Vault-Token", &self.token);
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

    async fn issue_revoke(&self) -> Result<(), String> {
        let creds = self
            .call(reqwest::Method::GET, "database/creds/app", Value::Null)
            .await?;
        let lease = creds["lease_id"].as_str().ok_or("no lease id")?.to_owned();
        self.call(
            reqwest::Method::PUT,
            "sys/leases/revoke",
            json!({ "lease_id": lease }),
        )
        .await
        .map(|_| ())
    }
}

/// `n` nodes on a fresh scratch database, the database engine set up.
async fn cluster(
    n: usize,
    clients: usize,
) -> (
    Vec<BrokerProcess>,
    Vec<Arc<Node>>,
    ScratchDatabase,
    Vec<tempfile::TempDir>,
) {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_broker-under-test"));
    let db =
        ScratchDatabase::create(&format!("broker_cluster_bench_{}_{n}", std::process::id())).await;
    let storage = format!("type = \"postgres\"\nurl = \"{}\"", db.url);
    let first = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut dirs = Vec::new();
    let mut processes = Vec::new();
    let mut token = String::new();
    for i in 1..=n {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let port = free_port();
        // Every node uses the first node's key file: one seal.
        let config = dir.path().join("broker.toml");
        std::fs::write(
            &config,
            config_toml(
                first.path(),
                port,
                &storage,
                &format!("[cluster]\nnode_id = \"node{i}\"\n"),
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        if i == 1 {
            let init = std::process::Command::new(&exe)
                .args(["operator", "init", "--format", "json", "--config"])
                .arg(&config)
                .output()
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(
                init.status.success(),
                "{}",
                String::from_utf8_lossy(&init.stderr)
            );
            token = serde_json::from_slice::<Value>(&init.stdout)
                .ok()
                .and_then(|v| v["root_token"].as_str().map(str::to_owned))
                .unwrap_or_else(|| panic!("operator init: no root token"));
        }
        processes
            .push(BrokerProcess::start(&exe, &config, port, &dir.path().join("broker.log")).await);
        dirs.push(dir);
    }
    dirs.push(first);
    let nodes: Vec<Arc<Node>> = processes
        .iter()
        .map(|p| {
            Arc::new(Node {
                http: reqwest::Client::new(),
                base: p.base.clone(),
                token: token.clone(),
            })
        })
        .collect();
    let s = postgres();
    let setup = [
        ("sys/mounts/database", json!({ "type": "database" })),
        (
            "database/config/pg",
            json!({ "plugin_name": "postgresql-database-plugin",
                "connection_url": format!("postgresql://{{{{username}}}}:{{{{password}}}}@{}:{}/{}", s.host, s.port, s.database),
                "username": s.user, "password": s.password, "allowed_roles": "*",
                "max_open_connections": clients }),
        ),
        (
            "database/roles/app",
            json!({ "db_name": "pg", "default_ttl": "1h", "creation_statements": PG_CREATE }),
        ),
    ];
    for (path, body) in setup {
        nodes[0]
            .call(reqwest::Method::POST, path, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // Every node serves the role before the clock starts.
    for node in &nodes {
        let started = std::time::Instant::now();
        while node
            .call(reqwest::Method::GET, "database/roles/app", Value::Null)
            .await
            .is_err()
        {
            assert!(
                started.elapsed().as_secs() < 10,
                "a node never saw the role"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    (processes, nodes, db, dirs)
}

#[tokio::main]
async fn main() {
    let clients = env_or("BENCH_CLIENTS", 6);
    let pairs = env_or("BENCH_PAIRS", 600);
    println!(
        "PostgreSQL credential pairs (issue + revoke), {pairs} per run, {clients} clients spread over the nodes; storage on one PostgreSQL"
    );
    println!(
        "| nodes | pairs/s | p50 | p99 | broker CPU ms/pair (all nodes) | storage PostgreSQL CPU ms/pair | credentials' PostgreSQL CPU ms/pair | storage database's share of broker + storage CPU | storage transactions/pair (reads included) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for n in 1..=3 {
        let (processes, nodes, db, _dirs) = cluster(n, clients).await;
        // A short warm-up on every node.
        for node in &nodes {
            for _ in 0..10 {
                node.issue_revoke().await.unwrap_or_else(|e| panic!("{e}"));
            }
        }
        let commits_before = commits(&db.url).await;
        let brokers_before: f64 = processes.iter().map(|p| cpu_of(p.pid())).sum();
        let pg_before = postgres_cpu();
        let targets = nodes.clone();
        let run = drive(clients, pairs, move |c, _| {
            let node = targets[c % targets.len()].clone();
            async move { node.issue_revoke().await }
        })
        .await;
        let brokers = processes.iter().map(|p| cpu_of(p.pid())).sum::<f64>() - brokers_before;
        let pg_after = postgres_cpu();
        let commits = commits(&db.url).await - commits_before;
        let (storage, credentials) = (pg_after.0 - pg_before.0, pg_after.1 - pg_before.1);
        let per = |cpu: f64| cpu * 1000.0 / run.ops as f64;
        println!(
            "| {n} | {:.0} | {} | {} | {:.2} | {:.2} | {:.2} | {:.0}% | {:.1} |",
            run.rate,
            broker_tests::bench::micros(run.p50),
            broker_tests::bench::micros(run.p99),
            per(brokers),
            per(storage),
            per(credentials),
            100.0 * storage / (storage + brokers).max(f64::EPSILON),
            commits as f64 / run.ops as f64
        );
        drop(processes);
        db.drop_database().await;
    }
}
