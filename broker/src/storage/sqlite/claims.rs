//! The expiration worker's claims on due leases, kept in memory.
//!
//! One broker process owns an SQLite file, so a claim need not be written to
//! it: writing one rewrote the claimed row and its index entry, as much work
//! for SQLite as deleting the row afterwards, for every lease revoked. Here
//! a claim is an entry in a map until the lease is written again (deleted,
//! rescheduled) or its hold runs out. The map holds only leases in flight
//! (a few worker batches), never the lease list; a restart forgets the
//! claims, and the leases they held are simply due again.

use std::collections::HashMap;

use sqlx::SqlitePool;

use super::{LEASE_COLUMNS, lease};
use crate::storage::{LeaseRow, StorageError};

/// Leases claimed and not yet settled, with when each claim runs out.
#[derive(Debug, Default)]
pub(super) struct Claims {
    held: tokio::sync::Mutex<HashMap<String, i64>>,
}

impl Claims {
    /// Claims up to `limit` leases due at `now` for `hold` seconds. The
    /// returned rows show the hold in `next_attempt_at`, as a stored claim
    /// would.
    pub(super) async fn claim(
        &self,
        pool: &SqlitePool,
        now: i64,
        hold: i64,
        limit: u32,
    ) -> Result<Vec<LeaseRow>, StorageError> {
        // Held across the read, so two claims never see the same lease free.
        let mut held = self.held.lock().await;
        held.retain(|_, until| *until > now);
        // Leases still held are due too and come first: read past them.
        let wanted = i64::from(limit).saturating_add(held.len() as i64);
        let rows = sqlx::query(&format!(
            "SELECT {LEASE_COLUMNS} FROM leases WHERE state <> 'irrevocable' AND next_attempt_at <= ? \
             ORDER BY next_attempt_at LIMIT ?"
        ))
        .bind(now)
        .bind(wanted)
        .fetch_all(pool)
        .await?;
        let mut claimed = Vec::with_capacity(rows.len().min(limit as usize));
        for row in &rows {
            if claimed.len() == limit as usize {
                break;
            }
            let mut row = lease(row)?;
            if held.contains_key(&row.id) {
                continue;
            }
            row.next_attempt_at = now.saturating_add(hold);
            held.insert(row.id.clone(), row.next_attempt_at);
            claimed.push(row);
        }
        Ok(claimed)
    }

    /// Ends the claims on `ids`. Called once a write to those leases is
    /// committed, so no claim can see them free before that.
    pub(super) async fn release<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut held = self.held.lock().await;
        if held.is_empty() {
            return;
        }
        for id in ids {
            held.remove(id);
        }
    }
}
