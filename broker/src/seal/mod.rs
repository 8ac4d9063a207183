//! Seals: what wraps the broker's root key, so that storage alone never
//! opens.
//!
//! Every provider sits behind one async trait, [`Seal`], modelled on a
//! KMS wrapper: it encrypts and decrypts small blobs with associated data,
//! and each wrapped blob carries the id of the key that wrapped it, so a
//! provider whose key was rotated still opens older blobs. Providers:
//!
//! - `shamir` ([`ShamirSeal`]): the wrapping key is split into shares held
//!   by operators; the broker starts sealed until enough are given.
//! - `local` ([`LocalSeal`]): a key file, for development and one host.
//! - `pkcs11` ([`Pkcs11Seal`]): a non-extractable AES key inside an HSM.
//! - `awskms` ([`AwsKmsSeal`]): a key in AWS KMS (or anything speaking
//!   its API).
//!
//! A provider must never write a key it holds, or what it unwraps,
//! anywhere; and its errors name the provider and the cause, never a key.

pub mod awskms;
mod local;
mod pkcs11;
pub mod shamir;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use awskms::{AwsKmsConfig, AwsKmsSeal};
pub use local::LocalSeal;
pub use pkcs11::{Pkcs11Seal, Pkcs11SealSettings};
pub use shamir::ShamirSeal;

/// Which provider a seal is; also the `type` of `sys/seal-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SealKind {
    /// Key shares held by operators.
    Shamir,
    /// A key file.
    Local,
    /// A key in an HSM, through PKCS#11.
    Pkcs11,
    /// A key in AWS KMS.
    Awskms,
}

impl SealKind {
    /// The name used in configuration and in `sys/seal-status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shamir => "shamir",
            Self::Local => "local",
            Self::Pkcs11 => "pkcs11",
            Self::Awskms => "awskms",
        }
    }

    /// Whether the broker can unseal itself with it at start (every
    /// provider but `shamir`); such seals use recovery keys for `sys/rekey`.
    pub fn auto_unseals(self) -> bool {
        self != Self::Shamir
    }
}

impl std::fmt::Display for SealKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a seal could not wrap or unwrap. Each names the provider; none
/// carries key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The provider cannot be used at all: a missing key file or HSM
    /// library, a wrong PIN, an unreachable KMS.
    #[error("{provider} seal unavailable: {cause}")]
    Unavailable {
        /// Which provider.
        provider: SealKind,
        /// Why, in words an operator can act on.
        cause: String,
    },
    /// The provider answered, with an error (a KMS refusing, an HSM
    /// failing an operation).
    #[error("{provider} seal refused: {cause}")]
    Refused {
        /// Which provider.
        provider: SealKind,
        /// What it said.
        cause: String,
    },
    /// The blob does not open with this provider's key: the wrong key (or
    /// key shares), or the blob was altered.
    #[error(
        "{provider} seal: the stored root key does not open with this key (wrong key, or altered)"
    )]
    Unwrap {
        /// Which provider.
        provider: SealKind,
    },
    /// The blob was wrapped by another provider, or names a key this one
    /// does not have.
    #[error("{provider} seal: the stored root key was wrapped by {found}, not this seal")]
    Mismatch {
        /// Which provider.
        provider: SealKind,
        /// What the blob says wrapped it.
        found: String,
    },
}

/// A blob a seal wrapped: which provider and key wrapped it, and the
/// ciphertext (whatever the provider needs to open it again, such as a
/// nonce, is inside).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedBlob {
    /// The provider that wrapped it.
    pub provider: SealKind,
    /// The provider's key id: a key label, a KMS key ARN, a key file's
    /// fingerprint. Lets a rotated provider key still open old blobs.
    pub key_id: String,
    /// Provider-defined ciphertext, base64 in JSON.
    #[serde(with = "b64")]
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for WrappedBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrappedBlob")
            .field("provider", &self.provider)
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Wraps and unwraps the root key. Implementations are cheap to share
/// (`Arc<dyn Seal>`) and safe to call from several tasks at once.
#[async_trait::async_trait]
pub trait Seal: Send + Sync + std::fmt::Debug {
    /// Which provider this is.
    fn kind(&self) -> SealKind;

    /// Encrypts `plaintext`, bound to `aad` (the same `aad` must be given
    /// to open it).
    async fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<WrappedBlob, SealError>;

    /// Decrypts what [`Seal::encrypt`] produced, with any key id this
    /// provider still holds.
    async fn decrypt(
        &self,
        blob: &WrappedBlob,
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError>;

    /// The `local` seal, if this is one: only it can open a keyring stored
    /// before the root key existed (see `core/keys.rs`).
    fn as_local(&self) -> Option<&LocalSeal> {
        None
    }
}

/// AES-256-GCM with a random nonce prepended: the envelope the software
/// providers (`local`, `shamir`) and the root key use.
pub(crate) mod aead {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use aes_gcm::{Aes256Gcm, Nonce};
    use zeroize::Zeroizing;

    /// Nonce then ciphertext and tag.
    pub fn seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, String> {
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| "bad key length".to_string())?;
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| format!("no randomness: {e}"))?;
        let mut out = nonce.to_vec();
        out.extend(
            cipher
                .encrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: plaintext,
                        aad,
                    },
                )
                .map_err(|_| "encryption failed".to_string())?,
        );
        Ok(out)
    }

    /// What [`seal`] made, or `None` if it does not open with `key`.
    pub fn open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < 12 + 16 {
            return None;
        }
        let cipher = Aes256Gcm::new_from_slice(key).ok()?;
        let (nonce, ciphertext) = sealed.split_at(12);
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }

    /// A short, public id for a key: the first 8 bytes of SHA-256 over a
    /// fixed label and the key, hex. Tells keys apart without revealing them.
    pub fn fingerprint(key: &[u8; 32]) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::new()
            .chain_update(b"broker seal key id")
            .chain_update(key)
            .finalize();
        hex::encode(&digest[..8])
    }
}
