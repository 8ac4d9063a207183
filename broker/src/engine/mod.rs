//! Secrets engines: what a mount does. Engines know nothing of HTTP; the
//! [`api`](crate::api) layer maps their results and errors to Vault's
//! envelope and status codes.

pub mod database;
pub mod pki;

/// Why an engine operation failed; the API maps each case to a status.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request is wrong (400).
    #[error("{0}")]
    BadRequest(String),
    /// Nothing at that path (404).
    #[error("{0}")]
    NotFound(String),
    /// A dependency is down; try again (503).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or storage failure (500).
    #[error("{0}")]
    Internal(String),
}

impl From<crate::barrier::SealedError> for EngineError {
    fn from(e: crate::barrier::SealedError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<crate::plugin::PluginError> for EngineError {
    fn from(e: crate::plugin::PluginError) -> Self {
        use crate::plugin::{FailureKind, PluginError as P};
        match &e {
            P::Failed {
                kind: FailureKind::InvalidConfig | FailureKind::InvalidRequest,
                ..
            } => Self::BadRequest(e.to_string()),
            P::Failed {
                kind: FailureKind::Unavailable,
                ..
            }
            | P::Deadline(_) => Self::Unavailable(e.to_string()),
            _ => Self::Internal(e.to_string()),
        }
    }
}

impl From<crate::lease::LeaseError> for EngineError {
    fn from(e: crate::lease::LeaseError) -> Self {
        use crate::lease::LeaseError as L;
        match e {
            L::Plugin(p) => p.into(),
            L::NotFound(_) | L::NotRenewable(_) | L::EmptyPrefix => Self::BadRequest(e.to_string()),
            L::RevokedDuringIssue(_) => Self::Unavailable(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}
