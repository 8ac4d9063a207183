//! The same storage suite against both backends: SQLite (embedded) and
//! PostgreSQL (shared by several broker nodes).

use std::sync::Arc;

use broker::barrier::{Barrier, Keyring, SealedStorage};
use broker::storage::{
    Backend, Durability, LeaseRow, LeaseState, PostgresBackend, SqliteBackend, Storage,
};
use broker_tests::{pg_admin, postgres, unique};

async fn sqlite() -> (Storage, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::open(&dir.path().join("broker.db"))
        .await
        .unwrap();
    (Arc::new(backend), dir)
}

async fn pg() -> Storage {
    let db = unique("storage");
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
    Arc::new(PostgresBackend::connect(&url).await.unwrap())
}

fn lease(id: &str, state: LeaseState, due: i64) -> LeaseRow {
    LeaseRow {
        id: id.into(),
        state,
        issued_at: 100,
        expires_at: due,
        max_expires_at: due + 1000,
        next_attempt_at: due,
        attempts: 0,
        last_error: None,
        token_accessor: Some("acc".into()),
        sealed: vec![1, 2, 3],
    }
}

async fn entries(s: &dyn Backend) {
    assert_eq!(s.get("a/b").await.unwrap(), None);
    s.put("a/b", b"one").await.unwrap();
    s.put("a/b", b"two").await.unwrap();
    s.put("a/c", b"x").await.unwrap();
    s.put("a_%/d", b"y").await.unwrap();
    s.put("ab", b"z").await.unwrap();
    assert_eq!(s.get("a/b").await.unwrap().as_deref(), Some(&b"two"[..]));
    assert_eq!(s.list("a/").await.unwrap(), vec!["a/b", "a/c"]);
    // LIKE wildcards in a prefix are literal.
    assert_eq!(s.list("a_%").await.unwrap(), vec!["a_%/d"]);
    assert!(s.delete("a/b").await.unwrap());
    assert!(!s.delete("a/b").await.unwrap());
    assert_eq!(s.list("a/").await.unwrap(), vec!["a/c"]);

    assert!(s.put_new("n/1", b"first").await.unwrap());
    assert!(
        !s.put_new("n/1", b"second").await.unwrap(),
        "an existing key is kept"
    );
    assert_eq!(s.get("n/1").await.unwrap().as_deref(), Some(&b"first"[..]));
}

async fn leases(s: &dyn Backend) {
    s.insert_lease(&lease("db/creds/r/1", LeaseState::Active, 10))
        .await
        .unwrap();
    s.insert_lease(&lease("db/creds/r/2", LeaseState::Pending, 20))
        .await
        .unwrap();
    s.insert_lease(&lease("db/creds/r/3", LeaseState::Active, 1_000))
        .await
        .unwrap();
    s.insert_lease(&lease("db/creds/q/4", LeaseState::Irrevocable, 5))
        .await
        .unwrap();
    assert!(
        s.insert_lease(&lease("db/creds/r/1", LeaseState::Active, 10))
            .await
            .is_err(),
        "ids are unique"
    );

    assert_eq!(
        s.list_leases("db/creds/r/", 10).await.unwrap(),
        vec!["db/creds/r/1", "db/creds/r/2", "db/creds/r/3"]
    );
    assert_eq!(s.list_leases("db/", 2).await.unwrap().len(), 2);
    let mut counts = s.count_leases().await.unwrap();
    counts.sort_by_key(|(state, _)| state.as_str());
    assert_eq!(
        counts,
        vec![
            (LeaseState::Active, 2),
            (LeaseState::Irrevocable, 1),
            (LeaseState::Pending, 1)
        ]
    );

    // Due at 50: leases 1 and 2, not the far one, not the irrevocable one.
    let claimed = s.claim_due_leases(50, 30, 10).await.unwrap();
    let mut ids: Vec<_> = claimed.iter().map(|l| l.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, vec!["db/creds/r/1", "db/creds/r/2"]);
    assert!(
        claimed.iter().all(|l| l.next_attempt_at == 80),
        "claimed leases are held"
    );
    assert!(
        s.claim_due_leases(60, 30, 10).await.unwrap().is_empty(),
        "held leases are not claimed twice"
    );
    assert_eq!(
        s.claim_due_leases(80, 30, 1).await.unwrap().len(),
        1,
        "the limit holds"
    );

    let mut l = s.get_lease("db/creds/r/3").await.unwrap().unwrap();
    assert_eq!(l, lease("db/creds/r/3", LeaseState::Active, 1_000));
    l.state = LeaseState::Revoking;
    l.attempts = 2;
    l.last_error = Some("database down".into());
    assert!(s.update_lease(&l, Durability::Durable).await.unwrap());
    assert_eq!(s.get_lease("db/creds/r/3").await.unwrap(), Some(l));
    assert_eq!(
        counts_by_state(s).await,
        [
            ("active", 1),
            ("irrevocable", 1),
            ("pending", 1),
            ("revoking", 1)
        ],
        "the counts follow a state change, and claims do not move them"
    );
    assert!(s.delete_lease("db/creds/r/3").await.unwrap());
    assert_eq!(s.get_lease("db/creds/r/3").await.unwrap(), None);

    let batch = ["db/creds/r/1", "db/creds/r/2", "db/creds/r/missing"].map(String::from);
    assert_eq!(s.delete_leases(&batch).await.unwrap(), 2);
    assert_eq!(s.get_lease("db/creds/r/1").await.unwrap(), None);
    assert_eq!(s.delete_leases(&[]).await.unwrap(), 0);
    assert_eq!(
        counts_by_state(s).await,
        [("irrevocable", 1)],
        "deleted leases leave the counts"
    );
}

async fn counts_by_state(s: &dyn Backend) -> Vec<(&'static str, i64)> {
    let mut counts: Vec<_> = s
        .count_leases()
        .await
        .unwrap()
        .into_iter()
        .map(|(state, n)| (state.as_str(), n))
        .collect();
    counts.sort();
    counts
}

/// Two workers claiming at once never get the same lease.
async fn concurrent_claims(s: Storage) {
    for i in 0..200 {
        s.insert_lease(&lease(&format!("c/creds/r/{i:03}"), LeaseState::Active, 10))
            .await
            .unwrap();
    }
    let claim = |s: Storage| async move {
        let mut got = Vec::new();
        loop {
            let batch = s.claim_due_leases(50, 1_000, 7).await.unwrap();
            if batch.is_empty() {
                break got;
            }
            got.extend(batch.into_iter().map(|l| l.id));
        }
    };
    let (a, b) = tokio::join!(claim(s.clone()), claim(s.clone()));
    let mut all: Vec<_> = a.iter().chain(&b).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), a.len() + b.len(), "a lease was claimed twice");
    assert_eq!(all.len(), 200);
}

/// Many writers at once (which SQLite commits in groups): each gets its own
/// outcome. A write that fails fails alone, and its neighbours land.
async fn concurrent_writes(s: Storage) {
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let id = format!("w/creds/r/{i:02}");
                s.insert_lease(&lease(&id, LeaseState::Pending, 500))
                    .await
                    .unwrap();
                // Every eighth writer also inserts a lease that exists.
                let duplicate = if i % 8 == 0 {
                    Some(s.insert_lease(&lease(&id, LeaseState::Pending, 500)).await)
                } else {
                    None
                };
                let mut active = lease(&id, LeaseState::Active, 900);
                active.attempts = i;
                assert!(s.update_lease(&active, Durability::Durable).await.unwrap());
                let won = s
                    .put_new("w/once", format!("{i}").as_bytes())
                    .await
                    .unwrap();
                (duplicate, won)
            })
        })
        .collect();
    let mut winners = 0;
    let mut refused = 0;
    for task in tasks {
        let (duplicate, won) = task.await.unwrap();
        winners += usize::from(won);
        if let Some(result) = duplicate {
            assert!(result.is_err(), "a second insert of one lease id succeeded");
            refused += 1;
        }
    }
    assert_eq!(winners, 1, "exactly one put_new writes a new key");
    assert_eq!(refused, 8);
    for i in 0..64 {
        let row = s
            .get_lease(&format!("w/creds/r/{i:02}"))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("lease {i} is missing"));
        assert_eq!((row.state, row.attempts), (LeaseState::Active, i));
    }
    let ids: Vec<String> = (0..64).map(|i| format!("w/creds/r/{i:02}")).collect();
    assert_eq!(s.delete_leases(&ids).await.unwrap(), 64);
    assert!(s.delete("w/once").await.unwrap());
}

/// Deferred writes, alone and mixed into groups with durable ones, are
/// visible to the next read as soon as they are acknowledged: a client that
/// was just handed a credential can renew it at once.
async fn deferred_writes(s: Storage) {
    let tasks: Vec<_> = (0..48)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let id = format!("d/creds/r/{i:02}");
                s.insert_lease(&lease(&id, LeaseState::Pending, 500))
                    .await
                    .unwrap();
                let mut active = lease(&id, LeaseState::Active, 900);
                active.attempts = i;
                // Odd writers defer, even ones wait for the disk: groups mix.
                let durability = if i % 2 == 1 {
                    Durability::Deferred
                } else {
                    Durability::Durable
                };
                assert!(s.update_lease(&active, durability).await.unwrap());
                let row = s.get_lease(&id).await.unwrap().unwrap();
                assert_eq!(
                    (row.state, row.attempts),
                    (LeaseState::Active, i),
                    "a {durability:?} update is not read back"
                );
                assert!(s.delete_lease(&id).await.unwrap());
                assert_eq!(
                    s.get_lease(&id).await.unwrap(),
                    None,
                    "a delete after a {durability:?} update is not read back"
                );
                assert!(
                    !s.delete_lease(&id).await.unwrap(),
                    "a second delete finds nothing"
                );
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let ids: Vec<String> = (0..4).map(|i| format!("d/creds/q/{i}")).collect();
    for id in &ids {
        s.insert_lease(&lease(id, LeaseState::Active, 10))
            .await
            .unwrap();
    }
    assert_eq!(s.delete_leases(&ids).await.unwrap(), 4);
    assert!(s.list_leases("d/", 10).await.unwrap().is_empty());
    // A durable write after deferred ones: the writer is back to waiting.
    s.put("d/after", b"z").await.unwrap();
    assert_eq!(s.get("d/after").await.unwrap().as_deref(), Some(&b"z"[..]));
    assert!(s.delete("d/after").await.unwrap());
}

/// Compare-and-swap on entries and on a lease's sealed column: a write
/// lands only over the exact bytes it expects, and a read sees it at once
/// (SQLite's read cache drops the key).
async fn compare_and_swap(s: &dyn Backend) {
    s.put("cas/a", b"one").await.unwrap();
    assert_eq!(s.get("cas/a").await.unwrap().as_deref(), Some(&b"one"[..]));
    assert!(s.compare_and_put("cas/a", b"one", b"two").await.unwrap());
    assert_eq!(s.get("cas/a").await.unwrap().as_deref(), Some(&b"two"[..]));
    assert!(
        !s.compare_and_put("cas/a", b"one", b"three").await.unwrap(),
        "a stale expectation must not write"
    );
    assert!(!s.compare_and_put("cas/a", b"tw", b"three").await.unwrap());
    assert!(
        !s.compare_and_put("cas/a", b"two\0", b"three")
            .await
            .unwrap()
    );
    assert_eq!(s.get("cas/a").await.unwrap().as_deref(), Some(&b"two"[..]));
    assert!(
        !s.compare_and_put("cas/missing", b"", b"x").await.unwrap(),
        "a missing key is not created"
    );
    assert_eq!(s.get("cas/missing").await.unwrap(), None);
    assert!(s.delete("cas/a").await.unwrap());

    let mut row = lease("cas/creds/r/1", LeaseState::Active, 700);
    row.sealed = b"old".to_vec();
    s.insert_lease(&row).await.unwrap();
    assert!(
        !s.replace_lease_sealed(&row.id, b"other", b"new")
            .await
            .unwrap()
    );
    assert!(
        s.replace_lease_sealed(&row.id, b"old", b"new")
            .await
            .unwrap()
    );
    let stored = s.get_lease(&row.id).await.unwrap().unwrap();
    assert_eq!(stored.sealed, b"new");
    assert_eq!(
        LeaseRow {
            sealed: b"old".to_vec(),
            ..stored
        },
        row,
        "only the sealed column changes"
    );
    assert!(
        !s.replace_lease_sealed("cas/creds/r/missing", b"old", b"new")
            .await
            .unwrap()
    );
    // A claim on the lease outlives the swap: the worker keeps it.
    let claimed = s.claim_due_leases(800, 1_000, 10).await.unwrap();
    assert!(claimed.iter().any(|l| l.id == row.id));
    assert!(
        s.replace_lease_sealed(&row.id, b"new", b"newer")
            .await
            .unwrap()
    );
    assert!(
        s.claim_due_leases(900, 1_000, 10)
            .await
            .unwrap()
            .iter()
            .all(|l| l.id != row.id),
        "the swap must not release the claim"
    );
    assert!(s.delete_lease(&row.id).await.unwrap());
}

/// Walking every entry and every lease a page at a time visits each once,
/// in byte order, with its stored bytes.
async fn walks(s: &dyn Backend) {
    let keys = [
        "walk/ab",
        "walk/aB",
        "walk/a-b",
        "walk/a/b",
        "walk/\u{e9}",
        "walk/a_b",
        "walk/a%b",
        "walk/Z",
    ];
    for (i, key) in keys.iter().enumerate() {
        s.put(key, format!("v{i}").as_bytes()).await.unwrap();
        let mut row = lease(key, LeaseState::Active, 1_000_000);
        row.sealed = format!("s{i}").into_bytes();
        s.insert_lease(&row).await.unwrap();
    }
    for limit in [1, 3, 1000] {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = s.entries_after(after.as_deref(), limit).await.unwrap();
            assert!(page.len() <= limit as usize);
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            seen.extend(page);
        }
        let all = s.list("").await.unwrap();
        assert_eq!(seen.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), all);
        let mut bytewise = all.clone();
        bytewise.sort_unstable();
        assert_eq!(all, bytewise, "not in byte order");
        for (key, value) in &seen {
            assert_eq!(s.get(key).await.unwrap().as_ref(), Some(value));
        }

        let mut leases = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = s.lease_seals_after(after.as_deref(), limit).await.unwrap();
            assert!(page.len() <= limit as usize);
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            leases.extend(page);
        }
        let ids = s.list_leases("", 100_000).await.unwrap();
        assert_eq!(
            leases.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            ids
        );
        for (id, sealed) in &leases {
            assert_eq!(&s.get_lease(id).await.unwrap().unwrap().sealed, sealed);
        }
    }
    for key in keys {
        assert!(s.delete(key).await.unwrap());
        assert!(s.delete_lease(key).await.unwrap());
    }
}

async fn sealed(s: Storage) {
    let store = SealedStorage::new(
        s.clone(),
        Arc::new(Barrier::new(Keyring::generate().unwrap())),
    );
    store
        .put(
            "database/config/a",
            &serde_json::json!({ "password": "hunter2" }),
        )
        .await
        .unwrap();
    let raw = s.get("database/config/a").await.unwrap().unwrap();
    assert!(!raw.windows(7).any(|w| w == b"hunter2"), "stored in clear");
    let back: serde_json::Value = store.get("database/config/a").await.unwrap().unwrap();
    assert_eq!(back["password"], "hunter2");

    // Moved to another row: refused.
    s.put("database/config/b", &raw).await.unwrap();
    let moved = store.get::<serde_json::Value>("database/config/b").await;
    assert!(
        moved.is_err(),
        "a ciphertext moved between rows must not open"
    );
    // Edited in place: refused.
    let mut edited = raw.clone();
    edited[20] ^= 0x40;
    s.put("database/config/a", &edited).await.unwrap();
    let err = store
        .get::<serde_json::Value>("database/config/a")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("failed authentication"), "{err}");
}

#[tokio::test]
async fn sqlite_backend() {
    let (s, _dir) = sqlite().await;
    entries(s.as_ref()).await;
    leases(s.as_ref()).await;
    concurrent_claims(s.clone()).await;
    concurrent_writes(s.clone()).await;
    deferred_writes(s.clone()).await;
    compare_and_swap(s.as_ref()).await;
    walks(s.as_ref()).await;
    sealed(s).await;
}

#[tokio::test]
async fn postgres_backend() {
    let s = pg().await;
    entries(s.as_ref()).await;
    leases(s.as_ref()).await;
    concurrent_claims(s.clone()).await;
    concurrent_writes(s.clone()).await;
    deferred_writes(s.clone()).await;
    compare_and_swap(s.as_ref()).await;
    walks(s.as_ref()).await;
    sealed(s).await;
}

/// When SQLite rolls a transaction back on its own (as a failed COMMIT on
/// a full disk does), later writes still commit for real: acknowledged
/// means visible to another connection, not parked in a transaction that
/// never ends.
#[tokio::test]
async fn sqlite_writes_commit_after_sqlite_rolls_back_on_its_own() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.db");
    let s = SqliteBackend::open(&path).await.unwrap();
    let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query(
        "CREATE TRIGGER boom BEFORE INSERT ON entries WHEN NEW.key = 'boom' \
         BEGIN SELECT RAISE(ROLLBACK, 'boom'); END",
    )
    .execute(&mut other)
    .await
    .unwrap();

    assert!(s.put("boom", b"x").await.is_err(), "the trigger refuses it");
    // Then a failure SQLite undoes only at statement level.
    s.insert_lease(&lease("r/1", LeaseState::Active, 10))
        .await
        .unwrap();
    assert!(
        s.insert_lease(&lease("r/1", LeaseState::Active, 10))
            .await
            .is_err()
    );
    s.put("after", b"y").await.unwrap();

    let seen: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM entries WHERE key = 'after'")
        .fetch_optional(&mut other)
        .await
        .unwrap();
    assert_eq!(
        seen.as_deref(),
        Some(&b"y"[..]),
        "an acknowledged write is not committed"
    );
    let lease_seen: Option<String> = sqlx::query_scalar("SELECT id FROM leases WHERE id = 'r/1'")
        .fetch_optional(&mut other)
        .await
        .unwrap();
    assert_eq!(lease_seen.as_deref(), Some("r/1"));
}

/// One broker process per SQLite file: the claims and the read cache live
/// in memory, so a second backend on the same file is refused, by name,
/// until the first is gone.
#[tokio::test]
async fn a_second_broker_cannot_open_the_same_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.db");
    let first = SqliteBackend::open(&path).await.unwrap();
    first.put("k", b"v").await.unwrap();
    let err = SqliteBackend::open(&path).await.unwrap_err();
    assert!(
        err.to_string().contains("in use by another broker process"),
        "{err}"
    );
    drop(first);
    let second = SqliteBackend::open(&path).await.unwrap();
    assert_eq!(second.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

/// A write whose caller gave up waiting (a dropped request) still lands,
/// and the read cache must not keep serving the value it replaced.
#[tokio::test]
async fn a_write_abandoned_by_its_caller_does_not_leave_a_stale_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteBackend::open(&dir.path().join("broker.db"))
        .await
        .unwrap();
    s.put("database/roles/r", b"old").await.unwrap();
    assert_eq!(
        s.get("database/roles/r").await.unwrap().as_deref(),
        Some(&b"old"[..])
    );
    // Polled once (the write is queued), then dropped.
    use futures_util::FutureExt;
    let abandoned = s.put("database/roles/r", b"new").now_or_never();
    assert!(
        abandoned.is_none(),
        "the write finished before it was dropped"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let seen = s.get("database/roles/r").await.unwrap();
        if seen.as_deref() == Some(&b"new"[..]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still reading {seen:?} after the abandoned write committed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A database whose own collation is linguistic (ICU's en-US) sorts
/// `a-b`, `aB` and `ab` its own way and cannot use a plain index for
/// `LIKE 'x%'`; the backend's keys must not care.
#[tokio::test]
async fn postgres_listings_are_bytewise_and_indexed_under_any_collation() {
    let db = unique("storage_icu");
    let admin = pg_admin().await;
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {db} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' \
             LOCALE 'C.UTF-8'"
        ))
        .await
        .unwrap();
    let s = postgres();
    let url = format!(
        "postgres://{}:{}@{}:{}/{db}",
        s.user, s.password, s.host, s.port
    );
    let backend = PostgresBackend::connect(&url).await.unwrap();
    let keys = [
        "m/ab", "m/aB", "m/a-b", "m/a/b", "m/a_b", "m/a%b", "m/Ab", "n/a",
    ];
    for k in keys {
        backend.put(k, b"v").await.unwrap();
        backend
            .insert_lease(&lease(k, LeaseState::Active, 1_000))
            .await
            .unwrap();
    }
    let mut bytewise: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| k.starts_with("m/"))
        .collect();
    bytewise.sort_unstable();
    assert_eq!(backend.list("m/").await.unwrap(), bytewise);
    assert_eq!(backend.list_leases("m/", 100).await.unwrap(), bytewise);
    // `_` and `%` are characters, not wildcards.
    assert_eq!(backend.list("m/a_").await.unwrap(), vec!["m/a_b"]);
    assert_eq!(
        backend.list_leases("m/a%", 100).await.unwrap(),
        vec!["m/a%b"]
    );

    // The planner can answer a prefix query from the primary key's index.
    let (client, connection) = s
        .pg_config(&s.user, &s.password)
        .dbname(&db)
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("SET enable_seqscan = off")
        .await
        .unwrap();
    for (table, column) in [("entries", "key"), ("leases", "id")] {
        let plan: Vec<String> = client
            .query(
                &format!("EXPLAIN SELECT {column} FROM {table} WHERE {column} LIKE 'm/a%' ORDER BY {column}"),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<_, String>(0))
            .collect();
        let plan = plan.join("\n");
        assert!(plan.contains("Index Cond"), "{table}: {plan}");
    }
}

/// The cluster tables on PostgreSQL: a job is held by one node until its
/// hold runs out or it is released; echoes list the nodes by the
/// database's clock; a change to a watched entry (only) moves the version
/// and reaches a listening feed, with the key, at commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cluster_tables_hold_jobs_list_nodes_and_announce_changes() {
    use broker::storage::{Change, NodeEcho};
    use std::time::Duration;
    let s = pg().await;
    assert!(
        SqliteBackend::open(&tempfile::tempdir().unwrap().path().join("x.db"))
            .await
            .unwrap()
            .cluster()
            .is_none(),
        "SQLite storage is one process's: no cluster"
    );
    let c = s.cluster().expect("PostgreSQL storage can be shared");

    // One holder at a time; renewals keep it; another takes it once the
    // hold has run out, or once it is released.
    let hold = Duration::from_millis(600);
    assert!(c.claim("periodic", "n1", hold).await.unwrap());
    assert!(!c.claim("periodic", "n2", hold).await.unwrap());
    assert!(c.claim("periodic", "n1", hold).await.unwrap(), "a renewal");
    let first = c.claims().await.unwrap();
    assert_eq!(
        (first[0].job.as_str(), first[0].holder.as_str()),
        ("periodic", "n1")
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        c.claim("periodic", "n2", hold).await.unwrap(),
        "taken over after the hold"
    );
    assert!(!c.claim("periodic", "n1", hold).await.unwrap());
    let taken = c.claims().await.unwrap();
    assert_eq!(taken[0].holder, "n2");
    assert!(
        taken[0].claimed_at_ms > first[0].claimed_at_ms,
        "a new holder's claim time"
    );
    c.release("periodic", "n1").await.unwrap();
    assert!(
        !c.claim("periodic", "n1", hold).await.unwrap(),
        "only the holder releases"
    );
    c.release("periodic", "n2").await.unwrap();
    assert!(c.claim("periodic", "n1", hold).await.unwrap());
    // Two nodes claiming at once: exactly one wins.
    let (a, b) = tokio::join!(
        c.claim("rewrap", "n1", hold),
        s.cluster().unwrap().claim("rewrap", "n2", hold)
    );
    assert!(
        a.unwrap() ^ b.unwrap(),
        "exactly one of two simultaneous claims holds"
    );

    // Echoes, newest first, aged by the database's clock; leaving removes
    // the node and its jobs.
    for (id, term) in [("n1", 1), ("n2", 2)] {
        c.echo(&NodeEcho {
            node_id: id.into(),
            api_address: format!("http://{id}:8200"),
            version: "x".into(),
            key_term: term,
            started_at_ms: 1_700_000_000_000,
            last_echo_ms: 0,
            echo_age_ms: 0,
        })
        .await
        .unwrap();
    }
    let nodes = c.nodes().await.unwrap();
    assert_eq!(
        nodes.iter().map(|n| n.node_id.as_str()).collect::<Vec<_>>(),
        ["n2", "n1"]
    );
    assert!(
        nodes.iter().all(|n| (0..5_000).contains(&n.echo_age_ms)),
        "{nodes:?}"
    );
    assert_eq!(nodes[0].key_term, 2);
    assert_eq!(nodes[1].started_at_ms, 1_700_000_000_000);
    c.leave("n1").await.unwrap();
    assert_eq!(c.nodes().await.unwrap().len(), 1);
    assert!(
        c.claims().await.unwrap().iter().all(|j| j.holder != "n1"),
        "a node that leaves gives its jobs up"
    );

    // Changes: only watched prefixes are announced, at commit, with the key.
    c.watch(&["core/mounts", "core/policies/acl/"])
        .await
        .unwrap();
    let mut feed = c.listen().await.unwrap();
    let before = c.change_version().await.unwrap();
    s.put("logical/x/data", b"v").await.unwrap();
    assert_eq!(c.change_version().await.unwrap(), before, "not watched");
    s.put("core/policies/acl/app", b"v").await.unwrap();
    s.delete("core/policies/acl/app").await.unwrap();
    s.put("core/mounts", b"v").await.unwrap();
    assert_eq!(c.change_version().await.unwrap(), before + 3);
    let mut heard = Vec::new();
    while heard.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(5), feed.next()).await {
            Ok(Change::Entry { key, version }) => heard.push((key, version)),
            Ok(Change::Reconnected) => {}
            Err(_) => panic!("heard only {heard:?}"),
        }
    }
    // In commit order, each with the version it made: a gap would say a
    // notification was missed.
    assert_eq!(
        heard,
        [
            ("core/policies/acl/app".to_owned(), before + 1),
            ("core/policies/acl/app".to_owned(), before + 2),
            ("core/mounts".to_owned(), before + 3)
        ]
    );
}
