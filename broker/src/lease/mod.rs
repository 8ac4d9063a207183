//! Leases: every credential is covered by a durable lease before it exists,
//! and is revoked when the lease ends.
//!
//! Issuing runs in three steps (docs/architecture.md, "An issuance" and
//! invariant 1):
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
//! Step 3 need not wait for the disk: the activation is a
//! [`Deferred`](crate::storage::Durability::Deferred) write, visible at
//! once and flushed with the next durable commit. A machine crash that
//! loses it leaves the pending lease of step 2, which is revoked: the
//! credential ends early, and nothing is orphaned. Every other lease write
//! is durable; in particular a revoked lease never comes back.
//! Leases live in storage, found through an index on their next due time:
//! nothing here holds a list of leases in memory.
//!
//! A lease carries (sealed) everything its revocation needs — plugin name,
//! revocation data, a snapshot of the connection — so deleting or changing
//! the role or the connection config never leaves a user behind.

mod id;
mod manager;
mod prefix;
mod record;
mod tokens;

pub use id::LeaseId;
pub use manager::seal_key;
pub use manager::{
    ConnectionResolver, IssueParams, LeaseError, LeaseEvents, LeaseOwner, Leases,
    ResolvedConnection, WorkerPass,
};
pub use prefix::LeasePrefix;
pub use record::{LeaseData, LeaseKind};
pub use tokens::TokenRevoker;
