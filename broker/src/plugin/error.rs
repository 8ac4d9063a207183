//! What can go wrong when the broker loads or calls a plugin.

use std::fmt;
use std::time::Duration;

/// The plugin's own verdict, from the WIT `plugin-error` variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The connection configuration is wrong (HTTP 400).
    InvalidConfig,
    /// The role or request is wrong (HTTP 400).
    InvalidRequest,
    /// A dependency is down; retry later (HTTP 503).
    Unavailable,
    /// A bug in the plugin (HTTP 500).
    Internal,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidConfig => "invalid connection config",
            Self::InvalidRequest => "invalid request",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal plugin error",
        })
    }
}

/// Why a plugin could not be loaded or a call did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The plugin ran and reported a typed failure.
    #[error("{kind}: {message}")]
    Failed {
        /// Whose fault, and whether to retry.
        kind: FailureKind,
        /// The plugin's message (bounded in length).
        message: String,
    },
    /// The call ran past its deadline and was stopped.
    #[error("plugin was stopped after its {}ms deadline", .0.as_millis())]
    Deadline(Duration),
    /// The plugin tried to grow its memory past the cap and was stopped.
    #[error("plugin was stopped for exceeding its memory limit of {0} bytes")]
    MemoryLimit(usize),
    /// The plugin returned more than the broker accepts.
    #[error("plugin returned {size} bytes of output; the limit is {limit}")]
    OutputTooLarge {
        /// What it returned.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The plugin trapped (a panic, an out-of-bounds access…) and was stopped.
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The plugin's output did not parse.
    #[error("plugin returned malformed output: {0}")]
    Malformed(String),
    /// The component could not be compiled, linked or described.
    #[error("cannot load plugin: {0}")]
    Load(String),
    /// The runtime itself failed (engine set-up, cache I/O).
    #[error("plugin runtime error: {0}")]
    Runtime(String),
}

impl PluginError {
    /// Whether the same call may succeed later (revocations are retried).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Failed {
                kind: FailureKind::Unavailable,
                ..
            } | Self::Deadline(_)
        )
    }
}

/// The longest plugin error message kept; the rest is cut.
pub(crate) const MAX_MESSAGE_BYTES: usize = 4096;

pub(crate) fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut cut = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str("… (cut)");
    }
    message
}
