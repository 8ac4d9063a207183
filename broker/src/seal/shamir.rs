//! The `shamir` seal: the key that wraps the root key is split into shares
//! (Shamir's scheme over GF(256)) handed to operators at `sys/init`, and
//! never stored. The broker starts sealed; `sys/unseal` collects shares
//! until the threshold is met, rebuilds the key, and opens the root key.
//!
//! The same splitting gives auto-unseal providers their recovery keys.
//! Nothing here keeps a share or the rebuilt key past its use but the
//! seal itself, which zeroizes its key on drop.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use super::{Seal, SealError, SealKind, WrappedBlob, aead};

/// The most shares a key can be split into (GF(256) has 255 non-zero x).
pub const MAX_SHARES: u8 = 255;

/// Why shares could not be made or combined.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShareError {
    /// The share count and threshold do not make a valid split.
    #[error("{0}")]
    Config(String),
    /// A share is not one of ours (bad encoding or length).
    #[error("a key share is malformed: give it exactly as `init` printed it (hex or base64)")]
    Malformed,
    /// The same share was given twice.
    #[error("this key share was already given")]
    Duplicate,
    /// The shares do not rebuild a key.
    #[error("the key shares do not combine")]
    Combine,
    /// The shares rebuild a key, but not this broker's.
    #[error(
        "the key shares do not open this broker's keys (shares of another broker, or from before a rekey?); give the shares again"
    )]
    Wrong,
}

/// Checks a split as Vault does: 1 to 255 shares, a threshold between 1
/// and the share count, and above 1 when there are several shares.
pub fn check_split(shares: u32, threshold: u32) -> Result<(u8, u8), ShareError> {
    let fail = |m: &str| Err(ShareError::Config(m.to_owned()));
    if shares == 0 || shares > u32::from(MAX_SHARES) {
        return fail("secret_shares must be between 1 and 255");
    }
    if threshold == 0 || threshold > shares {
        return fail("secret_threshold must be between 1 and secret_shares");
    }
    if shares > 1 && threshold == 1 {
        return fail("secret_threshold must be at least 2 when there are several shares");
    }
    Ok((shares as u8, threshold as u8))
}

/// A fresh random 256-bit key.
pub fn random_key() -> Result<Zeroizing<[u8; 32]>, String> {
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::fill(key.as_mut()).map_err(|e| format!("no randomness: {e}"))?;
    Ok(key)
}

/// Splits `key` into `shares` shares, any `threshold` of which rebuild it.
/// With one share, the share is the key (as in Vault).
pub fn split(
    key: &[u8; 32],
    shares: u32,
    threshold: u32,
) -> Result<Vec<Zeroizing<Vec<u8>>>, ShareError> {
    let (shares, threshold) = check_split(shares, threshold)?;
    if shares == 1 {
        return Ok(vec![Zeroizing::new(key.to_vec())]);
    }
    let dealer = sharks::Sharks(threshold).dealer(key);
    Ok(dealer
        .take(usize::from(shares))
        .map(|share| Zeroizing::new(Vec::from(&share)))
        .collect())
}

/// A share as text, as operators are given it: hex, as Vault's `keys`.
pub fn to_hex(share: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(hex::encode(share))
}

/// A share as base64, as Vault's `keys_base64`.
pub fn to_base64(share: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(STANDARD.encode(share))
}

/// A share as an operator gives it back: hex or base64, surrounding
/// blanks ignored. Only lengths a share can have are taken (33 bytes, or
/// 32 for a single-share key).
pub fn parse_share(text: &str) -> Result<Zeroizing<Vec<u8>>, ShareError> {
    let text = text.trim();
    let bytes = if text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok()
    } else {
        STANDARD.decode(text).ok()
    }
    .map(Zeroizing::new)
    .ok_or(ShareError::Malformed)?;
    if bytes.len() != 32 && bytes.len() != 33 {
        return Err(ShareError::Malformed);
    }
    Ok(bytes)
}

/// Rebuilds a key from `threshold` (or more) distinct shares.
pub fn combine(
    shares: &[Zeroizing<Vec<u8>>],
    threshold: u8,
) -> Result<Zeroizing<[u8; 32]>, ShareError> {
    let mut key = Zeroizing::new([0u8; 32]);
    if threshold == 1 {
        let share = shares.first().ok_or(ShareError::Combine)?;
        if share.len() != 32 {
            return Err(ShareError::Combine);
        }
        key.copy_from_slice(share);
        return Ok(key);
    }
    let parsed = shares
        .iter()
        .map(|s| {
            if s.len() != 33 {
                return Err(ShareError::Malformed);
            }
            sharks::Share::try_from(s.as_slice()).map_err(|_| ShareError::Malformed)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let secret = Zeroizing::new(
        sharks::Sharks(threshold)
            .recover(parsed.as_slice())
            .map_err(|_| ShareError::Combine)?,
    );
    if secret.len() != 32 {
        return Err(ShareError::Combine);
    }
    key.copy_from_slice(&secret);
    Ok(key)
}

/// The `shamir` seal, once its key has been rebuilt from shares (or made
/// at `sys/init`).
pub struct ShamirSeal {
    key: Zeroizing<[u8; 32]>,
    key_id: String,
}

impl std::fmt::Debug for ShamirSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShamirSeal")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl ShamirSeal {
    /// The seal over a rebuilt (or new) unseal key.
    pub fn new(key: Zeroizing<[u8; 32]>) -> Self {
        Self {
            key_id: aead::fingerprint(&key),
            key,
        }
    }
}

#[async_trait::async_trait]
impl Seal for ShamirSeal {
    fn kind(&self) -> SealKind {
        SealKind::Shamir
    }

    async fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<WrappedBlob, SealError> {
        Ok(WrappedBlob {
            provider: SealKind::Shamir,
            key_id: self.key_id.clone(),
            ciphertext: aead::seal(&self.key, plaintext, aad).map_err(|cause| {
                SealError::Unavailable {
                    provider: SealKind::Shamir,
                    cause,
                }
            })?,
        })
    }

    async fn decrypt(
        &self,
        blob: &WrappedBlob,
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if blob.provider != SealKind::Shamir {
            return Err(SealError::Mismatch {
                provider: SealKind::Shamir,
                found: blob.provider.to_string(),
            });
        }
        aead::open(&self.key, &blob.ciphertext, aad).ok_or(SealError::Unwrap {
            provider: SealKind::Shamir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn any_threshold_of_shares_rebuilds_the_key_and_fewer_do_not() {
        let key = random_key().unwrap();
        let shares = split(&key, 5, 3).unwrap();
        assert_eq!(shares.len(), 5);
        for pick in [[0, 1, 2], [4, 2, 0], [1, 3, 4]] {
            let chosen: Vec<_> = pick.iter().map(|&i| shares[i].clone()).collect();
            assert_eq!(*combine(&chosen, 3).unwrap(), *key);
        }
        let two = vec![shares[0].clone(), shares[1].clone()];
        assert!(combine(&two, 3).map(|k| *k != *key).unwrap_or(true));
        let single = split(&key, 1, 1).unwrap();
        assert_eq!(*combine(&single, 1).unwrap(), *key);
    }

    #[test]
    fn splits_are_checked_as_vault_checks_them() {
        assert!(check_split(0, 0).is_err());
        assert!(check_split(3, 4).is_err());
        assert!(check_split(3, 1).is_err());
        assert!(check_split(256, 2).is_err());
        assert_eq!(check_split(1, 1), Ok((1, 1)));
        assert_eq!(check_split(5, 3), Ok((5, 3)));
    }

    #[test]
    fn shares_parse_from_hex_and_base64_only() {
        let key = random_key().unwrap();
        let share = split(&key, 3, 2).unwrap().remove(0);
        assert_eq!(*parse_share(&to_hex(&share)).unwrap(), *share);
        assert_eq!(
            *parse_share(&format!(" {} ", &*to_base64(&share))).unwrap(),
            *share
        );
        for bad in ["", "zz", "abcd", "not base64 at all!", &"ab".repeat(40)] {
            assert_eq!(
                parse_share(bad).unwrap_err(),
                ShareError::Malformed,
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_seal_opens_only_with_its_own_key() {
        let key = random_key().unwrap();
        let seal = ShamirSeal::new(key.clone());
        let blob = seal.encrypt(b"root", b"aad").await.unwrap();
        assert_eq!(
            &*ShamirSeal::new(key).decrypt(&blob, b"aad").await.unwrap(),
            b"root"
        );
        let other = ShamirSeal::new(random_key().unwrap());
        assert!(matches!(
            other.decrypt(&blob, b"aad").await,
            Err(SealError::Unwrap { .. })
        ));
        assert!(!format!("{seal:?}").contains(&hex::encode(*seal.key)));
    }

    proptest! {
        #[test]
        fn parsing_any_text_never_panics(text in ".{0,100}") {
            let _ = parse_share(&text);
        }

        #[test]
        fn combining_any_bytes_never_panics(
            shares in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..6),
            threshold in 1u8..6,
        ) {
            let shares: Vec<_> = shares.into_iter().map(Zeroizing::new).collect();
            let _ = combine(&shares, threshold);
        }

        #[test]
        fn every_valid_split_round_trips(shares in 2u32..12, extra in 0u32..10) {
            let threshold = 2 + extra % (shares - 1);
            let key = random_key().unwrap();
            let made = split(&key, shares, threshold).unwrap();
            let picked: Vec<_> = made.iter().rev().take(threshold as usize).cloned().collect();
            prop_assert_eq!(*combine(&picked, threshold as u8).unwrap(), *key);
        }
    }
}
