//! What a handler's failure means to the client, as a type: the API maps
//! each case to one status, and only [`Error::Internal`] hides its text.

/// Why a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is wrong (400); `field` names the field at fault.
    #[error("{}", invalid_text(.field.as_deref(), .message))]
    Invalid {
        /// The field at fault, if one is.
        field: Option<String>,
        /// What is wrong (never a secret value).
        message: String,
    },
    /// Nothing at that path (404). A read of nothing answers an empty 404,
    /// as Vault's does.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (409): a check-and-set
    /// that lost, an object that already exists.
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// A dependency is down or busy; the same request may work later (503).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or a storage failure (500). The client sees only a request id;
    /// the text goes to the log.
    #[error("{0}")]
    Internal(String),
}

fn invalid_text(field: Option<&str>, message: &str) -> String {
    match field {
        Some(f) if !message.starts_with(f) => format!("{f}: {message}"),
        _ => message.to_owned(),
    }
}

impl Error {
    /// A 400 not about one field.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid {
            field: None,
            message: message.into(),
        }
    }

    /// A 400 about `field`.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    /// The field at fault, for an invalid request.
    pub fn field_name(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => field.as_deref(),
            _ => None,
        }
    }
}

impl From<crate::barrier::SealedError> for Error {
    fn from(e: crate::barrier::SealedError) -> Self {
        match e {
            crate::barrier::SealedError::Contended { .. } => Self::Conflict(e.to_string()),
            e => Self::Internal(e.to_string()),
        }
    }
}

impl From<crate::storage::StorageError> for Error {
    fn from(e: crate::storage::StorageError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<crate::plugin::PluginError> for Error {
    fn from(e: crate::plugin::PluginError) -> Self {
        use crate::plugin::{FailureKind, PluginError as P};
        match &e {
            P::Failed {
                kind: FailureKind::InvalidConfig | FailureKind::InvalidRequest,
                ..
            } => Self::invalid(e.to_string()),
            P::Failed {
                kind: FailureKind::Unavailable,
                ..
            }
            | P::Deadline(_) => Self::Unavailable(e.to_string()),
            _ => Self::Internal(e.to_string()),
        }
    }
}

impl From<crate::lease::LeaseError> for Error {
    fn from(e: crate::lease::LeaseError) -> Self {
        use crate::lease::LeaseError as L;
        match e {
            L::Plugin(p) => p.into(),
            L::NotFound(_) | L::NotRenewable(_) | L::EmptyPrefix => Self::invalid(e.to_string()),
            L::RevokedDuringIssue(_) => Self::Unavailable(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}
