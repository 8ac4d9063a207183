//! Leases and tokens: a token's own life is a lease of kind
//! [`LeaseKind::Token`], and every lease records the token that asked for
//! it, so revoking a token can find and revoke what it made.
//!
//! The token store owns the tree; this file gives it the durable handles
//! it needs, and nothing here knows what a token holds.

use futures_util::StreamExt;

use super::{LeaseData, LeaseError, LeaseKind, Leases};
use crate::clock;
use crate::storage::{Durability, LeaseRow, LeaseState};

/// Revokes a token's tree when its lease is revoked (it expired, or the
/// worker finishes a revocation a crash interrupted).
#[async_trait::async_trait]
pub trait TokenRevoker: Send + Sync {
    /// Revokes the token the lease's revocation data names, its children
    /// and their leases. Must be idempotent: it may run again after a crash.
    async fn revoke_tree(&self, revocation: &serde_json::Value) -> Result<(), LeaseError>;
}

/// The mount name token leases record (they belong to no engine).
const TOKEN_MOUNT: &str = "auth/token";

/// How many of a token's leases are revoked at once.
const TOKEN_LEASE_PAGE: u32 = 256;

impl Leases {
    fn token_row(
        &self,
        id: &str,
        revocation: serde_json::Value,
        issued_at: i64,
        expires_at: i64,
    ) -> Result<LeaseRow, LeaseError> {
        let data = LeaseData {
            kind: Some(LeaseKind::Token),
            mount: TOKEN_MOUNT.into(),
            revocation: Some(revocation),
            ..LeaseData::default()
        };
        Ok(LeaseRow {
            id: id.to_owned(),
            state: LeaseState::Active,
            issued_at,
            expires_at,
            max_expires_at: expires_at,
            next_attempt_at: expires_at,
            attempts: 0,
            last_error: None,
            token_accessor: None,
            sealed: self.seal(id, &data)?,
        })
    }

    /// Writes the lease `id` of a new token, ending it at `expires_at`;
    /// false (and nothing written) when a lease of that id exists: the
    /// token itself exists, and its lease must not be taken over.
    pub async fn insert_token_lease(
        &self,
        id: &str,
        revocation: serde_json::Value,
        issued_at: i64,
        expires_at: i64,
    ) -> Result<bool, LeaseError> {
        let storage = self.store.storage();
        if storage.get_lease(id).await?.is_some() {
            return Ok(false);
        }
        let row = self.token_row(id, revocation, issued_at, expires_at)?;
        // Two creations racing for one chosen id: the second insert fails
        // on the key, and is refused like the check above.
        Ok(storage.insert_lease(&row).await.is_ok())
    }

    /// Writes (or moves) the lease `id` that ends a token at `expires_at`:
    /// the worker revokes the token's tree then, through
    /// [`TokenRevoker::revoke_tree`] with `revocation`.
    pub async fn put_token_lease(
        &self,
        id: &str,
        revocation: serde_json::Value,
        issued_at: i64,
        expires_at: i64,
    ) -> Result<(), LeaseError> {
        let row = self.token_row(id, revocation, issued_at, expires_at)?;
        let storage = self.store.storage();
        if !storage.update_lease(&row, Durability::Durable).await? {
            storage.insert_lease(&row).await?;
        }
        Ok(())
    }

    /// Records, durably and before any of it is done, that the token of
    /// lease `id` is being revoked: should the broker stop halfway, the
    /// worker finds the lease due after `hold` and finishes the job.
    pub async fn begin_token_revocation(
        &self,
        id: &str,
        revocation: serde_json::Value,
        hold: std::time::Duration,
    ) -> Result<(), LeaseError> {
        let now = clock::unix_now_signed();
        let mut row = match self.store.storage().get_lease(id).await? {
            Some(row) => row,
            None => self.token_row(id, revocation, now, now)?,
        };
        row.state = LeaseState::Revoking;
        row.expires_at = row.expires_at.min(now);
        row.next_attempt_at = now.saturating_add(crate::duration::capped_secs(hold));
        if !self.put_back(&mut row, Durability::Durable).await? {
            self.store.storage().insert_lease(&row).await?;
        }
        Ok(())
    }

    /// Removes a token's lease once its tree is revoked.
    pub async fn end_token_lease(&self, id: &str) -> Result<(), LeaseError> {
        self.store.storage().delete_lease(id).await?;
        Ok(())
    }

    /// Revokes every lease made under the token with `accessor`, several at
    /// once, through the same path as a single revocation (a failure stays
    /// scheduled for the worker). Returns how many were revoked; the first
    /// failure, if any, is returned after every lease has been tried.
    pub async fn revoke_of_token(&self, accessor: &str) -> Result<usize, LeaseError> {
        let mut revoked = 0;
        let mut first_error = None;
        loop {
            let ids = self
                .store
                .storage()
                .leases_of_token(accessor, TOKEN_LEASE_PAGE)
                .await?;
            let calls: Vec<_> = ids
                .iter()
                .cloned()
                .map(|id| self.revoke_by_id(id))
                .collect();
            let outcomes: Vec<Result<(), LeaseError>> = futures_util::stream::iter(calls)
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
            let before = revoked;
            for outcome in outcomes {
                match outcome {
                    Ok(()) => revoked += 1,
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            // A page that revoked nothing would come back the same: the
            // failures are the worker's now.
            if ids.len() < TOKEN_LEASE_PAGE as usize || revoked == before {
                break;
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(revoked),
        }
    }

    fn revoke_by_id(
        &self,
        id: String,
    ) -> futures_util::future::BoxFuture<'_, Result<(), LeaseError>> {
        Box::pin(async move {
            match self.store.storage().get_lease(&id).await? {
                Some(row) => self.revoke_row(row).await,
                None => Ok(()),
            }
        })
    }
}
