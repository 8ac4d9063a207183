//! The small capabilities: randomness, the clock and the log. Each bounds
//! what a guest can make the host do.

use crate::plugin::bindings::v0_1_0::broker::plugin::{clock, log, random, types};
use crate::plugin::state::CallState;

/// The most random bytes one `random.bytes` call returns.
const MAX_RANDOM_BYTES: u32 = 4096;
/// Log lines longer than this are cut.
const MAX_LOG_LINE: usize = 2048;
/// Log lines past this many in one call are dropped.
const MAX_LOG_LINES: u32 = 64;

impl types::Host for CallState {}

impl random::Host for CallState {
    fn bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        if len > MAX_RANDOM_BYTES {
            wasmtime::bail!("random.bytes asked for {len} bytes; the limit is {MAX_RANDOM_BYTES}");
        }
        let mut buf = vec![0u8; len as usize];
        getrandom::fill(&mut buf)
            .map_err(|e| wasmtime::format_err!("host randomness failed: {e}"))?;
        Ok(buf)
    }
}

impl clock::Host for CallState {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(crate::clock::unix_now())
    }
}

impl log::Host for CallState {
    fn log(&mut self, level: log::Level, mut message: String) -> wasmtime::Result<()> {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return Ok(());
        }
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        // A guest must not forge log lines: no newlines or terminal escapes.
        if message.chars().any(char::is_control) {
            message = message
                .chars()
                .map(|c| if c.is_control() { '�' } else { c })
                .collect();
        }
        let plugin = &*self.plugin_name;
        match level {
            log::Level::Trace => tracing::trace!(plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
        Ok(())
    }
}
