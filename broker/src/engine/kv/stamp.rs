//! Times and durations as KV version 2 shows them: instants in RFC 3339
//! with nanoseconds (`created_time`, `deletion_time`), durations in Go's
//! form (`delete_version_after`: `"1h0m0s"`, `"0s"`), as Vault writes them
//! and its clients read them.
//!
//! A clock before 1970 reads as the epoch and sums saturate: no time here
//! may fail a request, nor panic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// An instant: nanoseconds since the Unix epoch (good until 2554).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// Now, by the wall clock.
    pub fn now() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Self(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// `secs` seconds after the epoch.
    #[cfg(test)]
    pub fn from_secs(secs: u64) -> Self {
        Self(0).plus_secs(secs)
    }

    /// `secs` seconds later (saturating).
    pub fn plus_secs(self, secs: u64) -> Self {
        Self(self.0.saturating_add(secs.saturating_mul(1_000_000_000)))
    }

    /// RFC 3339 in UTC with nanoseconds, as Vault writes its times.
    pub fn rfc3339(self) -> String {
        humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(self.0)).to_string()
    }

    /// [`Self::rfc3339`] of an optional instant; none is `""`, as in Vault.
    pub fn rfc3339_or_empty(stamp: Option<Self>) -> String {
        stamp.map(Self::rfc3339).unwrap_or_default()
    }
}

/// Whole seconds in Go's duration form: `"0s"`, `"45s"`, `"1m30s"`,
/// `"1h0m0s"`, `"-1s"`.
pub fn go_duration(secs: i64) -> String {
    if secs == 0 {
        return "0s".to_owned();
    }
    let sign = if secs < 0 { "-" } else { "" };
    let total = secs.unsigned_abs();
    let (hours, minutes, seconds) = (total / 3600, total % 3600 / 60, total % 60);
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{seconds}s")
    } else {
        format!("{sign}{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_gos() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(45), "45s");
        assert_eq!(go_duration(90), "1m30s");
        assert_eq!(go_duration(3600), "1h0m0s");
        assert_eq!(go_duration(3661), "1h1m1s");
        assert_eq!(go_duration(-1), "-1s");
        assert_eq!(go_duration(i64::MIN).chars().next(), Some('-'));
    }

    #[test]
    fn instants_read_as_rfc3339_with_nanoseconds() {
        let t = Timestamp(1_700_000_000_123_456_789);
        assert_eq!(t.rfc3339(), "2023-11-14T22:13:20.123456789Z");
        assert_eq!(t.plus_secs(1).0, 1_700_000_001_123_456_789);
        assert_eq!(Timestamp(u64::MAX).plus_secs(u64::MAX), Timestamp(u64::MAX));
        assert_eq!(Timestamp::rfc3339_or_empty(None), "");
        assert!(Timestamp::now() > t);
    }
}
