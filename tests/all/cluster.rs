//! Several broker processes on one PostgreSQL database, behind a real
//! load balancer (HAProxy on loopback): every node serves; a change made
//! through one node (a mount, a tune, a policy, a token, a credential, the
//! barrier key) takes effect on the others within a second; once-only
//! work runs on one node at a time and moves when that node dies.

use std::time::{Duration, Instant};

use broker_tests::haproxy::Haproxy;
use broker_tests::{pg_admin, postgres, unique};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::{pg_role_exists, pg_url, setup_postgres_at};
use crate::process::Broker;

/// A `[storage]` table for a fresh database of its own on the test
/// PostgreSQL.
pub(crate) async fn fresh_storage() -> String {
    let s = postgres();
    let db = unique("cluster");
    pg_admin()
        .await
        .execute(&format!("CREATE DATABASE {db}"), &[])
        .await
        .unwrap();
    format!(
        "[storage]\ntype = \"postgres\"\nurl = \"postgres://{}:{}@{}:{}/{db}\"",
        s.user, s.password, s.host, s.port
    )
}

/// Three nodes on one fresh database, and HAProxy in front of them.
async fn three_nodes(extra: &str) -> (Vec<Broker>, Haproxy) {
    three_nodes_on(fresh_storage().await, extra).await
}

/// Three nodes on `storage` (a `[storage]` table), and HAProxy in front.
async fn three_nodes_on(storage: String, extra: &str) -> (Vec<Broker>, Haproxy) {
    let first = Broker::start_with(
        Some(storage),
        &format!("{extra}\n[cluster]\nnode_id = \"node1\"\n"),
    )
    .await;
    let second = first.join("node2").await;
    let third = first.join("node3").await;
    let proxy = Haproxy::start(&[first.port(), second.port(), third.port()]);
    let nodes = vec![first, second, third];
    // Each node has echoed, and HAProxy counts each as up.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = nodes[0]
            .expect(StatusCode::OK, "GET", "sys/ha-status", None)
            .await;
        let listed = status["Nodes"].as_array().map_or(0, Vec::len);
        let mut up = 0;
        for n in 1..=3 {
            up += usize::from(proxy.is_up(n).await);
        }
        if listed == 3 && up == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every node is up: {status}, {up} up at the proxy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (nodes, proxy)
}

/// Polls `check` until it holds; how long that took. Fails after 5 s (the
/// bound asserted by callers is tighter).
async fn until<F, Fut>(what: &str, check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    until_within(what, Duration::from_secs(5), check).await
}

/// Polls `check` until it holds, failing after `limit`; how long it took.
async fn until_within<F, Fut>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{what}: not seen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn within_a_second(what: &str, took: Duration) {
    eprintln!("{what}: {took:?}");
    assert!(
        took < Duration::from_secs(1),
        "{what} took {took:?} to reach the other nodes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_node_takes_effect_on_the_others_within_a_second() {
    let (nodes, proxy) = three_nodes("").await;
    let [a, b, c] = [&nodes[0], &nodes[1], &nodes[2]];

    // Every node serves, and the proxy spreads requests over all three.
    let http = reqwest::Client::new();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let health: Value = http
            .get(format!("{}/sys/health", proxy.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["ha_enabled"], true, "{health}");
        seen.insert(health["node_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), 3, "{seen:?}");

    // A mount made on one node serves on the others.
    a.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/secret",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    )
    .await;
    for node in [b, c] {
        let took = until("the mount", || async {
            node.call("GET", "sys/mounts", None).await.1["data"]
                .get("secret/")
                .is_some()
        })
        .await;
        within_a_second("a mount", took);
    }
    c.expect(
        StatusCode::OK,
        "POST",
        "secret/data/app",
        Some(json!({"data": {"password": "s3cret"}})),
    )
    .await;
    let read = b
        .expect(StatusCode::OK, "GET", "secret/data/app", None)
        .await;
    assert_eq!(read["data"]["data"]["password"], "s3cret");

    // A tune on one node is what the others report.
    c.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/secret/tune",
        Some(json!({"default_lease_ttl": "2h"})),
    )
    .await;
    let took = until("the tune", || async {
        a.call("GET", "sys/mounts/secret/tune", None).await.1["data"]["default_lease_ttl"]
            == json!(7200)
    })
    .await;
    within_a_second("a tune", took);

    // A token whose policy does not yet allow the read; the policy
    // changed on another node; the third node allows it.
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/acl/app",
        Some(json!({"policy": "path \"secret/data/other\" { capabilities = [\"read\"] }"})),
    )
    .await;
    let created = a
        .expect(
            StatusCode::OK,
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["app"], "ttl": "1h"})),
        )
        .await;
    let token = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let (code, _) = c.call_as(&token, "GET", "secret/data/app", None).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    a.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/acl/app",
        Some(json!({"policy": "path \"secret/data/app\" { capabilities = [\"read\"] }"})),
    )
    .await;
    let took = until("the policy", || async {
        c.call_as(&token, "GET", "secret/data/app", None).await.0 == StatusCode::OK
    })
    .await;
    within_a_second("a policy change", took);

    // A token revoked on one node is refused by the others at once.
    c.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "auth/token/revoke",
        Some(json!({"token": token})),
    )
    .await;
    let (code, _) = b.call_as(&token, "GET", "secret/data/app", None).await;
    assert_eq!(
        code,
        StatusCode::FORBIDDEN,
        "a revoked token still works on another node"
    );

    // Credentials: issued through one node, known to the others, revoked
    // through a third.
    let s = postgres();
    setup_postgres_at(a, &pg_url(&s.host, s.port), "*").await;
    let took = until("the database mount", || async {
        b.call("GET", "database/roles/readonly", None).await.0 == StatusCode::OK
    })
    .await;
    within_a_second("a database mount", took);
    let creds = b
        .expect(StatusCode::OK, "GET", "database/creds/readonly", None)
        .await;
    let lease = creds["lease_id"].as_str().unwrap().to_owned();
    let user = creds["data"]["username"].as_str().unwrap().to_owned();
    assert!(pg_role_exists(&user).await);
    c.expect(
        StatusCode::OK,
        "PUT",
        "sys/leases/lookup",
        Some(json!({"lease_id": lease})),
    )
    .await;
    a.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke",
        Some(json!({"lease_id": lease})),
    )
    .await;
    assert!(!pg_role_exists(&user).await);

    // The barrier key rotated on one node: the others seal under the new
    // term within a second, and what each writes the others read.
    a.expect(StatusCode::NO_CONTENT, "PUT", "sys/rotate", None)
        .await;
    for node in [b, c] {
        let took = until("the new key term", || async {
            node.call("GET", "sys/key-status", None).await.1["data"]["term"] == json!(2)
        })
        .await;
        within_a_second("a key rotation", took);
    }
    b.expect(
        StatusCode::OK,
        "POST",
        "secret/data/after-rotation",
        Some(json!({"data": {"k": "v"}})),
    )
    .await;
    let read = c
        .expect(StatusCode::OK, "GET", "secret/data/after-rotation", None)
        .await;
    assert_eq!(read["data"]["data"]["k"], "v");

    // An unmount on one node: the others stop serving the mount.
    b.expect(StatusCode::NO_CONTENT, "DELETE", "sys/mounts/secret", None)
        .await;
    let took = until("the unmount", || async {
        c.call("GET", "secret/data/app", None).await.0 == StatusCode::NOT_FOUND
    })
    .await;
    within_a_second("an unmount", took);

    // ha-status on any node names all three, and one holds the periodic job.
    let status = c.expect(StatusCode::OK, "GET", "sys/ha-status", None).await;
    let listed = status["Nodes"].as_array().unwrap();
    let names: std::collections::BTreeSet<_> = listed
        .iter()
        .map(|n| n["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["node1", "node2", "node3"].into_iter().collect());
    assert_eq!(
        listed.iter().filter(|n| n["active_node"] == true).count(),
        1,
        "{status}"
    );
    let leader: Value = http
        .get(format!("{}/sys/leader", proxy.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(leader["ha_enabled"], true, "{leader}");
    let active = listed.iter().find(|n| n["active_node"] == true).unwrap();
    assert_eq!(leader["leader_address"], active["api_address"], "{leader}");
}

/// The database engine on `node`, its `pg` connection on the test
/// PostgreSQL (user names `<prefix>-…` when a prefix is given), and then
/// `roles` (path under `database/`, body); every node serves the last
/// before this returns.
async fn database_engine(nodes: &[Broker], prefix: Option<&str>, roles: &[(&str, Value)]) {
    let s = postgres();
    let a = &nodes[0];
    a.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/database",
        Some(json!({"type": "database"})),
    )
    .await;
    let mut config = json!({
        "plugin_name": "postgresql-database-plugin",
        "connection_url": pg_url(&s.host, s.port),
        "username": s.user, "password": s.password, "allowed_roles": "*",
    });
    if let Some(prefix) = prefix {
        config["username_template"] = json!(format!("{prefix}-{{{{random 10}}}}"));
    }
    a.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/config/pg",
        Some(config),
    )
    .await;
    for (path, body) in roles {
        a.expect(
            StatusCode::NO_CONTENT,
            "POST",
            &format!("database/{path}"),
            Some(body.clone()),
        )
        .await;
    }
    if let Some((last, _)) = roles.last() {
        for node in &nodes[1..] {
            until("the role on every node", || async {
                node.call("GET", &format!("database/{last}"), None).await.0 == StatusCode::OK
            })
            .await;
        }
    }
}

/// Clients issuing `database/creds/app` through the proxy until told to
/// stop or `limit` credentials are issued, counting what was issued and
/// what failed (a failure waits a moment before the next try).
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    issued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    failed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(proxy: &Haproxy, token: &str, clients: usize, limit: usize) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let clients = (0..clients)
            .map(|_| {
                let (stop, issued, failed) = (stop.clone(), issued.clone(), failed.clone());
                let (url, token) = (
                    format!("{}/database/creds/app", proxy.base),
                    token.to_owned(),
                );
                tokio::spawn(async move {
                    let http = reqwest::Client::builder()
                        .timeout(Duration::from_secs(30))
                        .build()
                        .unwrap();
                    while !stop.load(SeqCst) && issued.load(SeqCst) < limit {
                        let ok = http
                            .get(&url)
                            .header("X-Vault-Token", &token)
                            .send()
                            .await
                            .is_ok_and(|r| r.status() == StatusCode::OK);
                        if ok {
                            issued.fetch_add(1, SeqCst);
                        } else {
                            failed.fetch_add(1, SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            issued,
            failed,
            clients,
        }
    }

    fn issued(&self) -> usize {
        self.issued.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until `n` are issued (failing after `within`).
    async fn until_issued(&self, n: usize, within: Duration) {
        let started = Instant::now();
        while self.issued() < n {
            assert!(
                started.elapsed() < within,
                "the load stalled at {}",
                self.issued()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the clients (or waits for them to reach their limit); how
    /// many were issued and how many requests failed.
    async fn finish(self, stop: bool) -> (usize, usize) {
        if stop {
            self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        for client in self.clients {
            client.await.unwrap();
        }
        (
            self.issued.load(std::sync::atomic::Ordering::SeqCst),
            self.failed.load(std::sync::atomic::Ordering::SeqCst),
        )
    }
}

/// `broker audit verify` over `files` (with `--open-end` when a file may
/// end without its closing checkpoint): success and output.
fn audit_verify(
    key: &std::path::Path,
    files: &[std::path::PathBuf],
    open_end: bool,
) -> (bool, String) {
    let mut cmd = std::process::Command::new(crate::process::BROKER);
    cmd.args(["audit", "verify", "--public-key"]).arg(key);
    if open_end {
        cmd.arg("--open-end");
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

/// Names in `table` (one column, `name`), with how often each appears.
async fn names(
    client: &tokio_postgres::Client,
    table: &str,
) -> std::collections::BTreeMap<String, i64> {
    client
        .query(
            &format!("SELECT name, count(*) FROM {table} GROUP BY name"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_leaves_no_user_behind_and_no_revocation_twice() {
    const ISSUANCES: usize = 1000;
    const CLIENTS: usize = 8;
    let audit = tempfile::tempdir().unwrap();
    let (mut nodes, proxy) = three_nodes(&format!(
        "[[audit.devices]]\npath = \"file\"\nfile_path = \"{}/node1.log\"\n",
        audit.path().display()
    ))
    .await;

    // Every creation and every revocation call is recorded beside the
    // database users, in the same transaction as the statement it counts;
    // `dropped` counts the calls that found the user (so took effect).
    let admin = pg_admin().await;
    let tag = unique("kill").replace('_', "");
    let t = format!("k{}", &tag[tag.len() - 8..]);
    for table in ["made", "calls", "dropped"] {
        admin
            .execute(
                &format!("CREATE TABLE {t}_{table} (name TEXT NOT NULL)"),
                &[],
            )
            .await
            .unwrap();
    }
    database_engine(
        &nodes,
        Some(&t),
        &[(
            "roles/app",
            json!({
                "db_name": "pg", "default_ttl": "3s", "max_ttl": "3s",
                "creation_statements": [
                    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}'",
                    format!("INSERT INTO {t}_made (name) VALUES ('{{{{name}}}}')"),
                ],
                "revocation_statements": [
                    format!("INSERT INTO {t}_calls (name) VALUES ('{{{{name}}}}')"),
                    format!("INSERT INTO {t}_dropped (name) SELECT rolname FROM pg_roles WHERE rolname = '{{{{name}}}}'"),
                    "DROP ROLE IF EXISTS \"{{name}}\"",
                ],
            }),
        )],
    )
    .await;
    let a = &nodes[0];
    let public_key = {
        let key = a
            .expect(StatusCode::OK, "GET", "sys/audit-public-key", None)
            .await;
        let path = audit.path().join("audit.pub");
        std::fs::write(&path, key["data"]["public_key"].as_str().unwrap()).unwrap();
        path
    };
    // Eight clients through the proxy, until 1000 credentials are issued;
    // a third of the way in, node2 is SIGKILLed.
    let load = Load::start(&proxy, &a.token, CLIENTS, ISSUANCES);
    let started = Instant::now();
    load.until_issued(ISSUANCES / 3, Duration::from_secs(300))
        .await;
    nodes[1].kill();
    let killed_at = load.issued();
    let (_, failed) = load.finish(false).await;
    let elapsed = started.elapsed();
    eprintln!(
        "{ISSUANCES} issued through the proxy in {elapsed:?} ({:.0}/s); node2 killed after {killed_at}; {failed} requests failed at the load balancer",
        ISSUANCES as f64 / elapsed.as_secs_f64()
    );

    // Every lease expires within 3 s; the surviving nodes revoke them all,
    // the dead node's claimed and pending ones once its holds run out.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (made, calls, dropped) = loop {
        let made = names(&admin, &format!("{t}_made")).await;
        let calls = names(&admin, &format!("{t}_calls")).await;
        let dropped = names(&admin, &format!("{t}_dropped")).await;
        let left: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_roles WHERE rolname LIKE $1",
                &[&format!("{t}-%")],
            )
            .await
            .unwrap()
            .get(0);
        if left == 0 && made.keys().all(|n| dropped.contains_key(n)) {
            break (made, calls, dropped);
        }
        assert!(
            Instant::now() < deadline,
            "{left} database users outlived their leases; {} made, {} dropped",
            made.len(),
            dropped.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(made.len() >= ISSUANCES, "{} users made", made.len());
    let twice: Vec<_> = dropped.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "revocations that took effect twice: {twice:?}"
    );
    // A call repeated for a lease whose revocation the dead node had run
    // but not yet recorded: harmless (it found no user), and bounded by
    // what one node has in flight.
    let repeated = calls.values().filter(|n| **n > 1).count();
    eprintln!(
        "{} users made, each dropped once; {} revocation calls, {repeated} repeated after the kill",
        made.len(),
        calls.values().sum::<i64>()
    );
    assert!(repeated <= 64, "{repeated} revocations ran again");

    // The others hold the periodic job now; the dead node is not alive.
    // A dead node's hold runs out after 10 s.
    let took = until_within(
        "the periodic job to leave node2",
        Duration::from_secs(30),
        || async {
            let status = nodes[0].call("GET", "sys/ha-status", None).await.1;
            status["Nodes"].as_array().is_some_and(|listed| {
                listed
                    .iter()
                    .any(|n| n["active_node"] == true && n["hostname"] != "node2")
                    && listed
                        .iter()
                        .all(|n| n["hostname"] != "node2" || n["alive"] == false)
            })
        },
    )
    .await;
    eprintln!("the periodic job is on a live node {took:?} after the check began");

    // Each node's audit chain is its own and intact: the two stopped
    // cleanly end with a checkpoint; the killed one may not.
    nodes[0].stop().await;
    nodes[2].stop().await;
    let files: Vec<_> = ["node1", "node3"]
        .iter()
        .map(|n| audit.path().join(format!("{n}.log")))
        .collect();
    let (ok, out) = audit_verify(&public_key, &files, false);
    assert!(ok, "{out}");
    assert!(
        out.contains("node node1: ok") && out.contains("node node3: ok"),
        "{out}"
    );
    let mut all = files.clone();
    all.push(audit.path().join("node2.log"));
    let (ok, out) = audit_verify(&public_key, &all, true);
    assert!(ok && out.contains("node node2: ok"), "{out}");
    eprintln!("{out}");
}

/// The CRL number of the PEM CRL at `url`, read by `openssl`; `None` when
/// the request fails (a node dying under the proxy).
async fn crl_number(http: &reqwest::Client, url: &str) -> Option<u64> {
    let pem = http
        .get(url)
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .text()
        .await
        .ok()?;
    let file = tempfile::NamedTempFile::new().ok()?;
    std::fs::write(file.path(), pem).ok()?;
    let out = std::process::Command::new("openssl")
        .args(["crl", "-noout", "-crlnumber", "-in"])
        .arg(file.path())
        .output()
        .expect("openssl must be installed (Debian: apt install openssl)");
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .trim()
        .strip_prefix("crlNumber=")?
        .trim_start_matches("0x");
    u64::from_str_radix(hex, 16).ok()
}

/// Waits until `table` records `n` rotations; their times (Unix ms).
async fn rotations_at_least(
    admin: &tokio_postgres::Client,
    table: &str,
    n: usize,
    within: Duration,
) -> Vec<i64> {
    let deadline = Instant::now() + within;
    loop {
        let seen: Vec<i64> = admin
            .query(
                &format!("SELECT (extract(epoch from at) * 1000)::bigint FROM {table} ORDER BY at"),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        if seen.len() >= n {
            return seen;
        }
        assert!(Instant::now() < deadline, "only {} rotations", seen.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_rotations_and_crl_rebuilds_run_once_per_period_across_the_nodes_and_move_when_their_node_dies()
 {
    const PERIOD: Duration = Duration::from_secs(5);
    const PERIODS: usize = 10;
    let (mut nodes, proxy) = three_nodes("").await;
    let s = postgres();
    let admin = pg_admin().await;
    let tag = unique("rot").replace('_', "");
    let t = format!("r{}", &tag[tag.len() - 8..]);
    admin
        .batch_execute(&format!(
            "CREATE TABLE {t}_rotations (at TIMESTAMPTZ NOT NULL); \
             CREATE ROLE \"{t}_app\" WITH LOGIN PASSWORD 'initial-Pw-1'"
        ))
        .await
        .unwrap();
    // Each rotation records itself in the transaction that sets the password.
    database_engine(
        &nodes,
        None,
        &[(
            "static-roles/app",
            json!({
                "db_name": "pg", "username": format!("{t}_app"), "rotation_period": "5s",
                "rotation_statements": [
                    "ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}'",
                    format!("INSERT INTO {t}_rotations (at) VALUES (clock_timestamp())"),
                ],
            }),
        )],
    )
    .await;
    let a = &nodes[0];
    // A CA whose CRL lasts 10 s and is rebuilt 5 s before it expires: a
    // rebuild every 5 s, by the periodic pass.
    a.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/pki",
        Some(json!({"type": "pki"})),
    )
    .await;
    a.expect(
        StatusCode::OK,
        "POST",
        "pki/root/generate/internal",
        Some(json!({"common_name": "Cluster Root", "ttl": "8760h"})),
    )
    .await;
    a.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "pki/config/crl",
        Some(json!({"expiry": "10s", "auto_rebuild": true, "auto_rebuild_grace_period": "5s"})),
    )
    .await;
    let config = a
        .expect(StatusCode::OK, "GET", "pki/config/crl", None)
        .await;
    assert_eq!(
        (&config["data"]["expiry"], &config["data"]["auto_rebuild"]),
        (&json!("10s"), &json!(true)),
        "{config}"
    );
    // The CRL's number, sampled through the proxy four times a second.
    let samples = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(Instant, u64)>::new()));
    let sampler = {
        let (samples, url) = (samples.clone(), format!("{}/pki/crl/pem", proxy.base));
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                if let Some(number) = crl_number(&http, &url).await {
                    samples.lock().unwrap().push((Instant::now(), number));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    let table = format!("{t}_rotations");
    rotations_at_least(&admin, &table, PERIODS / 2 + 1, PERIOD * 30).await;
    let leader = nodes[0]
        .expect(StatusCode::OK, "GET", "sys/leader", None)
        .await;
    let address = leader["leader_address"].as_str().unwrap().to_owned();
    let holder = nodes
        .iter()
        .position(|n| address.ends_with(&format!(":{}", n.port())))
        .unwrap_or_else(|| panic!("no node at {leader}"));
    nodes[holder].kill();
    let killed = Instant::now();
    let seen = rotations_at_least(&admin, &table, PERIODS + 1, PERIOD * 30).await;
    eprintln!(
        "node{} (the periodic job's) killed; {} rotations, the next {:?} later",
        holder + 1,
        seen.len(),
        killed.elapsed()
    );

    // One rotation per period: never two closer than half a period (two
    // nodes rotating at once would be milliseconds apart).
    let gaps: Vec<i64> = seen.windows(2).map(|w| w[1] - w[0]).collect();
    let half = i64::try_from(PERIOD.as_millis() / 2).unwrap();
    assert!(
        gaps.iter().all(|g| *g >= half),
        "rotations closer than half a period (ms apart): {gaps:?}"
    );
    eprintln!("gaps between rotations (ms): {gaps:?}");

    // One CRL rebuild per period too: the number never moves by more than
    // one between samples a quarter period apart, and moved about once per
    // period over the whole run (less the kill's gap).
    sampler.abort();
    let samples = samples.lock().unwrap().clone();
    let (first, last) = (samples[0], samples[samples.len() - 1]);
    let jumps: Vec<u64> = samples
        .windows(2)
        .map(|w| w[1].1.saturating_sub(w[0].1))
        .filter(|j| *j > 0)
        .collect();
    let seconds = last.0.duration_since(first.0).as_secs_f64();
    eprintln!(
        "CRL numbers {} to {} over {seconds:.0} s ({} samples); steps {jumps:?}",
        first.1,
        last.1,
        samples.len()
    );
    assert!(
        jumps.iter().all(|j| *j == 1),
        "a CRL rebuilt twice at once: {jumps:?}"
    );
    let rebuilds = last.1 - first.1;
    let periods = seconds / PERIOD.as_secs_f64();
    assert!(
        rebuilds as f64 >= periods - 4.0 && rebuilds as f64 <= periods + 1.0,
        "{rebuilds} CRL rebuilds in {periods:.1} periods"
    );
    // The role's password is the last one set, on whichever node reads it.
    let survivor = &nodes[(holder + 1) % 3];
    let creds = survivor
        .expect(StatusCode::OK, "GET", "database/static-creds/app", None)
        .await;
    let password = creds["data"]["password"].as_str().unwrap();
    broker_tests::pg_connect(s, &format!("{t}_app"), password)
        .await
        .unwrap_or_else(|e| panic!("the static role's password does not log in: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_restarted_under_load_loses_nothing_and_leaves_no_node_stale() {
    let pg = broker_tests::PrivatePostgres::start();
    let storage = format!(
        "[storage]\ntype = \"postgres\"\nurl = \"postgres://{}:{}@{}:{}/postgres\"",
        pg.server.user, pg.server.password, pg.server.host, pg.server.port
    );
    let (nodes, proxy) = three_nodes_on(storage, "").await;
    // Credentials go to the shared test PostgreSQL, which stays up.
    let tag = unique("pgr").replace('_', "");
    let prefix = format!("p{}", &tag[tag.len() - 8..]);
    database_engine(
        &nodes,
        Some(&prefix),
        &[(
            "roles/app",
            json!({
                "db_name": "pg", "default_ttl": "4s", "max_ttl": "4s",
                "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}'"],
            }),
        )],
    )
    .await;
    let a = &nodes[0];

    // Four clients issue through the proxy the whole time.
    let load = Load::start(&proxy, &a.token, 4, usize::MAX);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The storage database goes away for two seconds, then comes back.
    let before = load.issued();
    let pg = std::sync::Arc::new(pg);
    {
        let pg = pg.clone();
        tokio::task::spawn_blocking(move || pg.stop())
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    {
        let pg = pg.clone();
        tokio::task::spawn_blocking(move || pg.start_again())
            .await
            .unwrap();
    }
    let back = Instant::now();
    // A change made the moment the database is back: nodes whose change
    // feed has not reconnected yet miss its notification, and catch up
    // through the version check.
    until_within("node1 to write again", Duration::from_secs(30), || async {
        a.call(
            "PUT",
            "sys/policies/acl/after-restart",
            Some(json!({"policy": "path \"x\" { capabilities = [\"read\"] }"})),
        )
        .await
        .0 == StatusCode::NO_CONTENT
    })
    .await;
    a.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/after-restart",
        Some(json!({"type": "kv"})),
    )
    .await;
    for node in &nodes[1..] {
        let took = until("the mount made after the restart", || async {
            node.call("GET", "sys/mounts", None).await.1["data"]
                .get("after-restart/")
                .is_some()
        })
        .await;
        eprintln!("a mount made as the database came back reached a node in {took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
    // Every node issues again.
    for node in &nodes {
        until_within(
            "issuance on every node",
            Duration::from_secs(30),
            || async { node.call("GET", "database/creds/app", None).await.0 == StatusCode::OK },
        )
        .await;
    }
    let recovered = back.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (issued, failed) = load.finish(true).await;
    eprintln!(
        "{before} issued before the outage, {issued} in all; {failed} requests failed during it; every node served again {recovered:?} after the database was back"
    );
    assert!(issued > before, "nothing issued after the restart");

    // Nothing lost: every credential issued, before or after, is revoked
    // when its lease ends; no user outlives its lease.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left: i64 = pg_admin()
            .await
            .query_one(
                "SELECT count(*) FROM pg_roles WHERE rolname LIKE $1",
                &[&format!("{prefix}-%")],
            )
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} database users outlived their leases"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hvac_reads_the_cluster_and_each_node_sees_the_others_changes() {
    let (nodes, proxy) = three_nodes("").await;
    // vaultrs parses a node's health as it does Vault's.
    let health = vaultrs::sys::health(&nodes[1].vaultrs()).await.unwrap();
    assert!(health.initialized && !health.sealed && !health.standby);
    let node_addrs: Vec<String> = nodes
        .iter()
        .map(|n| n.base.trim_end_matches("/v1").to_owned())
        .collect();
    // The script's VAULT_ADDR is the proxy, not a node.
    let proxy_addr = proxy.base.trim_end_matches("/v1").to_owned();
    crate::hvac::run_hvac_script(
        &nodes[0],
        "test_cluster.py",
        &[
            ("VAULT_ADDR", &proxy_addr),
            ("NODE_ADDRS", &node_addrs.join(",")),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_open_an_audit_device_another_enabled_refuses_rather_than_serve_unaudited()
 {
    // Each node may write audit files only under its own directory; only
    // node1's exists, so the device node1 enables cannot open on node2.
    let logs = tempfile::tempdir().unwrap();
    std::fs::create_dir(logs.path().join("node1")).unwrap();
    let (nodes, _proxy) = three_nodes(&format!(
        "[audit]\nfile_dirs = [\"{}/node1\"]\n",
        logs.path().display()
    ))
    .await;
    let (a, b) = (&nodes[0], &nodes[1]);
    b.expect(StatusCode::OK, "GET", "sys/mounts", None).await;
    a.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/audit/file",
        Some(json!({"type": "file", "options": {"file_path": format!("{}/node1/audit.log", logs.path().display())}})),
    )
    .await;
    // node2 learns of it, cannot open it, and refuses: no request of its
    // goes unaudited while the cluster audits.
    let took = until("node2 to refuse", || async {
        b.call("GET", "sys/mounts", None).await.0 == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    within_a_second("an audit device", took);
    a.expect(StatusCode::OK, "GET", "sys/mounts", None).await;
    // Disabled on node1: node2 serves again.
    a.expect(StatusCode::NO_CONTENT, "DELETE", "sys/audit/file", None)
        .await;
    until("node2 to serve again", || async {
        b.call("GET", "sys/mounts", None).await.0 == StatusCode::OK
    })
    .await;
}
