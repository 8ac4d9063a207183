//! Request rate limits: a budget per client address for requests the
//! broker serves, a smaller one for refusals of unauthenticated requests,
//! and an optional global budget (Vault's global rate-limit quota).
//!
//! Order matters. The refusal budget is spent before the audit device sees
//! a request, so a client with no token cannot fill the audit disk (audit
//! fails closed: a full disk would stop the broker for everyone). The
//! per-client and global budgets are spent only after authentication, so
//! requests without a token cannot use up the budget of those with one.
//! This module must never key a budget by anything a client chooses freely
//! (a header, a token it made up): only by its address.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter};

use crate::listener::client_key;

/// A token bucket: `rate` requests per second sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests per second, sustained.
    pub rate: NonZeroU32,
    /// Requests allowed at once above the rate.
    pub burst: NonZeroU32,
}

impl Quota {
    /// `rate` per second with `burst`; `None` when `rate` is 0 (no limit).
    pub fn new(rate: u32, burst: u32) -> Option<Self> {
        let rate = NonZeroU32::new(rate)?;
        Some(Self {
            rate,
            burst: NonZeroU32::new(burst).unwrap_or(rate),
        })
    }

    fn governor(self) -> governor::Quota {
        governor::Quota::per_second(self.rate).allow_burst(self.burst)
    }
}

/// The budgets a listener applies (`[rate_limit]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// One budget for all clients together; none by default.
    pub global: Option<Quota>,
    /// Each client address's budget for requests with a valid token (or
    /// to public paths). Default: 1000/s, bursts of 2000.
    pub per_client: Option<Quota>,
    /// Each client address's budget of refused unauthenticated requests
    /// that are audited; past it, 429 and no audit line. Default: 20/s,
    /// bursts of 100.
    pub refusals_per_client: Option<Quota>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            global: None,
            per_client: Quota::new(1000, 2000),
            refusals_per_client: Quota::new(20, 100),
        }
    }
}

impl RateLimits {
    /// No limit at all (benchmarks).
    pub fn none() -> Self {
        Self {
            global: None,
            per_client: None,
            refusals_per_client: None,
        }
    }
}

/// Keyed buckets are forgotten once full again; this bounds how often the
/// map is swept for them.
const SWEEP_EVERY_SECS: u64 = 10;
/// Below this many client buckets the map is not worth sweeping.
const SWEEP_ABOVE: usize = 4096;

/// A keyed limiter and when it was last swept.
#[derive(Debug)]
struct PerClient {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    swept_at: AtomicU64,
}

impl PerClient {
    fn new(quota: Quota) -> Self {
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota.governor()),
            swept_at: AtomicU64::new(0),
        }
    }

    fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let result = self
            .limiter
            .check_key(&client_key(ip))
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()));
        self.sweep();
        result
    }

    /// Drops the buckets of clients that have been quiet long enough to be
    /// full again, so many addresses cannot grow the map without bound.
    fn sweep(&self) {
        // The clock first: counting the buckets takes every shard's lock,
        // which is not worth doing on each request.
        let now = crate::clock::unix_now();
        let last = self.swept_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= SWEEP_EVERY_SECS
            && self.limiter.len() >= SWEEP_ABOVE
            && self
                .swept_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
    }
}

/// The live budgets of one listener.
#[derive(Debug)]
pub(crate) struct Limiters {
    global: Option<DefaultDirectRateLimiter>,
    per_client: Option<PerClient>,
    refusals: Option<PerClient>,
}

impl Limiters {
    pub(crate) fn new(limits: &RateLimits) -> Self {
        Self {
            global: limits
                .global
                .map(|q| DefaultDirectRateLimiter::direct(q.governor())),
            per_client: limits.per_client.map(PerClient::new),
            refusals: limits.refusals_per_client.map(PerClient::new),
        }
    }

    /// A request the broker will serve (authenticated, or to a public
    /// path): the client's budget, then the global one. `Err` says how long
    /// to wait.
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<(), Duration> {
        if let Some(per_client) = &self.per_client {
            per_client.check(ip)?;
        }
        if let Some(global) = &self.global {
            global
                .check()
                .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))?;
        }
        Ok(())
    }

    /// An unauthenticated request about to be refused and audited.
    pub(crate) fn admit_refusal(&self, ip: IpAddr) -> Result<(), Duration> {
        match &self.refusals {
            Some(refusals) => refusals.check(ip),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_past_its_budget_waits_and_others_do_not() {
        let limits = RateLimits {
            global: None,
            per_client: Quota::new(1, 3),
            refusals_per_client: Quota::new(1, 1),
        };
        let l = Limiters::new(&limits);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            l.admit(a).unwrap();
        }
        assert!(l.admit(a).unwrap_err() > Duration::ZERO);
        l.admit(b).unwrap();
        // Refusals have a budget of their own.
        l.admit_refusal(a).unwrap();
        assert!(l.admit_refusal(a).is_err());
        l.admit_refusal(b).unwrap();
    }

    #[test]
    fn the_global_budget_is_shared() {
        let limits = RateLimits {
            global: Quota::new(1, 2),
            per_client: None,
            refusals_per_client: None,
        };
        let l = Limiters::new(&limits);
        l.admit("192.0.2.1".parse().unwrap()).unwrap();
        l.admit("192.0.2.2".parse().unwrap()).unwrap();
        assert!(l.admit("192.0.2.3".parse().unwrap()).is_err());
    }

    #[test]
    fn zero_means_no_limit() {
        assert!(Quota::new(0, 10).is_none());
        assert_eq!(Quota::new(5, 0).unwrap().burst.get(), 5);
    }
}
