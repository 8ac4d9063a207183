//! A broker running as a process of its own, set up the way an operator
//! would: a configuration file, `broker operator init`, `broker server
//! --config`. Tests talk to it over TCP with a real HTTP client, and may
//! kill and restart it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use broker_tests::plugin_cache_dir;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The `broker` command (the same `cli::main`, built in this package).
pub const BROKER: &str = env!("CARGO_BIN_EXE_broker-under-test");

/// A port free right now on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running broker process.
pub struct Broker {
    /// `http://127.0.0.1:PORT/v1`.
    pub base: String,
    /// The root token `operator init` printed.
    pub token: String,
    /// A client to share.
    pub http: reqwest::Client,
    /// The configuration file.
    pub config: PathBuf,
    /// The certificate the listener serves, PEM, when it serves TLS: the
    /// one a client must trust.
    pub tls_cert: Option<PathBuf>,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

/// The configuration a test broker starts with: SQLite and a local key in
/// its directory, pending leases held 2 s, the worker every 200 ms.
/// `extra` is appended (more TOML tables).
pub fn config_text(dir: &Path, port: u16, storage: &str, extra: &str) -> String {
    let seal = format!(
        "[seal]\ntype = \"local\"\nkey_file = \"{}\"",
        dir.join("kms.key").display()
    );
    config_text_sealed_by(port, storage, &seal, extra)
}

/// A configuration whose `[seal]` section is `seal` (empty: the default,
/// `shamir`).
pub fn config_text_sealed_by(port: u16, storage: &str, seal: &str, extra: &str) -> String {
    format!(
        r#"
[listener]
address = "127.0.0.1:{port}"

{storage}

{seal}

[plugins]
cache_dir = "{cache}"

[leases]
pending_hold = "2s"
worker_interval = 1
{extra}
"#,
        cache = plugin_cache_dir().display(),
    )
}

/// `[storage]` for SQLite in `dir`.
pub fn sqlite_storage(dir: &Path) -> String {
    format!(
        "[storage]\ntype = \"sqlite\"\npath = \"{}\"",
        dir.join("broker.db").display()
    )
}

/// A self-signed certificate for `localhost` and 127.0.0.1, written to
/// `dir` as `tls.pem` and `tls.key`; their paths.
pub fn loopback_tls(dir: &Path) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_file, key_file) = (dir.join("tls.pem"), dir.join("tls.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    (cert_file, key_file)
}

/// `config` (a [`config_text`]) with its listener serving TLS from
/// `cert` and `key`.
pub fn with_tls(config: &str, cert: &Path, key: &Path) -> String {
    let listener = "[listener]\n";
    assert!(config.contains(listener), "{config}");
    config.replacen(
        listener,
        &format!(
            "{listener}tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
            cert.display(),
            key.display()
        ),
        1,
    )
}

/// Runs `broker operator init --config FILE --format json`; the root token.
pub fn operator_init(config: &Path) -> Result<String, String> {
    let out = Command::new(BROKER)
        .args(["operator", "init", "--format", "json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    Ok(v["root_token"].as_str().unwrap().to_owned())
}

impl Broker {
    /// A broker over SQLite.
    pub async fn start() -> Self {
        Self::start_with(None, "").await
    }

    /// A broker over SQLite serving TLS ([`loopback_tls`]); its clients
    /// trust that certificate and present none of their own.
    pub async fn start_tls() -> Self {
        Self::start_inner(None, "", true, None).await
    }

    /// A broker over SQLite whose plugin directory (`[plugins] directory`)
    /// is `plugins`.
    pub async fn start_with_plugin_dir(plugins: &Path) -> Self {
        Self::start_inner(None, "", false, Some(plugins)).await
    }

    /// [`Broker::start_with`], with `plugins` as its plugin directory.
    pub async fn start_with_plugins(storage: Option<String>, extra: &str, plugins: &Path) -> Self {
        Self::start_inner(storage, extra, false, Some(plugins)).await
    }

    /// A broker with `storage` (a `[storage]` table; SQLite when `None`)
    /// and `extra` configuration.
    pub async fn start_with(storage: Option<String>, extra: &str) -> Self {
        Self::start_inner(storage, extra, false, None).await
    }

    async fn start_inner(
        storage: Option<String>,
        extra: &str,
        tls: bool,
        plugins: Option<&Path>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let storage = storage.unwrap_or_else(|| sqlite_storage(dir.path()));
        let config = dir.path().join("broker.toml");
        let mut text = config_text(dir.path(), port, &storage, extra);
        if let Some(plugins) = plugins {
            text = text.replacen(
                "[plugins]\n",
                &format!("[plugins]\ndirectory = \"{}\"\n", plugins.display()),
                1,
            );
        }
        let mut http = reqwest::Client::builder();
        let mut tls_cert = None;
        if tls {
            let (cert, key) = loopback_tls(dir.path());
            text = with_tls(&text, &cert, &key);
            let pem = std::fs::read(&cert).unwrap();
            http = http.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
            tls_cert = Some(cert);
        }
        std::fs::write(&config, text).unwrap();
        let token = operator_init(&config).expect("operator init");
        let scheme = if tls { "https" } else { "http" };
        let mut broker = Self {
            base: format!("{scheme}://127.0.0.1:{port}/v1"),
            token,
            http: http.build().unwrap(),
            config,
            tls_cert,
            child: None,
            dir,
        };
        broker.spawn().await;
        broker
    }

    /// A broker over a copy of a fixture's storage: its SQLite files
    /// (`broker.db*`) and `kms.key`, with the root token its
    /// `expected.json` records (returned whole, for the test to check).
    /// A broker on fresh storage, not initialized, sealed by `seal` (a
    /// `[seal]` section; empty for the default, `shamir`): the caller
    /// initializes it (PUT sys/init) and unseals it. `token` is empty
    /// until the caller sets it.
    pub async fn start_uninitialized(seal: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("broker.toml");
        let text = config_text_sealed_by(port, &sqlite_storage(dir.path()), seal, extra);
        std::fs::write(&config, text).unwrap();
        let mut broker = Self {
            base: format!("http://127.0.0.1:{port}/v1"),
            token: String::new(),
            http: reqwest::Client::new(),
            config,
            tls_cert: None,
            child: None,
            dir,
        };
        broker.spawn_sealed().await;
        broker
    }

    /// Another node on this broker's storage and seal (a PostgreSQL
    /// `[storage]`): a process of its own, with this node's configuration
    /// but its own port and `node_id` (every mention of this node's id, in
    /// audit file names say, becomes `node_id`), and the same root token.
    /// Returns once it serves.
    pub async fn join(&self, node_id: &str) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let text = std::fs::read_to_string(&self.config).unwrap();
        assert!(
            text.contains("type = \"postgres\""),
            "nodes share PostgreSQL storage"
        );
        let own_id = text
            .lines()
            .find_map(|l| l.strip_prefix("node_id = "))
            .map(|id| id.trim_matches('"').to_owned())
            .expect("the first node's configuration names its node_id");
        let text = text
            .replace(
                &format!("127.0.0.1:{}", self.port()),
                &format!("127.0.0.1:{port}"),
            )
            .replace(&own_id, node_id);
        let config = dir.path().join("broker.toml");
        std::fs::write(&config, text).unwrap();
        let mut node = Broker {
            base: format!("http://127.0.0.1:{port}/v1"),
            token: self.token.clone(),
            http: reqwest::Client::new(),
            config,
            tls_cert: None,
            child: None,
            dir,
        };
        node.spawn().await;
        node
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.base
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches("/v1").parse().ok())
            .unwrap()
    }

    /// The directory holding its storage, key files and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the process again (SIGKILL first if it runs), waiting only
    /// for it to answer, sealed or not.
    pub async fn restart_sealed(&mut self) {
        self.kill();
        self.spawn_sealed().await;
    }

    async fn spawn_sealed(&mut self) {
        self.launch();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self
                .http
                .get(format!("{}/sys/seal-status", self.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("the broker exited ({status}):\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the broker did not come up:\n{}", self.log());
    }

    pub async fn start_from_fixture(fixture: &Path) -> (Self, Value) {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(fixture).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("broker.db") || name == "kms.key" {
                let to = dir.path().join(&name);
                std::fs::copy(entry.path(), &to).unwrap();
                // The broker refuses a key or a database others may read.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
        }
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(fixture.join("expected.json")).unwrap())
                .unwrap();
        let port = free_port();
        let config = dir.path().join("broker.toml");
        let storage = sqlite_storage(dir.path());
        std::fs::write(&config, config_text(dir.path(), port, &storage, "")).unwrap();
        let mut broker = Self {
            base: format!("http://127.0.0.1:{port}/v1"),
            token: expected["root_token"].as_str().unwrap().to_owned(),
            http: reqwest::Client::new(),
            config,
            tls_cert: None,
            child: None,
            dir,
        };
        broker.spawn().await;
        (broker, expected)
    }

    /// The broker's storage opened beside it (stop the broker first), as
    /// an operator's tool would: the SQLite file, the keyring opened through
    /// the root key the local seal unwraps.
    pub async fn sealed_storage(&self) -> broker::barrier::SealedStorage {
        let dir = self.dir.path();
        let storage: broker::storage::Storage = std::sync::Arc::new(
            broker::storage::SqliteBackend::open(&dir.join("broker.db"))
                .await
                .unwrap(),
        );
        let seal = broker::seal::LocalSeal::open(&dir.join("kms.key")).unwrap();
        let (_root, keyring) = broker::core::keys::unseal(&storage, &seal).await.unwrap();
        broker::barrier::SealedStorage::new(
            storage,
            std::sync::Arc::new(broker::barrier::Barrier::new(keyring)),
        )
    }

    /// The server's log so far (standard error).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }

    async fn spawn(&mut self) {
        self.launch();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = self
                .http
                .get(format!("{}/sys/health", self.base))
                .send()
                .await
                && r.status().is_success()
            {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("the broker exited ({status}):\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the broker did not come up:\n{}", self.log());
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("broker.log"))
            .unwrap();
        let child = Command::new(BROKER)
            .args(["server", "--config"])
            .arg(&self.config)
            .env("BROKER_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the broker");
        self.child = Some(child);
    }

    /// Sends `signal` (e.g. `HUP`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("the broker runs").id();
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal} {pid}");
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, as an operator stops it: the broker finishes and exits.
    pub async fn stop(&mut self) {
        self.signal("TERM");
        let mut child = self.child.take().expect("the broker runs");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the broker did not stop on SIGTERM:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts it again after [`Broker::stop`], over the same storage and key.
    pub async fn start_again(&mut self) {
        self.spawn().await;
    }

    /// Starts the process again over the same storage and key.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// A `vaultrs` client for this broker, with the root token: an
    /// existing Vault client library, used unchanged.
    pub fn vaultrs(&self) -> vaultrs::client::VaultClient {
        self.vaultrs_as(&self.token)
    }

    /// A `vaultrs` client for this broker that sends `token`.
    pub fn vaultrs_as(&self, token: &str) -> vaultrs::client::VaultClient {
        self.vaultrs_client(token, None)
    }

    /// A `vaultrs` client with no token that presents the client
    /// certificate `cert_pem` (its key `key_pem`) in the TLS handshake.
    pub fn vaultrs_with_certificate(
        &self,
        cert_pem: &str,
        key_pem: &str,
    ) -> vaultrs::client::VaultClient {
        let identity = reqwest::Identity::from_pem(format!("{cert_pem}{key_pem}").as_bytes())
            .expect("a PEM certificate and key");
        self.vaultrs_client("", Some(identity))
    }

    fn vaultrs_client(
        &self,
        token: &str,
        identity: Option<reqwest::Identity>,
    ) -> vaultrs::client::VaultClient {
        let mut settings = vaultrs::client::VaultClientSettingsBuilder::default();
        settings
            .address(self.base.trim_end_matches("/v1"))
            .token(token)
            .identity(identity);
        if let Some(ca) = &self.tls_cert {
            settings.ca_certs(vec![ca.display().to_string()]);
        }
        vaultrs::client::VaultClient::new(settings.build().unwrap()).unwrap()
    }

    /// A request with the root token; the status and the JSON body (`Null`
    /// when empty, a string when not JSON).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (status, _, body) = self.call_full(method, path, body).await;
        (status, body)
    }

    /// [`Broker::call`] with the response headers.
    pub async fn call_full(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.call_with(&self.token, &[], method, path, body).await
    }

    /// A request with `token` (empty: none); the status and the JSON body.
    pub async fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, body) = self.call_with(token, &[], method, path, body).await;
        (status, body)
    }

    /// A request with `token` (empty: none) and extra `headers`.
    pub async fn call_with(
        &self,
        token: &str,
        headers: &[(&str, &str)],
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}/{path}", self.base));
        if !token.is_empty() {
            req = req.header("X-Vault-Token", token);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        // PEM and DER answers (a CA, a CRL) come back as text.
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, headers, body)
    }

    /// Asserts a request answers `expected`; returns the body.
    pub async fn expect(
        &self,
        expected: StatusCode,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, body) = self.call(method, path, body).await;
        assert_eq!(status, expected, "{method} {path}: {body}");
        body
    }

    /// Writes the policy `name` and creates a token holding it (and
    /// `default`) with the root token; returns the token and its accessor.
    pub async fn token_with_policy(&self, name: &str, policy: &str) -> (String, String) {
        self.expect(
            StatusCode::NO_CONTENT,
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(serde_json::json!({ "policy": policy })),
        )
        .await;
        let created = self
            .expect(
                StatusCode::OK,
                "POST",
                "auth/token/create",
                Some(serde_json::json!({ "policies": [name] })),
            )
            .await;
        (
            created["auth"]["client_token"].as_str().unwrap().to_owned(),
            created["auth"]["accessor"].as_str().unwrap().to_owned(),
        )
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The first message of a `{"errors": [...]}` body.
pub fn first_error(body: &Value) -> String {
    body["errors"][0].as_str().unwrap_or_default().to_owned()
}
