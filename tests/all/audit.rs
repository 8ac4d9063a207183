//! Audit: every request and response on record, HMAC'd, hash-chained,
//! verifiable; fail closed when no device can write; and `sys/audit` is no
//! way to write files where the operator did not allow it.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use broker_tests::postgres;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::{pg_url, pg_users_with_prefix, setup_postgres_at, setup_tagged};
use crate::process::{BROKER, Broker, first_error};

pub fn audit_config(dir: &Path, devices: &[(&str, &str)]) -> String {
    let mut text = format!("[audit]\nfile_dirs = [\"{}\"]\n", dir.display());
    for (path, file) in devices {
        text.push_str(&format!(
            "[[audit.devices]]\npath = \"{path}\"\nfile_path = \"{file}\"\n"
        ));
    }
    text
}

pub fn entries(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `broker audit verify --open-end`: these files may still be written to,
/// so lines after the last checkpoint are accepted (`audit_chain` checks
/// the ends).
fn verify(files: &[&Path]) -> (bool, String) {
    let out = Command::new(BROKER)
        .args(["audit", "verify", "--open-end"])
        .args(files)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn setup(b: &Broker) {
    let s = postgres();
    setup_postgres_at(b, &pg_url(&s.host, s.port), "*").await;
}

#[tokio::test]
async fn every_request_is_on_record_without_a_secret_in_clear() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("audit.log");
    let b = Broker::start_with(
        None,
        &audit_config(logs.path(), &[("file", log.to_str().unwrap())]),
    )
    .await;
    setup(&b).await;
    let creds = b
        .expect(StatusCode::OK, "GET", "database/creds/readonly", None)
        .await;
    let lease_id = creds["lease_id"].as_str().unwrap().to_owned();
    let user = creds["data"]["username"].as_str().unwrap().to_owned();
    let password = creds["data"]["password"].as_str().unwrap().to_owned();
    let second = b
        .expect(StatusCode::OK, "GET", "database/creds/readonly", None)
        .await;
    let second_lease = second["lease_id"].as_str().unwrap().to_owned();
    b.expect(
        StatusCode::OK,
        "PUT",
        "sys/leases/renew",
        Some(json!({ "lease_id": lease_id })),
    )
    .await;
    b.expect(
        StatusCode::OK,
        "PUT",
        "sys/leases/lookup",
        Some(json!({ "lease_id": lease_id })),
    )
    .await;
    b.expect(
        StatusCode::OK,
        "LIST",
        "sys/leases/lookup/database/creds/readonly",
        None,
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke",
        Some(json!({ "lease_id": lease_id })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke-prefix/database/creds/readonly",
        None,
    )
    .await;
    b.expect(StatusCode::OK, "GET", "sys/mounts/database/tune", None)
        .await;
    b.expect(StatusCode::OK, "GET", "sys/internal/specs/openapi", None)
        .await;
    let devices = b.expect(StatusCode::OK, "GET", "sys/audit", None).await;
    assert_eq!(devices["data"]["file/"]["type"], "file");
    let (status, _) = b.call("GET", "database/creds/nope", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let denied = b
        .http
        .get(format!("{}/sys/mounts", b.base))
        .header("X-Vault-Token", "brk.wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    // sys/audit-hash finds where a leaked username was issued.
    let hashed = b
        .expect(
            StatusCode::OK,
            "POST",
            "sys/audit-hash/file",
            Some(json!({ "input": user })),
        )
        .await;
    let user_hash = hashed["data"]["hash"].as_str().unwrap().to_owned();
    assert!(user_hash.starts_with("hmac-sha256:"), "{user_hash}");

    let text = std::fs::read_to_string(&log).unwrap();
    for secret in [
        password.as_str(),
        second["data"]["password"].as_str().unwrap(),
        user.as_str(),
        b.token.as_str(),
        postgres().password.as_str(),
    ] {
        assert!(
            !text.contains(secret),
            "{secret:?} is in the audit log in clear"
        );
    }
    let all = entries(&log);
    // A request and a response entry for every family of endpoints. A
    // first write to a path that knows whether its object exists is a
    // create, as in Vault.
    for (op, path) in [
        ("update", "sys/mounts/database"),
        ("create", "database/config/pg"),
        ("create", "database/roles/readonly"),
        ("read", "database/creds/readonly"),
        ("update", "sys/leases/renew"),
        ("update", "sys/leases/lookup"),
        ("list", "sys/leases/lookup/database/creds/readonly"),
        ("update", "sys/leases/revoke"),
        ("update", "sys/leases/revoke-prefix/database/creds/readonly"),
        ("read", "sys/mounts/database/tune"),
        ("read", "sys/internal/specs/openapi"),
        ("read", "sys/audit"),
        ("update", "sys/audit-hash/file"),
    ] {
        for kind in ["request", "response"] {
            assert!(
                all.iter().any(|e| e["type"] == kind
                    && e["request"]["path"] == path
                    && e["request"]["operation"] == op),
                "no {kind} entry for {op} {path}"
            );
        }
    }
    // The issuance: who, from where, which lease; the credential HMAC'd.
    let issued = all
        .iter()
        .find(|e| {
            e["type"] == "response" && e["response"]["secret"]["lease_id"] == lease_id.as_str()
        })
        .expect("the issuance's response entry");
    assert_eq!(issued["auth"]["display_name"], "root");
    assert_eq!(issued["request"]["mount_type"], "database");
    assert_eq!(issued["request"]["remote_address"], "127.0.0.1");
    assert_eq!(issued["response"]["data"]["username"], user_hash.as_str());
    assert!(
        issued["auth"]["client_token"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:")
    );
    // The connection's admin password went in as a request, HMAC'd.
    let config = all
        .iter()
        .find(|e| e["type"] == "request" && e["request"]["path"] == "database/config/pg")
        .unwrap();
    assert!(
        config["request"]["data"]["password"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:")
    );
    // Refusals are on record too.
    assert!(all.iter().any(|e| e["type"] == "response"
        && e["request"]["path"] == "sys/mounts"
        && e["error"] == "permission denied"));
    // Every revocation, including those inside revoke-prefix.
    for id in [&lease_id, &second_lease] {
        assert!(
            all.iter().any(|e| e["event"]["type"] == "lease-revoked"
                && e["event"]["details"]["lease_id"] == id.as_str()),
            "no revocation entry for {id}"
        );
    }
    let (ok, out) = verify(&[&log]);
    assert!(ok, "{out}");
}

#[tokio::test]
async fn the_chain_survives_restarts_and_rotation_and_verify_finds_tampering() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("audit.log");
    let mut b = Broker::start_with(
        None,
        &audit_config(logs.path(), &[("file", log.to_str().unwrap())]),
    )
    .await;
    for _ in 0..3 {
        b.expect(StatusCode::OK, "GET", "sys/mounts", None).await;
    }
    // Across a restart, the chain continues in the same file.
    b.restart().await;
    for _ in 0..2 {
        b.expect(StatusCode::OK, "GET", "sys/mounts", None).await;
    }
    let (ok, out) = verify(&[&log]);
    assert!(ok, "{out}");
    // A checkpoint at each start, and a request and a response line each.
    assert!(out.contains("12 lines"), "{out}");

    // Log rotation: move the file away, SIGHUP, and the chain goes on in a new file.
    let rotated = logs.path().join("audit.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    b.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        b.expect(StatusCode::OK, "GET", "sys/mounts", None).await;
        if log.exists() {
            break;
        }
        assert!(Instant::now() < deadline, "no new file after SIGHUP");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.expect(StatusCode::OK, "GET", "sys/mounts", None).await;
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (ok, out) = verify(&[&rotated, &log]);
    assert!(ok, "{out}");
    let (ok, out) = verify(&[&log, &rotated]);
    assert!(!ok, "files out of order must fail: {out}");

    // Each kind of tampering fails at its line.
    let lines: Vec<String> = std::io::BufReader::new(std::fs::File::open(&rotated).unwrap())
        .lines()
        .map(Result::unwrap)
        .collect();
    let tamper = |name: &str, lines: Vec<String>| -> (bool, String) {
        let path: PathBuf = logs.path().join(name);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        verify(&[&path])
    };
    let mut edited = lines.clone();
    edited[3] = edited[3].replace("\"read\"", "\"delete\"");
    assert_ne!(edited[3], lines[3]);
    let (ok, out) = tamper("edited", edited);
    assert!(
        !ok && out.contains("edited:4: the line was edited"),
        "{out}"
    );

    let mut missing = lines.clone();
    missing.remove(4);
    let (ok, out) = tamper("missing", missing);
    assert!(!ok && out.contains("missing:5: 1 line(s) missing"), "{out}");

    let mut inserted = lines.clone();
    inserted.insert(6, lines[2].clone());
    let (ok, out) = tamper("inserted", inserted);
    assert!(
        !ok && out.contains("inserted:7: line inserted or out of order"),
        "{out}"
    );

    let mut reordered = lines.clone();
    reordered.swap(5, 6);
    let (ok, out) = tamper("reordered", reordered);
    assert!(!ok && out.contains("reordered:6:"), "{out}");
}

#[tokio::test]
async fn a_file_rotated_while_the_broker_is_stopped_continues_the_chain() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("audit.log");
    let mut b = Broker::start_with(
        None,
        &audit_config(logs.path(), &[("file", log.to_str().unwrap())]),
    )
    .await;
    for _ in 0..3 {
        b.expect(StatusCode::OK, "GET", "sys/mounts", None).await;
    }
    b.stop().await;
    // logrotate's `create` mode, run while the broker is down.
    let rotated = logs.path().join("audit.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    b.start_again().await;
    b.expect(StatusCode::OK, "GET", "sys/mounts", None).await;
    let first = &entries(&log)[0];
    assert_ne!(first["seq"], 1, "the chain restarted: {first}");
    let (ok, out) = verify(&[&rotated, &log]);
    assert!(ok, "{out}");
    // Checkpoints: the first start, the clean stop, the new file's first line.
    assert!(out.contains("11 lines"), "{out}");
}

#[tokio::test]
async fn when_no_device_can_write_requests_fail_closed_and_nothing_is_issued() {
    let logs = tempfile::tempdir().unwrap();
    let good = logs.path().join("good.log");
    let b = Broker::start_with(
        None,
        &format!(
            "[audit]\nfile_dirs = [\"{}\"]\n[[audit.devices]]\npath = \"full\"\nfile_path = \"/dev/full\"\n",
            logs.path().display()
        ),
    )
    .await;
    // A full disk from the start: nothing is served.
    let (status, body) = b.call("GET", "sys/mounts", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(first_error(&body).contains("audit"), "{body}");
    drop(b);

    // A device that works at first, enabled over the API.
    let b = Broker::start_with(
        None,
        &format!("[audit]\nfile_dirs = [\"{}\"]\n", logs.path().display()),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/audit/good",
        Some(json!({ "type": "file", "options": { "file_path": good.to_str().unwrap() } })),
    )
    .await;
    let prefix = setup_tagged(
        &b,
        "app",
        json!(["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';"]),
    )
    .await;
    b.expect(StatusCode::OK, "GET", "database/creds/app", None)
        .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke-prefix/database/",
        None,
    )
    .await;
    // Then the only device left cannot write: its file turns read-only
    // (immutable, which stops even root and even an open descriptor).
    let chattr = |flag: &str| {
        Command::new("chattr")
            .arg(flag)
            .arg(&good)
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(
        chattr("+i"),
        "chattr +i failed: this test needs a filesystem with the immutable flag, and root"
    );
    struct Mutable<F: Fn(&str) -> bool>(F);
    impl<F: Fn(&str) -> bool> Drop for Mutable<F> {
        fn drop(&mut self) {
            (self.0)("-i");
        }
    }
    let _restore = Mutable(chattr);
    let (status, body) = b.call("GET", "database/creds/app", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(first_error(&body).contains("audit"), "{body}");
    assert!(body.get("data").is_none(), "{body}");
    let count = pg_users_with_prefix(&prefix).await;
    assert_eq!(count, 0, "a user was left behind");
}

#[tokio::test]
async fn a_credential_whose_response_cannot_be_audited_is_taken_back() {
    // A FIFO as the only device: the test reads entries until the creds
    // request, then closes its end, so the response entry cannot be written.
    let logs = tempfile::tempdir().unwrap();
    let fifo = logs.path().join("audit.fifo");
    let ok = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo");
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let file = std::fs::File::open(&fifo).unwrap();
            for line in std::io::BufReader::new(file).lines() {
                let entry: Value = serde_json::from_str(&line.unwrap()).unwrap();
                if entry["type"] == "request" && entry["request"]["path"] == "database/creds/slow" {
                    return true; // dropping the file closes the read end
                }
            }
            false
        })
    };
    let b = Broker::start_with(
        None,
        &format!(
            "[[audit.devices]]\npath = \"pipe\"\nfile_path = \"{}\"\n",
            fifo.display()
        ),
    )
    .await;
    // Creation takes a moment, so the reader is gone before the response.
    let prefix = setup_tagged(
        &b,
        "slow",
        json!([
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';",
            "SELECT pg_sleep(0.5);"
        ]),
    )
    .await;
    let (status, body) = b.call("GET", "database/creds/slow", None).await;
    assert!(reader.join().unwrap(), "the reader saw the creds request");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.get("data").is_none(), "{body}");
    let count = pg_users_with_prefix(&prefix).await;
    assert_eq!(count, 0, "the unaudited user was left behind");
    // It was made, then revoked.
    let log = b.log();
    assert!(
        log.lines()
            .any(|l| l.contains("lease revoked") && l.contains("database/creds/slow/")),
        "{log}"
    );
}

#[tokio::test]
async fn sys_audit_cannot_write_where_the_operator_did_not_allow() {
    let allowed = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let b = Broker::start_with(None, &audit_config(allowed.path(), &[])).await;
    let enable = |name: &str, options: Value| {
        let b = &b;
        let path = format!("sys/audit/{name}");
        async move {
            b.call(
                "PUT",
                &path,
                Some(json!({ "type": "file", "options": options })),
            )
            .await
        }
    };

    let outside = elsewhere.path().join("audit.log");
    let (status, body) = enable("a", json!({ "file_path": outside })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(first_error(&body).contains("audit.file_dirs"), "{body}");
    assert!(!outside.exists());

    let traversal = format!("{}/../escape.log", allowed.path().display());
    let (status, body) = enable("b", json!({ "file_path": traversal })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // A symlink inside the allowed directory is not followed.
    let target = elsewhere.path().join("target");
    std::fs::write(&target, "untouched").unwrap();
    let link = allowed.path().join("link.log");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (status, body) = enable("c", json!({ "file_path": link })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched");

    // No option chooses the first bytes of the file, or loosens its mode.
    let inside = allowed.path().join("audit.log");
    for (option, value) in [("prefix", json!("#!/bin/sh\n")), ("mode", json!("0777"))] {
        let (status, body) = enable("d", json!({ "file_path": inside, option: value })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{option}: {body}");
        assert!(!inside.exists());
    }

    let (status, body) = enable("d", json!({ "file_path": inside })).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&inside).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let first = std::fs::read_to_string(&inside).unwrap();
    assert!(first.starts_with("{\""), "{first}");
    let devices = b.expect(StatusCode::OK, "GET", "sys/audit", None).await;
    assert_eq!(
        devices["data"]["d/"]["options"]["file_path"],
        inside.to_str().unwrap()
    );
    // The same file by another string is the same file.
    let doubled = format!("{}//audit.log", allowed.path().display());
    let (status, body) = enable("e", json!({ "file_path": doubled })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(first_error(&body).contains("already writes"), "{body}");
    b.expect(StatusCode::NO_CONTENT, "DELETE", "sys/audit/d", None)
        .await;
    let devices = b.expect(StatusCode::OK, "GET", "sys/audit", None).await;
    assert_eq!(devices["data"], json!({}));

    // A directory swapped for a link after the check leads nowhere: the
    // reopen on SIGHUP refuses to follow it.
    let sub = allowed.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let (status, body) = enable("f", json!({ "file_path": sub.join("f.log") })).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    std::fs::rename(&sub, allowed.path().join("sub.old")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), &sub).unwrap();
    b.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.call("GET", "sys/mounts", None).await;
    assert!(
        !elsewhere.path().join("f.log").exists(),
        "the audit file was created through the link"
    );
    assert!(
        b.log().contains("cannot reopen audit file"),
        "the refused reopen is logged"
    );
}

/// A write cut short (a full disk) leaves some of its lines in the file.
/// The chain must go on from the file's last whole line: going on from the
/// head before the failed write would repeat its seqs and fork the chain.
/// The file has been renamed by log rotation (no SIGHUP yet), so its last
/// line must be read through the open file, not through its old path.
///
/// The disk fills for real: the test runs itself again in a child process
/// whose file-size limit (`RLIMIT_FSIZE`) the write runs into, so no other
/// test shares the limit.
#[test]
fn a_write_cut_short_does_not_fork_the_chain() {
    const CHILD: &str = "BROKER_TEST_AUDIT_FSIZE_DIR";
    if let Some(dir) = std::env::var_os(CHILD) {
        write_past_a_size_limit(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "audit::a_write_cut_short_does_not_fork_the_chain",
            "--nocapture",
        ])
        .env(CHILD, dir.path())
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the child failed:\n{report}");
    assert!(
        report.contains("1 passed"),
        "the child ran no test:\n{report}"
    );

    let text = std::fs::read_to_string(dir.path().join("audit.log.1")).unwrap();
    let mut head = None;
    let mut torn = 0;
    let mut whole = 0;
    for line in text.lines() {
        match broker::audit::chain::verify_line(line, &mut head) {
            Ok(()) => whole += 1,
            Err(broker::audit::chain::ChainBreak::Malformed(_)) => torn += 1,
            Err(e) => panic!("the chain forked at {line:.80}: {e}"),
        }
    }
    assert_eq!(torn, 1, "the cut-short write leaves one partial line");
    // The checkpoint that opens the file, 3 before, 3 after, and the whole
    // lines of the cut-short batch.
    assert!(whole > 7, "{whole} whole lines");
    assert_eq!(head.map(|h| h.seq), Some(whole));
}

/// The child's half: appends until the size limit cuts a batch short, then
/// appends again with the limit lifted.
#[allow(unsafe_code)] // std has no way to ignore SIGXFSZ or set a limit
fn write_past_a_size_limit(dir: &Path) {
    use broker::audit::keys::ChainKeys;
    use broker::audit::{FileDevice, Target};
    let entry = |i: usize| {
        let Value::Object(map) = json!({ "type": "request", "n": i, "pad": "x".repeat(200) })
        else {
            unreachable!()
        };
        map
    };
    let path = dir.join("audit.log");
    let keys = std::sync::Arc::new(ChainKeys::generate().unwrap());
    let device = FileDevice::open(Target::File(path.clone()), keys, None, None).unwrap();
    device
        .append_all((0..3).map(entry).collect(), true)
        .unwrap();
    // Rotated away: the device still writes to it, under its new name.
    let rotated = dir.join("audit.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    let len = std::fs::metadata(&rotated).unwrap().len();
    let limit = |bytes: libc::rlim_t| {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain system calls on a struct this function owns; the
        // signal is ignored so that the write fails with EFBIG instead.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim), 0);
            lim.rlim_cur = bytes;
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
        }
    };
    // Room for about two and a half more lines.
    limit(len + 1100);
    let cut = device.append_all((3..13).map(entry).collect(), true);
    assert!(cut.is_err(), "the size limit did not cut the write short");
    limit(libc::RLIM_INFINITY);
    device
        .append_all((13..16).map(entry).collect(), true)
        .unwrap();
}
