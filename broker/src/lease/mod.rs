//! Leases: every credential is covered by a durable lease before it exists,
//! and is revoked when the lease ends.
//!
//! Issuing runs in three steps (DESIGN §2, invariant 1):
//!
//! 1. the plugin prepares the credential without touching anything outside
//!    the broker, and hands its revocation data to `lease.record-revocation`;
//! 2. that call commits a `pending` lease holding the data (sealed), and
//!    only then does the plugin create the credential;
//! 3. the lease becomes `active`.
//!
//! A crash at any point leaves either nothing outside the broker, or a
//! pending lease with the data to revoke what was made; the expiration
//! worker ([`Leases::expire_due`]) revokes pending and expired leases alike.
//!
//! Only step 2 must wait for the disk. The activation, and the removal of a
//! lease once its credential is revoked, are
//! [`Deferred`](crate::storage::Durability::Deferred) writes: visible at
//! once, flushed with the next durable commit. A machine crash that loses
//! one leaves a pending lease (revoked: the credential ends early, nothing
//! is orphaned) or a revoked lease still stored (revoked again, which
//! plugins must treat as success).
//! Leases live in storage, found through an index on their next due time:
//! nothing here holds a list of leases in memory.
//!
//! A lease carries (sealed) everything its revocation needs — plugin name,
//! revocation data, a snapshot of the connection — so deleting or changing
//! the role or the connection config never leaves a user behind.

mod id;
mod manager;
mod record;

pub use id::LeaseId;
pub use manager::{
    ConnectionResolver, IssueParams, LeaseError, LeaseEvents, Leases, ResolvedConnection,
    WorkerPass,
};
pub use record::LeaseData;
