//! The `signer` capability: certificates signed by the mount's CA, whose
//! key stays in the broker. Declare [`crate::Capability::Signer`] to use it.
//!
//! A certificate plugin generates (or receives, from a CSR) the leaf's
//! public key, builds the TBSCertificate itself (e.g. with `rcgen` and a
//! signing key that calls [`sign_tbs`]), and returns the certificate. The
//! host refuses to sign a CA certificate, another issuer's name, or a
//! lifetime past the CA's.

use crate::Error;
use crate::export::bindings::broker::plugin::signer as wit;

pub use wit::{CsrInfo, IssuerInfo, KeyPair, KeyType, NameAttribute};

fn error(e: wit::SignerError) -> Error {
    match e {
        wit::SignerError::Denied(m) => Error::config(m),
        wit::SignerError::Invalid(m) => Error::request(m),
    }
}

/// A new leaf key pair, made by the host. Its private key is the
/// requester's: return it, never log it.
pub fn generate_key(key_type: KeyType) -> crate::Result<KeyPair> {
    wit::generate_key(key_type).map_err(error)
}

/// The CA the mount issues from.
pub fn issuer() -> crate::Result<IssuerInfo> {
    wit::issuer().map_err(error)
}

/// The CA's signature over a DER TBSCertificate.
pub fn sign_tbs(tbs_certificate: &[u8]) -> crate::Result<Vec<u8>> {
    wit::sign_tbs_certificate(tbs_certificate).map_err(error)
}

/// A CSR's key and requested names; the host checked its signature.
pub fn parse_csr(pem: &str) -> crate::Result<CsrInfo> {
    wit::parse_csr(pem).map_err(error)
}

/// Puts a certificate's serial (hex, `:` allowed) on the mount's CRL.
pub fn revoke_certificate(serial: &str) -> crate::Result<()> {
    wit::revoke_certificate(serial).map_err(error)
}
