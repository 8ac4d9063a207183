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
    let role_id = b
        .expect(
            StatusCode::OK,
            "GET",
            "auth/approle/role/agent/role-id",
            None,
        )
        .await["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_id = b
        .expect(
            StatusCode::OK,
            "POST",
            "auth/approle/role/agent/secret-id",
            None,
        )
        .await["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();

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
    let log = agent_log();
    for secret in [&first.1, &second.1, &secret_id, &token, &new_token] {
        assert!(
            !log.contains(secret.as_str()),
            "a secret in the agent's log:\n{log}"
        );
    }
    assert!(log.contains("logging in again"), "{log}");
}
