//! Key management: wraps the barrier's keyring under a key the broker does
//! not store beside its data.
//!
//! Providers sit behind one trait: `local` (a key file, the development
//! default) today; PKCS#11 and AWS KMS plug in the same way. A provider
//! must never write the unwrapped keyring anywhere.

mod local;

use zeroize::Zeroizing;

pub use local::LocalKms;

/// Why wrapping or unwrapping failed.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    /// The key file (or device) cannot be used.
    #[error("KMS key unavailable: {0}")]
    Key(String),
    /// The wrapped keyring does not open with this key.
    #[error("the keyring does not unwrap with this KMS key (wrong key, or altered)")]
    Unwrap,
}

/// Wraps and unwraps the keyring.
pub trait Kms: Send + Sync + std::fmt::Debug {
    /// Encrypts `plaintext` under the KMS key.
    fn wrap(&self, plaintext: &[u8]) -> Result<Vec<u8>, KmsError>;
    /// Decrypts what [`Kms::wrap`] produced.
    fn unwrap(&self, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, KmsError>;
}
