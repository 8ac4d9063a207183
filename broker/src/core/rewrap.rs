//! The rewrap: after `sys/rotate`, every stored value sealed under an older
//! key term, or in the legacy layout, is opened and sealed again under the
//! active term, in the background, without stopping requests.
//!
//! ```ignore
//! let rewrap = Rewrap::resume(store, RewrapSettings::default(), cluster).await?;
//! // ... after a rotation to `term`:
//! rewrap.start(term);
//! let status = rewrap.status(); // for sys/key-status
//! ```
//!
//! One walk visits every entry (by key) and then every lease's sealed
//! column (by id), a batch at a time, in byte order. Each value that needs
//! it is written back with a compare-and-swap on the bytes it read, so a
//! write that came in meanwhile (sealed under the active term already) is
//! never overwritten. After each batch the walk's place is stored, sealed,
//! in `core/rewrap`: a broker killed mid-walk resumes from there when it
//! opens. A rotation during a walk starts it again for the new term.
//!
//! A write sealed under the old term just before the rotation can land
//! after the walk passed its key; so can a lease row read before and put
//! back after. A walk that moved anything is therefore followed by another
//! ([`MAX_PASSES`] at most), and the walk is done only when one finds
//! nothing left to move. When done, `core/barrier-format` records that
//! every value carries the format byte.
//!
//! It must never overwrite a value it did not read, never touch the
//! records stored outside the barrier ([`RAW_KEYS`]: the keyring, the
//! wrapped root key, the seal configuration), and never hold plaintext outside
//! zeroizing memory. Old terms stay in the keyring: values the walk cannot
//! reach (batch tokens held by clients, backups) still open.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::keys::RAW_KEYS;
use crate::barrier::{BarrierError, FORMAT, SealedError, SealedStorage};
use crate::cluster::{Cluster, Job};

/// Where the walk's place is kept (sealed).
pub const RECORD_KEY: &str = "core/rewrap";
/// Set (to [`FORMAT`]) once a walk has finished: every value then carries
/// the format byte.
pub const FORMAT_KEY: &str = "core/barrier-format";

/// The most walks over storage for one term: the first, and walks that
/// catch values written under the old term behind the one before.
pub const MAX_PASSES: u32 = 3;

/// How many writes of one batch are in flight at once: enough for SQLite's
/// writer to commit several in one group, few enough to leave PostgreSQL's
/// pool to requests.
const CONCURRENCY: usize = 8;

/// How long a walk that failed (storage down) waits before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// How long a walk waits for every live node to seal under its term.
const TERM_WAIT: Duration = Duration::from_secs(30);

/// How fast the walk goes.
#[derive(Debug, Clone, Copy)]
pub struct RewrapSettings {
    /// Values read per batch (entries or leases).
    pub batch: u32,
    /// Pause after each batch, so the walk leaves the storage to requests.
    pub pause: Duration,
}

impl Default for RewrapSettings {
    fn default() -> Self {
        Self {
            batch: 128,
            pause: Duration::from_millis(10),
        }
    }
}

/// Which table the walk is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Sealed entries, by key.
    Entries,
    /// Leases' sealed columns, by id.
    Leases,
}

/// The walk's record (`core/rewrap`), and what `sys/key-status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewrapStatus {
    /// The term values are moved to.
    pub term: u32,
    /// Which walk over storage this is (1 for the first).
    pub pass: u32,
    /// Which table the walk is in.
    pub phase: Phase,
    /// The last key (or lease id) done in `phase`; `None` before the first.
    /// Not shown by `sys/key-status`: keys name mounts and roles.
    pub cursor: Option<String>,
    /// When the walk for `term` began (Unix seconds).
    pub started: i64,
    /// When it finished; `None` while it runs.
    pub completed: Option<i64>,
    /// Values looked at, over all passes.
    pub visited: u64,
    /// Values sealed again, over all passes.
    pub rewrapped: u64,
    /// Values sealed again (or found changed) in this pass: another pass
    /// follows unless it is zero.
    pub pass_moved: u64,
    /// Values that did not open (left as they were; the log names them).
    pub unreadable: u64,
}

impl RewrapStatus {
    fn new(term: u32) -> Self {
        Self {
            term,
            pass: 1,
            phase: Phase::Entries,
            cursor: None,
            started: crate::clock::unix_now_signed(),
            completed: None,
            visited: 0,
            rewrapped: 0,
            pass_moved: 0,
            unreadable: 0,
        }
    }

    /// Whether the walk for `term` has finished.
    pub fn done(&self) -> bool {
        self.completed.is_some()
    }
}

/// Unix seconds as RFC 3339, as `sys/key-status` shows `install_time`.
fn rfc3339(t: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// The `rewrap` object of `sys/key-status`: `null` before any walk.
/// `done` is whether every value is under `term`; the counts cover every
/// pass of the walk so far. The cursor is left out (keys name mounts and
/// roles).
pub fn report(status: Option<&RewrapStatus>, error: Option<&str>) -> serde_json::Value {
    let Some(s) = status else {
        return serde_json::Value::Null;
    };
    serde_json::json!({
        "term": s.term,
        "done": s.done(),
        "started": rfc3339(s.started),
        "completed": s.completed.and_then(rfc3339),
        "pass": s.pass,
        "phase": if s.done() { None } else { Some(s.phase) },
        "visited": s.visited,
        "rewrapped": s.rewrapped,
        "unreadable": s.unreadable,
        "error": error,
    })
}

/// Why a walk stopped.
#[derive(Debug, thiserror::Error)]
enum Stop {
    /// The broker was sealed (`sys/seal`): nothing opens until a restart,
    /// which resumes the walk.
    #[error("the broker is sealed")]
    Sealed,
    /// A rotation asked for a newer term.
    #[error("a rotation asked for term {0}")]
    Retarget(u32),
    /// Storage failed; tried again later.
    #[error("{0}")]
    Storage(String),
    /// Another node holds the walk (this one lost its hold, or never had
    /// it): that node walks.
    #[error("another node walks")]
    Lost,
}

impl From<SealedError> for Stop {
    fn from(e: SealedError) -> Self {
        match e {
            SealedError::Barrier {
                source: BarrierError::Sealed,
                ..
            } => Self::Sealed,
            other => Self::Storage(other.to_string()),
        }
    }
}

impl From<crate::storage::StorageError> for Stop {
    fn from(e: crate::storage::StorageError) -> Self {
        Self::Storage(e.to_string())
    }
}

/// What a value needs.
enum Resealed {
    /// Nothing: it is under the target term, in the current format.
    Current,
    /// To be written as this.
    New(Vec<u8>),
    /// It does not open; it is left as it is.
    Unreadable,
}

/// What became of one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Already under the target term, in the current format.
    Current,
    /// Sealed again and written.
    Rewrapped,
    /// Changed since it was read: the newer write stands.
    Raced,
    /// Did not open; left as it was.
    Unreadable,
}

/// The background rewrap of one core. Dropping it stops the walk (it
/// resumes from its record at the next open).
#[derive(Debug)]
pub struct Rewrap {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    store: SealedStorage,
    settings: RewrapSettings,
    /// The newest term a rotation asked the walk to reach.
    target: watch::Sender<u32>,
    /// The record as last stored (or read at open).
    status: Mutex<Option<RewrapStatus>>,
    /// The last failure, until the walk moves on.
    error: Mutex<Option<String>>,
    /// Which node walks: the one holding [`Job::Rewrap`].
    cluster: Arc<Cluster>,
}

impl Drop for Rewrap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Rewrap {
    /// Reads the walk's record and starts the background task, which
    /// resumes an unfinished walk, or starts one when the last finished
    /// walk is for an older term than the active one or storage may still
    /// hold legacy values.
    pub async fn resume(
        store: SealedStorage,
        settings: RewrapSettings,
        cluster: Arc<Cluster>,
    ) -> Result<Self, SealedError> {
        let record = match store.get::<RewrapStatus>(RECORD_KEY).await {
            Ok(record) => record,
            // A record that does not open or parse (written by a newer
            // broker?) must not keep the broker from opening: the walk
            // starts again, which is always safe.
            Err(e @ (SealedError::Barrier { .. } | SealedError::Decode { .. })) => {
                tracing::warn!(error = %e, "rewrap: the stored record is unusable; a new walk starts");
                None
            }
            Err(e) => return Err(e),
        };
        let (active, _) = store
            .barrier()
            .term()
            .map_err(|source| SealedError::Barrier {
                key: RECORD_KEY.to_owned(),
                source,
            })?;
        let (target, _) = watch::channel(active);
        let shared = Arc::new(Shared {
            store,
            settings: RewrapSettings {
                batch: settings.batch.max(1),
                ..settings
            },
            target,
            status: Mutex::new(record),
            error: Mutex::new(None),
            cluster,
        });
        let task = tokio::spawn(run(shared.clone()));
        Ok(Self { shared, task })
    }

    /// Moves every value to `term` (just made active by a rotation): a walk
    /// under way for an older term starts again for this one.
    pub fn start(&self, term: u32) {
        self.shared.target.send_if_modified(|target| {
            let newer = term > *target;
            if newer {
                *target = term;
            }
            newer
        });
    }

    /// The walk's record as last stored, and the last failure if the walk
    /// is waiting to try again.
    pub fn status(&self) -> (Option<RewrapStatus>, Option<String>) {
        (self.shared.status(), self.shared.error())
    }
}

impl Shared {
    fn status(&self) -> Option<RewrapStatus> {
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_status(&self, status: &RewrapStatus) {
        *self
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(status.clone());
    }

    fn error(&self) -> Option<String> {
        self.error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_error(&self, error: Option<String>) {
        *self
            .error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = error;
    }

    /// The walk to run now: the stored one if it is for `target` and
    /// unfinished, none if it finished for `target` and storage holds no
    /// legacy values, else a new one.
    async fn next_walk(&self, target: u32) -> Result<Option<RewrapStatus>, Stop> {
        let current_format = match self.store.get::<u8>(FORMAT_KEY).await {
            Ok(format) => format,
            Err(SealedError::Storage(e)) => return Err(e.into()),
            // Unusable: as if missing, so a walk runs and writes it again.
            Err(_) => None,
        };
        // The stored record, not this node's copy: on shared storage another
        // node may have walked since.
        if self.cluster.is_shared() {
            match self.store.get::<RewrapStatus>(RECORD_KEY).await {
                Ok(Some(record)) => self.set_status(&record),
                Ok(None) => {}
                Err(SealedError::Storage(e)) => return Err(e.into()),
                Err(_) => {}
            }
        }
        Ok(match self.status() {
            Some(record) if record.term == target && !record.done() => Some(record),
            Some(record)
                if record.term >= target && record.done() && current_format == Some(FORMAT) =>
            {
                None
            }
            _ => Some(RewrapStatus::new(target)),
        })
    }

    /// Runs `walk` to its end, storing its place after every batch.
    async fn walk(
        &self,
        mut walk: RewrapStatus,
        rotations: &mut watch::Receiver<u32>,
    ) -> Result<(), Stop> {
        let target = walk.term;
        // Nodes that still seal under an older term would put values
        // behind the walk: it starts once every live node echoes this term
        // (or after a while, and later passes catch what they wrote).
        self.cluster.until_all_on_term(target, TERM_WAIT).await;
        // A new walk is stored before it begins: a crash now resumes it.
        self.save(&walk).await?;
        tracing::info!(
            term = target,
            pass = walk.pass,
            "rewrap: moving stored values to the active key term"
        );
        loop {
            let newest = *rotations.borrow_and_update();
            if newest > target {
                return Err(Stop::Retarget(newest));
            }
            if !self.cluster.hold(Job::Rewrap).await {
                return Err(Stop::Lost);
            }
            let after = walk.cursor.as_deref();
            let page = match walk.phase {
                Phase::Entries => {
                    self.store
                        .storage()
                        .entries_after(after, self.settings.batch)
                        .await?
                }
                Phase::Leases => {
                    self.store
                        .storage()
                        .lease_seals_after(after, self.settings.batch)
                        .await?
                }
            };
            let last = page.last().map(|(key, _)| key.clone());
            let full = page.len() >= self.settings.batch as usize;
            let outcomes = self.batch(walk.phase, target, page).await?;
            for outcome in outcomes {
                walk.visited += 1;
                match outcome {
                    Outcome::Current => {}
                    Outcome::Rewrapped => {
                        walk.rewrapped += 1;
                        walk.pass_moved += 1;
                    }
                    Outcome::Raced => walk.pass_moved += 1,
                    Outcome::Unreadable => walk.unreadable += 1,
                }
            }
            match (full, walk.phase) {
                (true, _) => walk.cursor = last,
                (false, Phase::Entries) => {
                    walk.phase = Phase::Leases;
                    walk.cursor = None;
                }
                (false, Phase::Leases) if walk.pass_moved > 0 && walk.pass < MAX_PASSES => {
                    walk.pass += 1;
                    walk.pass_moved = 0;
                    walk.phase = Phase::Entries;
                    walk.cursor = None;
                }
                (false, Phase::Leases) => {
                    if walk.pass_moved > 0 {
                        tracing::warn!(
                            term = target,
                            moved = walk.pass_moved,
                            "rewrap: values under an older term kept coming back (another node with an older keyring?); they still open"
                        );
                    }
                    walk.completed = Some(crate::clock::unix_now_signed());
                    walk.cursor = None;
                    // The flag first: a crash between the two writes only
                    // repeats a walk that finds nothing to do.
                    self.store.put(FORMAT_KEY, &FORMAT).await?;
                    self.save(&walk).await?;
                    tracing::info!(
                        term = target,
                        rewrapped = walk.rewrapped,
                        unreadable = walk.unreadable,
                        passes = walk.pass,
                        "rewrap: every stored value is under the active key term"
                    );
                    return Ok(());
                }
            }
            self.save(&walk).await?;
            self.set_error(None);
            tokio::task::yield_now().await;
            if !self.settings.pause.is_zero() {
                // A rotation cuts the pause short: the walk starts again.
                tokio::select! {
                    _ = tokio::time::sleep(self.settings.pause) => {}
                    _ = rotations.changed() => {}
                }
            }
        }
    }

    async fn save(&self, walk: &RewrapStatus) -> Result<(), Stop> {
        self.store.put(RECORD_KEY, walk).await?;
        self.set_status(walk);
        Ok(())
    }

    /// Moves one page of values to `target`, a few writes at a time.
    async fn batch(
        &self,
        phase: Phase,
        target: u32,
        page: Vec<(String, Vec<u8>)>,
    ) -> Result<Vec<Outcome>, Stop> {
        let results: Vec<Result<Outcome, Stop>> = futures_util::stream::iter(page)
            .map(|(key, value)| async move {
                match phase {
                    Phase::Entries => self.entry(target, &key, &value).await,
                    Phase::Leases => self.lease(target, &key, &value).await,
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn entry(&self, target: u32, key: &str, value: &[u8]) -> Result<Outcome, Stop> {
        if RAW_KEYS.contains(&key) {
            return Ok(Outcome::Current);
        }
        let new = match self.reseal("entry", key, key, value, target)? {
            Resealed::Current => return Ok(Outcome::Current),
            Resealed::Unreadable => return Ok(Outcome::Unreadable),
            Resealed::New(new) => new,
        };
        let written = self
            .store
            .storage()
            .compare_and_put(key, value, &new)
            .await?;
        Ok(if written {
            Outcome::Rewrapped
        } else {
            Outcome::Raced
        })
    }

    async fn lease(&self, target: u32, id: &str, sealed: &[u8]) -> Result<Outcome, Stop> {
        let aad = crate::lease::seal_key(id);
        let new = match self.reseal("lease", id, &aad, sealed, target)? {
            Resealed::Current => return Ok(Outcome::Current),
            Resealed::Unreadable => return Ok(Outcome::Unreadable),
            Resealed::New(new) => new,
        };
        let written = self
            .store
            .storage()
            .replace_lease_sealed(id, sealed, &new)
            .await?;
        Ok(if written {
            Outcome::Rewrapped
        } else {
            Outcome::Raced
        })
    }

    /// What `value` (sealed under `aad`) needs to be under `target`. A value
    /// that does not open is logged by name, never by content.
    fn reseal(
        &self,
        what: &str,
        name: &str,
        aad: &str,
        value: &[u8],
        target: u32,
    ) -> Result<Resealed, Stop> {
        match self.store.barrier().reseal(aad, value, target) {
            Ok(Some(new)) => Ok(Resealed::New(new)),
            Ok(None) => Ok(Resealed::Current),
            Err(BarrierError::Sealed) => Err(Stop::Sealed),
            Err(BarrierError::Poisoned) => Err(Stop::Storage("the keyring is unavailable".into())),
            Err(e) => {
                tracing::warn!(kind = what, key = name, error = %e, "rewrap: a stored value does not open; left as it is");
                Ok(Resealed::Unreadable)
            }
        }
    }
}

/// The task: runs the walk the record asks for, then waits for a rotation.
async fn run(shared: Arc<Shared>) {
    let mut rotations = shared.target.subscribe();
    loop {
        let target = *rotations.borrow_and_update();
        // One node walks: the one that holds the job.
        let outcome = if shared.cluster.hold(Job::Rewrap).await {
            let outcome = match shared.next_walk(target).await {
                Ok(Some(walk)) => shared.walk(walk, &mut rotations).await,
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if !matches!(outcome, Err(Stop::Lost | Stop::Retarget(_))) {
                shared.cluster.release(Job::Rewrap).await;
            }
            outcome
        } else {
            Err(Stop::Lost)
        };
        match outcome {
            Ok(()) => {
                shared.set_error(None);
                if rotations.changed().await.is_err() {
                    return;
                }
            }
            Err(Stop::Lost) => {
                // Tried again once the holder's walk is likely done (or its
                // hold has run out): then this node finds nothing to do, or
                // takes over.
                tokio::select! {
                    _ = tokio::time::sleep(shared.cluster.timing().hold) => {}
                    changed = rotations.changed() => if changed.is_err() { return },
                }
            }
            Err(Stop::Retarget(term)) => {
                tracing::info!(
                    term,
                    "rewrap: a rotation came in; starting again for the new term"
                );
            }
            Err(Stop::Sealed) => {
                tracing::info!("rewrap: the broker is sealed; the walk resumes at the next start");
                return;
            }
            Err(Stop::Storage(e)) => {
                tracing::warn!(error = %e, "rewrap: storage failed; trying again shortly");
                shared.set_error(Some(e));
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_AFTER) => {}
                    changed = rotations.changed() => if changed.is_err() { return },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::{Barrier, Format, Header, Keyring, seal_legacy};
    use crate::storage::{LeaseRow, LeaseState, SqliteBackend, Storage};

    fn alone(store: &SealedStorage) -> Arc<Cluster> {
        Cluster::new(store.storage().clone(), Default::default())
    }

    async fn store() -> (tempfile::TempDir, SealedStorage) {
        let dir = tempfile::tempdir().unwrap();
        let storage: Storage = Arc::new(SqliteBackend::open(&dir.path().join("db")).await.unwrap());
        let barrier = Arc::new(Barrier::new(Keyring::generate().unwrap()));
        (dir, SealedStorage::new(storage, barrier))
    }

    fn lease_row(id: &str, sealed: Vec<u8>) -> LeaseRow {
        LeaseRow {
            id: id.into(),
            state: LeaseState::Active,
            issued_at: 1,
            expires_at: 2,
            max_expires_at: 3,
            next_attempt_at: 2,
            attempts: 0,
            last_error: None,
            token_accessor: None,
            sealed,
        }
    }

    /// Storage as an older broker left it: `n` entries and `n` leases,
    /// every other one in the legacy layout, the rest sealed now (under
    /// the term active at the time), and the raw records.
    async fn fill(store: &SealedStorage, n: usize) {
        let barrier = store.barrier();
        for i in 0..n {
            let key = format!("logical/m/k{i:03}");
            let plain = format!("\"entry {i}\"");
            let sealed = if i % 2 == 0 {
                seal_legacy(barrier, &key, plain.as_bytes())
            } else {
                barrier.seal(&key, plain.as_bytes()).unwrap()
            };
            store.storage().put(&key, &sealed).await.unwrap();
            let id = format!("db/creds/r/{i:03}");
            let aad = crate::lease::seal_key(&id);
            let plain = format!("lease {i}");
            let sealed = if i % 2 == 0 {
                seal_legacy(barrier, &aad, plain.as_bytes())
            } else {
                barrier.seal(&aad, plain.as_bytes()).unwrap()
            };
            store
                .storage()
                .insert_lease(&lease_row(&id, sealed))
                .await
                .unwrap();
        }
        for raw in RAW_KEYS {
            store.storage().put(raw, b"\x01raw bytes").await.unwrap();
        }
    }

    /// Every entry and lease opens under the active term, in the current
    /// format, with what it held; the raw records are untouched.
    async fn assert_all_current(store: &SealedStorage, n: usize) {
        let barrier = store.barrier();
        let (active, _) = barrier.term().unwrap();
        let current = Header {
            format: Format::Current,
            term: active,
        };
        for i in 0..n {
            let key = format!("logical/m/k{i:03}");
            let sealed = store.storage().get(&key).await.unwrap().unwrap();
            assert_eq!(Header::parse(&sealed).unwrap(), current, "{key}");
            let value: String = store.get(&key).await.unwrap().unwrap();
            assert_eq!(value, format!("entry {i}"));
            let id = format!("db/creds/r/{i:03}");
            let row = store.storage().get_lease(&id).await.unwrap().unwrap();
            assert_eq!(Header::parse(&row.sealed).unwrap(), current, "{id}");
            let plain = barrier
                .open(&crate::lease::seal_key(&id), &row.sealed)
                .unwrap();
            assert_eq!(&*plain, format!("lease {i}").as_bytes());
            assert_eq!(row.expires_at, 2, "only the sealed column changes");
        }
        for raw in RAW_KEYS {
            assert_eq!(
                store.storage().get(raw).await.unwrap().as_deref(),
                Some(&b"\x01raw bytes"[..])
            );
        }
    }

    async fn until_done(rewrap: &Rewrap, term: u32) -> RewrapStatus {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let (Some(status), _) = rewrap.status()
                && status.term == term
                && status.done()
            {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the rewrap did not finish: {:?}",
                rewrap.status()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn fast() -> RewrapSettings {
        RewrapSettings {
            batch: 7,
            pause: Duration::ZERO,
        }
    }

    #[tokio::test]
    async fn legacy_and_old_term_values_are_moved_and_the_format_recorded() {
        let (_dir, store) = store().await;
        fill(&store, 40).await;
        store.barrier().rotate().unwrap();
        let rewrap = Rewrap::resume(store.clone(), fast(), alone(&store))
            .await
            .unwrap();
        let status = until_done(&rewrap, 2).await;
        assert_all_current(&store, 40).await;
        assert_eq!(status.rewrapped, 80, "{status:?}");
        assert_eq!(status.unreadable, 0);
        assert_eq!(
            status.pass, 2,
            "a walk that moved values is checked by another"
        );
        let flag: Option<u8> = store.get(FORMAT_KEY).await.unwrap();
        assert_eq!(flag, Some(FORMAT));
        let stored: RewrapStatus = store.get(RECORD_KEY).await.unwrap().unwrap();
        assert_eq!(stored, status);

        // Opened again with nothing to do: no walk.
        drop(rewrap);
        let again = Rewrap::resume(store.clone(), fast(), alone(&store))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(again.status().0, Some(status));
    }

    #[tokio::test]
    async fn a_walk_stopped_mid_way_resumes_from_its_record() {
        let (_dir, store) = store().await;
        fill(&store, 30).await;
        store.barrier().rotate().unwrap();
        // A batch of the `core/` records (the raw ones and the walk's own),
        // then two values; then a pause no test waits out.
        let batch = RAW_KEYS.len() as u32 + 1 + 2;
        let slow = RewrapSettings {
            batch,
            pause: Duration::from_secs(3600),
        };
        let first = Rewrap::resume(store.clone(), slow, alone(&store))
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while first
            .status()
            .0
            .is_none_or(|s| s.visited < u64::from(batch))
        {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The process dies here.
        drop(first);
        let stored: RewrapStatus = store.get(RECORD_KEY).await.unwrap().unwrap();
        assert_eq!(
            (stored.phase, stored.visited, stored.done()),
            (Phase::Entries, u64::from(batch), false)
        );
        assert_eq!(stored.cursor.as_deref(), Some("logical/m/k001"));
        let moved = |key: &'static str| {
            let store = store.clone();
            async move {
                let sealed = store.storage().get(key).await.unwrap().unwrap();
                Header::parse(&sealed).unwrap().term == 2
            }
        };
        assert!(moved("logical/m/k000").await && moved("logical/m/k001").await);
        assert!(!moved("logical/m/k002").await, "past the cursor: not yet");

        let second = Rewrap::resume(store.clone(), fast(), alone(&store))
            .await
            .unwrap();
        let status = until_done(&second, 2).await;
        assert_all_current(&store, 30).await;
        // 30 entries, the raw records, the walk's own record and 30 leases
        // in each of two passes: the first went on from the cursor, not
        // from the start.
        let per_pass = 60 + RAW_KEYS.len() as u64 + 1;
        assert_eq!(status.visited, 2 * per_pass, "{status:?}");
        assert_eq!(status.rewrapped, 60);
    }

    #[tokio::test]
    async fn a_rotation_during_a_walk_starts_it_again_for_the_new_term() {
        let (_dir, store) = store().await;
        fill(&store, 30).await;
        store.barrier().rotate().unwrap();
        let slowish = RewrapSettings {
            batch: 3,
            pause: Duration::from_millis(20),
        };
        let rewrap = Rewrap::resume(store.clone(), slowish, alone(&store))
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while rewrap.status().0.is_none_or(|s| s.visited < 3) {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!rewrap.status().0.unwrap().done());
        assert_eq!(store.barrier().rotate().unwrap(), 3);
        rewrap.start(3);
        let status = until_done(&rewrap, 3).await;
        assert_eq!(status.term, 3);
        assert_all_current(&store, 30).await;
    }

    #[tokio::test]
    async fn a_newer_write_wins_over_the_rewrap() {
        let (_dir, store) = store().await;
        let barrier = store.barrier();
        let old = seal_legacy(barrier, "logical/m/k", b"\"old\"");
        store.storage().put("logical/m/k", &old).await.unwrap();
        let id = "db/creds/r/1";
        let old_lease = seal_legacy(barrier, &crate::lease::seal_key(id), b"old");
        store
            .storage()
            .insert_lease(&lease_row(id, old_lease.clone()))
            .await
            .unwrap();
        // Both are written again after the walk read them.
        store.put("logical/m/k", &"new").await.unwrap();
        let new_lease = barrier.seal(&crate::lease::seal_key(id), b"new").unwrap();
        assert!(
            store
                .storage()
                .replace_lease_sealed(id, &old_lease, &new_lease)
                .await
                .unwrap()
        );
        let (target, _) = watch::channel(1);
        let shared = Shared {
            store: store.clone(),
            settings: fast(),
            target,
            status: Mutex::new(None),
            error: Mutex::new(None),
            cluster: alone(&store),
        };
        assert_eq!(
            shared.entry(1, "logical/m/k", &old).await.unwrap(),
            Outcome::Raced
        );
        let value: String = store.get("logical/m/k").await.unwrap().unwrap();
        assert_eq!(value, "new");
        assert_eq!(
            shared.lease(1, id, &old_lease).await.unwrap(),
            Outcome::Raced
        );
        let row = store.storage().get_lease(id).await.unwrap().unwrap();
        assert_eq!(row.sealed, new_lease);
        let current = store.storage().get("logical/m/k").await.unwrap().unwrap();
        assert_eq!(
            shared.entry(1, "logical/m/k", &current).await.unwrap(),
            Outcome::Current
        );
        // Unchanged since it was read: moved.
        let other = seal_legacy(barrier, "logical/m/other", b"\"x\"");
        store
            .storage()
            .put("logical/m/other", &other)
            .await
            .unwrap();
        assert_eq!(
            shared.entry(1, "logical/m/other", &other).await.unwrap(),
            Outcome::Rewrapped
        );
        let value: String = store.get("logical/m/other").await.unwrap().unwrap();
        assert_eq!(value, "x");
    }

    #[tokio::test]
    async fn values_that_do_not_open_are_counted_and_left_alone() {
        let (_dir, store) = store().await;
        fill(&store, 4).await;
        // A legacy value: only values that need moving are opened.
        let mut moved = store
            .storage()
            .get("logical/m/k000")
            .await
            .unwrap()
            .unwrap();
        // Sealed for another key: it does not open here.
        store.storage().put("logical/m/zz", &moved).await.unwrap();
        let last = moved.len() - 1;
        moved[last] ^= 1;
        store.storage().put("logical/m/zz2", &moved).await.unwrap();
        let rewrap = Rewrap::resume(store.clone(), fast(), alone(&store))
            .await
            .unwrap();
        let status = until_done(&rewrap, 1).await;
        assert_eq!(status.unreadable, 2 * status.pass as u64, "{status:?}");
        assert_all_current(&store, 4).await;
        let left = store.storage().get("logical/m/zz2").await.unwrap().unwrap();
        assert_eq!(left, moved, "left as it was");
    }

    #[tokio::test]
    async fn a_sealed_broker_stops_the_walk() {
        let (_dir, store) = store().await;
        fill(&store, 10).await;
        let slowish = RewrapSettings {
            batch: 2,
            pause: Duration::from_millis(50),
        };
        let rewrap = Rewrap::resume(store.clone(), slowish, alone(&store))
            .await
            .unwrap();
        store.barrier().seal_keys();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !rewrap.task.is_finished() {
            assert!(tokio::time::Instant::now() < deadline, "still walking");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(rewrap.status().0.is_none_or(|s| !s.done()));
        assert!(
            Rewrap::resume(store.clone(), fast(), alone(&store))
                .await
                .is_err(),
            "no term to walk to"
        );
    }
}
