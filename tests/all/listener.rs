//! The listener under clients that misbehave: silent, slow or greedy
//! connections are closed on time, one client cannot take every
//! connection, and requests without a token cannot fill the audit log or
//! spend the budget of requests with one.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::process::{Broker, first_error, sqlite_storage};

/// A broker whose `[listener]` table also holds `listener` (TOML lines),
/// with `extra` tables; its storage lives in `dir`.
async fn broker_with_listener(dir: &Path, listener: &str, extra: &str) -> Broker {
    Broker::start_with(Some(format!("{listener}\n{}", sqlite_storage(dir))), extra).await
}

fn connect(b: &Broker) -> TcpStream {
    let addr = b
        .base
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .to_owned();
    let s = TcpStream::connect(addr).unwrap();
    // A test that would hang on today's listener fails instead.
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s
}

/// Reads until the server closes the connection; what it sent. Panics if
/// it is still open when the read times out.
fn read_until_closed(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "the connection is still open ({e}); got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn silent_and_slow_clients_are_disconnected_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker_with_listener(
        dir.path(),
        "header_read_timeout = \"1s\"\nbody_read_timeout = \"1s\"",
        "",
    )
    .await;

    // A connection that never says a word.
    let mut silent = connect(&b);
    let started = Instant::now();
    read_until_closed(&mut silent);
    // Generous bounds: a loaded machine is slow, but never 10 s for a 1 s timeout.
    assert!(started.elapsed() < Duration::from_secs(12));

    // Headers a byte at a time, slower than the timeout allows.
    let mut slow = connect(&b);
    let started = Instant::now();
    let request = b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed = false;
    for byte in request {
        if slow.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if !closed {
        read_until_closed(&mut slow);
    }
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "dribbled headers held the connection {:?}",
        started.elapsed()
    );

    // A body that stops halfway: 408, and the connection is let go.
    let mut stalled = connect(&b);
    stalled
        .write_all(
            format!(
                "POST /v1/sys/mounts/x HTTP/1.1\r\nHost: x\r\nX-Vault-Token: {}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"type\":",
                b.token
            )
            .as_bytes(),
        )
        .unwrap();
    let answer = read_until_closed(&mut stalled);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive"), "{answer}");

    // An idle kept-alive connection is closed too, after a request.
    let mut kept = connect(&b);
    kept.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let answer = read_until_closed(&mut kept);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Meanwhile the broker serves. (A fresh client: the shared one's pooled
    // connection was closed while this test blocked its runtime.)
    let status = reqwest::Client::new()
        .get(format!("{}/sys/mounts", b.base))
        .header("X-Vault-Token", &b.token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn one_client_cannot_hold_more_than_its_share_of_connections() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker_with_listener(
        dir.path(),
        "header_read_timeout = \"2s\"\nmax_connections = 3\nmax_connections_per_client = 2",
        "",
    )
    .await;
    // Let the start-up health checks' kept-alive connection go (it counts
    // against this address until the header timeout closes it), with room
    // to spare on a loaded machine.
    tokio::time::sleep(Duration::from_secs(4)).await;

    let held: Vec<TcpStream> = (0..2).map(|_| connect(&b)).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A third from the same address is closed at once, without an answer.
    let mut third = connect(&b);
    let answer = read_until_closed(&mut third);
    assert!(answer.is_empty(), "{answer}");
    assert!(
        b.log().contains("reached its connection limit"),
        "{}",
        b.log()
    );
    // A slot given back is a slot free again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut next = connect(&b);
    next.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let answer = read_until_closed(&mut next);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn at_the_total_cap_new_connections_wait_and_it_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker_with_listener(
        dir.path(),
        "header_read_timeout = \"4s\"\nmax_connections = 2\nmax_connections_per_client = 2",
        "",
    )
    .await;
    // As above: the start-up connection must be gone, or it holds a slot.
    // The held connections' timeout is long enough that a loaded machine
    // reaches the accept loop's wait before they go.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let _held: Vec<TcpStream> = (0..2).map(|_| connect(&b)).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut waiting = connect(&b);
    waiting
        .write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    // Served once a silent connection's header timeout frees its slot;
    // meanwhile the accept loop found none free and said so. (Not timed:
    // on a loaded machine the test itself may be slower than the timeout.)
    let answer = read_until_closed(&mut waiting);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(b.log().contains("connection limit reached"), "{}", b.log());
}

#[tokio::test]
async fn refusals_without_a_token_are_budgeted_before_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let audit_file = logs.path().join("audit.log");
    let b = Broker::start_with(
        Some(sqlite_storage(dir.path())),
        &format!(
            "[rate_limit]\nrate = 20\nburst = 20\nunauthenticated_rate = 1\nunauthenticated_burst = 5\n\
             [audit]\nfile_dirs = [\"{logs}\"]\n[[audit.devices]]\npath = \"file\"\nfile_path = \"{file}\"\n",
            logs = logs.path().display(),
            file = audit_file.display(),
        ),
    )
    .await;
    // Entry lines only: the chain's signed checkpoints come on a schedule
    // of their own.
    let lines = || {
        std::fs::read_to_string(&audit_file)
            .unwrap()
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["type"] != "checkpoint"
            })
            .count()
    };
    let before = lines();
    let big = "x".repeat(50_000);
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let r = b
            .http
            .post(format!("{}/sys/mounts/x", b.base))
            .json(&json!({ "type": big }))
            .send()
            .await
            .unwrap();
        statuses.push(r.status());
    }
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::FORBIDDEN)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!((5..=8).contains(&refused), "{statuses:?}");
    assert_eq!(refused + limited, 40, "{statuses:?}");
    // Each audited refusal is a request and a response line; the rest
    // never reached the device.
    let written = lines() - before;
    assert_eq!(written, 2 * refused, "{written} audit lines");

    // The flood spent neither the global budget nor the token's: 20 in a
    // row with the token pass.
    for _ in 0..20 {
        let (status, body) = b.call("GET", "sys/mounts", None).await;
        assert_eq!(status, StatusCode::OK, "{}", first_error(&body));
    }
}

#[tokio::test]
async fn each_client_has_its_own_budget_after_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start_with(
        Some(sqlite_storage(dir.path())),
        "[rate_limit]\nper_client_rate = 1\nper_client_burst = 4\n",
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(b.call("GET", "sys/mounts", None).await.0);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Health is never limited.
    for _ in 0..5 {
        assert_eq!(b.call("GET", "sys/health", None).await.0, StatusCode::OK);
    }
}
