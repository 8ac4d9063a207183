//! Login lockout (Vault's user lockout): failed logins are counted per
//! auth mount and identity; past the threshold the identity is locked for
//! a while, whatever it sends, and a login that succeeds resets its count.
//!
//! Identities are normalized (trimmed, lowercased) before they are counted,
//! so `App`, ` app` and `APP` share one count (the class of CVE-2025-6004).
//! Counts live in memory, bounded: a node that restarts forgets them, and a
//! flood of made-up identities cannot grow it past [`MAX_TRACKED`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins before an identity is locked (Vault's default).
pub const THRESHOLD: u32 = 5;
/// How long it stays locked (Vault's default).
pub const DURATION: Duration = Duration::from_secs(15 * 60);
/// How long after its last failure a count starts over (Vault's default).
pub const COUNTER_RESET: Duration = Duration::from_secs(15 * 60);
/// The most identities counted at once.
pub const MAX_TRACKED: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Count {
    failures: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// When to lock, for how long (the configuration's `[auth.lockout]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutSettings {
    /// Failures before the lock.
    pub threshold: u32,
    /// How long it lasts.
    pub duration: Duration,
    /// How long after the last failure a count starts over.
    pub counter_reset: Duration,
}

impl Default for LockoutSettings {
    fn default() -> Self {
        Self {
            threshold: THRESHOLD,
            duration: DURATION,
            counter_reset: COUNTER_RESET,
        }
    }
}

/// Failed-login counts.
#[derive(Debug)]
pub struct Lockout {
    threshold: u32,
    duration: Duration,
    reset: Duration,
    counts: Mutex<HashMap<(String, String), Count>>,
}

impl Default for Lockout {
    fn default() -> Self {
        Self::with(LockoutSettings::default())
    }
}

/// The form an identity is counted under.
pub fn normalize(identity: &str) -> String {
    identity.trim().to_lowercase()
}

impl Lockout {
    /// Locks after `threshold` failures, for `duration`; counts start over
    /// `reset` after the last failure.
    pub fn new(threshold: u32, duration: Duration, reset: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            duration,
            reset,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Locks as `settings` say.
    pub fn with(settings: LockoutSettings) -> Self {
        Self::new(
            settings.threshold,
            settings.duration,
            settings.counter_reset,
        )
    }

    fn key(mount: &str, identity: &str) -> (String, String) {
        (mount.to_owned(), normalize(identity))
    }

    /// Whether `identity` on `mount` is locked now.
    pub fn locked(&self, mount: &str, identity: &str) -> bool {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .get(&Self::key(mount, identity))
            .and_then(|c| c.locked_until)
            .is_some_and(|until| Instant::now() < until)
    }

    /// Counts a failed login; returns whether the identity is now locked.
    pub fn failed(&self, mount: &str, identity: &str) -> bool {
        let now = Instant::now();
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() >= MAX_TRACKED {
            // Forget what no longer matters; if that is not enough, start
            // over rather than grow.
            counts.retain(|_, c| {
                c.locked_until.is_some_and(|u| now < u) || now.duration_since(c.last) < self.reset
            });
            if counts.len() >= MAX_TRACKED {
                counts.clear();
            }
        }
        let count = counts.entry(Self::key(mount, identity)).or_insert(Count {
            failures: 0,
            last: now,
            locked_until: None,
        });
        if count.locked_until.is_some_and(|u| now >= u)
            || now.duration_since(count.last) >= self.reset
        {
            *count = Count {
                failures: 0,
                last: now,
                locked_until: None,
            };
        }
        count.failures = count.failures.saturating_add(1);
        count.last = now;
        if count.failures >= self.threshold {
            count.locked_until = Some(now + self.duration);
        }
        count.locked_until.is_some()
    }

    /// A login succeeded: its count starts over.
    pub fn succeeded(&self, mount: &str, identity: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.remove(&Self::key(mount, identity));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_locks_at_the_threshold_in_any_spelling_and_unlocks() {
        let l = Lockout::new(3, Duration::from_millis(50), Duration::from_secs(60));
        assert!(!l.failed("m", "App"));
        assert!(!l.failed("m", " app"));
        assert!(l.failed("m", "APP "));
        assert!(l.locked("m", "app"));
        assert!(!l.locked("other-mount", "app"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!l.locked("m", "app"));
        // A success resets the count.
        assert!(!l.failed("m", "app"));
        l.succeeded("m", "app");
        assert!(!l.failed("m", "app"));
        assert!(!l.failed("m", "app"));
    }

    #[test]
    fn it_stays_bounded() {
        let l = Lockout::new(5, DURATION, COUNTER_RESET);
        for i in 0..(MAX_TRACKED + 10) {
            l.failed("m", &format!("id-{i}"));
        }
        let n = l.counts.lock().unwrap().len();
        assert!(n <= MAX_TRACKED, "{n}");
    }
}
