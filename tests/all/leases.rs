//! Leases against a real PostgreSQL through the built-in plugin: pending
//! before anything exists, revoked on expiry, after a crash, and when the
//! database comes back; revocation never needs the role or the config.

use std::sync::Arc;
use std::time::Duration;

use broker::barrier::{Barrier, Keyring, SealedStorage};
use broker::lease::{IssueParams, Leases, ResolvedConnection};
use broker::plugin::{Catalog, ConnectionView, Limits};
use broker::storage::{Durability, LeaseState, SqliteBackend, Storage};
use broker_tests::{pg_admin, pg_connect, pg_target, postgres, runtime, unique};
use serde_json::json;

const CREATE: &str =
    r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"#;

struct Fixture {
    leases: Leases,
    storage: Storage,
    store: SealedStorage,
    catalog: Arc<Catalog>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let storage: Storage = Arc::new(SqliteBackend::open(&dir.path().join("b.db")).await.unwrap());
    let store = SealedStorage::new(
        storage.clone(),
        Arc::new(Barrier::new(Keyring::generate().unwrap())),
    );
    let rt = runtime(Limits::default());
    let catalog = Arc::new(Catalog::builtin(&rt).await.unwrap());
    Fixture {
        leases: Leases::new(store.clone(), catalog.clone()),
        storage,
        store,
        catalog,
        _dir: dir,
    }
}

fn params(role: &str, ttl: u64, max_ttl: u64, connection: ResolvedConnection) -> IssueParams {
    IssueParams {
        kind: broker::lease::LeaseKind::Credential,
        mount: "database".into(),
        endpoint: "creds",
        role_name: role.into(),
        parameters: serde_json::Value::Null,
        role: json!({ "creation_statements": CREATE }),
        config_name: "main".into(),
        plugin: "postgresql-database-plugin".into(),
        connection,
        display_name: "token".into(),
        token_accessor: Some("accessor-1".into()),
        deadline: None,
        ttl: Duration::from_secs(ttl),
        max_ttl: Duration::from_secs(max_ttl),
    }
}

fn pg_connection() -> ResolvedConnection {
    let s = postgres();
    ResolvedConnection {
        target: Some(pg_target(s, &s.user, &s.password)),
        ..ResolvedConnection::view_only(ConnectionView {
            name: "main".into(),
            config: json!({}),
        })
    }
}

fn down_connection() -> ResolvedConnection {
    let s = postgres();
    let mut down = s.clone();
    down.port = 1;
    ResolvedConnection {
        target: Some(pg_target(&down, &s.user, &s.password)),
        ..ResolvedConnection::view_only(ConnectionView {
            name: "main".into(),
            config: json!({}),
        })
    }
}

async fn role_exists(name: &str) -> bool {
    !pg_admin()
        .await
        .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
        .await
        .unwrap()
        .is_empty()
}

fn username(c: &broker::plugin::Credential) -> String {
    c.data["username"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn issue_is_covered_by_an_active_lease_and_revoke_ends_both() {
    let f = fixture().await;
    let (row, cred) = f
        .leases
        .issue(params("readonly", 3600, 7200, pg_connection()))
        .await
        .unwrap();
    assert!(row.id.starts_with("database/creds/readonly/"), "{}", row.id);
    let stored = f.leases.lookup(&row.id).await.unwrap();
    assert_eq!(stored.state, LeaseState::Active);
    assert_eq!(stored.expires_at - stored.issued_at, 3600);
    assert_eq!(stored.token_accessor.as_deref(), Some("accessor-1"));
    let user = username(&cred);
    let s = postgres();
    assert!(
        pg_connect(s, &user, cred.data["password"].as_str().unwrap())
            .await
            .is_ok()
    );
    // Nothing secret is stored in clear.
    assert!(
        !stored
            .sealed
            .windows(user.len())
            .any(|w| w == user.as_bytes())
    );

    f.leases.revoke(&row.id).await.unwrap();
    assert!(!role_exists(&user).await);
    assert!(
        f.leases.lookup(&row.id).await.is_err(),
        "a revoked lease is gone"
    );
}

#[tokio::test]
async fn the_worker_revokes_expired_leases() {
    let f = fixture().await;
    let (row, cred) = f
        .leases
        .issue(params("short", 1, 10, pg_connection()))
        .await
        .unwrap();
    let (keep, kept) = f
        .leases
        .issue(params("long", 3600, 7200, pg_connection()))
        .await
        .unwrap();
    let pass = f.leases.expire_due(row.expires_at, 100).await.unwrap();
    assert_eq!(pass.revoked, 1);
    assert!(!role_exists(&username(&cred)).await);
    assert!(
        role_exists(&username(&kept)).await,
        "a lease not yet due stays"
    );
    f.leases.revoke(&keep.id).await.unwrap();
}

#[tokio::test]
async fn renew_never_passes_max_ttl() {
    let f = fixture().await;
    let (row, cred) = f
        .leases
        .issue(params("renew", 60, 120, pg_connection()))
        .await
        .unwrap();
    let (renewed, granted) = f
        .leases
        .renew(&row.id, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(renewed.expires_at, row.max_expires_at, "capped at max TTL");
    assert!(
        (1..=120).contains(&granted),
        "granted {granted}s, within the max TTL"
    );
    let until: i64 = pg_admin()
        .await
        .query_one(
            "SELECT extract(epoch FROM rolvaliduntil)::bigint FROM pg_roles WHERE rolname = $1",
            &[&username(&cred)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        until, renewed.expires_at,
        "the database user's expiry moved too"
    );
    f.leases.revoke(&row.id).await.unwrap();
}

/// The broker died after the plugin created the user but before the lease
/// became active: the worker finds the pending lease and revokes the user.
#[tokio::test]
async fn pending_leases_left_by_a_crash_are_revoked() {
    let f = fixture().await;
    let (row, cred) = f
        .leases
        .issue(params("crash", 3600, 7200, pg_connection()))
        .await
        .unwrap();
    // Put the lease back the way a crash between steps 2 and 3 leaves it.
    let mut pending = f.storage.get_lease(&row.id).await.unwrap().unwrap();
    pending.state = LeaseState::Pending;
    pending.next_attempt_at = pending.issued_at + 60;
    f.storage
        .update_lease(&pending, Durability::Durable)
        .await
        .unwrap();

    let early = f
        .leases
        .expire_due(pending.issued_at + 1, 100)
        .await
        .unwrap();
    assert_eq!(
        early.revoked, 0,
        "an issue may still be in flight: the hold is respected"
    );
    let pass = f
        .leases
        .expire_due(pending.issued_at + 61, 100)
        .await
        .unwrap();
    assert_eq!(pass.revoked, 1);
    assert!(!role_exists(&username(&cred)).await);
    assert!(f.storage.get_lease(&row.id).await.unwrap().is_none());
}

/// The config now points at a database that is down.
struct Down;

#[async_trait::async_trait]
impl broker::lease::ConnectionResolver for Down {
    async fn resolve(&self, _: &str, _: &str) -> Option<ResolvedConnection> {
        Some(down_connection())
    }
}

/// The config was deleted: revocation falls back to the lease's snapshot.
struct Deleted;

#[async_trait::async_trait]
impl broker::lease::ConnectionResolver for Deleted {
    async fn resolve(&self, _: &str, _: &str) -> Option<ResolvedConnection> {
        None
    }
}

/// Revocation retries while the database is down and succeeds once it is
/// back; the failure stays visible on the lease meanwhile.
#[tokio::test]
async fn revocation_retries_until_the_database_is_back() {
    let f = fixture().await;
    let (row, cred) = f
        .leases
        .issue(params("down", 1, 10, pg_connection()))
        .await
        .unwrap();
    let while_down = Leases::new(f.store.clone(), f.catalog.clone()).with_resolver(Arc::new(Down));
    let pass = while_down.expire_due(row.expires_at, 100).await.unwrap();
    assert_eq!(pass.failed, 1);
    let failed = f.storage.get_lease(&row.id).await.unwrap().unwrap();
    assert_eq!(failed.state, LeaseState::Revoking);
    assert_eq!(failed.attempts, 1);
    assert!(
        failed
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("unavailable"),
        "{:?}",
        failed.last_error
    );
    assert!(
        failed.next_attempt_at > row.expires_at,
        "retried later, with backoff"
    );
    assert!(
        role_exists(&username(&cred)).await,
        "nothing is dropped: the user waits for revocation"
    );
    // Not due again before its backoff.
    assert_eq!(
        while_down.expire_due(row.expires_at, 100).await.unwrap(),
        Default::default()
    );

    // The database is back.
    let back = Leases::new(f.store.clone(), f.catalog.clone()).with_resolver(Arc::new(Deleted));
    let pass = back.expire_due(failed.next_attempt_at, 100).await.unwrap();
    assert_eq!(pass.revoked, 1);
    assert!(!role_exists(&username(&cred)).await);
    assert!(f.storage.get_lease(&row.id).await.unwrap().is_none());
}

#[tokio::test]
async fn revoke_prefix_revokes_a_whole_role() {
    let f = fixture().await;
    let role = unique("pfx");
    let mut users = Vec::new();
    for _ in 0..3 {
        let (_, cred) = f
            .leases
            .issue(params(&role, 3600, 7200, pg_connection()))
            .await
            .unwrap();
        users.push(username(&cred));
    }
    let (other, other_cred) = f
        .leases
        .issue(params("other", 3600, 7200, pg_connection()))
        .await
        .unwrap();
    let n = f
        .leases
        .revoke_prefix(&format!("database/creds/{role}/"))
        .await
        .unwrap();
    assert_eq!(n, 3);
    for u in &users {
        assert!(!role_exists(u).await);
    }
    assert!(role_exists(&username(&other_cred)).await);
    f.leases.revoke(&other.id).await.unwrap();
}

/// The worker's overlapped drain: more than two batches of due leases, a
/// few holding real users; every one is revoked and nothing is left.
#[tokio::test]
async fn drain_revokes_every_batch() {
    let f = fixture().await;
    let now = broker::clock::unix_now_signed();
    let mut users = Vec::new();
    for i in 0..3 {
        let (row, cred) = f
            .leases
            .issue(params(&format!("drain{i}"), 3600, 7200, pg_connection()))
            .await
            .unwrap();
        let mut row = f.storage.get_lease(&row.id).await.unwrap().unwrap();
        row.next_attempt_at = now - 10;
        assert!(
            f.storage
                .update_lease(&row, Durability::Durable)
                .await
                .unwrap()
        );
        users.push(username(&cred));
    }
    // Leases whose plugin never recorded anything: nothing to revoke, but
    // they go through every step of the drain all the same.
    let data = broker::lease::LeaseData {
        kind: None,
        mount: "database".into(),
        config_name: "main".into(),
        plugin: "postgresql-database-plugin".into(),
        connection: json!({}),
        revocation: None,
        ..Default::default()
    };
    let rows: Vec<_> = (0..2500)
        .map(|i| {
            let id = format!("database/creds/bulk/{i:05}");
            broker::storage::LeaseRow {
                sealed: f.leases.seal(&id, &data).unwrap(),
                id,
                state: LeaseState::Active,
                issued_at: now - 100,
                expires_at: now - 10,
                max_expires_at: now - 10,
                next_attempt_at: now - 10,
                attempts: 0,
                last_error: None,
                token_accessor: None,
            }
        })
        .collect();
    // Written all at once: SQLite's writer commits them in groups.
    futures_util::future::try_join_all(rows.iter().map(|r| f.storage.insert_lease(r)))
        .await
        .unwrap();
    let total: i64 = f
        .leases
        .counts()
        .await
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(total, 2503);

    assert!(!f.leases.drain().await, "the drain says it stopped sealed");
    assert_eq!(f.leases.counts().await.unwrap(), vec![], "leases are left");
    for user in &users {
        assert!(!role_exists(user).await, "{user} outlived its lease");
    }
}

/// The pending lease is revoked (revoke-prefix) while the plugin is still
/// creating its user: the issue fails, and the lease comes back so the
/// worker drops the user that was made after all.
#[tokio::test]
async fn a_lease_revoked_mid_issue_comes_back_to_revoke_the_user() {
    let f = Arc::new(fixture().await);
    let role = unique("midissue");
    let mut p = params(&role, 3600, 7200, pg_connection());
    p.role = json!({
        "creation_statements": format!("{CREATE} SELECT pg_sleep(1.5);"),
        "username_template": "{{role_name}}",
    });
    let issuing = {
        let f = f.clone();
        tokio::spawn(async move { f.leases.issue(p).await })
    };
    // The plugin has recorded its lease and is inside its creation.
    let prefix = format!("database/creds/{role}/");
    let mut pending = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        pending = f.leases.list(&prefix, 10).await.unwrap();
        if !pending.is_empty() {
            break;
        }
    }
    assert_eq!(pending.len(), 1, "the pending lease was never recorded");
    assert_eq!(f.leases.revoke_prefix(&prefix).await.unwrap(), 1);

    let err = issuing.await.unwrap().unwrap_err();
    assert!(
        matches!(err, broker::lease::LeaseError::RevokedDuringIssue(_)),
        "{err}"
    );
    let back = f.storage.get_lease(&pending[0]).await.unwrap().unwrap();
    assert_eq!(back.state, LeaseState::Pending);
    let pass = f
        .leases
        .expire_due(broker::clock::unix_now_signed() + 1, 100)
        .await
        .unwrap();
    assert_eq!(pass.revoked, 1);
    assert!(!role_exists(&role).await, "{role} outlived its lease");
}

/// Aborting the expiration worker (as the server does when it stops) also
/// stops the revocations it has in flight: none goes on to drop a user,
/// or to write to the audit log, after the worker is gone. The lease stays
/// for the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_worker_leaves_no_revocation_running() {
    let f = fixture().await;
    let role = unique("abort");
    let mut p = params(&role, 1, 10, pg_connection());
    p.role = json!({
        "creation_statements": CREATE,
        "revocation_statements": ["SELECT pg_sleep(2)", "DROP ROLE IF EXISTS \"{{name}}\""],
    });
    let (row, cred) = f.leases.issue(p).await.unwrap();
    let user = username(&cred);
    assert!(role_exists(&user).await);
    let leases = Arc::new(f.leases);
    let worker = leases.clone().spawn_worker(Duration::from_millis(100));
    // Due after a second; the revocation then sleeps two in the database.
    let mut sleeping = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let admin = pg_admin().await;
        let rows = admin
            .query(
                "SELECT 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(2)'",
                &[],
            )
            .await
            .unwrap();
        if !rows.is_empty() {
            sleeping = true;
            break;
        }
    }
    assert!(sleeping, "the revocation never started");
    worker.abort();
    assert!(worker.await.unwrap_err().is_cancelled());
    // Long enough for the sleep to end and a detached revocation to finish.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert!(
        role_exists(&user).await,
        "a revocation went on after its worker was aborted"
    );
    assert!(leases.lookup(&row.id).await.is_ok(), "the lease stays");
    leases.revoke(&row.id).await.unwrap();
    assert!(!role_exists(&user).await);
}

/// A lease whose stored times are out of range (written when TTLs had no
/// bound: an expiry 2.3e18 s away) is never due, so the worker would never
/// revoke it. The sweep and a lookup both end it as expired, with the
/// reason as its error; the worker then revokes it. Others are untouched.
#[tokio::test]
async fn leases_with_out_of_range_times_are_ended() {
    let f = fixture().await;
    let mut broken = Vec::new();
    for _ in 0..2 {
        let (row, cred) = f
            .leases
            .issue(params("far", 3600, 7200, pg_connection()))
            .await
            .unwrap();
        let mut far = f.storage.get_lease(&row.id).await.unwrap().unwrap();
        far.expires_at = i64::MAX / 4;
        far.max_expires_at = i64::MAX / 4;
        far.next_attempt_at = i64::MAX / 4;
        assert!(
            f.storage
                .update_lease(&far, Durability::Durable)
                .await
                .unwrap()
        );
        broken.push((row.id, username(&cred)));
    }
    let (kept, kept_cred) = f
        .leases
        .issue(params("near", 3600, 7200, pg_connection()))
        .await
        .unwrap();

    // A lookup ends the first.
    let looked = f.leases.lookup(&broken[0].0).await.unwrap();
    assert_eq!(looked.state, LeaseState::Revoking);
    assert!(
        looked
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("out of range"),
        "{:?}",
        looked.last_error
    );
    let now = broker::clock::unix_now_signed();
    assert!(looked.expires_at <= now && looked.next_attempt_at <= now);
    // The sweep finds the other; the one looked up is in range now.
    assert_eq!(f.leases.sweep_unusable().await.unwrap(), 1);
    assert_eq!(f.leases.sweep_unusable().await.unwrap(), 0);
    let swept = f.storage.get_lease(&broken[1].0).await.unwrap().unwrap();
    assert_eq!(swept.state, LeaseState::Revoking);
    assert!(swept.next_attempt_at <= broker::clock::unix_now_signed());

    let pass = f
        .leases
        .expire_due(broker::clock::unix_now_signed() + 1, 100)
        .await
        .unwrap();
    assert_eq!(pass.revoked, 2);
    for (id, user) in &broken {
        assert!(!role_exists(user).await, "{user} outlived its lease");
        assert!(f.storage.get_lease(id).await.unwrap().is_none());
    }
    let still = f.leases.lookup(&kept.id).await.unwrap();
    assert_eq!(still.state, LeaseState::Active);
    assert!(role_exists(&username(&kept_cred)).await);
    f.leases.revoke(&kept.id).await.unwrap();
}

/// Issuing with a TTL beyond the longest (a role stored before TTLs were
/// bounded) caps the lease at the longest TTL instead of overflowing.
#[tokio::test]
async fn issue_caps_a_stored_ttl_beyond_the_bound() {
    let f = fixture().await;
    let (row, _) = f
        .leases
        .issue(params("huge", u64::MAX, u64::MAX, pg_connection()))
        .await
        .unwrap();
    let max = broker::duration::MAX_TTL_SECS as i64;
    assert_eq!(row.expires_at - row.issued_at, max);
    assert_eq!(row.max_expires_at - row.issued_at, max);
    f.leases.revoke(&row.id).await.unwrap();
}

/// Both backends find the leases due past a time (the sweep's query),
/// latest first and without irrevocable ones, and list lease ids under a
/// prefix with LIKE's wildcards taken as text.
#[tokio::test]
async fn both_backends_find_leases_due_past_a_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Storage = Arc::new(SqliteBackend::open(&dir.path().join("b.db")).await.unwrap());
    let db = unique("duepast");
    pg_admin()
        .await
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let s = postgres();
    let url = format!(
        "postgres://{}:{}@{}:{}/{db}",
        s.user, s.password, s.host, s.port
    );
    let pg: Storage = Arc::new(
        broker::storage::PostgresBackend::connect(&url)
            .await
            .unwrap(),
    );
    let row = |id: &str, state: LeaseState, due: i64| broker::storage::LeaseRow {
        id: id.into(),
        state,
        issued_at: 100,
        expires_at: due,
        max_expires_at: due,
        next_attempt_at: due,
        attempts: 0,
        last_error: None,
        token_accessor: None,
        sealed: vec![1],
    };
    for storage in [sqlite, pg] {
        for r in [
            row("m/creds/a/1", LeaseState::Active, 10),
            row("m/creds/a_b/2", LeaseState::Active, 1_000_000_000_000),
            row("m/creds/axb/3", LeaseState::Pending, 2_000_000_000_000),
            row("m/creds/q/4", LeaseState::Irrevocable, 3_000_000_000_000),
        ] {
            storage.insert_lease(&r).await.unwrap();
        }
        let ids = |rows: Vec<broker::storage::LeaseRow>| {
            rows.into_iter().map(|r| r.id).collect::<Vec<_>>()
        };
        assert_eq!(
            ids(storage.leases_due_after(1000, 10).await.unwrap()),
            vec!["m/creds/axb/3", "m/creds/a_b/2"]
        );
        assert_eq!(
            ids(storage.leases_due_after(1000, 1).await.unwrap()),
            vec!["m/creds/axb/3"]
        );
        assert!(
            storage
                .leases_due_after(3_000_000_000_000, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            storage.list_leases("m/creds/a_b/", 10).await.unwrap(),
            vec!["m/creds/a_b/2"]
        );
    }
}
