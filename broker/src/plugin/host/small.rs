//! The small capabilities: randomness, the clock and the log. Each bounds
//! what a guest can make the host do (the log's bounds are in
//! [`crate::plugin::log`]).

use crate::plugin::state::CallState;

/// The most random bytes one `random.bytes` call returns.
const MAX_RANDOM_BYTES: u32 = 4096;

impl CallState {
    pub(crate) fn random_bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        if len > MAX_RANDOM_BYTES {
            wasmtime::bail!("random.bytes asked for {len} bytes; the limit is {MAX_RANDOM_BYTES}");
        }
        let mut buf = vec![0u8; len as usize];
        getrandom::fill(&mut buf)
            .map_err(|e| wasmtime::format_err!("host randomness failed: {e}"))?;
        Ok(buf)
    }

    pub(crate) fn clock_now(&self) -> u64 {
        crate::clock::unix_now()
    }

    pub(crate) fn log_line(&mut self, level: tracing::Level, message: String) {
        // Held until the call ends, when its secrets are known and masked.
        self.log.push(level, message);
    }

    /// Logs a request the host refused, at once (not held with the
    /// plugin's own lines): an operator must see a plugin probing its
    /// sandbox even if the call then hangs. `what` names the capability;
    /// `detail` is the host's own text, never the plugin's arguments.
    pub(crate) fn refused(&self, what: &str, detail: &str) {
        tracing::warn!(plugin = %self.plugin, capability = what, refused = detail, "the host refused a plugin's request");
        crate::metrics::metrics().plugin_refused(&self.plugin, what);
    }
}
