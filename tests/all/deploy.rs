//! Deploying the broker as an operator would: a configuration file,
//! `broker operator init`, `broker server --config`, on SQLite or on a
//! shared PostgreSQL; and `broker server --dev`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use broker_tests::{pg_admin, postgres, unique};
use reqwest::StatusCode;
use serde_json::json;

use crate::api::{pg_role_exists, pg_url, setup_postgres_at};
use crate::process::{
    BROKER, Broker, config_text, free_port, operator_init, sqlite_storage, with_tls,
};

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BROKER).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn init_once_then_serve_and_refuse_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    let text = config_text(dir.path(), free_port(), &sqlite_storage(dir.path()), "");
    std::fs::write(&config, &text).unwrap();
    let config_arg = config.to_str().unwrap();

    // On storage nobody initialized, the server waits for sys/init and
    // says so; init over the API is seal::, here the offline command.
    let port = text
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let mut server = Command::new(BROKER)
        .args(["server", "--config", config_arg])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/v1/sys/mounts"))
            .send()
            .await
        {
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
            break r.text().await.unwrap();
        }
        assert!(Instant::now() < deadline, "the server did not answer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        body.contains("not initialized") && body.contains("operator init"),
        "{body}"
    );
    server.kill().unwrap();
    server.wait().unwrap();

    let token = operator_init(&config).unwrap();
    assert!(token.starts_with("brk.") && token.len() > 30, "{token}");
    let key = std::fs::metadata(dir.path().join("kms.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    // The token is kept only as a hash.
    let db = std::fs::read(dir.path().join("broker.db")).unwrap();
    assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()));

    // A second init refuses, and prints no new token.
    let (ok, out, err) = run(&["operator", "init", "--config", config_arg]);
    assert!(!ok);
    assert!(err.contains("already initialized"), "{err}");
    assert!(!out.contains("brk."), "{out}");

    // A typo is an error with its line, not a silent default.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, text.replace("pending_hold", "pending_hodl")).unwrap();
    let (ok, _, err) = run(&["server", "--config", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("pending_hodl") && err.contains("line"),
        "{err}"
    );

    // Plain HTTP off loopback must be asked for.
    let open = dir.path().join("open.toml");
    std::fs::write(&open, text.replace("127.0.0.1:", "0.0.0.0:")).unwrap();
    let (ok, _, err) = run(&["server", "--config", open.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("tls_disable"), "{err}");
    // A world-readable key file keeps the server sealed, saying why:
    // seal::a_local_seal_that_cannot_open_keeps_the_broker_sealed_and_says_why.
}

#[tokio::test]
async fn a_broker_on_postgresql_storage_issues_and_survives_a_restart() {
    let s = postgres();
    let db = unique("brokerstore");
    pg_admin()
        .await
        .execute(&format!("CREATE DATABASE {db}"), &[])
        .await
        .unwrap();
    let storage = format!(
        "[storage]\ntype = \"postgres\"\nurl = \"postgres://{}:{}@{}:{}/{db}\"",
        s.user, s.password, s.host, s.port
    );
    let mut b = Broker::start_with(Some(storage), "").await;
    setup_postgres_at(&b, &pg_url(&s.host, s.port), "*").await;
    let creds = b
        .expect(StatusCode::OK, "GET", "database/creds/readonly", None)
        .await;
    let user = creds["data"]["username"].as_str().unwrap().to_owned();
    assert!(pg_role_exists(&user).await);

    // What the broker stores in PostgreSQL is sealed.
    let (client, conn) = s
        .pg_config(&s.user, &s.password)
        .dbname(&db)
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let values: Vec<Vec<u8>> = client
        .query("SELECT value FROM entries", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!values.is_empty());
    for v in &values {
        assert!(!v.windows(6).any(|w| w == b"CREATE"), "a value in clear");
    }

    b.restart().await;
    let roles = b
        .expect(StatusCode::OK, "LIST", "database/roles", None)
        .await;
    assert_eq!(roles["data"]["keys"], json!(["readonly"]));
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke-prefix/database/",
        None,
    )
    .await;
    assert!(!pg_role_exists(&user).await);
    assert!(
        !b.log().contains(&s.password),
        "the storage password reached the log"
    );
}

#[tokio::test]
async fn dev_mode_starts_in_one_command() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(BROKER)
        .args(["server", "--dev", "--dev-root-token-id", "dev-root"])
        .args(["--dev-listen-address", &addr, "--dev-data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Ok(r) = http
            .post(format!("http://{addr}/v1/sys/mounts/database"))
            .header("X-Vault-Token", "dev-root")
            .json(&json!({ "type": "database" }))
            .send()
            .await
        {
            break r.status();
        }
        assert!(Instant::now() < deadline, "the dev server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, StatusCode::NO_CONTENT);
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let banner = String::from_utf8_lossy(&out.stdout);
    assert!(banner.contains("Root token:   dev-root"), "{banner}");
    assert!(banner.contains(&format!("http://{addr}")), "{banner}");
}

#[tokio::test]
async fn the_listener_serves_tls_from_the_configured_files() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.pem"), dir.path().join("tls.key"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok, "openssl req");
    let port = free_port();
    let text = with_tls(
        &config_text(dir.path(), port, &sqlite_storage(dir.path()), ""),
        &cert,
        &key,
    );
    let config = dir.path().join("broker.toml");
    std::fs::write(&config, &text).unwrap();
    let token = operator_init(&config).unwrap();
    let mut child = Command::new(BROKER)
        .args(["server", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("https://127.0.0.1:{port}/v1/sys/mounts");
    let curl = |extra: &[&str]| {
        Command::new("curl")
            .args(["-sS", "--max-time", "5", "-H"])
            .arg(format!("X-Vault-Token: {token}"))
            .args(extra)
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let out = loop {
        let out = curl(&["--cacert", cert.to_str().unwrap(), &url]);
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{body} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(body.contains("\"data\""), "{body}");
    // Without trusting the certificate, the client refuses; plain HTTP gets no API.
    assert!(!curl(&[&url]).status.success());
    let plain = curl(&[&url.replace("https", "http")]);
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("\"data\""));
    let _ = child.kill();
    let _ = child.wait();

    // A key that is not the certificate's is refused at start.
    let other = dir.path().join("other.key");
    assert!(
        Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out"
            ])
            .arg(&other)
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(
        &config,
        text.replace(key.to_str().unwrap(), other.to_str().unwrap()),
    )
    .unwrap();
    let (ok, _, err) = run(&["server", "--config", config.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("TLS"), "{err}");
}

#[tokio::test]
async fn storage_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    let db = dir.path().join("broker.db");
    // An older broker left the file readable by everyone.
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(
        &config,
        config_text(dir.path(), free_port(), &sqlite_storage(dir.path()), ""),
    )
    .unwrap();
    operator_init(&config).unwrap();
    let mut child = Command::new(BROKER)
        .args(["server", "--config"])
        .arg(&config)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The server has the WAL open once it answers.
    let mut wal_seen = false;
    for _ in 0..200 {
        if std::fs::metadata(dir.path().join("broker.db-wal")).is_ok() {
            wal_seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(wal_seen, "the server opens the database in WAL mode");
    for name in [
        "broker.db",
        "broker.db-wal",
        "broker.db-shm",
        "broker.db.lock",
    ] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} is {:o}", mode & 0o777);
    }
    let _ = child.kill();
    let _ = child.wait();
}
