//! The barrier: every value is sealed with AES-256-GCM before it reaches
//! storage, and opened after it leaves.
//!
//! The associated data is the storage key, so a ciphertext moved to another
//! row does not open. Keys come from a versioned [`Keyring`]: rotation adds a
//! version, and old ciphertexts stay readable. The barrier must never return
//! key bytes to a caller, nor hand plaintext to storage.
//!
//! ```ignore
//! let barrier = Barrier::new(keyring);
//! let sealed = barrier.seal("database/config/main", b"{...}")?;
//! let plain = barrier.open("database/config/main", &sealed)?;
//! ```

mod keyring;
mod sealed;

use std::sync::RwLock;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

pub use keyring::Keyring;
pub use sealed::{SealedError, SealedStorage};

/// Why sealing or opening failed.
#[derive(Debug, thiserror::Error)]
pub enum BarrierError {
    /// The ciphertext is too short or has an unknown key version.
    #[error("sealed value is malformed")]
    Malformed,
    /// The key version it names is not in the keyring.
    #[error("sealed value uses key version {0}, which the keyring does not hold")]
    UnknownKey(u32),
    /// Authentication failed: the value was altered or moved between rows.
    #[error("sealed value failed authentication (altered, or moved from another key)")]
    Tampered,
    /// The keyring's lock was poisoned by a panic.
    #[error("the keyring is unavailable")]
    Poisoned,
    /// The system's randomness failed.
    #[error("no randomness for a nonce: {0}")]
    Random(String),
    /// The keyring was dropped (`sys/seal`): nothing opens until a restart
    /// unwraps it again.
    #[error("the broker is sealed")]
    Sealed,
}

/// Layout: key version (4 bytes, big-endian), nonce (12), ciphertext and tag.
const HEADER: usize = 4 + 12;

/// Seals and opens values with the active keyring.
#[derive(Debug)]
pub struct Barrier {
    /// `None` once sealed: the keys are zeroized and gone from memory.
    keyring: RwLock<Option<Keyring>>,
}

impl Barrier {
    /// A barrier over `keyring`.
    pub fn new(keyring: Keyring) -> Self {
        Self {
            keyring: RwLock::new(Some(keyring)),
        }
    }

    /// Drops the keyring (its keys are zeroized): from now on every seal and
    /// open fails with [`BarrierError::Sealed`]. There is no way back short
    /// of unwrapping the stored keyring again, which is what a start does.
    pub fn seal_keys(&self) {
        // A poisoned lock still holds the keys: take them all the same.
        let mut keyring = self
            .keyring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *keyring = None;
    }

    /// Whether [`Self::seal_keys`] has run.
    pub fn is_sealed(&self) -> bool {
        self.keyring.read().map_or(true, |k| k.is_none())
    }

    /// Seals `plaintext` for storage under `storage_key`.
    pub fn seal(&self, storage_key: &str, plaintext: &[u8]) -> Result<Vec<u8>, BarrierError> {
        let keyring = self.keyring.read().map_err(|_| BarrierError::Poisoned)?;
        let (version, key) = keyring.as_ref().ok_or(BarrierError::Sealed)?.active();
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| BarrierError::Malformed)?;
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| BarrierError::Random(e.to_string()))?;
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: storage_key.as_bytes(),
                },
            )
            .map_err(|_| BarrierError::Malformed)?;
        let mut out = Vec::with_capacity(HEADER + ciphertext.len());
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Opens a value read from `storage_key`.
    pub fn open(
        &self,
        storage_key: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, BarrierError> {
        if sealed.len() < HEADER + 16 {
            return Err(BarrierError::Malformed);
        }
        let (version, rest) = sealed.split_at(4);
        let version = u32::from_be_bytes(version.try_into().map_err(|_| BarrierError::Malformed)?);
        let (nonce, ciphertext) = rest.split_at(12);
        let keyring = self.keyring.read().map_err(|_| BarrierError::Poisoned)?;
        let key = keyring
            .as_ref()
            .ok_or(BarrierError::Sealed)?
            .get(version)
            .ok_or(BarrierError::UnknownKey(version))?;
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| BarrierError::Malformed)?;
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: storage_key.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| BarrierError::Tampered)
    }

    /// Adds a new key version and makes it active; returns its number.
    pub fn rotate(&self) -> Result<u32, BarrierError> {
        let mut keyring = self.keyring.write().map_err(|_| BarrierError::Poisoned)?;
        keyring
            .as_mut()
            .ok_or(BarrierError::Sealed)?
            .rotate()
            .map_err(BarrierError::Random)
    }

    /// The keyring with a new term, not yet in use: the caller stores it
    /// (wrapped) first, then [`Self::install`]s it, so nothing is sealed
    /// under a key storage does not hold.
    pub fn rotated_keyring(&self) -> Result<Keyring, BarrierError> {
        self.keyring
            .read()
            .map_err(|_| BarrierError::Poisoned)?
            .as_ref()
            .ok_or(BarrierError::Sealed)?
            .rotated()
            .map_err(BarrierError::Random)
    }

    /// Puts `next` (from [`Self::rotated_keyring`]) in use, if it is the
    /// successor of the keyring in use; refused otherwise, so a keyring
    /// made from an older one never drops a term.
    pub fn install(&self, next: Keyring) -> Result<(), BarrierError> {
        let mut keyring = self.keyring.write().map_err(|_| BarrierError::Poisoned)?;
        let current = keyring.as_ref().ok_or(BarrierError::Sealed)?;
        let successor = next.term().0 == current.term().0.saturating_add(1)
            && (1..=current.term().0).all(|t| current.get(t) == next.get(t));
        if !successor {
            return Err(BarrierError::Malformed);
        }
        *keyring = Some(next);
        Ok(())
    }

    /// The active term and when it was made (if known).
    pub fn term(&self) -> Result<(u32, Option<i64>), BarrierError> {
        Ok(self
            .keyring
            .read()
            .map_err(|_| BarrierError::Poisoned)?
            .as_ref()
            .ok_or(BarrierError::Sealed)?
            .term())
    }

    /// The keyring, serialised for wrapping by the KMS.
    pub fn export_keyring(&self) -> Result<Zeroizing<Vec<u8>>, BarrierError> {
        Ok(self
            .keyring
            .read()
            .map_err(|_| BarrierError::Poisoned)?
            .as_ref()
            .ok_or(BarrierError::Sealed)?
            .to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn barrier() -> Barrier {
        Barrier::new(Keyring::generate().unwrap())
    }

    #[test]
    fn a_rotated_keyring_is_installed_only_as_the_successor() {
        let b = barrier();
        let old = b.seal("k", b"term one").unwrap();
        let next = b.rotated_keyring().unwrap();
        assert_eq!(b.term().unwrap().0, 1, "not in use until installed");
        // One made from the same keyring is not a successor once the
        // first is in use: it would hold another key for term 2.
        let rival = b.rotated_keyring().unwrap();
        b.install(next).unwrap();
        assert!(b.install(rival).is_err());
        let (term, installed) = b.term().unwrap();
        assert_eq!(term, 2);
        assert!(installed.is_some());
        let new = b.seal("k", b"term two").unwrap();
        assert_eq!(&new[..4], &2u32.to_be_bytes());
        assert_eq!(&*b.open("k", &old).unwrap(), b"term one");
        // Stored and read back, both terms still open.
        let again = Barrier::new(Keyring::from_bytes(&b.export_keyring().unwrap()).unwrap());
        assert_eq!(&*again.open("k", &old).unwrap(), b"term one");
        assert_eq!(&*again.open("k", &new).unwrap(), b"term two");
    }

    #[test]
    fn a_keyring_stored_before_install_times_still_opens() {
        let stored = format!(r#"{{"active":1,"keys":{{"1":"{}"}}}}"#, "ab".repeat(32));
        let keyring = Keyring::from_bytes(stored.as_bytes()).unwrap();
        assert_eq!(keyring.term(), (1, None));
    }

    #[test]
    fn round_trip_and_fresh_nonces() {
        let b = barrier();
        let a = b.seal("k", b"secret").unwrap();
        let c = b.seal("k", b"secret").unwrap();
        assert_ne!(a, c, "each seal uses a fresh nonce");
        assert_eq!(&*b.open("k", &a).unwrap(), b"secret");
        assert!(!a.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn moved_or_altered_values_are_refused() {
        let b = barrier();
        let sealed = b.seal("database/config/a", b"{}").unwrap();
        assert!(matches!(
            b.open("database/config/b", &sealed),
            Err(BarrierError::Tampered)
        ));
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            b.open("database/config/a", &bad),
            Err(BarrierError::Tampered)
        ));
        assert!(matches!(
            b.open("database/config/a", &sealed[..10]),
            Err(BarrierError::Malformed)
        ));
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let b = barrier();
        let old = b.seal("k", b"v1").unwrap();
        assert_eq!(b.rotate().unwrap(), 2);
        let new = b.seal("k", b"v2").unwrap();
        assert_eq!(&new[..4], &2u32.to_be_bytes());
        assert_eq!(&*b.open("k", &old).unwrap(), b"v1");
        assert_eq!(&*b.open("k", &new).unwrap(), b"v2");
        let restored = Barrier::new(Keyring::from_bytes(&b.export_keyring().unwrap()).unwrap());
        assert_eq!(&*restored.open("k", &old).unwrap(), b"v1");
    }

    #[test]
    fn a_sealed_barrier_neither_opens_nor_seals() {
        let b = barrier();
        let sealed = b.seal("k", b"v").unwrap();
        assert!(!b.is_sealed());
        b.seal_keys();
        assert!(b.is_sealed());
        assert!(matches!(b.open("k", &sealed), Err(BarrierError::Sealed)));
        assert!(matches!(b.seal("k", b"v"), Err(BarrierError::Sealed)));
        assert!(matches!(b.rotate(), Err(BarrierError::Sealed)));
        assert!(matches!(b.export_keyring(), Err(BarrierError::Sealed)));
    }
}
