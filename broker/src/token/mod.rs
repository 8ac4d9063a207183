//! The token store: who a request is. Every token but the root token lives
//! here, in a tree whose revocation revokes every lease beneath it
//! (docs/architecture.md, "Tokens and policies").
//!
//! - A **service** token is kept only as a keyed hash of itself (the key
//!   sealed behind the barrier) beside a random accessor; its life is a
//!   lease of kind `token`, so expiry and a revocation a crash interrupted
//!   are finished by the expiration worker.
//! - A **batch** token is its own sealed entry: nothing is stored, it
//!   cannot be renewed or have children, and its leases belong to its
//!   parent.
//!
//! This module decides what a new token may be and keeps the tree; it must
//! never store a token, log one, or show one in `Debug` or an error.

mod create;
mod entry;
mod role;
mod secret;
mod store;

pub use create::{CreateRequest, Parent, normalize_policies, plan};
pub use entry::{TokenEntry, TokenType};
pub use role::{RoleTokenType, TokenRole};
pub use secret::{MAX_TOKEN_LEN, TokenKey};
pub use store::{TokenCaller, TokenStore};

/// Why a token operation failed. Messages never hold a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A field is wrong (400).
    #[error("{message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The caller may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such token or role (400 in Vault's token paths, 404 elsewhere).
    #[error("{0}")]
    NotFound(String),
    /// Sealed storage failed.
    #[error(transparent)]
    Storage(#[from] crate::barrier::SealedError),
    /// The barrier refused (sealed, or a batch token that is not ours).
    #[error(transparent)]
    Barrier(#[from] crate::barrier::BarrierError),
    /// The lease machinery failed.
    #[error(transparent)]
    Lease(#[from] crate::lease::LeaseError),
    /// No randomness.
    #[error("no randomness: {0}")]
    Random(String),
    /// A stored record does not parse.
    #[error("token record: {0}")]
    Corrupt(String),
}

impl TokenError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<TokenError> for crate::framework::Error {
    fn from(e: TokenError) -> Self {
        use crate::framework::Error;
        match e {
            TokenError::Invalid { field, message } => Error::field(field, message),
            TokenError::Forbidden(m) => Error::Forbidden(m),
            // Vault answers 400 for an unknown token or accessor.
            TokenError::NotFound(m) => Error::invalid(m),
            TokenError::Storage(e) => e.into(),
            TokenError::Lease(e) => e.into(),
            TokenError::Barrier(crate::barrier::BarrierError::Sealed) => {
                Error::Unavailable("the broker is sealed".into())
            }
            other => Error::Internal(other.to_string()),
        }
    }
}
