//! The background rewrap after `sys/rotate`: under load, through a
//! `kill -9` in the middle of it, every stored value ends under the active
//! key term with the format byte; and values an older broker wrote in the
//! legacy layout open and are moved too.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use broker::barrier::{Format, Header, SealedStorage};
use broker_tests::{postgres, unique};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::pg_users_with_prefix;
use crate::process::Broker;

/// Walks the stopped broker's storage: every entry (but the raw key
/// records) and every lease's sealed column opens, in the current format,
/// under `term`. Returns how many entries and leases it saw.
async fn assert_every_value_under(sealed: &SealedStorage, term: u32) -> (usize, usize) {
    let storage = sealed.storage();
    let barrier = sealed.barrier();
    let current = Header {
        format: Format::Current,
        term,
    };
    let mut entries = 0;
    let mut after: Option<String> = None;
    while let Some((last, _)) = {
        let page = storage.entries_after(after.as_deref(), 500).await.unwrap();
        for (key, value) in &page {
            if broker::core::keys::RAW_KEYS.contains(&key.as_str()) {
                continue;
            }
            assert_eq!(Header::parse(value).ok(), Some(current), "entry {key}");
            barrier
                .open(key, value)
                .unwrap_or_else(|e| panic!("entry {key}: {e}"));
            entries += 1;
        }
        page.last().cloned()
    } {
        after = Some(last);
    }
    let mut leases = 0;
    let mut after: Option<String> = None;
    while let Some((last, _)) = {
        let page = storage
            .lease_seals_after(after.as_deref(), 500)
            .await
            .unwrap();
        for (id, value) in &page {
            assert_eq!(Header::parse(value).ok(), Some(current), "lease {id}");
            barrier
                .open(&broker::lease::seal_key(id), value)
                .unwrap_or_else(|e| panic!("lease {id}: {e}"));
            leases += 1;
        }
        page.last().cloned()
    } {
        after = Some(last);
    }
    (entries, leases)
}

/// `sys/key-status`'s `rewrap` object.
async fn rewrap_status(b: &Broker) -> Value {
    b.expect(StatusCode::OK, "GET", "sys/key-status", None)
        .await["data"]["rewrap"]
        .clone()
}

/// Waits until the rewrap to `term` is done; its status.
async fn until_rewrapped(b: &Broker, term: u32, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let status = rewrap_status(b).await;
        if status["term"] == json!(term) && status["done"] == json!(true) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the rewrap to term {term} did not finish: {status}\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A request that may fail (the broker is killed under it): its status, or
/// 503 for no answer, and its body.
async fn try_call(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = http
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{base}/{path}"),
        )
        .header("X-Vault-Token", token)
        .timeout(Duration::from_secs(30));
    if let Some(b) = body {
        req = req.json(&b);
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            (status, resp.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Value::Null),
    }
}

/// Clients issuing and renewing database credentials until told to stop,
/// whatever happens to the broker meanwhile.
struct Load {
    stop: Arc<AtomicBool>,
    issued: Arc<AtomicUsize>,
    renewed: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(b: &Broker, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(AtomicUsize::new(0));
        let renewed = Arc::new(AtomicUsize::new(0));
        let tasks = (0..clients)
            .map(|_| {
                let (http, base, token) = (b.http.clone(), b.base.clone(), b.token.clone());
                let (stop, issued, renewed) = (stop.clone(), issued.clone(), renewed.clone());
                tokio::spawn(async move {
                    let mut mine: Vec<String> = Vec::new();
                    let mut round = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        round += 1;
                        let (status, body) =
                            try_call(&http, &base, &token, "GET", "database/creds/app", None).await;
                        if status == StatusCode::OK {
                            issued.fetch_add(1, Ordering::Relaxed);
                            mine.push(body["lease_id"].as_str().unwrap().to_owned());
                        } else {
                            // Killed, or starting again: do not spin.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        // Renew one issued earlier: its row is read and
                        // written back while the rewrap moves rows.
                        let pick = round.wrapping_mul(7919) % mine.len().max(1);
                        if let Some(id) = mine.get(pick) {
                            let (status, _) = try_call(
                                &http,
                                &base,
                                &token,
                                "PUT",
                                "sys/leases/renew",
                                Some(json!({ "lease_id": id, "increment": "1h" })),
                            )
                            .await;
                            if status == StatusCode::OK {
                                renewed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            issued,
            renewed,
            tasks,
        }
    }

    async fn wait_issued(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.issued.load(Ordering::Relaxed) < n {
            assert!(
                Instant::now() < deadline,
                "fewer than {n} credentials issued"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        (
            self.issued.load(Ordering::Relaxed),
            self.renewed.load(Ordering::Relaxed),
        )
    }
}

async fn database_mount(b: &Broker, prefix: &str) {
    let s = postgres();
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/database",
        Some(json!({ "type": "database" })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/config/pg",
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": format!("postgresql://{{{{username}}}}:{{{{password}}}}@{}:{}/{}?sslmode=disable", s.host, s.port, s.database),
            "username": s.user, "password": s.password, "allowed_roles": "*",
            "username_template": format!("{prefix}-{{{{random 12}}}}"),
        })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/app",
        Some(json!({ "db_name": "pg", "default_ttl": "1h", "max_ttl": "24h",
            "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"] })),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrap_killed_mid_way_under_load_resumes_and_moves_every_value() {
    // A slow walk (16 values, then 150 ms), so a kill lands in the middle.
    let mut b = Broker::start_with(
        None,
        "[barrier]\nrewrap_batch = 16\nrewrap_pause_ms = 150\n",
    )
    .await;
    let tag = unique("rw").replace('_', "");
    let prefix = format!("rw{}", &tag[tag.len() - 8..]);
    database_mount(&b, &prefix).await;
    let first = until_rewrapped(&b, 1, Duration::from_secs(30)).await;
    assert_eq!(first["rewrapped"], json!(0), "{first}");

    // Credentials issued and renewed all through the test.
    let load = Load::start(&b, 6);
    load.wait_issued(600, Duration::from_secs(180)).await;
    b.expect(StatusCode::NO_CONTENT, "PUT", "sys/rotate", None)
        .await;
    // Until the walk is well into the leases, and far from done.
    let deadline = Instant::now() + Duration::from_secs(60);
    let before_kill = loop {
        let status = rewrap_status(&b).await;
        if status["term"] == json!(2)
            && status["done"] == json!(false)
            && status["phase"] == json!("leases")
            && status["rewrapped"].as_u64().unwrap_or(0) >= 100
        {
            break status;
        }
        assert!(Instant::now() < deadline, "no rewrap under way: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    b.kill();
    eprintln!("killed mid-rewrap: {before_kill}");

    b.start_again().await;
    let resumed = rewrap_status(&b).await;
    assert_eq!(resumed["term"], json!(2), "{resumed}");
    assert_eq!(
        (&resumed["started"], &resumed["pass"]),
        (&before_kill["started"], &before_kill["pass"]),
        "the walk resumed, not started again: {resumed} after {before_kill}"
    );
    assert!(
        resumed["visited"].as_u64().unwrap() >= before_kill["visited"].as_u64().unwrap(),
        "the walk resumed from its record, not from the start: {resumed} after {before_kill}"
    );
    load.wait_issued(1000, Duration::from_secs(180)).await;
    // The load stops at 1000: a slow walk (this one is slowed on purpose)
    // never ends while issuance adds leases faster than it moves them.
    let (issued, renewed) = load.stop().await;
    let done = until_rewrapped(&b, 2, Duration::from_secs(180)).await;
    eprintln!("issued {issued}, renewed {renewed}; rewrap {done}");
    assert!(issued >= 1000 && renewed > 0);
    assert_eq!(done["unreadable"], json!(0), "{done}");
    assert!(
        b.log()
            .contains("every stored value is under the active key term")
    );

    // Beside the stopped broker: every value opens, under term 2, with the
    // format byte.
    b.stop().await;
    let (entries, leases) = assert_every_value_under(&b.sealed_storage().await, 2).await;
    eprintln!("{entries} entries and {leases} leases under term 2");
    assert!(leases >= 900, "{leases} leases");

    // And the leases still renew and revoke.
    b.start_again().await;
    let listed = b
        .expect(
            StatusCode::OK,
            "LIST",
            "sys/leases/lookup/database/creds/app/",
            None,
        )
        .await;
    let ids: Vec<String> = listed["data"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| format!("database/creds/app/{}", k.as_str().unwrap()))
        .collect();
    assert!(ids.len() >= 900, "{} leases", ids.len());
    let sample: Vec<&String> = ids.iter().step_by(20).collect();
    let mut renewed = 0;
    for id in &sample {
        let (status, body) = b
            .call(
                "PUT",
                "sys/leases/renew",
                Some(json!({ "lease_id": id, "increment": "2h" })),
            )
            .await;
        // A lease left pending by the kill is not renewable (the worker
        // revokes it); every other one is.
        match status {
            StatusCode::OK => renewed += 1,
            StatusCode::BAD_REQUEST => {}
            other => panic!("{id}: {other} {body}"),
        }
    }
    assert!(
        renewed + 5 >= sample.len(),
        "{renewed} of {} renewed",
        sample.len()
    );
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke-prefix/database/",
        None,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = pg_users_with_prefix(&prefix).await;
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{left} database users left");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The fixture in `tests/fixtures/layout1/` was written by a broker from
/// before the format byte: every value is in the legacy layout.
#[tokio::test]
async fn values_in_the_legacy_layout_open_and_are_moved() {
    let fixture = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/layout1"));
    let (mut b, _expected) = Broker::start_from_fixture(fixture).await;
    let done = until_rewrapped(&b, 1, Duration::from_secs(60)).await;
    assert!(
        done["rewrapped"].as_u64().unwrap() > 5,
        "the legacy values were not moved: {done}"
    );
    assert_eq!(done["unreadable"], json!(0), "{done}");
    let role = b
        .expect(StatusCode::OK, "GET", "database/roles/app", None)
        .await;
    assert_eq!(role["data"]["db_name"], "pg");
    b.stop().await;
    let (entries, leases) = assert_every_value_under(&b.sealed_storage().await, 1).await;
    assert!(
        entries > 5 && leases >= 1,
        "{entries} entries, {leases} leases"
    );

    // Opened again: nothing left to move, no walk.
    b.start_again().await;
    let again = rewrap_status(&b).await;
    assert_eq!(again, done);
}
