//! Helpers the bench binaries share: counts from the environment, and a
//! broker serving over TCP inside the bench process.

use std::sync::Arc;

use broker::core::{Core, CoreOptions};
use broker::kms::LocalKms;
use broker::plugin::{Catalog, Limits};
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
        let kms = LocalKms::create(&dir.path().join("kms.key")).unwrap_or_else(|e| panic!("{e}"));
        let token = Core::initialize(&storage, &kms)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .to_string();
        let catalog = Arc::new(
            Catalog::builtin(&crate::runtime(Limits::default()))
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let core = Core::open(storage, &kms, catalog, options)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let base = format!(
            "http://{}/v1",
            listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
        );
        let server = tokio::spawn(broker::server::serve(
            listener,
            core,
            broker::server::ServeOptions::default(),
        ));
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
