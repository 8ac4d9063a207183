//! The error a plugin returns, typed so the broker can pick the HTTP status
//! and decide whether to retry.

use std::fmt;

use crate::sql::SqlError;

/// A plugin call's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a plugin call failed.
///
/// The broker answers 400 for [`Error::InvalidConfig`] and
/// [`Error::InvalidRequest`], 503 for [`Error::Unavailable`] (and retries a
/// revocation that failed so), 500 for [`Error::Internal`]. Messages reach
/// the API caller and the log: never put a secret in one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The mount's connection configuration is wrong.
    InvalidConfig(String),
    /// The role or the request is wrong.
    InvalidRequest(String),
    /// A dependency cannot be reached now; the call may succeed later.
    Unavailable(String),
    /// A bug in the plugin.
    Internal(String),
}

impl Error {
    /// An [`Error::InvalidConfig`].
    pub fn config(message: impl fmt::Display) -> Self {
        Self::InvalidConfig(message.to_string())
    }

    /// An [`Error::InvalidRequest`].
    pub fn request(message: impl fmt::Display) -> Self {
        Self::InvalidRequest(message.to_string())
    }

    /// An [`Error::Unavailable`].
    pub fn unavailable(message: impl fmt::Display) -> Self {
        Self::Unavailable(message.to_string())
    }

    /// The same error with `secret` kept out of its message, for database
    /// errors that may quote a statement back. Databases quote only part of
    /// a statement (MySQL: 80 characters from the error), so a message that
    /// holds any 6-character piece of the secret is withheld whole.
    pub fn redact(self, secret: &str) -> Self {
        let chars: Vec<char> = secret.chars().collect();
        let leaks = |m: &str| {
            if chars.len() < 6 {
                return !secret.is_empty() && m.contains(secret);
            }
            chars
                .windows(6)
                .any(|w| m.contains(&w.iter().collect::<String>()))
        };
        let scrub = |m: String| {
            if leaks(&m) {
                "the database refused a statement; its message was withheld because it quoted a secret".to_owned()
            } else {
                m
            }
        };
        match self {
            Self::InvalidConfig(m) => Self::InvalidConfig(scrub(m)),
            Self::InvalidRequest(m) => Self::InvalidRequest(scrub(m)),
            Self::Unavailable(m) => Self::Unavailable(scrub(m)),
            Self::Internal(m) => Self::Internal(scrub(m)),
        }
    }

    /// An [`Error::Internal`].
    pub fn internal(message: impl fmt::Display) -> Self {
        Self::Internal(message.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidConfig(m) => write!(f, "invalid connection config: {m}"),
            Self::InvalidRequest(m) => write!(f, "invalid request: {m}"),
            Self::Unavailable(m) => write!(f, "unavailable: {m}"),
            Self::Internal(m) => write!(f, "internal plugin error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<SqlError> for Error {
    fn from(e: SqlError) -> Self {
        use crate::sql::SqlErrorKind as K;
        let message = match &e.code {
            Some(code) => format!("{} (SQLSTATE {code})", e.message),
            None => e.message.clone(),
        };
        match e.kind {
            K::Unavailable => Self::Unavailable(message),
            // A statement the database refused came from the role's statements.
            K::Statement => Self::InvalidRequest(message),
            K::Limit => Self::InvalidRequest(message),
            K::Denied => Self::InvalidConfig(message),
        }
    }
}

impl From<crate::template::TemplateError> for Error {
    fn from(e: crate::template::TemplateError) -> Self {
        Self::InvalidRequest(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn redact_withholds_partial_quotes() {
        let pw = "Abcdef0123456789xyzQRS";
        let e = Error::request(format!("syntax error near '{}' at line 1", &pw[..9])).redact(pw);
        assert!(!e.to_string().contains("Abcdef"), "{e}");
        let e = Error::request("relation \"t\" does not exist").redact(pw);
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}
