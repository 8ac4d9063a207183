//! `broker agent` as a process against a real broker and the real
//! PostgreSQL: AppRole auto-auth from files (the secret id's file removed
//! once read), a token sink, a template rendered to a 0600 file and
//! rewritten only when a value changes, leases renewed past their first
//! TTL, and the agent's own token replaced before its max TTL with every
//! secret read again under the new one, so the file never holds a dead
//! credential. Nothing secret reaches the agent's log.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use broker_tests::{pg_connect, postgres};
use reqwest::StatusCode;
use serde_json::json;

use crate::api::{pg_url, setup_postgres_at};
use crate::process::{BROKER, Broker};

/// The rendered file's `user` and `password` lines.
fn creds_in(file: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(file).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
    };
    Some((field("DB_USER")?, field("DB_PASSWORD")?))
}

fn modified(file: &Path) -> SystemTime {
    std::fs::metadata(file).unwrap().modified().unwrap()
}

async fn logs_in((user, password): &(String, String)) -> bool {
    pg_connect(postgres(), user, password).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_keeps_a_rendered_credential_alive_and_replaces_its_token_before_max_ttl() {
    let b = Broker::start().await;
    let s = postgres();
    setup_postgres_at(&b, &pg_url(&s.host, s.port), "*").await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/agent",
        Some(json!({
            "db_name": "pg", "default_ttl": "6s", "max_ttl": "60s",
            "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'"],
        })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/auth/approle",
        Some(json!({"type": "approle"})),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/acl/agent",
        Some(json!({"policy": "path \"database/creds/agent\" { capabilities = [\"read\"] }"})),
    )
    .await;
    // The agent's tokens live 6 s, 12 s at most: it must log in again.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "auth/approle/role/agent",
        Some(json!({"token_policies": ["agent"], "token_ttl": "6s", "token_max_ttl": "12s"})),
    )
    .await;
    let role_id = crate::approle::role_id(&b, "agent").await;
    let (secret_id, _) = crate::approle::secret_id(&b, "agent", json!({})).await;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("role-id"), &role_id).unwrap();
    std::fs::write(d.join("secret-id"), &secret_id).unwrap();
    let rendered = d.join("db.env");
    let config = format!(
        r#"
[broker]
address = "{addr}"

[auto_auth]
method = "approle"
role_id_file = "{d}/role-id"
secret_id_file = "{d}/secret-id"

[[sink]]
path = "{d}/token"

[[template]]
destination = "{d}/db.env"
command = "echo rendered >> {d}/renders"
contents = """
{{% with db = secret("database/creds/agent") %}}DB_USER={{{{ db.data.username }}}}
DB_PASSWORD={{{{ db.Data.password }}}}
{{% endwith %}}"""
"#,
        addr = b.base.trim_end_matches("/v1"),
        d = d.display()
    );
    std::fs::write(d.join("agent.toml"), config).unwrap();
    let log = std::fs::File::create(d.join("agent.log")).unwrap();
    let mut agent = Command::new(BROKER)
        .args(["agent", "--config"])
        .arg(d.join("agent.toml"))
        .env_remove("BROKER_TOKEN")
        .env_remove("VAULT_TOKEN")
        .env("BROKER_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let agent_log = || std::fs::read_to_string(d.join("agent.log")).unwrap_or_default();

    // Rendered, 0600; the secret id's file gone; the sink holds a token.
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        if let Some(creds) = creds_in(&rendered) {
            break creds;
        }
        assert!(
            Instant::now() < deadline,
            "nothing rendered:\n{}",
            agent_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let started = Instant::now();
    assert_eq!(
        std::fs::metadata(&rendered).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !d.join("secret-id").exists(),
        "the secret id's file is removed once read"
    );
    assert_eq!(
        std::fs::metadata(d.join("token"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let token = std::fs::read_to_string(d.join("token")).unwrap();
    let (code, _) = b
        .call_as(&token, "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(code, StatusCode::OK);
    assert!(logs_in(&first).await);
    let first_written = modified(&rendered);

    // Past its first 6 s, the credential was renewed, not replaced: the
    // file is as it was (same mtime) and it still logs in.
    tokio::time::sleep(Duration::from_secs(8).saturating_sub(started.elapsed())).await;
    assert_eq!(creds_in(&rendered).as_ref(), Some(&first));
    assert_eq!(
        modified(&rendered),
        first_written,
        "rewritten with nothing changed"
    );
    assert!(
        logs_in(&first).await,
        "not renewed past its first TTL:\n{}",
        agent_log()
    );

    // Before the token's 12 s max TTL the agent logs in again and reads a
    // fresh credential under the new token; the file changes once, and at
    // every moment what it holds logs in.
    let deadline = Instant::now() + Duration::from_secs(15);
    let second = loop {
        let now = creds_in(&rendered).unwrap();
        assert!(
            logs_in(&now).await,
            "the file held a dead credential:\n{}",
            agent_log()
        );
        if now != first {
            break now;
        }
        assert!(Instant::now() < deadline, "never re-read:\n{}", agent_log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let new_token = std::fs::read_to_string(d.join("token")).unwrap();
    assert_ne!(new_token, token, "the sink holds the new token");
    // The old token's max TTL passes: it and its lease end; the file's
    // credential, under the new token, lives on.
    tokio::time::sleep(Duration::from_secs(14).saturating_sub(started.elapsed())).await;
    assert!(logs_in(&second).await, "{}", agent_log());
    let renders = std::fs::read_to_string(d.join("renders")).unwrap();
    assert_eq!(
        renders.lines().count(),
        2,
        "the command ran once per change"
    );

    let _ = agent.kill();
    let _ = agent.wait();
    // The token is in the sink and nowhere else beside it.
    for entry in std::fs::read_dir(d).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name() != Some(std::ffi::OsStr::new("token")) {
            let bytes = std::fs::read(&path).unwrap_or_default();
            assert!(
                !bytes
                    .windows(new_token.len())
                    .any(|w| w == new_token.as_bytes()),
                "the token in {}",
                path.display()
            );
        }
    }
    let log = agent_log();
    for secret in [&first.1, &second.1, &secret_id, &token, &new_token] {
        assert!(
            !log.contains(secret.as_str()),
            "a secret in the agent's log:\n{log}"
        );
    }
    assert!(log.contains("logging in again"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_run_child_connects_across_three_credentials_and_is_restarted_only_on_change() {
    let b = Broker::start().await;
    let s = postgres();
    let tag = broker_tests::unique("ag").replace('_', "");
    let prefix = format!("ag{}", &tag[tag.len() - 8..]);
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/database",
        Some(json!({"type": "database"})),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/config/pg",
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": pg_url(&s.host, s.port),
            "username": s.user, "password": s.password, "allowed_roles": "*",
            "username_template": format!("{prefix}-{{{{random 8}}}}"),
        })),
    )
    .await;
    // Each credential lasts 4 s, renewed up to 10 s: then a fresh one.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/app",
        Some(json!({
            "db_name": "pg", "default_ttl": "4s", "max_ttl": "10s",
            "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'"],
        })),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("token"), &b.token).unwrap();
    let log = d.join("child.log");
    // The child logs in with a password every half second, as an app's
    // connection pool would, and says which user each start had.
    let script = format!(
        "echo \"start $DB_USER\" >> {log}; echo \"$DB_PASSWORD\" > {log}.pw; while true; do \
         if PGPASSWORD=\"$DB_PASSWORD\" PGCONNECT_TIMEOUT=3 psql -h {host} -p {port} -U \"$DB_USER\" -d {db} -tAc 'select 1' >/dev/null 2>&1; \
         then echo \"ok $DB_USER\" >> {log}; else echo \"fail $DB_USER\" >> {log}; fi; sleep 0.5; done",
        log = log.display(),
        host = s.host,
        port = s.port,
        db = s.database
    );
    let config = format!(
        r#"
[broker]
address = "{addr}"

[auto_auth]
method = "token_file"
path = "{d}/token"

[exec]
command = ["sh", "-c", {script:?}]

[exec.env]
DB_USER = '{{{{ secret("database/creds/app").data.username }}}}'
DB_PASSWORD = '{{{{ secret("database/creds/app").data.password }}}}'
"#,
        addr = b.base.trim_end_matches("/v1"),
        d = d.display(),
    );
    std::fs::write(d.join("agent.toml"), config).unwrap();
    let agent_log = d.join("agent.log");
    let mut agent = Command::new(BROKER)
        .args(["agent", "--config"])
        .arg(d.join("agent.toml"))
        .env("BROKER_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&agent_log).unwrap())
        .spawn()
        .unwrap();
    let lines = || -> Vec<String> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let starts = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix("start "))
            .map(str::to_owned)
            .collect()
    };
    // Three credential lifetimes: each lives 10 s at most.
    let deadline = Instant::now() + Duration::from_secs(60);
    while starts(&lines()).len() < 3 {
        assert!(
            Instant::now() < deadline,
            "{:?}\n{}",
            lines(),
            std::fs::read_to_string(&agent_log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The password is in the child's environment only, not the agent's.
    let password = std::fs::read_to_string(format!("{}.pw", log.display())).unwrap();
    let environ = std::fs::read(format!("/proc/{}/environ", agent.id())).unwrap();
    let password = password.trim();
    assert!(!password.is_empty());
    assert!(
        !environ
            .windows(password.len())
            .any(|w| w == password.as_bytes())
    );
    // A little into the third, so it has connected too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = lines();
    let started = starts(&seen);
    let distinct: std::collections::BTreeSet<_> = started.iter().collect();
    assert_eq!(
        distinct.len(),
        started.len(),
        "restarted without a new credential: {started:?}"
    );
    for user in &started {
        let ok = seen.iter().filter(|l| *l == &format!("ok {user}")).count();
        assert!(ok >= 2, "{user} never connected: {seen:?}");
    }
    let failed: Vec<_> = seen.iter().filter(|l| l.starts_with("fail")).collect();
    assert!(failed.is_empty(), "a login failed: {failed:?}");
    // Renewals in between: each credential served past its first 4 s.
    let oks_of_first = seen
        .iter()
        .filter(|l| *l == &format!("ok {}", started[0]))
        .count();
    assert!(
        oks_of_first >= 12,
        "the first credential was not renewed: {oks_of_first} logins"
    );

    // Stopping the agent stops the child and revokes what it held.
    let ok = Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = agent.wait().unwrap();
    assert!(status.success(), "{status}");
    let left: i64 = broker_tests::pg_admin()
        .await
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE $1",
            &[&format!("{prefix}-%")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the agent's credentials outlived it");
    let log_text = std::fs::read_to_string(&agent_log).unwrap();
    assert!(!log_text.contains(&b.token), "{log_text}");
    // A token it was given (token_file) is not its to revoke.
    let (code, _) = b.call("GET", "auth/token/lookup-self", None).await;
    assert_eq!(
        code,
        StatusCode::OK,
        "the agent revoked a token it did not make"
    );
}

#[tokio::test]
async fn an_agent_started_before_its_broker_is_unsealed_waits_for_it() {
    let b = Broker::start_uninitialized("", "").await;
    let init = b
        .call_as(
            "",
            "PUT",
            "sys/init",
            Some(json!({"secret_shares": 1, "secret_threshold": 1})),
        )
        .await
        .1;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("token"), init["root_token"].as_str().unwrap()).unwrap();
    std::fs::write(
        d.join("agent.toml"),
        format!(
            "[broker]\naddress = \"{}\"\n\n[auto_auth]\nmethod = \"token_file\"\npath = \"{}/token\"\n\n[[sink]]\npath = \"{}/sink\"\n",
            b.base.trim_end_matches("/v1"),
            d.display(),
            d.display()
        ),
    )
    .unwrap();
    let agent = Command::new(BROKER)
        .args(["agent", "--exit-after-auth", "--config"])
        .arg(d.join("agent.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Sealed: the agent waits rather than failing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!d.join("sink").exists());
    let (code, _) = b
        .call_as(
            "",
            "PUT",
            "sys/unseal",
            Some(json!({"key": init["keys"][0]})),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let out = agent.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("cannot log in yet") && log.contains("sealed"),
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("sink")).unwrap(),
        init["root_token"].as_str().unwrap()
    );
}
