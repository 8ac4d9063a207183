//! What both kinds of rotation (a static role's account, a connection's
//! root) share: new passwords, one rotation of a thing at a time in this
//! process, and the login check that settles a pending password.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use zeroize::Zeroizing;

use crate::framework::Error;

/// Rotations running in this process now, by mount UUID and what they
/// rotate (a static role, a connection's root).
static IN_FLIGHT: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// A rotation's slot, given back on drop.
pub(super) struct Claim(String);

impl Claim {
    pub(super) fn take(key: String) -> Option<Self> {
        // `then`, not `then_some`: a `Claim` made and dropped here, for a
        // key already taken, would free the other holder's slot (and take
        // this lock again while it is held).
        let mut set = IN_FLIGHT.lock().unwrap_or_else(PoisonError::into_inner);
        set.get_or_insert_with(HashSet::new)
            .insert(key.clone())
            .then(|| Self(key))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut set = IN_FLIGHT.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(set) = set.as_mut() {
            set.remove(&self.0);
        }
    }
}

/// A password for a database account, from the OS's CSPRNG: 24 letters and
/// digits with at least one of each kind, as the SDK makes them.
pub(super) fn new_password() -> Result<Zeroizing<String>, Error> {
    const SETS: [&[u8]; 3] = [
        b"abcdefghijklmnopqrstuvwxyz",
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        b"0123456789",
    ];
    let all: Vec<u8> = SETS.concat();
    let draw = |set: &[u8]| -> Result<u8, Error> {
        // Rejection sampling: no byte value is favoured.
        let limit = 256 - 256 % set.len();
        loop {
            let mut b = [0u8; 1];
            getrandom::fill(&mut b).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
            if usize::from(b[0]) < limit {
                return Ok(set[usize::from(b[0]) % set.len()]);
            }
        }
    };
    loop {
        let mut bytes = Zeroizing::new(Vec::with_capacity(24));
        for _ in 0..24 {
            bytes.push(draw(&all)?);
        }
        if SETS.iter().all(|set| bytes.iter().any(|b| set.contains(b))) {
            return Ok(Zeroizing::new(
                bytes.iter().map(|b| char::from(*b)).collect(),
            ));
        }
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
    fn passwords_hold_every_kind_and_differ() {
        let a = new_password().unwrap();
        let b = new_password().unwrap();
        assert_ne!(*a, *b);
        for p in [&a, &b] {
            assert_eq!(p.len(), 24);
            assert!(p.chars().any(|c| c.is_ascii_lowercase()));
            assert!(p.chars().any(|c| c.is_ascii_uppercase()));
            assert!(p.chars().any(|c| c.is_ascii_digit()));
        }
    }


    #[test]
    fn a_claim_is_held_until_dropped() {
        let first = Claim::take("m/a".into()).unwrap();
        assert!(Claim::take("m/a".into()).is_none());
        assert!(Claim::take("m/b".into()).is_some());
        drop(first);
        assert!(Claim::take("m/a".into()).is_some());
    }
}
