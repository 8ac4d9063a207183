//! Keeping a node's caches in step with the database: the change feed,
//! which refreshes what a change touched as soon as it commits, with the
//! change version beside it (a version skipped in the feed, or a version
//! read every echo interval that the feed has not reached, means a missed
//! announcement: everything is refreshed); and the echo loop, which tells
//! the others this node is alive and which key term it seals with.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use super::Cluster;
use crate::core::Core;
use crate::storage::Change;

/// The entries the core caches, by key prefix: a change to any of them is
/// announced to every node (the database's `entries_changed` trigger).
pub const FOLLOWED: &[&str] = crate::core::CACHED;

impl Cluster {
    /// Echoes every [`super::Timing::echo`], with the key term in use. Runs
    /// until aborted (at seal or stop).
    pub fn spawn_echo(self: Arc<Self>, core: Arc<Core>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.timing.echo);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let term = core.key_term().map_or(0, |(term, _)| term);
                if let Err(e) = self.echo(term).await {
                    tracing::warn!(error = %e, "cannot echo to the cluster");
                }
            }
        })
    }

    /// Follows the change feed, refreshing the core's caches: one entry at
    /// a time as changes commit, everything after the feed reconnects (or
    /// when the echo loop sees the version move unannounced). Runs until
    /// aborted. Nothing on storage of its own.
    pub fn spawn_follow(self: Arc<Self>, core: Arc<Core>) -> Option<tokio::task::JoinHandle<()>> {
        self.store()?;
        Some(tokio::spawn(async move {
            let seen = Arc::new(AtomicI64::new(-1));
            let Some(store) = self.store() else {
                return;
            };
            if let Err(e) = store.watch(FOLLOWED).await {
                tracing::error!(error = %e, "cannot register what this node caches; it checks every echo instead");
            }
            let mut feed = loop {
                match store.listen().await {
                    Ok(feed) => break feed,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for changes; retrying");
                        tokio::time::sleep(self.timing.echo).await;
                    }
                }
            };
            // Listening from here: whatever changed before is caught by
            // comparing versions once.
            self.catch_up(&core, &seen).await;
            // The version check, beside the feed; dropped (so aborted)
            // with this task.
            let mut checker = tokio::task::JoinSet::new();
            {
                let (me, core, seen) = (self.clone(), core.clone(), seen.clone());
                checker.spawn(async move {
                    let mut tick = tokio::time::interval(me.timing.echo);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        me.catch_up(&core, &seen).await;
                    }
                });
            }
            loop {
                match feed.next().await {
                    Change::Entry { key, version } => {
                        if let Err(e) = core.refresh(&key).await {
                            tracing::error!(key = %key, error = %e, "cannot refresh after a change; refreshing everything next echo");
                            seen.store(-1, Ordering::SeqCst);
                            continue;
                        }
                        // The next version in line: caught up to it. A gap:
                        // an announcement was missed, so everything.
                        let last = seen.load(Ordering::SeqCst);
                        if version == last + 1 {
                            let _ = seen.compare_exchange(
                                last,
                                version,
                                Ordering::SeqCst,
                                Ordering::SeqCst,
                            );
                        } else if version > last {
                            self.catch_up(&core, &seen).await;
                        }
                    }
                    Change::Reconnected => {
                        tracing::info!(
                            "the change feed listens again; checking for missed changes"
                        );
                        self.catch_up(&core, &seen).await;
                    }
                }
            }
        }))
    }

    /// Refreshes everything when the change version differs from the one
    /// this node last caught up with.
    async fn catch_up(&self, core: &Core, seen: &AtomicI64) {
        let Some(store) = self.store() else {
            return;
        };
        let version = match store.change_version().await {
            Ok(version) => version,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the change version");
                return;
            }
        };
        let last = seen.load(Ordering::SeqCst);
        if version == last {
            return;
        }
        match core.refresh_all().await {
            Ok(()) => {
                // Only forward: a change announced meanwhile was refreshed
                // by the feed, or is caught by the next comparison.
                let _ = seen.fetch_max(version, Ordering::SeqCst);
                if last >= 0 {
                    tracing::info!(
                        from = last,
                        to = version,
                        "changes were missed (the change feed lost them); everything cached was reloaded"
                    );
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot refresh the cached state; trying again"),
        }
    }
}
