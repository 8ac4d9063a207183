//! Shared helpers for the end-to-end tests: real database servers and the
//! test plugins.
//!
//! Databases come from the environment when set, and otherwise from the
//! machine:
//!
//! - PostgreSQL: `BROKER_TEST_POSTGRES_URL` (an admin URL on a server that
//!   checks passwords). Unset, the harness starts a throwaway cluster with
//!   `initdb --auth=scram-sha-256` on a free port, so tests prove passwords
//!   and never depend on the machine's own `pg_hba.conf`.
//! - MySQL/MariaDB: `BROKER_TEST_MYSQL_URL`, default
//!   `mysql://root@127.0.0.1:3306/` (the compose file's MariaDB).
//! - SoftHSM2 ([`softhsm`]): a token per test, in a temporary directory.
//!
//! A missing database (or SoftHSM2) fails the test with a message saying
//! how to get one; nothing is skipped silently.

pub mod bench;
pub mod haproxy;
pub mod kms;
pub mod softhsm;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The hostile test plugin, built from `tests/fixtures/hostile`.
pub const HOSTILE_WASM: &[u8] = include_bytes!(concat!(
    env!("OUT_DIR"),
    "/plugins/broker_test_hostile_plugin.wasm"
));

/// Where the tests cache compiled components (shared across test runs).
pub fn plugin_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-plugin-cache")
}

/// An admin's view of a database server.
#[derive(Debug, Clone)]
pub struct Server {
    /// Host for TCP connections.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Admin user.
    pub user: String,
    /// Admin password (may be empty).
    pub password: String,
    /// Database to connect to.
    pub database: String,
}

impl Server {
    /// A libpq-style connection string for `user`/`password` on this server.
    pub fn pg_config(&self, user: &str, password: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(user)
            .password(password)
            .dbname(&self.database);
        c.connect_timeout(std::time::Duration::from_secs(5));
        c
    }

    /// mysql_async options for `user`/`password` on this server.
    pub fn mysql_opts(&self, user: &str, password: &str) -> mysql_async::Opts {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(user))
            .pass(Some(password))
            .prefer_socket(false)
            .into()
    }
}

/// Kills the server `pid` should this test process be killed outright
/// (a `Drop` never runs then).
fn watchdog(pid: u32) {
    let script = format!(
        "while kill -0 {me} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
         kill -9 {pid} 2>/dev/null",
        me = std::process::id(),
    );
    // The watchdog ends by itself; it is never waited for.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the cleanup watchdog: {e}"));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port: {e}"))
}

fn parse_url(url: &str, default_port: u16) -> Server {
    let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("cannot parse database URL: {e}"));
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    Server {
        host: parsed.host_str().unwrap_or("127.0.0.1").to_owned(),
        port: parsed.port().unwrap_or(default_port),
        user: decode(parsed.username()),
        password: parsed.password().map(decode).unwrap_or_default(),
        database: parsed.path().trim_start_matches('/').to_owned(),
    }
}

/// The PostgreSQL server for tests (started on first use).
pub fn postgres() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("BROKER_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            let mut s = parse_url(&url, 5432);
            if s.database.is_empty() {
                s.database = "postgres".into();
            }
            s
        }
        _ => throwaway_postgres(),
    })
}

/// The MySQL/MariaDB server for tests.
pub fn mysql() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let url = std::env::var("BROKER_TEST_MYSQL_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "mysql://root@127.0.0.1:3306/".into());
        let s = parse_url(&url, 3306);
        if std::net::TcpStream::connect((s.host.as_str(), s.port)).is_err() {
            panic!(
                "no MySQL/MariaDB at {}:{}. Start one (`docker compose -f compose/docker-compose.yml up -d`, \
                 or install Debian's mariadb-server) or set BROKER_TEST_MYSQL_URL=mysql://user:pass@host:port/",
                s.host, s.port
            );
        }
        s
    })
}

fn pg_bindir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL's initdb was not found. Install Debian's `postgresql` package, or start the compose \
             file's database and set BROKER_TEST_POSTGRES_URL=postgres://postgres:postgres@127.0.0.1:5432/postgres"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Runs `program` as the `postgres` OS user when we are root (initdb refuses root).
fn as_db_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    if !out.status.success() {
        panic!(
            "{what} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A PostgreSQL cluster in a directory of its own: `initdb` with SCRAM
/// passwords, started on a free port on loopback. Removed (stopped, its
/// directory deleted) when this test process exits, even if it is killed.
struct PgCluster {
    bindir: PathBuf,
    dir: PathBuf,
    port: u16,
    password: String,
}

impl PgCluster {
    fn init() -> Self {
        let bindir = pg_bindir();
        let dir = tempfile::Builder::new()
            .prefix("broker-test-pg-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"))
            .keep();
        let password = format!("pw-{}", std::process::id());
        std::fs::write(dir.join("pwfile"), &password)
            .unwrap_or_else(|e| panic!("cannot write pwfile: {e}"));
        if is_root() {
            run(
                Command::new("chown").args(["-R", "postgres:"]).arg(&dir),
                "chown",
            );
        }
        run(
            as_db_user(&bindir.join("initdb"))
                .arg("-D")
                .arg(dir.join("data"))
                .args([
                    "-U",
                    "postgres",
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ])
                .arg(format!("--pwfile={}", dir.join("pwfile").display())),
            "initdb",
        );
        let cluster = Self {
            bindir,
            dir,
            port: free_port(),
            password,
        };
        cluster.pg_ctl(&["-w", "start"], "pg_ctl start");
        // Stop the cluster and remove it when this test process exits.
        let watchdog = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             runuser -u postgres -- {pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1 || {pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; \
             rm -rf {dir}",
            pid = std::process::id(),
            pg_ctl = cluster.bindir.join("pg_ctl").display(),
            data = cluster.dir.join("data").display(),
            dir = cluster.dir.display(),
        );
        // The watchdog outlives this process on purpose: it is never waited for.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the cleanup watchdog: {e}"));
        cluster
    }

    /// Runs `pg_ctl` on this cluster with its server options and `args`.
    fn pg_ctl(&self, args: &[&str], what: &str) {
        run(
            as_db_user(&self.bindir.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .arg("-l")
                .arg(self.dir.join("log"))
                .arg("-o")
                .arg(format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                    self.port,
                    self.dir.display()
                ))
                .args(args),
            what,
        );
    }

    fn server(&self) -> Server {
        Server {
            host: "127.0.0.1".into(),
            port: self.port,
            user: "postgres".into(),
            password: self.password.clone(),
            database: "postgres".into(),
        }
    }
}

fn throwaway_postgres() -> Server {
    PgCluster::init().server()
}

/// A PostgreSQL server of a test's own, which the test may restart (the
/// shared one, [`postgres`], must stay up for the other tests).
pub struct PrivatePostgres {
    /// How to reach it as its superuser.
    pub server: Server,
    cluster: PgCluster,
}

impl std::fmt::Debug for PrivatePostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivatePostgres")
            .field("port", &self.cluster.port)
            .finish_non_exhaustive()
    }
}

impl PrivatePostgres {
    /// Makes and starts one.
    pub fn start() -> Self {
        let cluster = PgCluster::init();
        Self {
            server: cluster.server(),
            cluster,
        }
    }

    /// Restarts it (`pg_ctl restart -m fast`: every connection is cut, as
    /// a failover or an upgrade cuts them); returns once it accepts
    /// connections again.
    pub fn restart(&self) {
        self.cluster
            .pg_ctl(&["-m", "fast", "-w", "restart"], "pg_ctl restart");
    }

    /// Stops it (`-m fast`).
    pub fn stop(&self) {
        self.cluster
            .pg_ctl(&["-m", "fast", "-w", "stop"], "pg_ctl stop");
    }

    /// Starts it again after [`Self::stop`].
    pub fn start_again(&self) {
        self.cluster.pg_ctl(&["-w", "start"], "pg_ctl start");
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.cluster.dir.join("log")).unwrap_or_default()
    }
}

/// A plugin runtime for tests, sharing one compile cache across tests.
pub fn runtime(limits: broker::plugin::Limits) -> broker::plugin::PluginRuntime {
    broker::plugin::PluginRuntime::new(broker::plugin::RuntimeConfig {
        cache_dir: Some(plugin_cache_dir()),
        limits,
    })
    .unwrap_or_else(|e| panic!("cannot start the plugin runtime: {e}"))
}

/// A built-in plugin by catalog name or alias.
pub async fn builtin(
    runtime: &broker::plugin::PluginRuntime,
    name: &str,
) -> broker::plugin::Plugin {
    let catalog = broker::plugin::Catalog::builtin(runtime)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    catalog
        .get(name)
        .unwrap_or_else(|| panic!("no built-in plugin named {name}"))
}

/// A PostgreSQL target in Vault's URL form, as `user` with `password`.
pub fn pg_target(s: &Server, user: &str, password: &str) -> std::sync::Arc<broker::sql::SqlTarget> {
    let url = format!(
        "postgresql://{{{{username}}}}:{{{{password}}}}@{}:{}/{}?sslmode=disable",
        s.host, s.port, s.database
    );
    std::sync::Arc::new(broker::sql::SqlTarget::new(
        broker::sql::Dialect::Postgres,
        &url,
        Some(user),
        Some(password),
    ))
}

/// A MySQL target in Vault's Go DSN form, as `user` with `password`.
pub fn mysql_target(
    s: &Server,
    user: &str,
    password: &str,
) -> std::sync::Arc<broker::sql::SqlTarget> {
    let url = format!(
        "{{{{username}}}}:{{{{password}}}}@tcp({}:{})/",
        s.host, s.port
    );
    std::sync::Arc::new(broker::sql::SqlTarget::new(
        broker::sql::Dialect::MySql,
        &url,
        Some(user),
        Some(password),
    ))
}

/// The Redis server the tests use: `BROKER_TEST_REDIS_ADDR` (host:port),
/// by default the machine's, 127.0.0.1:6379, whose `default` user has no
/// password.
pub fn redis_addr() -> (String, u16) {
    let addr = std::env::var("BROKER_TEST_REDIS_ADDR").unwrap_or_else(|_| "127.0.0.1:6379".into());
    let (host, port) = addr
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("BROKER_TEST_REDIS_ADDR must be host:port, not {addr}"));
    (
        host.to_owned(),
        port.parse().unwrap_or_else(|e| panic!("{addr}: {e}")),
    )
}

/// The test Redis server, logged in to as `user` (`None`: `default`).
pub fn redis_target(
    user: Option<&str>,
    password: Option<&str>,
) -> std::sync::Arc<broker::egress::RedisTarget> {
    let (host, port) = redis_addr();
    std::sync::Arc::new(broker::egress::RedisTarget {
        host,
        port,
        username: user.map(str::to_owned),
        password: password.map(|p| zeroize::Zeroizing::new(p.to_owned())),
    })
}

/// Runs `redis-cli` against the test server with `args`; its output,
/// trimmed (errors included: redis-cli prints them and exits 0).
pub fn redis_cli(args: &[&str]) -> String {
    let (host, port) = redis_addr();
    let out = std::process::Command::new("redis-cli")
        .args(["-h", &host, "-p", &port.to_string(), "--no-auth-warning"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("redis-cli must be installed (.ci/run installs it): {e}"));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .trim()
    .to_owned()
}

/// The RabbitMQ management API the tests use: `BROKER_TEST_RABBITMQ_URL`,
/// by default the machine's, http://127.0.0.1:15672, as guest/guest.
pub fn rabbitmq_url() -> String {
    std::env::var("BROKER_TEST_RABBITMQ_URL").unwrap_or_else(|_| "http://127.0.0.1:15672".into())
}

/// A fresh name for objects one test creates, so tests can run in parallel.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Seconds since the Unix epoch, by the broker's own clock.
pub fn now() -> u64 {
    broker::clock::unix_now()
}

/// A credential request for `role` expiring in an hour.
pub fn request(
    role_name: &str,
    role: serde_json::Value,
    display_name: &str,
) -> broker::plugin::IssueRequest {
    broker::plugin::IssueRequest {
        role_name: role_name.into(),
        role,
        display_name: display_name.into(),
        expires_at: now() + 3600,
        parameters: serde_json::Value::Null,
    }
}

/// A connection config as the plugin sees it.
pub fn connection(config: serde_json::Value) -> broker::plugin::ConnectionView {
    broker::plugin::ConnectionView {
        name: "test".into(),
        config,
    }
}

/// Connects to PostgreSQL as `user`; the connection task runs in the background.
pub async fn pg_connect(
    s: &Server,
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = s
        .pg_config(user, password)
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(conn);
    Ok(client)
}

/// An admin client on the test PostgreSQL.
pub async fn pg_admin() -> tokio_postgres::Client {
    let s = postgres();
    pg_connect(s, &s.user, &s.password)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to test PostgreSQL as admin: {e}"))
}

/// An admin connection on the test MySQL/MariaDB.
pub async fn mysql_admin() -> mysql_async::Conn {
    let s = mysql();
    mysql_async::Conn::new(s.mysql_opts(&s.user, &s.password))
        .await
        .unwrap_or_else(|e| panic!("cannot connect to test MySQL as admin: {e}"))
}

/// A TCP proxy in front of a database that a test can take down and bring
/// back: while down it drops every open connection and refuses new ones,
/// as a database host that went away would look to the broker.
#[derive(Debug)]
pub struct Outage {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pipes: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Outage {
    /// A proxy to `host:port`, up.
    pub async fn start(host: &str, port: u16) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot listen for the proxy: {e}"));
        let proxy_port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("proxy address: {e}"))
            .port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let pipes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let target = format!("{host}:{port}");
        let accept = {
            let (up, pipes) = (up.clone(), pipes.clone());
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        continue; // dropped: the connection is closed at once
                    }
                    let target = target.clone();
                    let pipe = tokio::spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    pipes
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(pipe.abort_handle());
                }
            })
        };
        Self {
            port: proxy_port,
            up,
            pipes,
            accept,
        }
    }

    /// The port to connect to instead of the database's.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The database "goes down": open connections drop, new ones are refused.
    pub fn down(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for pipe in self
            .pipes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain(..)
        {
            pipe.abort();
        }
    }

    /// The database is back.
    pub fn up(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        self.accept.abort();
        self.down();
    }
}

/// A MariaDB server of one test's own: a fresh data directory
/// (`mariadb-install-db`), its own port and socket, started with
/// `extra_args` (a plugin the shared server must not load, say) and
/// killed when dropped. Root logs in over TCP with no password. It
/// panics, saying why, if it cannot start one.
#[derive(Debug)]
pub struct PrivateMariaDb {
    /// How to reach it as root.
    pub server: Server,
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl PrivateMariaDb {
    /// Starts one; ready when root can run a query.
    pub async fn start(extra_args: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("broker-test-mariadb-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let data = dir.path().join("data");
        // `--user` names the OS account the server runs as; as root it
        // must be said outright.
        let os_user = if is_root() { Some("--user=root") } else { None };
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(os_user);
        let out = install.output().unwrap_or_else(|e| {
            panic!(
                "cannot run mariadb-install-db ({e}): install Debian's mariadb-server to run this test"
            )
        });
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let log = dir.path().join("error.log");
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!(
                "--socket={}",
                dir.path().join("mysqld.sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mysqld.pid").display()
            ))
            .arg(format!("--log-error={}", log.display()))
            .args(["--skip-log-bin", "--innodb-buffer-pool-size=16M"])
            .args(os_user)
            .args(extra_args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start mariadbd ({e}): install Debian's mariadb-server to run this test"
                )
            });
        watchdog(child.id());
        let mut db = Self {
            server: Server {
                host: "127.0.0.1".into(),
                port,
                user: "root".into(),
                password: String::new(),
                database: String::new(),
            },
            child,
            dir,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let error = match mysql_async::Conn::new(db.server.mysql_opts("root", "")).await {
                Ok(conn) => {
                    drop(conn.disconnect().await);
                    return db;
                }
                Err(e) => e,
            };
            if let Ok(Some(status)) = db.child.try_wait() {
                panic!("mariadbd exited ({status}):\n{}", db.log());
            }
            if std::time::Instant::now() > deadline {
                panic!("mariadbd did not come up ({error}):\n{}", db.log());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The server's error log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// A root connection.
    pub async fn admin(&self) -> mysql_async::Conn {
        mysql_async::Conn::new(self.server.mysql_opts("root", ""))
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the private MariaDB as root: {e}"))
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
