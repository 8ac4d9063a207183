//! The `broker` command as a client, against a real broker process over
//! TCP, as a person or a script would run it: Vault's single-dash flags,
//! `BROKER_ADDR`/`BROKER_TOKEN` (and Vault's names), the token helper
//! file, `-field` and `-format`, and each error a new user meets — no
//! server, sealed, a bad token, permission denied, an unknown path, a
//! wrong flag — with its message and Vault's exit code.

use std::path::Path;
use std::process::{Command, Stdio};

use broker_tests::{pg_connect, postgres};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::{pg_url, setup_postgres_at};
use crate::process::{BROKER, Broker, free_port};

/// What a run of the command gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `broker ARGS` with only `env` (and a fresh HOME) in its environment of
/// broker variables, standard input from `stdin`.
fn broker(args: &[&str], env: &[(&str, &str)], home: &Path, stdin: &str) -> Run {
    let mut child = Command::new(BROKER)
        .args(args)
        .env_remove("BROKER_ADDR")
        .env_remove("BROKER_TOKEN")
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .env_remove("BROKER_TOKEN_FILE")
        .env_remove("BROKER_FORMAT")
        .env_remove("VAULT_FORMAT")
        .env("HOME", home)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn addr(b: &Broker) -> String {
    b.base.trim_end_matches("/v1").to_owned()
}

#[tokio::test]
async fn the_cli_reads_writes_and_logs_in_as_vaults_does() {
    let b = Broker::start().await;
    let home = tempfile::tempdir().unwrap();
    let a = addr(&b);
    let env = [
        ("BROKER_ADDR", a.as_str()),
        ("BROKER_TOKEN", b.token.as_str()),
    ];

    // A credential's password alone, usable as it is.
    let s = postgres();
    setup_postgres_at(&b, &pg_url(&s.host, s.port), "*").await;
    let run = broker(
        &["read", "-field=password", "database/creds/readonly"],
        &env,
        home.path(),
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        !run.stdout.contains('\n') && !run.stdout.is_empty(),
        "{:?}",
        run.stdout
    );
    let run_user = broker(
        &["read", "-format=json", "database/creds/readonly"],
        &env,
        home.path(),
        "",
    );
    let creds: Value = serde_json::from_str(&run_user.stdout).unwrap();
    let (user, password) = (
        creds["data"]["username"].as_str().unwrap(),
        creds["data"]["password"].as_str().unwrap(),
    );
    pg_connect(s, user, password)
        .await
        .unwrap_or_else(|e| panic!("the password from -format=json does not log in: {e}"));
    // The table shows the lease, then the data.
    let run = broker(&["read", "database/creds/readonly"], &env, home.path(), "");
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.starts_with("Key")
            && run.stdout.contains("lease_id")
            && run.stdout.contains("username"),
        "{}",
        run.stdout
    );

    // Policies from a file and standard input; list; read; delete.
    let file = home.path().join("app.hcl");
    std::fs::write(&file, "path \"secret/*\" { capabilities = [\"read\"] }\n").unwrap();
    let run = broker(
        &["policy", "write", "app", file.to_str().unwrap()],
        &env,
        home.path(),
        "",
    );
    assert_eq!(
        (run.code, run.stdout.trim()),
        (0, "Success! Uploaded policy: app"),
        "{}",
        run.stderr
    );
    let run = broker(
        &["write", "sys/policies/acl/piped", "policy=-"],
        &env,
        home.path(),
        "path \"x\" { capabilities = [\"list\"] }\n",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = broker(&["policy", "list"], &env, home.path(), "");
    assert!(
        run.stdout.lines().any(|l| l == "app") && run.stdout.lines().any(|l| l == "piped"),
        "{}",
        run.stdout
    );
    let run = broker(&["policy", "read", "app"], &env, home.path(), "");
    assert!(run.stdout.contains("path \"secret/*\""), "{}", run.stdout);
    let run = broker(&["list", "sys/policies/acl"], &env, home.path(), "");
    assert!(run.stdout.starts_with("Keys\n----\n"), "{}", run.stdout);

    // Secrets engines and KV by secret path.
    let run = broker(
        &["secrets", "enable", "-version=2", "-path=secret", "kv"],
        &env,
        home.path(),
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = broker(&["secrets", "list"], &env, home.path(), "");
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("secret/") && l.contains("kv")),
        "{}",
        run.stdout
    );
    let run = broker(
        &["kv", "put", "secret/app", "api_key=k-123", "region=eu"],
        &env,
        home.path(),
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = broker(
        &["kv", "get", "-field=api_key", "secret/app"],
        &env,
        home.path(),
        "",
    );
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "k-123"),
        "{}",
        run.stderr
    );
    let run = broker(&["kv", "get", "secret/app"], &env, home.path(), "");
    assert!(
        run.stdout.contains("region") && run.stdout.contains("eu"),
        "{}",
        run.stdout
    );
    // A patch changes one field and keeps the others.
    let run = broker(
        &["kv", "patch", "secret/app", "region=us"],
        &env,
        home.path(),
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = broker(
        &["kv", "get", "-format=json", "secret/app"],
        &env,
        home.path(),
        "",
    );
    let got: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        got["data"],
        json!({"api_key": "k-123", "region": "us"}),
        "{got}"
    );
    // `broker patch` on any path speaks JSON merge patch too.
    let run = broker(
        &["patch", "secret/data/app", "-"],
        &env,
        home.path(),
        "{\"data\": {\"region\": \"eu\"}}",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = broker(
        &["kv", "get", "-field=region", "secret/app"],
        &env,
        home.path(),
        "",
    );
    assert_eq!(run.stdout, "eu");

    // Login: the token kept in the helper file (0600), used afterwards;
    // Vault's variable names work as well.
    let (token, _) = b
        .token_with_policy(
            "reader",
            "path \"secret/data/*\" { capabilities = [\"read\"] }",
        )
        .await;
    let file_env = [("VAULT_ADDR", a.as_str())];
    let run = broker(
        &["login", "-"],
        &file_env,
        home.path(),
        &format!("{token}\n"),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let helper = home.path().join(".broker-token");
    assert_eq!(std::fs::read_to_string(&helper).unwrap(), token);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&helper).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let run = broker(
        &["token", "lookup", "-format=json"],
        &file_env,
        home.path(),
        "",
    );
    let looked: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(
        looked["data"]["policies"]
            .as_array()
            .unwrap()
            .contains(&json!("reader")),
        "{looked}"
    );
    let run = broker(
        &["kv", "get", "-mount=secret", "-field=region", "app"],
        &file_env,
        home.path(),
        "",
    );
    assert_eq!((run.code, run.stdout.as_str()), (0, "eu"), "{}", run.stderr);
    let run = broker(
        &["token", "capabilities", "secret/data/app"],
        &file_env,
        home.path(),
        "",
    );
    assert_eq!(run.stdout.trim(), "read", "{}", run.stderr);

    // AppRole login, as a pipeline would.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/auth/approle",
        Some(json!({"type": "approle"})),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "auth/approle/role/ci",
        Some(json!({"token_policies": ["reader"]})),
    )
    .await;
    let role_id = crate::approle::role_id(&b, "ci").await;
    let (secret_id, _) = crate::approle::secret_id(&b, "ci", json!({})).await;
    let run = broker(
        &[
            "login",
            "-method=approle",
            "-no-store",
            "-field=token",
            &format!("role_id={role_id}"),
            &format!("secret_id={secret_id}"),
        ],
        &file_env,
        home.path(),
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (code, me) = b
        .call_as(&run.stdout, "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(
        code,
        StatusCode::OK,
        "-field=token printed a working token alone: {me}"
    );
    assert!(
        me["data"]["policies"]
            .as_array()
            .unwrap()
            .contains(&json!("reader")),
        "{me}"
    );
    assert_eq!(
        std::fs::read_to_string(&helper).unwrap(),
        token,
        "-no-store kept the old token"
    );

    // Revoking through the CLI; the lease's user is gone.
    let run = broker(
        &["lease", "revoke", "-prefix", "database/creds/readonly"],
        &env,
        home.path(),
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(pg_connect(s, user, password).await.is_err());

    // The token is never printed in an error, nor in the log of a failure.
    let run = broker(
        &["read", "sys/mounts"],
        &[
            ("BROKER_ADDR", a.as_str()),
            ("BROKER_TOKEN", "brk.not-a-real-one"),
        ],
        home.path(),
        "",
    );
    assert!(!run.stderr.contains("brk.not-a-real-one"), "{}", run.stderr);
}

#[tokio::test]
async fn each_error_says_what_to_do_with_vaults_exit_code() {
    let b = Broker::start().await;
    let home = tempfile::tempdir().unwrap();
    let a = addr(&b);
    let env = [
        ("BROKER_ADDR", a.as_str()),
        ("BROKER_TOKEN", b.token.as_str()),
    ];

    // No server.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let run = broker(
        &["read", "sys/mounts"],
        &[("BROKER_ADDR", &closed), ("BROKER_TOKEN", "x")],
        home.path(),
        "",
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("cannot reach the broker at {closed}"))
            && run.stderr.contains("BROKER_ADDR"),
        "{}",
        run.stderr
    );

    // No token anywhere.
    let run = broker(
        &["read", "sys/mounts"],
        &[("BROKER_ADDR", a.as_str())],
        home.path(),
        "",
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("no token: log in with `broker login`"),
        "{}",
        run.stderr
    );

    // A bad token.
    let run = broker(
        &["read", "sys/mounts"],
        &[("BROKER_ADDR", a.as_str()), ("BROKER_TOKEN", "brk.unknown")],
        home.path(),
        "",
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("the token was refused"),
        "{}",
        run.stderr
    );

    // Permission denied, naming the path and the capability.
    let (token, _) = b
        .token_with_policy(
            "narrow",
            "path \"sys/policies/acl\" { capabilities = [\"list\"] }",
        )
        .await;
    let narrow = [
        ("BROKER_ADDR", a.as_str()),
        ("BROKER_TOKEN", token.as_str()),
    ];
    let run = broker(&["read", "sys/mounts"], &narrow, home.path(), "");
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("permission denied") && run.stderr.contains("\"read\" on sys/mounts"),
        "{}",
        run.stderr
    );
    let run = broker(
        &["write", "sys/policies/acl/x", "policy=x"],
        &narrow,
        home.path(),
        "",
    );
    assert!(
        run.stderr.contains("\"update\" on sys/policies/acl/x"),
        "{}",
        run.stderr
    );

    // An unknown path; a read of nothing.
    let run = broker(&["read", "nowhere/x"], &env, home.path(), "");
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("nothing at nowhere/x"),
        "{}",
        run.stderr
    );
    let run = broker(&["read", "sys/policies/acl/none"], &env, home.path(), "");
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("no value found at sys/policies/acl/none"),
        "{}",
        run.stderr
    );

    // Usage errors are this side's: exit 1, with the usage.
    let run = broker(&["read"], &env, home.path(), "");
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("Usage"), "{}", run.stderr);
    let run = broker(
        &["read", "-formatt=json", "sys/mounts"],
        &env,
        home.path(),
        "",
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let run = broker(
        &["write", "sys/policies/acl/x", "novalue"],
        &env,
        home.path(),
        "",
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("is not key=value"), "{}", run.stderr);
    let run = broker(
        &["read", "-field=nope", "sys/policies/acl/default"],
        &env,
        home.path(),
        "",
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("field \"nope\" is not in the answer"),
        "{}",
        run.stderr
    );

    // A token file others may read is refused, not used.
    let helper = home.path().join(".broker-token");
    std::fs::write(&helper, &b.token).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = broker(
        &["read", "sys/mounts"],
        &[("BROKER_ADDR", a.as_str())],
        home.path(),
        "",
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("may be read by others") && !run.stderr.contains(&b.token),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn status_and_operator_unseal_on_a_sealed_broker() {
    let b = Broker::start_uninitialized("", "").await;
    let home = tempfile::tempdir().unwrap();
    let a = addr(&b);
    let init = b
        .call_as(
            "",
            "PUT",
            "sys/init",
            Some(json!({"secret_shares": 3, "secret_threshold": 2})),
        )
        .await
        .1;
    let keys: Vec<String> = init["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let root = init["root_token"].as_str().unwrap();
    let env = [("BROKER_ADDR", a.as_str()), ("BROKER_TOKEN", root)];

    // Sealed: status says so and exits 2; any other command says how to unseal.
    let run = broker(&["status"], &env, home.path(), "");
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stdout.contains("Sealed")
            && run.stdout.contains("true")
            && run.stdout.contains("Unseal Progress"),
        "{}",
        run.stdout
    );
    let run = broker(&["read", "sys/mounts"], &env, home.path(), "");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("is sealed") && run.stderr.contains("broker operator unseal"),
        "{}",
        run.stderr
    );

    // One share as an argument, the next from standard input (not echoed
    // anywhere: it is never printed back).
    let run = broker(&["operator", "unseal", &keys[0]], &env, home.path(), "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("1/2") && !run.stdout.contains(&keys[0]),
        "{}",
        run.stdout
    );
    let run = broker(
        &["operator", "unseal"],
        &env,
        home.path(),
        &format!("{}\n", keys[1]),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains(&keys[1]), "{}", run.stdout);
    let run = broker(&["status"], &env, home.path(), "");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let run = broker(&["status", "-format=yaml"], &env, home.path(), "");
    assert!(run.stdout.contains("sealed: false"), "{}", run.stdout);
    let run = broker(&["status", "-format=json"], &env, home.path(), "");
    let status: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status["sealed"], false);

    // A rekey to 2 of 2 through the CLI: started, two current shares with
    // the nonce, the new shares printed once; the old ones stop working.
    let run = broker(
        &[
            "operator",
            "rekey",
            "-init",
            "-key-shares=2",
            "-key-threshold=2",
        ],
        &env,
        home.path(),
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let nonce = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Nonce"))
        .map(|n| n.trim().to_owned())
        .unwrap_or_else(|| panic!("{}", run.stdout));
    let run = broker(
        &["operator", "rekey", &format!("-nonce={nonce}"), &keys[0]],
        &env,
        home.path(),
        "",
    );
    assert!(run.stdout.contains("1/2"), "{}{}", run.stdout, run.stderr);
    let run = broker(
        &["operator", "rekey", &format!("-nonce={nonce}"), "-"],
        &env,
        home.path(),
        &format!("{}\n", keys[2]),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let new_keys: Vec<String> = run
        .stdout
        .lines()
        .filter_map(|l| l.split_once(": ").filter(|(k, _)| k.starts_with("Key ")))
        .map(|(_, v)| v.to_owned())
        .collect();
    assert_eq!(new_keys.len(), 2, "{}", run.stdout);
    broker(&["operator", "seal"], &env, home.path(), "");
    // Two old shares reach the threshold and are refused together.
    broker(&["operator", "unseal", &keys[0]], &env, home.path(), "");
    let run = broker(&["operator", "unseal", &keys[1]], &env, home.path(), "");
    assert_eq!(run.code, 2, "old shares are refused: {}", run.stdout);
    for key in &new_keys {
        broker(&["operator", "unseal", key], &env, home.path(), "");
    }
    assert_eq!(broker(&["status"], &env, home.path(), "").code, 0);

    // Rotate and seal through the CLI.
    let run = broker(&["operator", "rotate", "-wait"], &env, home.path(), "");
    assert!(
        run.stdout.contains("rewrap to term 2") && run.stdout.trim_end().ends_with("done"),
        "{}{}",
        run.stdout,
        run.stderr
    );
    assert!(
        run.stdout.contains("term 2"),
        "{}{}",
        run.stdout,
        run.stderr
    );
    let run = broker(&["operator", "seal"], &env, home.path(), "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(broker(&["status"], &env, home.path(), "").code, 2);
}

/// `tmux` on a socket of its own, for a test that needs a terminal.
fn tmux(socket: &str, args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(["-L", socket])
        .args(args)
        .output()
        .expect("tmux must be installed (Debian: apt install tmux)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn operator_unseal_at_a_terminal_asks_for_the_share_without_echo() {
    let b = Broker::start_uninitialized("", "").await;
    let home = tempfile::tempdir().unwrap();
    let init = b
        .call_as(
            "",
            "PUT",
            "sys/init",
            Some(json!({"secret_shares": 1, "secret_threshold": 1})),
        )
        .await
        .1;
    let share = init["keys"][0].as_str().unwrap().to_owned();
    let socket = format!("broker-cli-{}", std::process::id());
    let command = format!(
        "env -u BROKER_TOKEN -u VAULT_TOKEN HOME={} BROKER_ADDR={} {BROKER} operator unseal; sleep 60",
        home.path().display(),
        addr(&b)
    );
    tmux(
        &socket,
        &[
            "new-session",
            "-d",
            "-s",
            "unseal",
            "-x",
            "160",
            "-y",
            "40",
            &command,
        ],
    );
    let screen = |want: &'static str| {
        let socket = socket.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                let text = tmux(&socket, &["capture-pane", "-p", "-t", "unseal"]);
                if text.contains(want) {
                    return text;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the terminal never showed {want:?}:\n{text}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    screen("Unseal Key (will be hidden):").await;
    tmux(&socket, &["send-keys", "-t", "unseal", &share, "Enter"]);
    let after = screen("Sealed").await;
    tmux(&socket, &["kill-server"]);
    assert!(!after.contains(&share), "the share was echoed:\n{after}");
    let (_, status) = b.call_as("", "GET", "sys/seal-status", None).await;
    assert_eq!(status["sealed"], false, "{status}\n{after}");
}

/// `database/roles/short`: credentials valid 6 s unless renewed (up to a
/// minute), their `VALID UNTIL` moved by each renewal.
async fn short_role(b: &Broker) {
    let s = postgres();
    setup_postgres_at(b, &pg_url(&s.host, s.port), "*").await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/short",
        Some(json!({
            "db_name": "pg", "default_ttl": "6s", "max_ttl": "60s",
            "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'"],
        })),
    )
    .await;
}

/// Waits until `file` holds a line; the line.
async fn line_in(file: &Path) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(file)
            && text.ends_with('\n')
        {
            return text.trim().to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} never written",
            file.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_gives_the_child_renewed_credentials_and_revokes_them_when_it_ends() {
    let b = Broker::start().await;
    short_role(&b).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("creds");
    let a = addr(&b);
    // The child writes what it got, outlives the credential's first TTL
    // (6 s) and exits 7.
    let script = format!(
        "echo \"$DB_USERNAME $DB_PASSWORD\" > {out}.tmp && mv {out}.tmp {out}; sleep 10; exit 7",
        out = out.display()
    );
    let mut exec = std::process::Command::new(BROKER)
        .args([
            "exec",
            "--secret",
            "DB=database/creds/short",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .env("BROKER_ADDR", &a)
        .env("BROKER_TOKEN", &b.token)
        .env("HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let creds = line_in(&out).await;
    let (user, password) = creds.split_once(' ').unwrap();
    let s = postgres();
    // The broker exec process itself holds no secret in its environment.
    let environ = std::fs::read(format!("/proc/{}/environ", exec.id())).unwrap();
    assert!(
        !environ
            .windows(password.len())
            .any(|w| w == password.as_bytes())
    );
    pg_connect(s, user, password)
        .await
        .unwrap_or_else(|e| panic!("the child's credentials do not log in: {e}"));
    // Past the first TTL, renewed: still there and still logging in.
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    pg_connect(s, user, password)
        .await
        .unwrap_or_else(|e| panic!("the credential was not renewed past its first TTL: {e}"));
    let status = exec.wait().unwrap();
    assert_eq!(status.code(), Some(7), "the child's exit code");
    assert!(
        pg_connect(s, user, password).await.is_err(),
        "revoked when the child ended"
    );
    let (code, leases) = b
        .call(
            "GET",
            "sys/leases/lookup/database/creds/short?list=true",
            None,
        )
        .await;
    assert!(
        code == StatusCode::NOT_FOUND
            || leases["data"]["keys"].as_array().is_none_or(Vec::is_empty),
        "{leases}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_logs_in_with_approle_forwards_sigterm_and_revokes() {
    let b = Broker::start().await;
    short_role(&b).await;
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
        "sys/policies/acl/deploy",
        Some(json!({"policy": "path \"database/creds/short\" { capabilities = [\"read\"] }"})),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "auth/approle/role/deploy",
        Some(json!({"token_policies": ["deploy"], "token_ttl": "1m"})),
    )
    .await;
    let role_id = crate::approle::role_id(&b, "deploy").await;
    let (secret_id, _) = crate::approle::secret_id(&b, "deploy", json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("creds");
    let script = format!(
        "trap 'exit 3' TERM; echo \"$DB_USERNAME $DB_PASSWORD\" > {out}.tmp && mv {out}.tmp {out}; while true; do sleep 0.1; done",
        out = out.display()
    );
    let exec = std::process::Command::new(BROKER)
        .args([
            "exec",
            "--auth",
            "approle",
            "--secret",
            "db=database/creds/short",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .env("BROKER_ADDR", addr(&b))
        .env("BROKER_ROLE_ID", &role_id)
        .env("BROKER_SECRET_ID", &secret_id)
        .env("HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let creds = line_in(&out).await;
    let (user, password) = creds.split_once(' ').unwrap();
    let s = postgres();
    pg_connect(s, user, password).await.unwrap();
    // SIGTERM to `broker exec` reaches the child, which exits 3.
    let ok = Command::new("kill")
        .args(["-TERM", &exec.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let out = exec.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        pg_connect(s, user, password).await.is_err(),
        "revoked after the signal"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains(password));
}

#[tokio::test]
async fn audit_devices_and_certificates_from_the_command_line() {
    let logs = tempfile::tempdir().unwrap();
    let b = Broker::start_with(
        None,
        &format!("[audit]\nfile_dirs = [\"{}\"]\n", logs.path().display()),
    )
    .await;
    let home = tempfile::tempdir().unwrap();
    let a = addr(&b);
    let env = [
        ("BROKER_ADDR", a.as_str()),
        ("BROKER_TOKEN", b.token.as_str()),
    ];

    let file = logs.path().join("audit.log");
    let run = broker(
        &[
            "audit",
            "enable",
            "file",
            &format!("file_path={}", file.display()),
        ],
        &env,
        home.path(),
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = broker(&["audit", "list"], &env, home.path(), "");
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("file/") && l.contains("audit.log")),
        "{}",
        run.stdout
    );
    assert!(
        std::fs::metadata(&file).is_ok(),
        "the device writes its file"
    );

    // A certificate and key written to files, the key for its owner only.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/pki",
        Some(json!({"type": "pki"})),
    )
    .await;
    b.expect(
        StatusCode::OK,
        "POST",
        "pki/root/generate/internal",
        Some(json!({"common_name": "CLI Root", "ttl": "8760h"})),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "pki/roles/web",
        Some(json!({"allowed_domains": ["example.com"], "allow_subdomains": true})),
    )
    .await;
    let (cert, key) = (home.path().join("api.pem"), home.path().join("api.key"));
    let run = broker(
        &[
            "pki",
            "issue",
            "pki/web",
            "common_name=api.example.com",
            "ttl=1h",
            &format!("-cert-out={}", cert.display()),
            &format!("-key-out={}", key.display()),
        ],
        &env,
        home.path(),
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("Success! Issued serial"),
        "{}",
        run.stdout
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("api.example.com"));
    let key_text = std::fs::read_to_string(&key).unwrap();
    assert!(key_text.contains("PRIVATE KEY") && !run.stdout.contains("PRIVATE KEY"));

    let run = broker(&["audit", "disable", "file"], &env, home.path(), "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = broker(&["audit", "list"], &env, home.path(), "");
    assert!(!run.stdout.contains("file/"), "{}", run.stdout);
}
