//! Helpers the bench binaries share: counts from the environment, and a
//! broker serving over TCP inside the bench process.

use std::sync::Arc;

use broker::core::{Core, CoreOptions};
use broker::plugin::{Catalog, Limits};
use broker::seal::LocalSeal;
use broker::storage::{SqliteBackend, Storage};

/// `name` from the environment as a number, else `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` quantile of sorted durations, in µs.
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// SQLite storage in `dir`.
pub async fn sqlite(dir: &std::path::Path) -> Storage {
    Arc::new(
        SqliteBackend::open(&dir.join("broker.db"))
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    )
}

/// A broker on 127.0.0.1 inside this process.
#[derive(Debug)]
pub struct InProcess {
    /// `http://127.0.0.1:PORT/v1`.
    pub base: String,
    /// The root token.
    pub token: String,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl InProcess {
    /// Starts one with `options`.
    pub async fn start(options: CoreOptions) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let storage = sqlite(dir.path()).await;
        let seal = Arc::new(
            LocalSeal::create(&dir.path().join("kms.key")).unwrap_or_else(|e| panic!("{e}")),
        );
        let request = broker::unseal::InitRequest {
            recovery_shares: Some(0),
            ..Default::default()
        };
        let token = broker::unseal::initialize(
            &storage,
            broker::seal::SealKind::Local,
            Some(seal.as_ref()),
            &request,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .root_token
        .to_string();
        let catalog = Arc::new(
            Catalog::builtin(&crate::runtime(Limits::default()))
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let setup = broker::unseal::SealSetup {
            kind: broker::seal::SealKind::Local,
            seal: Some(seal.clone()),
            error: None,
            previous: None,
            reopen: None,
        };
        let unsealer = broker::unseal::Unsealer::new(storage, setup, catalog, options, None);
        unsealer
            .open_now(seal)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let base = format!(
            "http://{}/v1",
            listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
        );
        // Benchmarks measure the broker, not its rate limits.
        let options = broker::server::ServeOptions {
            rate_limits: broker::api::RateLimits::none(),
            ..Default::default()
        };
        let server = tokio::spawn(broker::server::serve(listener, None, unsealer, options));
        Self {
            base,
            token,
            server,
            _dir: dir,
        }
    }

    /// POSTs `body` to `path`; panics unless it succeeds.
    pub async fn post(&self, http: &reqwest::Client, path: &str, body: serde_json::Value) {
        let r = http
            .post(format!("{}/{path}", self.base))
            .header("X-Vault-Token", &self.token)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// What [`drive`] measured: operations per second and per-operation latency.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Operations completed.
    pub ops: usize,
    /// Operations per second over the whole run.
    pub rate: f64,
    /// Latency percentiles, µs.
    pub p50: f64,
    /// 99th percentile, µs.
    pub p99: f64,
    /// 99.9th percentile, µs.
    pub p999: f64,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0}/s, p50 {} p99 {} p99.9 {}",
            self.rate,
            micros(self.p50),
            micros(self.p99),
            micros(self.p999)
        )
    }
}

/// `µs` under 10 ms, else `ms`.
pub fn micros(us: f64) -> String {
    if us < 10_000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.1} ms", us / 1000.0)
    }
}

/// Runs `ops` operations from `clients` concurrent clients: client `c`
/// runs `op(c, i)` for its share of `i`, one after another. Panics on the
/// first failed operation: a benchmark that errors measures nothing.
pub async fn drive<F, Fut>(clients: usize, ops: usize, op: F) -> Run
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let op = Arc::new(op);
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let op = op.clone();
            let share = ops / clients + usize::from(c < ops % clients);
            tokio::spawn(async move {
                let mut times = Vec::with_capacity(share);
                for i in 0..share {
                    let t = std::time::Instant::now();
                    op(c, i)
                        .await
                        .unwrap_or_else(|e| panic!("client {c}, op {i}: {e}"));
                    times.push(t.elapsed());
                }
                times
            })
        })
        .collect();
    let mut times = Vec::with_capacity(ops);
    for t in tasks {
        times.extend(t.await.unwrap_or_else(|e| panic!("{e}")));
    }
    let rate = ops as f64 / started.elapsed().as_secs_f64();
    times.sort();
    Run {
        ops,
        rate,
        p50: percentile(&times, 0.5),
        p99: percentile(&times, 0.99),
        p999: percentile(&times, 0.999),
    }
}

/// A port free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A configuration file for a broker on `port` with `storage` (a
/// `[storage]` body), a local KMS key and the test plugin cache in `dir`,
/// and `extra` TOML appended.
pub fn config_toml(dir: &std::path::Path, port: u16, storage: &str, extra: &str) -> String {
    format!(
        "[listener]\naddress = \"127.0.0.1:{port}\"\n\n[storage]\n{storage}\n\n\
         [seal]\ntype = \"local\"\nkey_file = \"{}\"\n\n{extra}\n",
        dir.join("kms.key").display(),
    )
}

/// A broker server process (`broker server --config`), killed on drop.
#[derive(Debug)]
pub struct BrokerProcess {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT/v1`.
    pub base: String,
    /// How long from spawning it to its first `200` from `sys/health`.
    pub startup: std::time::Duration,
}

impl BrokerProcess {
    /// Starts `exe server --config config` (stderr to `log`) and waits until
    /// `sys/health` on `port` answers 200.
    pub async fn start(
        exe: &std::path::Path,
        config: &std::path::Path,
        port: u16,
        log: &std::path::Path,
    ) -> Self {
        let base = format!("http://127.0.0.1:{port}/v1");
        let http = reqwest::Client::new();
        let log = std::fs::File::create(log).unwrap_or_else(|e| panic!("{e}"));
        let started = std::time::Instant::now();
        let mut child = std::process::Command::new(exe)
            .args(["server", "--config"])
            .arg(config)
            .env("BROKER_PLUGIN_CACHE_DIR", crate::plugin_cache_dir())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
        loop {
            if let Ok(r) = http.get(format!("{base}/sys/health")).send().await
                && r.status() == 200
            {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the broker exited during start-up ({status})");
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(120),
                "the broker did not serve within 2 minutes"
            );
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        Self {
            startup: started.elapsed(),
            child,
            base,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A database made for one bench run on a PostgreSQL server the bench was
/// pointed at (`BENCH_POSTGRES_URL`, an admin URL; default the local server
/// as user `postgres`), dropped by [`ScratchDatabase::drop_database`].
pub struct ScratchDatabase {
    admin: String,
    name: String,
    /// The URL of the new database, as `admin` with its path replaced.
    pub url: String,
}

impl std::fmt::Debug for ScratchDatabase {
    // The URLs may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScratchDatabase")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ScratchDatabase {
    /// Creates the database `name` (dropping any left by a killed run).
    pub async fn create(name: &str) -> Self {
        use sqlx::Connection;
        let admin = std::env::var("BENCH_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut c = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("{admin}: {e}"));
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::query(&sql)
                .execute(&mut c)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let mut url = url::Url::parse(&admin).unwrap_or_else(|e| panic!("BENCH_POSTGRES_URL: {e}"));
        url.set_path(name);
        Self {
            admin,
            name: name.to_owned(),
            url: url.to_string(),
        }
    }

    /// Drops it.
    pub async fn drop_database(&self) {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&self.admin)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
}
