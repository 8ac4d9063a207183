//! The sandbox's limits, per call.

use std::time::Duration;

/// What one plugin call may use. The defaults suit database plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory per instance (default 64 MiB).
    pub memory_bytes: usize,
    /// Wall-clock time per call, host calls included (default 10 s).
    pub deadline: Duration,
    /// The most bytes of output one call may return (default 1 MiB).
    pub max_output_bytes: usize,
    /// How many calls may run at once; more wait their turn (default 64).
    pub max_concurrent_calls: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            deadline: Duration::from_secs(10),
            max_output_bytes: 1 << 20,
            max_concurrent_calls: 64,
        }
    }
}
