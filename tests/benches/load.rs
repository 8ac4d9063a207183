//! The load generator: a real broker process driven over HTTP by N
//! concurrent clients, each scenario beside its raw baseline in the same
//! run — the same SQL straight through the driver, the same key generation
//! and signing straight through the crypto library — and their ratio.
//!
//! Scenarios: PostgreSQL credentials (issue + revoke), MariaDB/MySQL
//! credentials (issue + revoke), certificate issuance (ECDSA P-256),
//! lease renewal, and `scram`: PostgreSQL credentials with
//! `password_authentication` `password` and `scram-sha-256`, both beside
//! one raw baseline that sends the password (the server hashes it).
//!
//! Run: `cargo bench -p broker-tests --bench load`. `BENCH_CLIENTS`
//! (default 4), `BENCH_PAIRS` (database pairs, default 400), `BENCH_CERTS`
//! (default 2000), `BENCH_RENEWALS` (default 2000) and `BENCH_SCENARIOS`
//! (comma-separated: `postgres,mysql,pki,renew,scram`) change it. The databases
//! come from `BROKER_TEST_POSTGRES_URL` / `BROKER_TEST_MYSQL_URL` as in the
//! tests. The broker stores its leases in SQLite unless `BENCH_STORAGE` is
//! `postgres`: then in a scratch database on `BENCH_POSTGRES_URL` (an admin
//! URL, default the local server as user `postgres`).
//!
//! `BENCH_BROKER_BINS` (comma-separated `label=path`, e.g.
//! `before=/tmp/old/broker,after=target/release/broker`) compares broker
//! builds in one run: each binary gets its own broker process, initialized
//! by its own `operator init`, and each scenario runs against each in turn,
//! beside its own raw baseline, its rows labelled. Unset, the broker is
//! this tree's.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use broker_tests::bench::{
    BrokerProcess, Run, ScratchDatabase, config_toml, drive, env_or, free_port,
};
use broker_tests::{mysql, pg_connect, postgres};
use mysql_async::prelude::Queryable;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};
use tokio::sync::Mutex;

const PG_CREATE: &str =
    r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"#;
const MYSQL_CREATE: &str = "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; GRANT SELECT ON *.* TO '{{name}}'@'%';";

/// The broker under load, and a client for it.
struct Target {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Target {
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

    async fn setup(&self, path: &str, body: Value) {
        self.call(reqwest::Method::POST, path, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Issue then revoke one credential; the pair is the operation.
    async fn issue_revoke(&self, role: &str) -> Result<(), String> {
        let creds = self
            .call(
                reqwest::Method::GET,
                &format!("database/creds/{role}"),
                Value::Null,
            )
            .await?;
        let lease_id = creds["lease_id"].as_str().ok_or("no lease_id")?.to_owned();
        self.call(
            reqwest::Method::PUT,
            "sys/leases/revoke",
            json!({ "lease_id": lease_id }),
        )
        .await
        .map(drop)
    }
}

/// The plugin's statements for one PostgreSQL pair, sent directly: the
/// name check, the creation in a transaction, and the default revocation.
async fn pg_direct_pair(
    client: &tokio_postgres::Client,
    name: &str,
    password: &str,
) -> Result<(), String> {
    let e = |e: tokio_postgres::Error| e.to_string();
    client
        .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
        .await
        .map_err(e)?;
    client
        .batch_execute(&format!(
            "BEGIN; CREATE ROLE \"{name}\" WITH LOGIN PASSWORD '{password}' \
             VALID UNTIL '2100-01-01 00:00:00+00'; COMMIT;"
        ))
        .await
        .map_err(e)?;
    client
        .batch_execute(&format!("BEGIN; ALTER ROLE \"{name}\" NOLOGIN; COMMIT;"))
        .await
        .map_err(e)?;
    client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .await
        .map_err(e)?;
    client
        .batch_execute(&format!(
            "BEGIN; REASSIGN OWNED BY \"{name}\" TO CURRENT_USER; DROP OWNED BY \"{name}\"; \
             DROP ROLE IF EXISTS \"{name}\"; COMMIT;"
        ))
        .await
        .map_err(e)
}

/// The MySQL plugin's statements for one pair, sent directly.
async fn mysql_direct_pair(conn: &mut mysql_async::Conn, name: &str) -> Result<(), String> {
    // The plugin's statements in the plugin's order. The three queries bind
    // the name through prepared statements, which this connection keeps for
    // the whole run: the fastest way the driver has to send them. (The
    // plugin sends the name inline: the host resets its session between
    // calls, which would drop a prepared statement after one use.)
    let e = |e: mysql_async::Error| e.to_string();
    conn.exec_drop("SELECT 1 FROM mysql.user WHERE User = ?", (name,))
        .await
        .map_err(e)?;
    conn.query_drop(format!(
        "CREATE USER '{name}'@'%' IDENTIFIED BY 'Aa1bench0direct0password0'"
    ))
    .await
    .map_err(e)?;
    conn.query_drop(format!("GRANT SELECT ON *.* TO '{name}'@'%'"))
        .await
        .map_err(e)?;
    let hosts: Vec<String> = conn
        .exec("SELECT Host FROM mysql.user WHERE User = ?", (name,))
        .await
        .map_err(e)?;
    let _: Vec<u64> = conn
        .exec(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()",
            (name,),
        )
        .await
        .map_err(e)?;
    for host in hosts {
        conn.query_drop(format!("DROP USER IF EXISTS '{name}'@'{host}'"))
            .await
            .map_err(e)?;
    }
    Ok(())
}

/// What one issuance does, without the broker: a P-256 key pair, a leaf
/// certificate with two SANs, signed by a P-256 CA.
fn raw_certificate(issuer: &Issuer<'_, KeyPair>) -> Result<(), String> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let params = CertificateParams::new(vec![
        "bench.example.com".to_owned(),
        "www.bench.example.com".to_owned(),
    ])
    .map_err(|e| e.to_string())?;
    let cert = params.signed_by(&key, issuer).map_err(|e| e.to_string())?;
    std::hint::black_box((cert.pem(), key.serialize_pem()));
    Ok(())
}

struct Row {
    scenario: &'static str,
    broker: Run,
    raw: Run,
}

fn pg_url() -> String {
    let s = postgres();
    format!(
        "postgresql://{{{{username}}}}:{{{{password}}}}@{}:{}/{}",
        s.host, s.port, s.database
    )
}

/// `database/config/{name}` and role `{name}` on the test PostgreSQL,
/// with `password_authentication` set when given.
async fn pg_setup(t: &Arc<Target>, name: &str, clients: usize, authentication: Option<&str>) {
    let s = postgres();
    let mut config = json!({ "plugin_name": "postgresql-database-plugin", "connection_url": pg_url(),
        "username": s.user, "password": s.password, "allowed_roles": "*",
        "max_open_connections": clients });
    if let (Some(a), Some(fields)) = (authentication, config.as_object_mut()) {
        fields.insert("password_authentication".into(), json!(a));
    }
    t.setup(&format!("database/config/{name}"), config).await;
    t.setup(
        &format!("database/roles/{name}"),
        json!({ "db_name": name, "default_ttl": "1h", "creation_statements": PG_CREATE }),
    )
    .await;
}

async fn pg_broker_pairs(t: &Arc<Target>, role: &'static str, clients: usize, pairs: usize) -> Run {
    let target = t.clone();
    drive(clients, pairs, move |_, _| {
        let t = target.clone();
        async move { t.issue_revoke(role).await }
    })
    .await
}

/// The raw baseline: the plugin's statements straight through the driver,
/// the password sent as it is (so the server hashes it), or with `scram`
/// its SCRAM verifier, computed here for each pair.
async fn pg_raw_pairs(clients: usize, pairs: usize, scram: bool) -> Run {
    let s = postgres();
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(Arc::new(
            pg_connect(s, &s.user, &s.password)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        ));
    }
    let conns = Arc::new(conns);
    let pid = std::process::id();
    drive(clients, pairs, move |c, i| {
        let conns = conns.clone();
        async move {
            let password = "Aa1bench0direct0password0";
            let sent = if scram {
                broker::sql::scram::verifier(password).map_err(|e| e.to_string())?
            } else {
                password.to_owned()
            };
            pg_direct_pair(&conns[c], &format!("v-direct-{pid}-{c}-{i}"), &sent).await
        }
    })
    .await
}

/// PostgreSQL credentials sending the password and sending its SCRAM
/// verifier, each against the same raw baseline, in one run.
async fn scram_pairs(t: &Arc<Target>, clients: usize, pairs: usize) -> Vec<Row> {
    pg_setup(t, "pg-plain", clients, Some("password")).await;
    pg_setup(t, "pg-scram", clients, Some("scram-sha-256")).await;
    let plain = pg_broker_pairs(t, "pg-plain", clients, pairs).await;
    let scram = pg_broker_pairs(t, "pg-scram", clients, pairs).await;
    let raw = pg_raw_pairs(clients, pairs, false).await;
    let raw_scram = pg_raw_pairs(clients, pairs, true).await;
    vec![
        Row {
            scenario: "PostgreSQL credential, raw driver sending a SCRAM verifier (against the raw plaintext)",
            broker: raw_scram,
            raw,
        },
        Row {
            scenario: "PostgreSQL credential, password_authentication=password",
            broker: plain,
            raw,
        },
        Row {
            scenario: "PostgreSQL credential, password_authentication=scram-sha-256",
            broker: scram,
            raw,
        },
    ]
}

async fn postgres_pairs(t: &Arc<Target>, clients: usize, pairs: usize) -> Row {
    pg_setup(t, "pg", clients, None).await;
    let broker = pg_broker_pairs(t, "pg", clients, pairs).await;
    Row {
        scenario: "PostgreSQL credential, issue + revoke",
        broker,
        raw: pg_raw_pairs(clients, pairs, false).await,
    }
}

async fn mysql_pairs(t: &Arc<Target>, clients: usize, pairs: usize) -> Row {
    let s = mysql();
    t.setup(
        "database/config/my",
        json!({ "plugin_name": "mysql-database-plugin",
            "connection_url": format!("{{{{username}}}}:{{{{password}}}}@tcp({}:{})/", s.host, s.port),
            "username": s.user, "password": s.password, "allowed_roles": "*",
            "max_open_connections": clients }),
    )
    .await;
    t.setup(
        "database/roles/my",
        json!({ "db_name": "my", "default_ttl": "1h", "creation_statements": MYSQL_CREATE }),
    )
    .await;
    let target = t.clone();
    let broker = drive(clients, pairs, move |_, _| {
        let t = target.clone();
        async move { t.issue_revoke("my").await }
    })
    .await;

    let mut conns = Vec::new();
    for _ in 0..clients {
        let conn = mysql_async::Conn::new(s.mysql_opts(&s.user, &s.password))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        conns.push(Arc::new(Mutex::new(conn)));
    }
    let conns = Arc::new(conns);
    let pid = std::process::id();
    let raw = drive(clients, pairs, move |c, i| {
        let conns = conns.clone();
        async move {
            let mut conn = conns[c].lock().await;
            mysql_direct_pair(&mut conn, &format!("v-d-{pid}-{c}-{i}")).await
        }
    })
    .await;
    Row {
        scenario: "MariaDB credential, issue + revoke",
        broker,
        raw,
    }
}

async fn certificates(t: &Arc<Target>, clients: usize, certs: usize) -> Row {
    t.setup("sys/mounts/pki", json!({ "type": "pki" })).await;
    t.setup(
        "pki/root/generate/internal",
        json!({ "common_name": "Bench Root", "key_type": "ec" }),
    )
    .await;
    t.setup(
        "pki/roles/web",
        json!({ "allowed_domains": "example.com", "allow_subdomains": true, "key_type": "ec" }),
    )
    .await;
    let target = t.clone();
    let broker = drive(clients, certs, move |_, _| {
        let t = target.clone();
        async move {
            t.call(
                reqwest::Method::POST,
                "pki/issue/web",
                json!({ "common_name": "bench.example.com",
                    "alt_names": "www.bench.example.com", "ttl": "1h" }),
            )
            .await
            .map(drop)
        }
    })
    .await;

    let ca_key =
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap_or_else(|e| panic!("{e}"));
    let mut ca_params =
        CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer = Arc::new(Issuer::new(ca_params, ca_key));
    let raw = drive(clients, certs, move |_, _| {
        let issuer = issuer.clone();
        async move {
            tokio::task::spawn_blocking(move || raw_certificate(&issuer))
                .await
                .map_err(|e| e.to_string())?
        }
    })
    .await;
    Row {
        scenario: "certificate, ECDSA P-256, stored",
        broker,
        raw,
    }
}

async fn renewals(t: &Arc<Target>, clients: usize, renewals: usize) -> Row {
    let s = postgres();
    t.setup(
        "database/config/pgr",
        json!({ "plugin_name": "postgresql-database-plugin", "connection_url": pg_url(),
            "username": s.user, "password": s.password, "allowed_roles": "*",
            "max_open_connections": clients }),
    )
    .await;
    t.setup(
        "database/roles/renew",
        json!({ "db_name": "pgr", "default_ttl": "1h", "max_ttl": "720h",
            "creation_statements": PG_CREATE }),
    )
    .await;
    // One lease per client, renewed over and over.
    let mut leases = Vec::new();
    let mut users = Vec::new();
    for _ in 0..clients {
        let creds = t
            .call(reqwest::Method::GET, "database/creds/renew", Value::Null)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        leases.push(creds["lease_id"].as_str().unwrap_or_default().to_owned());
        users.push(
            creds["data"]["username"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let leases = Arc::new(leases);
    let target = t.clone();
    let broker = drive(clients, renewals, move |c, _| {
        let (t, leases) = (target.clone(), leases.clone());
        async move {
            t.call(
                reqwest::Method::PUT,
                "sys/leases/renew",
                json!({ "lease_id": leases[c], "increment": "2h" }),
            )
            .await
            .map(drop)
        }
    })
    .await;

    // The plugin's renewal statement, sent directly on the same users.
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(Arc::new(
            pg_connect(s, &s.user, &s.password)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        ));
    }
    let (conns, users) = (Arc::new(conns), Arc::new(users));
    let raw = drive(clients, renewals, move |c, _| {
        let (conns, users) = (conns.clone(), users.clone());
        async move {
            conns[c]
                .batch_execute(&format!(
                    "BEGIN; ALTER ROLE \"{}\" VALID UNTIL '2100-01-01 00:00:00+00'; COMMIT;",
                    users[c]
                ))
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await;
    t.call(
        reqwest::Method::PUT,
        "sys/leases/revoke-prefix/database/creds/renew",
        Value::Null,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    Row {
        scenario: "lease renewal (PostgreSQL credential)",
        broker,
        raw,
    }
}

/// One broker process under load, in its own directory with its own
/// storage and root token.
struct Broker {
    /// The `BENCH_BROKER_BINS` label; empty for this tree's broker.
    label: String,
    target: Arc<Target>,
    process: BrokerProcess,
    scratch: Option<ScratchDatabase>,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// Initializes storage with `exe operator init`, then starts `exe` on
    /// it and mounts the database engine.
    async fn start(label: &str, exe: &Path, storage_name: &str, n: usize) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let port = free_port();
        let config_path = dir.path().join("broker.toml");
        let scratch = match storage_name {
            "sqlite" => None,
            "postgres" => Some(
                ScratchDatabase::create(&format!("broker_load_bench_{}_{n}", std::process::id()))
                    .await,
            ),
            other => panic!("BENCH_STORAGE: unknown storage {other} (sqlite or postgres)"),
        };
        let storage = match &scratch {
            None => format!(
                "type = \"sqlite\"\npath = \"{}\"",
                dir.path().join("broker.db").display()
            ),
            Some(db) => format!("type = \"postgres\"\nurl = \"{}\"", db.url),
        };
        let config_text = config_toml(dir.path(), port, &storage, "");
        std::fs::write(&config_path, &config_text).unwrap_or_else(|e| panic!("{e}"));
        let init = std::process::Command::new(exe)
            .args(["operator", "init", "--format", "json", "--config"])
            .arg(&config_path)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
        assert!(
            init.status.success(),
            "{} operator init: {}",
            exe.display(),
            String::from_utf8_lossy(&init.stderr)
        );
        let token = serde_json::from_slice::<Value>(&init.stdout)
            .ok()
            .and_then(|v| v["root_token"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("{} operator init: no root token", exe.display()));
        let process =
            BrokerProcess::start(exe, &config_path, port, &dir.path().join("broker.log")).await;
        let target = Arc::new(Target {
            http: reqwest::Client::new(),
            base: process.base.clone(),
            token,
        });
        target
            .setup("sys/mounts/database", json!({ "type": "database" }))
            .await;
        Self {
            label: label.to_owned(),
            target,
            process,
            scratch,
            _dir: dir,
        }
    }

    /// Stops the process and drops its scratch database.
    async fn stop(self) {
        drop(self.process);
        if let Some(db) = self.scratch {
            db.drop_database().await;
        }
    }
}

/// `BENCH_BROKER_BINS` as (label, path) pairs; unset, this tree's broker.
fn broker_bins() -> Vec<(String, PathBuf)> {
    let Some(bins) = std::env::var("BENCH_BROKER_BINS")
        .ok()
        .filter(|v| !v.trim().is_empty())
    else {
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_broker-under-test"));
        return vec![(String::new(), exe)];
    };
    bins.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((label, path)) if !label.trim().is_empty() => {
                (label.trim().to_owned(), PathBuf::from(path.trim()))
            }
            _ => panic!("BENCH_BROKER_BINS: expected label=path, got {pair:?}"),
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let clients = env_or("BENCH_CLIENTS", 4);
    let pairs = env_or("BENCH_PAIRS", 400);
    let certs = env_or("BENCH_CERTS", 2000);
    let renew = env_or("BENCH_RENEWALS", 2000);
    let scenarios =
        std::env::var("BENCH_SCENARIOS").unwrap_or_else(|_| "postgres,mysql,pki,renew".into());
    let storage_name = std::env::var("BENCH_STORAGE").unwrap_or_else(|_| "sqlite".into());

    let bins = broker_bins();
    let mut brokers = Vec::new();
    for (n, (label, exe)) in bins.iter().enumerate() {
        brokers.push(Broker::start(label, exe, &storage_name, n).await);
    }

    let mut rows = Vec::new();
    for scenario in scenarios.split(',') {
        for b in &brokers {
            let t = &b.target;
            let new = match scenario.trim() {
                "postgres" => vec![postgres_pairs(t, clients, pairs).await],
                "mysql" => vec![mysql_pairs(t, clients, pairs).await],
                "pki" => vec![certificates(t, clients, certs).await],
                "renew" => vec![renewals(t, clients, renew).await],
                "scram" => scram_pairs(t, clients, pairs).await,
                other => panic!("BENCH_SCENARIOS: unknown scenario {other}"),
            };
            rows.extend(new.into_iter().map(|row| (b.label.clone(), row)));
        }
    }

    for b in brokers {
        b.stop().await;
    }
    println!(
        "{clients} concurrent clients over HTTP against one broker process ({storage_name} storage, no audit device)"
    );
    for (label, exe) in bins.iter().filter(|(label, _)| !label.is_empty()) {
        println!("[{label}]: {}", exe.display());
    }
    println!();
    println!("| scenario | ops | through the broker | raw baseline | ratio |");
    println!("| --- | --- | --- | --- | --- |");
    for (label, r) in rows {
        let label = if label.is_empty() {
            String::new()
        } else {
            format!(" [{label}]")
        };
        println!(
            "| {}{label} | {} | {} | {} | **{:.2}** |",
            r.scenario,
            r.broker.ops,
            r.broker,
            r.raw,
            r.broker.rate / r.raw.rate
        );
    }
}
