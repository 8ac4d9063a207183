//! The small capabilities: randomness, the clock and the log. Each bounds
//! what a guest can make the host do (the log's bounds are in
//! [`crate::plugin::log`]).

use crate::plugin::bindings::v0_1_0::broker::plugin::{clock, log, random, types};
use crate::plugin::state::CallState;

/// The most random bytes one `random.bytes` call returns.
const MAX_RANDOM_BYTES: u32 = 4096;

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
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Trace => tracing::Level::TRACE,
            log::Level::Debug => tracing::Level::DEBUG,
            log::Level::Info => tracing::Level::INFO,
            log::Level::Warn => tracing::Level::WARN,
            log::Level::Error => tracing::Level::ERROR,
        };
        // Held until the call ends, when its secrets are known and masked.
        self.log.push(level, message);
        Ok(())
    }
}
