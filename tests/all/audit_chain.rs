//! The keyed, anchored audit chain against someone who can write the audit
//! file: an edit whose hashes are recomputed, lines dropped at the start or
//! the end, an older file put in place. `broker audit verify` refuses each
//! with the checkpoint public key and no other secret, and the broker
//! refuses each at start (the device writes nothing, requests fail closed)
//! until the operator moves the file aside and reopens it.
//!
//! Also: values the log keeps in clear are bounded in size.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::process::{BROKER, Broker, first_error};

fn config(dir: &Path, log: &Path) -> String {
    format!(
        "[audit]\nfile_dirs = [\"{}\"]\n[[audit.devices]]\npath = \"file\"\nfile_path = \"{}\"\n",
        dir.display(),
        log.display()
    )
}

fn lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(file: &Path, lines: &[String]) {
    std::fs::write(file, lines.join("\n") + "\n").unwrap();
}

/// `broker audit verify [--public-key KEY] FILES...`: success and output.
fn verify(key: Option<&Path>, files: &[&Path]) -> (bool, String) {
    let mut cmd = Command::new(BROKER);
    cmd.args(["audit", "verify"]);
    if let Some(key) = key {
        cmd.arg("--public-key").arg(key);
    }
    let out = cmd.args(files).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// What an intruder can compute: a line's public hash (SHA-256 over its
/// canonical body, a newline and its MAC). The MAC itself needs the key.
fn public_hash(entry: &Map<String, Value>) -> String {
    let mut body = entry.clone();
    for k in ["hash", "mac", "signature"] {
        body.remove(k);
    }
    let mut text = String::new();
    broker::audit::chain::canonical(&Value::Object(body), &mut text);
    let mut h = Sha256::new();
    h.update(text.as_bytes());
    // A chain without a key (before this broker had one) hashed the body alone.
    if let Some(mac) = entry.get("mac").and_then(Value::as_str) {
        h.update(b"\n");
        h.update(mac.as_bytes());
    }
    format!("{:x}", h.finalize())
}

/// Edits the first request line for `sys/mounts` (its operation becomes
/// `delete`), then recomputes every hash from there on and relinks: the
/// chain is intact to anyone who checks hashes only.
fn edit_and_rehash(lines: &[String]) -> Vec<String> {
    let at = lines
        .iter()
        .position(|l| l.contains("\"type\":\"request\"") && l.contains("\"path\":\"sys/mounts\""))
        .expect("a request for sys/mounts");
    let mut out = lines[..at].to_vec();
    let mut prev = match at.checked_sub(1) {
        Some(before) => serde_json::from_str(&lines[before]).unwrap(),
        None => json!({ "hash": broker::audit::chain::GENESIS }),
    };
    for (i, line) in lines[at..].iter().enumerate() {
        let Value::Object(mut e) = serde_json::from_str(line).unwrap() else {
            unreachable!()
        };
        if i == 0 {
            e["request"]["operation"] = json!("delete");
        }
        e.insert("prev_hash".into(), prev["hash"].clone());
        let hash = public_hash(&e);
        e.insert("hash".into(), json!(hash));
        prev = Value::Object(e.clone());
        out.push(Value::Object(e).to_string());
    }
    out
}

async fn public_key(b: &Broker, dir: &Path) -> PathBuf {
    let key = b
        .expect(StatusCode::OK, "GET", "sys/audit-public-key", None)
        .await;
    assert_eq!(key["data"]["algorithm"], "ed25519");
    let path = dir.join("audit.pub");
    std::fs::write(&path, key["data"]["public_key"].as_str().unwrap()).unwrap();
    path
}

async fn traffic(b: &Broker, n: usize) {
    for _ in 0..n {
        b.expect(StatusCode::OK, "GET", "sys/mounts", None).await;
    }
}

#[tokio::test]
async fn verify_refuses_a_forged_chain_with_only_the_public_key() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("audit.log");
    let mut b = Broker::start_with(None, &config(logs.path(), &log)).await;
    let key = public_key(&b, logs.path()).await;
    traffic(&b, 3).await;
    b.stop().await;
    // An older copy: complete on its own, ending at a clean stop.
    let older = logs.path().join("older.log");
    std::fs::copy(&log, &older).unwrap();
    b.start_again().await;
    traffic(&b, 3).await;
    // Rotation: the old file closes with a checkpoint, the new one opens
    // with one that continues the chain.
    let rotated = logs.path().join("audit.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    b.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !log.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no new file after SIGHUP"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    traffic(&b, 2).await;
    b.stop().await;

    let (ok, out) = verify(Some(&key), &[&rotated, &log]);
    assert!(ok, "{out}");
    assert!(out.contains("signed checkpoints verified"), "{out}");
    assert!(out.contains("shutdown"), "{out}");
    let original = lines(&rotated);
    let tampered = |name: &str, lines: Vec<String>| -> PathBuf {
        let path = logs.path().join(name);
        write_lines(&path, &lines);
        path
    };

    // Edit + recompute: the hashes hold (which was all the old chain had),
    // the signatures do not.
    let forged = tampered("forged.log", edit_and_rehash(&original));
    let (ok, out) = verify(None, &[&forged]);
    assert!(ok && out.contains("no --public-key"), "{out}");
    let (ok, out) = verify(Some(&key), &[&forged]);
    assert!(!ok && out.contains("signature does not verify"), "{out}");

    // Lines dropped at the start.
    let headless = tampered("headless.log", original[2..].to_vec());
    let (ok, out) = verify(Some(&key), &[&headless]);
    assert!(
        !ok && out.contains("headless.log:1: the file does not begin with a checkpoint"),
        "{out}"
    );

    // Lines dropped at the end.
    let cut = original[..original.len() - 2].to_vec();
    let after_checkpoint = cut
        .iter()
        .rev()
        .take_while(|l| !l.contains("\"type\":\"checkpoint\""))
        .count();
    assert!(after_checkpoint > 0);
    let tailless = tampered("tailless.log", cut);
    let (ok, out) = verify(Some(&key), &[&tailless]);
    assert!(!ok && out.contains("not covered by a checkpoint"), "{out}");
    // ... which the broker's own live file may show, if said so.
    let mut cmd = Command::new(BROKER);
    let out = cmd
        .args(["audit", "verify", "--open-end", "--public-key"])
        .arg(&key)
        .arg(&tailless)
        .output()
        .unwrap();
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("the last {after_checkpoint} line(s)")),
        "{said}"
    );

    // An older file in place of the rotated one: the next file does not
    // follow it.
    let (ok, out) = verify(Some(&key), &[&older, &log]);
    assert!(!ok && out.contains("missing before this one"), "{out}");

    // Another broker's key signs nothing here.
    let other = Broker::start().await;
    let elsewhere = tempfile::tempdir().unwrap();
    let stranger = public_key(&other, elsewhere.path()).await;
    let (ok, out) = verify(Some(&stranger), &[&rotated, &log]);
    assert!(!ok && out.contains("signature does not verify"), "{out}");
}

/// Starts the broker over a tampered file: the device refuses, every request
/// fails closed, the log says why. Then puts the good file back.
async fn refused_at_start(b: &mut Broker, log: &Path, good: &[String], bad: Vec<String>) -> String {
    write_lines(log, &bad);
    let before = b.log().len();
    b.start_again().await;
    let (status, body) = b.call("GET", "sys/mounts", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(first_error(&body).contains("audit"), "{body}");
    let said = b.log()[before..].to_owned();
    assert!(
        said.contains("does not match the chain this broker recorded"),
        "{said}"
    );
    b.stop().await;
    // Nothing was appended to the refused file.
    assert_eq!(lines(log), bad);
    write_lines(log, good);
    said
}

#[tokio::test]
async fn the_broker_refuses_a_forged_file_at_start_until_the_operator_moves_it_aside() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("audit.log");
    let mut b = Broker::start_with(None, &config(logs.path(), &log)).await;
    traffic(&b, 3).await;
    b.stop().await;
    let older = lines(&log);
    b.start_again().await;
    traffic(&b, 3).await;
    b.stop().await;
    let good = lines(&log);

    let said = refused_at_start(&mut b, &log, &good, edit_and_rehash(&good)).await;
    assert!(said.contains("rewritten and re-hashed"), "{said}");
    let said = refused_at_start(&mut b, &log, &good, good[2..].to_vec()).await;
    assert!(said.contains("does not begin with a checkpoint"), "{said}");
    let said = refused_at_start(&mut b, &log, &good, good[..good.len() - 2].to_vec()).await;
    assert!(said.contains("lines were dropped from its end"), "{said}");
    let said = refused_at_start(&mut b, &log, &good, older.clone()).await;
    assert!(
        said.contains("an older copy was put in its place"),
        "{said}"
    );

    // The good file back: the chain goes on.
    b.start_again().await;
    traffic(&b, 1).await;
    let key = public_key(&b, logs.path()).await;
    b.stop().await;
    let (ok, out) = verify(Some(&key), &[&log]);
    assert!(ok, "{out}");
    // The older copy ends at a clean stop: alone, it looks complete; only
    // the anchor the broker recorded shows it is not the file.
    let (ok, out) = verify(
        Some(&key),
        &[&{
            let p = logs.path().join("older.log");
            write_lines(&p, &older);
            p
        }],
    );
    assert!(ok, "the older file alone looks complete: {out}");

    // The operator's way out: the forged file moved aside, SIGHUP; a new
    // file continues the recorded chain.
    let good = lines(&log);
    write_lines(&log, &good[..good.len() - 2]);
    b.start_again().await;
    let (status, _) = b.call("GET", "sys/mounts", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let evidence = logs.path().join("audit.log.refused");
    std::fs::rename(&log, &evidence).unwrap();
    b.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, _) = b.call("GET", "sys/mounts", None).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the device did not resume after SIGHUP:\n{}",
            b.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The log line may land a moment after the device serves again.
    while !b.log().contains("a new file continues the recorded chain") {
        assert!(
            std::time::Instant::now() < deadline,
            "no log line says the new file continues the chain:\n{}",
            b.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    b.stop().await;
    let saved = logs.path().join("audit.log.good");
    write_lines(&saved, &good);
    let (ok, out) = verify(Some(&key), &[&saved, &log]);
    assert!(ok, "{out}");
    let first: Value = serde_json::from_str(&lines(&log)[0]).unwrap();
    assert_eq!(first["checkpoint"]["reason"], "continue", "{first}");
}

#[tokio::test]
async fn values_logged_in_clear_are_bounded() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("audit.log");
    let b = Broker::start_with(None, &config(logs.path(), &log)).await;
    let huge = "t".repeat(50 * 1024);
    // No token: refused, and logged.
    let resp = b
        .http
        .post(format!("{}/sys/mounts/x", b.base))
        .json(&json!({ "type": huge }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // With a token: refused for the type, whose error quotes it.
    let (status, body) = b
        .call("POST", "sys/mounts/y", Some(json!({ "type": huge })))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let whole = b
        .expect(
            StatusCode::OK,
            "POST",
            "sys/audit-hash/file",
            Some(json!({ "input": huge })),
        )
        .await;
    let whole = whole["data"]["hash"].as_str().unwrap().to_owned();
    let all = lines(&log);
    let mut seen = 0;
    for line in &all {
        let e: Value = serde_json::from_str(line).unwrap();
        let path = e["request"]["path"].as_str().unwrap_or_default();
        if path != "sys/mounts/x" && path != "sys/mounts/y" {
            continue;
        }
        seen += 1;
        assert!(line.len() < 4096, "a {} byte line for {path}", line.len());
        let logged = e["request"]["data"]["type"].as_str().unwrap();
        assert!(logged.starts_with("tttt"), "{logged}");
        assert!(logged.contains("truncated"), "{logged}");
        assert!(
            logged.contains(&format!("{} bytes", huge.len())),
            "{logged}"
        );
        assert!(logged.contains(&whole), "the whole value's HMAC: {logged}");
    }
    assert_eq!(seen, 4, "request and response lines for both");
}

#[tokio::test]
async fn a_device_is_not_enabled_over_a_file_the_broker_cannot_vouch_for() {
    let logs = tempfile::tempdir().unwrap();
    let b = Broker::start_with(
        None,
        &format!("[audit]\nfile_dirs = [\"{}\"]\n", logs.path().display()),
    )
    .await;
    let foreign = logs.path().join("foreign.log");
    std::fs::write(&foreign, "{\"type\":\"request\"}\n").unwrap();
    let (status, body) = b
        .call(
            "PUT",
            "sys/audit/f",
            Some(json!({ "type": "file", "options": { "file_path": foreign } })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(first_error(&body).contains("file_path"), "{body}");
    assert!(first_error(&body).contains("cannot vouch for"), "{body}");
    assert_eq!(
        std::fs::read_to_string(&foreign).unwrap(),
        "{\"type\":\"request\"}\n",
        "nothing was appended"
    );
    // A new file is fine, and so is enabling it again over its own lines.
    let own = logs.path().join("own.log");
    let enable = json!({ "type": "file", "options": { "file_path": own } });
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/audit/g",
        Some(enable.clone()),
    )
    .await;
    b.expect(StatusCode::NO_CONTENT, "DELETE", "sys/audit/g", None)
        .await;
    b.expect(StatusCode::NO_CONTENT, "PUT", "sys/audit/g", Some(enable))
        .await;
    b.expect(StatusCode::OK, "GET", "sys/mounts", None).await;
}
