//! What both kinds of rotation (a static role's account, a connection's
//! root) share: one rotation of a thing at a time in this process, and
//! the login check that settles a pending password.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

/// Rotations running in this process now, by mount UUID and what they
/// rotate (a static role, a connection's root).
static IN_FLIGHT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// A rotation's slot, given back on drop.
pub(super) struct Claim(String);

impl Claim {
    pub(super) fn take(key: String) -> Option<Self> {
        // `then`, not `then_some`: a `Claim` made and dropped here, for a
        // key already taken, would free the other holder's slot (and take
        // this lock again while it is held).
        let mut set = IN_FLIGHT.lock().unwrap_or_else(PoisonError::into_inner);
        set.insert(key.clone()).then(|| Self(key))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        IN_FLIGHT
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.0);
    }
}

/// Which password a login check found working.
pub(super) enum Settled {
    /// The pending one: the database took it.
    Pending,
    /// The current one: the database never changed.
    Current,
    /// Neither logs in; why the pending one did not.
    Neither(String),
}

/// Which of `pending` and `current` logs in to `target` as `username`.
pub(super) async fn which_works(
    target: &crate::sql::SqlTarget,
    username: &str,
    pending: &str,
    current: Option<&str>,
) -> Settled {
    let works =
        async |password: &str| crate::sql::check_login(&target.as_login(username, password)).await;
    match works(pending).await {
        Ok(()) => Settled::Pending,
        Err(new_err) => match current {
            Some(current) if works(current).await.is_ok() => Settled::Current,
            _ => Settled::Neither(new_err.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_held_until_dropped() {
        let first = Claim::take("m/a".into()).unwrap();
        assert!(Claim::take("m/a".into()).is_none());
        assert!(Claim::take("m/b".into()).is_some());
        drop(first);
        assert!(Claim::take("m/a".into()).is_some());
    }
}
