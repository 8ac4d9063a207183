//! The PKI host side: CA keys, issuing certificates the sandboxed `pki`
//! plugin builds, and revocation lists.
//!
//! A mount's CA key is sealed in storage and used only here. The plugin
//! builds a leaf certificate and asks, through the `signer` capability,
//! for a signature over its TBSCertificate; [`ca::Ca::check_tbs`] refuses
//! anything a leaf must not be (a CA, another issuer's name, a lifetime
//! past the CA's) before signing. A CA key may instead live in an HSM
//! ([`managed`]), where it signs and which it never leaves. This module
//! must never hand out a CA key or sign a CA certificate on a plugin's
//! behalf.

pub mod ca;
pub mod crl;
pub mod keys;
pub mod managed;
pub mod signer;

pub use ca::{Ca, CaBundle};
pub use signer::MountCa;

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The request was wrong (a bad PEM, a CSR whose signature fails, …).
    #[error("{0}")]
    Invalid(String),
    /// The mount has no CA yet.
    #[error(
        "this mount has no CA: generate one (root/generate/internal) or import one (config/ca)"
    )]
    NoCa,
    /// Cryptography failed where it should not.
    #[error("certificate operation failed: {0}")]
    Crypto(String),
    /// Sealed storage failed.
    #[error(transparent)]
    Sealed(#[from] crate::barrier::SealedError),
    /// The HSM holding the CA key failed or is out of reach.
    #[error("the CA key's HSM: {0}")]
    Hsm(String),
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        Self::Crypto(e.to_string())
    }
}

/// 9999-12-31T23:59:59Z: X.509 time cannot go past it.
pub const MAX_NOT_AFTER: u64 = 253_402_300_799;

pub(crate) fn datetime(unix: u64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(unix).unwrap_or(i64::MAX))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// A random positive 20-byte serial, as hex.
pub(crate) fn random_serial() -> Result<Vec<u8>, PkiError> {
    let mut serial = [0u8; 20];
    getrandom::fill(&mut serial).map_err(|e| PkiError::Crypto(format!("no randomness: {e}")))?;
    serial[0] &= 0x7f;
    serial[0] |= 0x01; // positive, and exactly 20 bytes
    Ok(serial.to_vec())
}

/// DER as PEM with `tag` (`CERTIFICATE`, `X509 CRL`), LF line endings.
pub fn pem_encode(tag: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Serials as Vault writes them: lowercase hex pairs joined by ':'.
pub fn serial_text(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A serial from `aa:bb:…` or `aabb…`.
pub fn parse_serial(text: &str) -> Result<Vec<u8>, PkiError> {
    let hex_digits: String = text.chars().filter(|c| *c != ':' && *c != '-').collect();
    let bytes = hex::decode(&hex_digits)
        .map_err(|_| PkiError::Invalid(format!("invalid serial number {text:?}")))?;
    if bytes.is_empty() || bytes.len() > 20 {
        return Err(PkiError::Invalid(format!("invalid serial number {text:?}")));
    }
    Ok(bytes)
}
