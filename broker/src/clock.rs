//! Wall-clock time as the broker keeps it: whole seconds since the Unix
//! epoch. One place reads the system clock for leases, certificates,
//! health answers and plugins, so they all agree on what "now" means.
//!
//! A clock set before 1970 reads as 0 rather than failing: times here
//! decide expiry, and no answer may panic over them.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Seconds since the Unix epoch, signed, as storage keeps lease times.
pub fn unix_now_signed() -> i64 {
    i64::try_from(unix_now()).unwrap_or(i64::MAX)
}

/// Milliseconds since the Unix epoch, signed.
pub fn unix_now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
