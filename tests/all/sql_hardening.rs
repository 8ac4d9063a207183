//! Database mounts under attack (issue 14): a pool size that would take the
//! process down, a failure in one mount's pool reaching the others, two
//! requests making the same MySQL account, statements outliving their
//! call's deadline, and passwords echoed by a config read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_tests::{mysql, mysql_admin, pg_admin, postgres, unique};
use mysql_async::prelude::Queryable;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::{pg_role_exists, pg_url};
use crate::process::{Broker, first_error};

const PG_CREATE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";

async fn mount(b: &Broker, path: &str) {
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        &format!("sys/mounts/{path}"),
        Some(json!({ "type": "database" })),
    )
    .await;
}

fn pg_config() -> Value {
    let s = postgres();
    json!({
        "plugin_name": "postgresql-database-plugin",
        "connection_url": pg_url(&s.host, s.port),
        "username": s.user,
        "password": s.password,
        "allowed_roles": "*",
    })
}

/// Mount `path` with config `pg` on the test PostgreSQL and role `app`
/// (TTL `ttl`), users named from `prefix`.
async fn setup_pg_mount(b: &Broker, path: &str, prefix: &str, ttl: &str) {
    mount(b, path).await;
    let mut config = pg_config();
    config["username_template"] = json!(format!("{prefix}-{{{{random 10}}}}"));
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        &format!("{path}/config/pg"),
        Some(config),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        &format!("{path}/roles/app"),
        Some(json!({ "db_name": "pg", "creation_statements": [PG_CREATE], "default_ttl": ttl })),
    )
    .await;
}

/// A short prefix for the users one test makes.
fn prefix(tag: &str) -> String {
    let u = unique(tag).replace('_', "");
    format!("{tag}{}", &u[u.len() - 8..])
}

/// Rewrites a stored connection config while the broker is stopped, as a
/// config written before the ranges were checked would have been stored.
async fn plant(b: &Broker, mount: &str, field: &str, value: Value) {
    let store = b.sealed_storage().await;
    // A mount's entries are keyed by its UUID.
    let mounts: Value = store.get("core/mounts").await.unwrap().unwrap();
    let uuid = mounts[format!("{mount}/")]["uuid"].as_str().unwrap();
    let key = format!("logical/{uuid}/config/pg");
    let mut config: Value = store.get(&key).await.unwrap().unwrap();
    config[field] = value;
    store.put(&key, &config).await.unwrap();
}

async fn health(b: &Broker) -> Value {
    let r = b
        .http
        .get(format!("{}/sys/health", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// Finding 1. A pool size of 10^11 (22 TB of pool slots) is refused when
/// written, with a 400 naming the field, and so are the other numeric
/// settings out of range. A config stored with it before the check (put
/// there while the broker is stopped) fails alone and clearly: the broker
/// survives the lease's expiry across two restarts, and the operator fixes
/// the config over the API, after which the lease is revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_pool_size_is_refused_and_a_stored_one_cannot_crash_the_broker() {
    let mut b = Broker::start().await;
    let prefix = prefix("crashloop");
    setup_pg_mount(&b, "database", &prefix, "5s").await;

    for (field, value) in [
        ("max_open_connections", json!(100_000_000_000u64)),
        ("max_open_connections", json!(u64::MAX)),
        ("max_open_connections", json!(-1)),
        ("max_open_connections", json!("lots")),
        ("max_idle_connections", json!(100_000_000_000u64)),
        ("max_connection_lifetime", json!("99999999999h")),
        ("max_connection_lifetime", json!("-5s")),
    ] {
        let mut config = pg_config();
        config[field] = value.clone();
        config["verify_connection"] = json!(false);
        let body = b
            .expect(
                StatusCode::BAD_REQUEST,
                "POST",
                "database/config/pg",
                Some(config),
            )
            .await;
        let error = first_error(&body);
        assert!(error.starts_with(field), "{field} = {value}: {error}");
    }
    // In range, in Vault's forms: accepted and shown.
    let mut config = pg_config();
    config["max_open_connections"] = json!("3");
    config["max_idle_connections"] = json!(2);
    config["max_connection_lifetime"] = json!("5m");
    config["username_template"] = json!(format!("{prefix}-{{{{random 10}}}}"));
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/config/pg",
        Some(config),
    )
    .await;
    let read = b
        .expect(StatusCode::OK, "GET", "database/config/pg", None)
        .await;
    let details = &read["data"]["connection_details"];
    assert_eq!(details["max_open_connections"], 3, "{read}");
    assert_eq!(details["max_idle_connections"], 2, "{read}");
    assert_eq!(details["max_connection_lifetime"], 300, "{read}");

    // A config stored before the check: a lease expires on it after the
    // restart (5 s: the stop and the edit take less).
    let creds = b
        .expect(StatusCode::OK, "GET", "database/creds/app", None)
        .await;
    let lease_id = creds["lease_id"].as_str().unwrap().to_owned();
    let user = creds["data"]["username"].as_str().unwrap().to_owned();
    assert!(pg_role_exists(&user).await);
    b.stop().await;
    plant(
        &b,
        "database",
        "max_open_connections",
        json!(100_000_000_000u64),
    )
    .await;
    b.start_again().await;
    // The worker tries to revoke through the unusable config, which fails
    // alone: the broker stays up, says it is degraded, and says why.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lookup = b
            .expect(
                StatusCode::OK,
                "PUT",
                "sys/leases/lookup",
                Some(json!({ "lease_id": lease_id })),
            )
            .await;
        if lookup["data"]["last_revocation_error"]
            .as_str()
            .is_some_and(|e| e.contains("max_open_connections"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no clear failure: {lookup}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(health(&b).await["degraded"], true);
    let (status, body) = b.call("GET", "database/creds/app", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        first_error(&body).contains("max_open_connections"),
        "{body}"
    );
    assert!(pg_role_exists(&user).await);

    // Twice more: the broker comes up each time (it would abort again here).
    b.restart().await;
    b.restart().await;
    let (status, body) = b.call("GET", "database/creds/app", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // The operator fixes the config over the API; the lease goes.
    let mut config = pg_config();
    config["max_open_connections"] = json!(4);
    config["username_template"] = json!(format!("{prefix}-{{{{random 10}}}}"));
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/config/pg",
        Some(config),
    )
    .await;
    let creds = b
        .expect(StatusCode::OK, "GET", "database/creds/app", None)
        .await;
    assert_eq!(health(&b).await["degraded"], false);
    // Revoked now (the worker's next try may beat this call to it).
    let (status, body) = b
        .call(
            "PUT",
            "sys/leases/revoke",
            Some(json!({ "lease_id": lease_id })),
        )
        .await;
    assert!(
        status == StatusCode::NO_CONTENT || !pg_role_exists(&user).await,
        "{status}: {body}"
    );
    assert!(!pg_role_exists(&user).await, "{user} outlived its lease");
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke",
        Some(json!({ "lease_id": creds["lease_id"] })),
    )
    .await;
}

/// Finding 2. `max_open_connections` 2^64-1 made building the pool panic,
/// which poisoned the lock over every mount's pools: every mount answered
/// 503 until a restart, and health said all was well. It is refused when
/// written; stored, it fails its own mount only, and health says degraded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_that_cannot_be_built_fails_its_own_mount_only() {
    let mut b = Broker::start().await;
    let (pa, pb) = (prefix("poola"), prefix("poolb"));
    setup_pg_mount(&b, "dba", &pa, "1h").await;
    setup_pg_mount(&b, "dbb", &pb, "1h").await;

    let mut config = pg_config();
    config["max_open_connections"] = json!(u64::MAX);
    config["verify_connection"] = json!(false);
    let body = b
        .expect(
            StatusCode::BAD_REQUEST,
            "POST",
            "dba/config/pg",
            Some(config),
        )
        .await;
    assert!(
        first_error(&body).starts_with("max_open_connections"),
        "{body}"
    );
    let mut leases = Vec::new();
    for path in ["dba", "dbb"] {
        let creds = b
            .expect(StatusCode::OK, "GET", &format!("{path}/creds/app"), None)
            .await;
        leases.push(creds["lease_id"].as_str().unwrap().to_owned());
    }

    // Stored before the check, on one mount.
    b.stop().await;
    plant(&b, "dba", "max_open_connections", json!(u64::MAX)).await;
    b.start_again().await;
    for _ in 0..3 {
        let (status, body) = b.call("GET", "dba/creds/app", None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            first_error(&body).contains("max_open_connections"),
            "{body}"
        );
        // The other mount is untouched: issues and revokes.
        let creds = b.expect(StatusCode::OK, "GET", "dbb/creds/app", None).await;
        b.expect(
            StatusCode::NO_CONTENT,
            "PUT",
            "sys/leases/revoke",
            Some(json!({ "lease_id": creds["lease_id"] })),
        )
        .await;
    }
    let h = health(&b).await;
    assert_eq!(h["degraded"], true, "{h}");
    assert_eq!(h["sealed"], false, "{h}");
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke",
        Some(json!({ "lease_id": leases[1] })),
    )
    .await;
    let log = b.log();
    assert!(
        log.contains("cannot build a connection pool") && log.contains("dba/config/pg"),
        "the log names the failed pool"
    );

    // Fixed over the API: the mount serves again, health recovers.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "dba/config/pg",
        Some(pg_config()),
    )
    .await;
    assert_eq!(health(&b).await["degraded"], false);
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke",
        Some(json!({ "lease_id": leases[0] })),
    )
    .await;
    assert_eq!(crate::api::pg_users_with_prefix(&pa).await, 0);
    assert_eq!(crate::api::pg_users_with_prefix(&pb).await, 0);
}

async fn mysql_user_exists(name: &str) -> bool {
    let n: Option<i64> = mysql_admin()
        .await
        .exec_first("SELECT COUNT(*) FROM mysql.user WHERE User = ?", (name,))
        .await
        .unwrap();
    n.unwrap_or(0) > 0
}

fn mysql_url() -> String {
    let s = mysql();
    format!(
        "{{{{username}}}}:{{{{password}}}}@tcp({}:{})/",
        s.host, s.port
    )
}

/// Finding 9. Sixteen requests at once for a role whose username template
/// has no random part: exactly one makes the account; the others are
/// refused with a clear error and drop nothing. Every active lease's
/// account exists and its password works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_for_one_mysql_username_never_drop_each_others_account() {
    let b = Broker::start().await;
    mount(&b, "database").await;
    let s = mysql();
    let name = prefix("race");
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/config/maria",
        Some(json!({
            "plugin_name": "mysql-database-plugin",
            "connection_url": mysql_url(),
            "username": s.user,
            "password": s.password,
            "allowed_roles": "*",
            "username_template": name,
            "max_open_connections": 20,
        })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/app",
        Some(json!({
            "db_name": "maria",
            "creation_statements": "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; GRANT USAGE ON *.* TO '{{name}}'@'%';",
            "default_ttl": "1h",
        })),
    )
    .await;

    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let mut calls = Vec::new();
    for _ in 0..16 {
        let (http, base, token, barrier) = (
            b.http.clone(),
            b.base.clone(),
            b.token.clone(),
            barrier.clone(),
        );
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            let r = http
                .get(format!("{base}/database/creds/app"))
                .header("X-Vault-Token", token)
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let mut issued = Vec::new();
    for call in calls {
        let (status, body) = call.await.unwrap();
        eprintln!("{status}: {body}");
        if status == StatusCode::OK {
            issued.push(body);
        } else {
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{status}"
            );
            let error = first_error(&body);
            assert!(
                error.contains(&name) || error.contains("already exists"),
                "{status}: {body}"
            );
        }
    }
    assert_eq!(issued.len(), 1, "one account, one credential: {issued:?}");

    let listed = b
        .expect(
            StatusCode::OK,
            "LIST",
            "sys/leases/lookup/database/creds/app/",
            None,
        )
        .await;
    let keys = listed["data"]["keys"].as_array().unwrap();
    assert_eq!(
        keys.len(),
        issued.len(),
        "exactly the successes have leases"
    );
    for creds in &issued {
        let lease_id = creds["lease_id"].as_str().unwrap();
        assert!(
            keys.iter().any(|k| lease_id.ends_with(k.as_str().unwrap())),
            "{lease_id} is not listed"
        );
        let user = creds["data"]["username"].as_str().unwrap();
        let password = creds["data"]["password"].as_str().unwrap();
        assert_eq!(user, name);
        assert!(
            mysql_user_exists(user).await,
            "{user} has a lease but no account:\n{}",
            b.log()
        );
        let mut conn = mysql_async::Conn::new(s.mysql_opts(user, password))
            .await
            .unwrap_or_else(|e| panic!("the leased password does not work: {e}"));
        let one: Option<i64> = conn.query_first("SELECT 1").await.unwrap();
        assert_eq!(one, Some(1));
        conn.disconnect().await.unwrap();
    }
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke-prefix/database/creds/app",
        None,
    )
    .await;
    assert!(!mysql_user_exists(&name).await);
}

/// Whether a statement holding `tag` still runs on the test PostgreSQL.
async fn pg_running(tag: &str) -> bool {
    let n: i64 = pg_admin()
        .await
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 AND pid <> pg_backend_pid()",
            &[&format!("%{tag}%")],
        )
        .await
        .unwrap()
        .get(0);
    n > 0
}

/// Whether a statement holding `tag` still runs on the test MariaDB.
async fn mysql_running(tag: &str) -> bool {
    let n: Option<i64> = mysql_admin()
        .await
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND ID <> CONNECTION_ID()",
            (format!("%{tag}%"),),
        )
        .await
        .unwrap();
    n.unwrap_or(0) > 0
}

/// Waits up to `within` for `running` to turn false; whether it did. The
/// cancellation is sent before the answer, but the server may take a
/// moment to show the statement gone; on `main` it ran for 25 s.
async fn stops_within<F: std::future::Future<Output = bool>>(
    within: Duration,
    mut running: impl FnMut() -> F,
) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if !running().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Finding 10 on PostgreSQL. A creation statement that sleeps 25 s gets a
/// 503 after the 10 s plugin deadline, and by then it no longer runs on
/// the database (it ran on for 15 s more). Nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_statement_past_the_deadline_is_cancelled() {
    let b = Broker::start().await;
    let p = prefix("slowpg");
    mount(&b, "database").await;
    let mut config = pg_config();
    config["username_template"] = json!(format!("{p}-{{{{random 10}}}}"));
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/config/pg",
        Some(config),
    )
    .await;
    let tag = unique("sleeptag");
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/slow",
        Some(json!({
            "db_name": "pg",
            "creation_statements": [PG_CREATE, format!("SELECT pg_sleep(25), '{tag}';")],
        })),
    )
    .await;
    let started = Instant::now();
    let (status, body) = b.call("GET", "database/creds/slow", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        stops_within(Duration::from_secs(3), || pg_running(&tag)).await,
        "the statement still runs after its call's deadline"
    );
    // The transaction it was in rolled back; the worker finds nothing to drop.
    assert!(
        stops_within(Duration::from_secs(20), || async {
            crate::api::pg_users_with_prefix(&p).await > 0
        })
        .await
    );
}

/// Finding 10 on MariaDB: `KILL QUERY` on the session the call used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_statement_past_the_deadline_is_killed() {
    let b = Broker::start().await;
    mount(&b, "database").await;
    let s = mysql();
    let name = prefix("slowmy");
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/config/maria",
        Some(json!({
            "plugin_name": "mysql-database-plugin",
            "connection_url": mysql_url(),
            "username": s.user,
            "password": s.password,
            "allowed_roles": "*",
            "username_template": name,
        })),
    )
    .await;
    let tag = unique("sleeptag");
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/slow",
        Some(json!({
            "db_name": "maria",
            "creation_statements": [
                "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';",
                format!("SELECT SLEEP(25), '{tag}';"),
            ],
        })),
    )
    .await;
    let (status, body) = b.call("GET", "database/creds/slow", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        stops_within(Duration::from_secs(3), || mysql_running(&tag)).await,
        "the statement still runs after its call's deadline"
    );
    // The account the call made is revoked from its recorded lease.
    assert!(
        stops_within(Duration::from_secs(20), || mysql_user_exists(&name)).await,
        "{name} outlived its failed call"
    );
}

/// From finding 11: a config read shows no password, whether the URL
/// carries it in its userinfo, as `?password=`, or in libpq's key/value
/// form.
#[tokio::test]
async fn a_config_read_masks_every_password_in_the_url() {
    let b = Broker::start().await;
    mount(&b, "database").await;
    let secret = "Zq9-url-secret";
    for url in [
        format!("postgresql://admin:{secret}@db.internal:5432/app"),
        format!("postgresql://db.internal:5432/app?sslmode=disable&password={secret}"),
        format!("postgresql://db.internal/app?PassWord={secret}&user=admin"),
        format!("host=db.internal user=admin password={secret} dbname=app"),
        format!("host=db.internal password = '{secret} with spaces' dbname=app"),
    ] {
        b.expect(
            StatusCode::NO_CONTENT,
            "POST",
            "database/config/masked",
            Some(json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": url,
                "verify_connection": false,
                "allowed_roles": "*",
            })),
        )
        .await;
        let read = b
            .expect(StatusCode::OK, "GET", "database/config/masked", None)
            .await;
        let shown = read["data"]["connection_details"]["connection_url"]
            .as_str()
            .unwrap();
        assert!(!shown.contains(secret), "{url} read back as {shown}");
        assert!(shown.contains("db.internal"), "{shown}");
    }
}

/// Finding 10 below the plugin layer, quickly: a statement on a pooled
/// connection stops at the connection's deadline, with an error saying
/// so; and a call dropped mid-statement (a whole-call timeout, a stopped
/// worker) cancels its statement too. Then the connection is not pooled
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_end_at_the_deadline_or_when_their_call_is_dropped() {
    use broker::sql::{Pools, SqlErrorKind};
    let s = postgres();
    let target = broker_tests::pg_target(s, &s.user, &s.password);
    let pools = Pools::new();
    let key = unique("cancel");

    let tag = unique("deadlinetag");
    let mut c = pools.connect(&key, &target).await.unwrap();
    c.set_deadline(std::time::Instant::now() + Duration::from_secs(1));
    let started = Instant::now();
    let e = c
        .execute(&format!("SELECT pg_sleep(25), '{tag}'"), &[])
        .await
        .unwrap_err();
    assert_eq!(e.kind, SqlErrorKind::Deadline, "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        stops_within(Duration::from_secs(1), || pg_running(&tag)).await,
        "the statement outlived its deadline"
    );
    // Past the deadline nothing more is sent.
    let e = c.execute("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(e.kind, SqlErrorKind::Deadline);
    drop(c);

    let tag = unique("droptag");
    let mut c = pools.connect(&key, &target).await.unwrap();
    let sleeping = format!("SELECT pg_sleep(25), '{tag}'");
    let dropped = tokio::time::timeout(Duration::from_millis(500), c.execute(&sleeping, &[])).await;
    assert!(dropped.is_err(), "the statement ended by itself");
    assert!(
        stops_within(Duration::from_secs(3), || pg_running(&tag)).await,
        "the statement outlived its dropped call"
    );
}

/// The same on MariaDB, where the deadline sends `KILL QUERY` and a batch
/// goes no further than the statement that was running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_statements_end_at_the_deadline_and_a_batch_stops_there() {
    use broker::sql::{Pools, SqlErrorKind};
    let s = mysql();
    let target = broker_tests::mysql_target(s, &s.user, &s.password);
    let pools = Pools::new();
    let key = unique("kill");
    let tag = unique("killtag");
    let after = format!("v{}", &prefix("after"));
    let mut c = pools.connect(&key, &target).await.unwrap();
    c.set_deadline(std::time::Instant::now() + Duration::from_secs(1));
    let e = c
        .batch(&[
            format!("SELECT SLEEP(25), '{tag}'"),
            format!("CREATE USER '{after}'@'%'"),
        ])
        .await
        .unwrap_err();
    assert_eq!(e.kind, SqlErrorKind::Deadline, "{e}");
    assert!(
        stops_within(Duration::from_secs(3), || mysql_running(&tag)).await,
        "the statement outlived its deadline"
    );
    drop(c);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !mysql_user_exists(&after).await,
        "the batch went on past its deadline"
    );

    let tag = unique("droptag");
    let mut c = pools.connect(&key, &target).await.unwrap();
    let sleeping = format!("SELECT SLEEP(25), '{tag}'");
    let dropped = tokio::time::timeout(Duration::from_millis(500), c.execute(&sleeping, &[])).await;
    assert!(dropped.is_err(), "the statement ended by itself");
    assert!(
        stops_within(Duration::from_secs(3), || mysql_running(&tag)).await,
        "the statement outlived its dropped call"
    );
}

/// The MySQL plugin claims a new account's name with `GET_LOCK` on the
/// connection it then creates the account on. A connection going back to
/// its pool must not keep a claim (or a call that failed between claiming
/// and creating would hold that name for as long as the connection idles).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_lock_does_not_outlive_its_call_on_a_pooled_connection() {
    use broker::sql::{Pools, SqlValue};
    let s = mysql();
    let target = Arc::new(
        broker_tests::mysql_target(s, &s.user, &s.password)
            .as_ref()
            .clone()
            .with_max_open_connections(1),
    );
    let pools = Pools::new();
    let key = unique("lock");
    let name = unique("broker-account:test");
    let mut c = pools.connect(&key, &target).await.unwrap();
    let got = c
        .query(&format!("SELECT GET_LOCK('{name}', 0)"), &[])
        .await
        .unwrap();
    assert_eq!(got.rows[0][0], SqlValue::Text("1".into()));
    drop(c);
    // The pool takes it back (and resets it) in the background.
    let free = || async {
        let n: Option<i64> = mysql_admin()
            .await
            .exec_first("SELECT IS_FREE_LOCK(?)", (name.clone(),))
            .await
            .unwrap();
        n != Some(1)
    };
    assert!(
        stops_within(Duration::from_secs(3), free).await,
        "the lock outlived the call that took it"
    );
}

/// The PostgreSQL plugin claims a new role's name the same way: sixteen
/// requests at once for one fixed name make one role, and the refused
/// ones (told why) record nothing that a revocation could drop it by.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_for_one_postgresql_username_make_one_role() {
    let b = Broker::start().await;
    mount(&b, "database").await;
    let name = prefix("pgrace");
    let mut config = pg_config();
    config["username_template"] = json!(name);
    config["max_open_connections"] = json!(20);
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/config/pg",
        Some(config),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/app",
        Some(json!({ "db_name": "pg", "creation_statements": [PG_CREATE], "default_ttl": "1h" })),
    )
    .await;
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let mut calls = Vec::new();
    for _ in 0..16 {
        let (http, base, token, barrier) = (
            b.http.clone(),
            b.base.clone(),
            b.token.clone(),
            barrier.clone(),
        );
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            let r = http
                .get(format!("{base}/database/creds/app"))
                .header("X-Vault-Token", token)
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let mut issued = Vec::new();
    for call in calls {
        let (status, body) = call.await.unwrap();
        if status == StatusCode::OK {
            issued.push(body);
        } else {
            assert!(first_error(&body).contains(&name), "{status}: {body}");
        }
    }
    assert_eq!(issued.len(), 1, "{issued:?}");
    let listed = b
        .expect(
            StatusCode::OK,
            "LIST",
            "sys/leases/lookup/database/creds/app/",
            None,
        )
        .await;
    assert_eq!(listed["data"]["keys"].as_array().unwrap().len(), 1);
    let password = issued[0]["data"]["password"].as_str().unwrap();
    broker_tests::pg_connect(postgres(), &name, password)
        .await
        .unwrap_or_else(|e| panic!("the leased password does not work: {e}"));
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke-prefix/database/creds/app",
        None,
    )
    .await;
    assert!(!pg_role_exists(&name).await);
}

/// The claim itself: while a name is claimed (here by the test, as another
/// call would hold it), a request for it waits, then is refused with a
/// clear 503 and no lease; once the claim ends, it is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_name_is_neither_recorded_nor_created_by_another_call() {
    let b = Broker::start().await;
    mount(&b, "database").await;
    let s = mysql();
    let (my_name, pg_name) = (prefix("claimmy"), prefix("claimpg"));
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/config/maria",
        Some(json!({
            "plugin_name": "mysql-database-plugin",
            "connection_url": mysql_url(),
            "username": s.user,
            "password": s.password,
            "allowed_roles": "*",
            "username_template": my_name,
        })),
    )
    .await;
    let mut config = pg_config();
    config["username_template"] = json!(pg_name);
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/config/pg",
        Some(config),
    )
    .await;
    for (role, db, create) in [
        (
            "my",
            "maria",
            "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';",
        ),
        ("pg", "pg", PG_CREATE),
    ] {
        b.expect(
            StatusCode::NO_CONTENT,
            "POST",
            &format!("database/roles/{role}"),
            Some(json!({ "db_name": db, "creation_statements": [create] })),
        )
        .await;
    }

    let mut my_admin = mysql_admin().await;
    let held: Option<i64> = my_admin
        .exec_first(
            "SELECT GET_LOCK(?, 0)",
            (format!("broker-account:{my_name}"),),
        )
        .await
        .unwrap();
    assert_eq!(held, Some(1));
    let pg = pg_admin().await;
    pg.execute(
        "SELECT pg_advisory_lock(1651665778, hashtext($1))",
        &[&format!("broker-role:{pg_name}")],
    )
    .await
    .unwrap();

    for (role, name) in [("my", &my_name), ("pg", &pg_name)] {
        let (status, body) = b.call("GET", &format!("database/creds/{role}"), None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        let error = first_error(&body);
        assert!(
            error.contains(name.as_str()) && error.contains("another request"),
            "{error}"
        );
        let (status, listed) = b
            .call(
                "LIST",
                &format!("sys/leases/lookup/database/creds/{role}/"),
                None,
            )
            .await;
        assert!(
            status == StatusCode::NOT_FOUND || listed["data"]["keys"] == json!([]),
            "a refused call left a lease: {listed}"
        );
    }
    assert!(!mysql_user_exists(&my_name).await);
    assert!(!pg_role_exists(&pg_name).await);

    // Claims end: both are served.
    my_admin
        .exec_drop(
            "SELECT RELEASE_LOCK(?)",
            (format!("broker-account:{my_name}"),),
        )
        .await
        .unwrap();
    pg.execute(
        "SELECT pg_advisory_unlock(1651665778, hashtext($1))",
        &[&format!("broker-role:{pg_name}")],
    )
    .await
    .unwrap();
    for role in ["my", "pg"] {
        b.expect(
            StatusCode::OK,
            "GET",
            &format!("database/creds/{role}"),
            None,
        )
        .await;
        b.expect(
            StatusCode::NO_CONTENT,
            "PUT",
            &format!("sys/leases/revoke-prefix/database/creds/{role}"),
            None,
        )
        .await;
    }
    assert!(!mysql_user_exists(&my_name).await);
    assert!(!pg_role_exists(&pg_name).await);
}
