//! The host's small capabilities: randomness, the clock and the log.

use crate::export::bindings::broker::plugin::{clock, log as wit_log, random};

/// Fills `buf` with bytes from the host's CSPRNG.
pub fn fill_random(buf: &mut [u8]) {
    for chunk in buf.chunks_mut(4096) {
        let bytes = random::bytes(chunk.len() as u32);
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// The host's wall clock, in seconds since the Unix epoch.
pub fn now() -> u64 {
    clock::now()
}

/// A log level.
pub use wit_log::Level;

/// Writes a message to the broker's log, tagged with the mount and plugin.
/// Never log a secret.
pub fn log(level: Level, message: &str) {
    wit_log::log(level, message);
}
