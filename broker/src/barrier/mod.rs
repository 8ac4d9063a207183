//! The barrier: every value is sealed with AES-256-GCM before it reaches
//! storage, and opened after it leaves.
//!
//! The associated data is the storage key, so a ciphertext moved to another
//! row does not open. Keys come from a versioned [`Keyring`]: rotation adds a
//! term, old ciphertexts stay readable, and the core's rewrap
//! (`core/rewrap.rs`) moves them to the new term in the background. The
//! barrier must never return key bytes to a caller, nor hand plaintext to
//! storage.
//!
//! A sealed value says how it was sealed (docs/architecture.md, "Sealed values and the rewrap"):
//!
//! ```text
//! [FORMAT = 2][term: u32 BE][nonce: 12][ciphertext and tag]   sealed now
//! [term: u32 BE][nonce: 12][ciphertext and tag]               legacy
//! ```
//!
//! The format byte and the term are authenticated with the value (they lead
//! its associated data). A legacy value starts with a zero byte, since no
//! keyring reaches term 2^24; it still opens, and the rewrap seals it again
//! in the current format.
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
    /// The ciphertext is too short for its header, nonce and tag.
    #[error("sealed value is malformed")]
    Malformed,
    /// The first byte names a layout this broker does not know.
    #[error(
        "sealed value has format {0}, which this broker does not know (written by a newer broker?)"
    )]
    UnknownFormat(u8),
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

/// The first byte of every value sealed now (see the module docs).
pub const FORMAT: u8 = 2;

/// Nonce and tag lengths (AES-256-GCM).
const NONCE: usize = 12;
const TAG: usize = 16;

/// How a stored value was sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Sealed before the format byte: `[term][nonce][ciphertext]`, the
    /// storage key alone as associated data.
    Legacy,
    /// `[FORMAT][term][nonce][ciphertext]`, header and storage key as
    /// associated data.
    Current,
}

/// What a sealed value's header says, read without opening it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Its layout.
    pub format: Format,
    /// The key term that sealed it.
    pub term: u32,
}

impl Header {
    /// Reads the header of `sealed`; refuses a value too short to hold its
    /// header, nonce and tag, and a format it does not know.
    pub fn parse(sealed: &[u8]) -> Result<Self, BarrierError> {
        Parts::split(sealed).map(|parts| parts.header)
    }
}

/// A sealed value taken apart.
struct Parts<'a> {
    header: Header,
    /// The header's bytes when they lead the associated data (the current
    /// format); empty for a legacy value.
    header_aad: &'a [u8],
    nonce: &'a [u8],
    /// The ciphertext and its tag.
    ciphertext: &'a [u8],
}

impl<'a> Parts<'a> {
    fn split(sealed: &'a [u8]) -> Result<Self, BarrierError> {
        let (format, header_len) = match sealed.first() {
            Some(&FORMAT) => (Format::Current, 5),
            Some(0) => (Format::Legacy, 4),
            Some(&other) => return Err(BarrierError::UnknownFormat(other)),
            None => return Err(BarrierError::Malformed),
        };
        if sealed.len() < header_len + NONCE + TAG {
            return Err(BarrierError::Malformed);
        }
        let (header, rest) = sealed.split_at(header_len);
        let term_bytes: [u8; 4] = header[header_len - 4..]
            .try_into()
            .map_err(|_| BarrierError::Malformed)?;
        let (nonce, ciphertext) = rest.split_at(NONCE);
        let header_aad: &[u8] = match format {
            Format::Current => header,
            Format::Legacy => &[],
        };
        Ok(Self {
            header: Header {
                format,
                term: u32::from_be_bytes(term_bytes),
            },
            header_aad,
            nonce,
            ciphertext,
        })
    }
}

/// The associated data of a value: its header (current format) and then
/// its storage key. The header has a fixed length, so the two cannot be
/// confused for another split.
fn associated_data(header: &[u8], storage_key: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + storage_key.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(storage_key.as_bytes());
    aad
}

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

    /// Seals `plaintext` for storage under `storage_key`, with the active
    /// term, in the current format.
    pub fn seal(&self, storage_key: &str, plaintext: &[u8]) -> Result<Vec<u8>, BarrierError> {
        let keyring = self.keyring.read().map_err(|_| BarrierError::Poisoned)?;
        let (term, key) = keyring.as_ref().ok_or(BarrierError::Sealed)?.active();
        let mut out = Vec::with_capacity(5 + NONCE + plaintext.len() + TAG);
        out.push(FORMAT);
        out.extend_from_slice(&term.to_be_bytes());
        let aad = associated_data(&out, storage_key);
        let mut nonce = [0u8; NONCE];
        getrandom::fill(&mut nonce).map_err(|e| BarrierError::Random(e.to_string()))?;
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| BarrierError::Malformed)?;
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| BarrierError::Malformed)?;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Opens a value read from `storage_key`, in either format.
    pub fn open(
        &self,
        storage_key: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, BarrierError> {
        let Parts {
            header,
            header_aad,
            nonce,
            ciphertext,
        } = Parts::split(sealed)?;
        let keyring = self.keyring.read().map_err(|_| BarrierError::Poisoned)?;
        let key = keyring
            .as_ref()
            .ok_or(BarrierError::Sealed)?
            .get(header.term)
            .ok_or(BarrierError::UnknownKey(header.term))?;
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| BarrierError::Malformed)?;
        let aad = associated_data(header_aad, storage_key);
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| BarrierError::Tampered)
    }

    /// `sealed` (read from `storage_key`) sealed again with the active term
    /// in the current format, when it is legacy or its term is older than
    /// `target`; `None` when it is already there. The plaintext stays in
    /// zeroizing memory.
    pub fn reseal(
        &self,
        storage_key: &str,
        sealed: &[u8],
        target: u32,
    ) -> Result<Option<Vec<u8>>, BarrierError> {
        let header = Header::parse(sealed)?;
        if header.format == Format::Current && header.term >= target {
            return Ok(None);
        }
        let plain = self.open(storage_key, sealed)?;
        self.seal(storage_key, &plain).map(Some)
    }

    /// [`Self::reseal`] to the active term: what a writer that puts back a
    /// value it read earlier uses, so a value the rewrap has moved is not
    /// put back under an older term.
    pub fn refresh(
        &self,
        storage_key: &str,
        sealed: &[u8],
    ) -> Result<Option<Vec<u8>>, BarrierError> {
        let (active, _) = self.term()?;
        self.reseal(storage_key, sealed, active)
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

    /// Puts `stored` (the keyring as stored, after another node rotated it)
    /// in use if it holds every term in use, with the same keys, and is at
    /// least as new; whether it moved to a newer term. A keyring that would
    /// drop or change a term is refused.
    pub fn adopt(&self, stored: Keyring) -> Result<bool, BarrierError> {
        let mut keyring = self.keyring.write().map_err(|_| BarrierError::Poisoned)?;
        let current = keyring.as_ref().ok_or(BarrierError::Sealed)?;
        let (now, next) = (current.term().0, stored.term().0);
        if next < now || (1..=now).any(|t| current.get(t) != stored.get(t)) {
            return Err(BarrierError::Malformed);
        }
        if next == now {
            return Ok(false);
        }
        *keyring = Some(stored);
        Ok(true)
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

/// A value sealed as brokers did before the format byte, for tests of
/// what they left in storage.
#[cfg(test)]
pub(crate) fn seal_legacy(barrier: &Barrier, storage_key: &str, plaintext: &[u8]) -> Vec<u8> {
    let keyring = barrier.keyring.read().unwrap();
    let (term, key) = keyring.as_ref().unwrap().active();
    let nonce = [7u8; NONCE];
    let ciphertext = Aes256Gcm::new_from_slice(key)
        .unwrap()
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: storage_key.as_bytes(),
            },
        )
        .unwrap();
    let mut out = term.to_be_bytes().to_vec();
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn barrier() -> Barrier {
        Barrier::new(Keyring::generate().unwrap())
    }

    #[test]
    fn a_value_carries_the_format_byte_and_its_term() {
        let b = barrier();
        let sealed = b.seal("k", b"v").unwrap();
        assert_eq!(&sealed[..5], &[FORMAT, 0, 0, 0, 1]);
        assert_eq!(sealed.len(), 5 + NONCE + 1 + TAG);
        // The header is authenticated: another term or format byte with the
        // same ciphertext does not open.
        let mut other_term = sealed.clone();
        other_term[4] = 2;
        b.rotate().unwrap();
        assert!(matches!(
            b.open("k", &other_term),
            Err(BarrierError::Tampered)
        ));
        let mut unknown = sealed.clone();
        unknown[0] = 3;
        assert!(matches!(
            b.open("k", &unknown),
            Err(BarrierError::UnknownFormat(3))
        ));
        let mut as_legacy = sealed;
        as_legacy[0] = 0;
        assert!(b.open("k", &as_legacy).is_err());
    }

    #[test]
    fn legacy_values_open_and_are_resealed_in_the_current_format() {
        let b = barrier();
        let legacy = seal_legacy(&b, "k", b"old layout");
        assert_eq!(
            Header::parse(&legacy).unwrap(),
            Header {
                format: Format::Legacy,
                term: 1
            }
        );
        assert_eq!(&*b.open("k", &legacy).unwrap(), b"old layout");
        assert!(matches!(
            b.open("other", &legacy),
            Err(BarrierError::Tampered)
        ));
        // Legacy at the active term still needs resealing: its format is old.
        let resealed = b.reseal("k", &legacy, 1).unwrap().unwrap();
        assert_eq!(Header::parse(&resealed).unwrap().format, Format::Current);
        assert_eq!(&*b.open("k", &resealed).unwrap(), b"old layout");
        assert_eq!(b.reseal("k", &resealed, 1).unwrap(), None);

        // After a rotation: behind the target, so moved to the new term.
        b.rotate().unwrap();
        assert_eq!(
            b.refresh("k", &resealed.clone())
                .unwrap()
                .map(|v| Header::parse(&v).unwrap().term),
            Some(2)
        );
        assert_eq!(
            b.reseal("k", &resealed, 1).unwrap(),
            None,
            "not behind term 1"
        );
        // A value that does not open is an error, never resealed blindly.
        let mut bad = resealed;
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(b.refresh("k", &bad), Err(BarrierError::Tampered)));
    }

    proptest! {
        /// Whatever storage hands back, opening it and reading its header
        /// return an error or a value; never a panic.
        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96), key in ".{0,16}") {
            let b = barrier();
            let _ = Header::parse(&bytes);
            let _ = b.open(&key, &bytes);
            let _ = b.reseal(&key, &bytes, 1);
        }

        /// Hostile bytes behind a well-formed header (either format, any
        /// term) are refused, never opened.
        #[test]
        fn forged_values_are_refused(
            legacy in any::<bool>(),
            term in 0u32..4,
            body in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let b = barrier();
            let mut bytes = if legacy { Vec::new() } else { vec![FORMAT] };
            bytes.extend_from_slice(&term.to_be_bytes());
            bytes.extend_from_slice(&body);
            prop_assert!(b.open("k", &bytes).is_err());
        }

        /// Every strict prefix of a sealed value, in either format, is
        /// refused; so is every single-bit change.
        #[test]
        fn truncated_or_flipped_values_are_refused(
            plain in proptest::collection::vec(any::<u8>(), 0..48),
            legacy in any::<bool>(),
            bit in any::<proptest::sample::Index>(),
        ) {
            let b = barrier();
            let sealed = if legacy { seal_legacy(&b, "k", &plain) } else { b.seal("k", &plain).unwrap() };
            prop_assert_eq!(&*b.open("k", &sealed).unwrap(), &plain[..]);
            for cut in 0..sealed.len() {
                prop_assert!(b.open("k", &sealed[..cut]).is_err(), "a prefix of {} bytes opened", cut);
            }
            let mut flipped = sealed.clone();
            let i = bit.index(flipped.len() * 8);
            flipped[i / 8] ^= 1 << (i % 8);
            prop_assert!(b.open("k", &flipped).is_err());
        }
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
        assert_eq!(&new[..5], &[FORMAT, 0, 0, 0, 2]);
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
        assert_eq!(
            Header::parse(&new).unwrap(),
            Header {
                format: Format::Current,
                term: 2
            }
        );
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
