//! The `signer` capability's host side, as the rest of the broker sees it:
//! a mount's CA implements [`CaSigner`]; a call that may sign carries one in
//! its [`super::CallContext`]. The CA's key stays behind this trait: a
//! plugin gets signatures over certificates the CA agreed to sign, never
//! the key.

use zeroize::Zeroizing;

/// Key types a CA or a leaf may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    /// ECDSA over P-256.
    EcP256,
    /// ECDSA over P-384.
    EcP384,
    /// RSA, 2048 bits.
    Rsa2048,
    /// RSA, 3072 bits.
    Rsa3072,
    /// RSA, 4096 bits.
    Rsa4096,
    /// Ed25519.
    Ed25519,
}

/// A leaf key pair made by the host.
pub struct GeneratedKey {
    /// Its type.
    pub key_type: KeyType,
    /// PKCS#8 PEM: it goes to the requester, never into storage.
    pub private_key_pem: Zeroizing<String>,
    /// The subjectPublicKey bits.
    pub public_key_raw: Vec<u8>,
    /// Its key identifier.
    pub key_id: Vec<u8>,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("key_type", &self.key_type)
            .finish_non_exhaustive()
    }
}

/// The CA a mount issues from, as a plugin may see it.
#[derive(Debug, Clone)]
pub struct IssuerInfo {
    /// The CA certificate, DER.
    pub certificate_der: Vec<u8>,
    /// Its subject: (dotted OID, value), in order.
    pub subject: Vec<(String, String)>,
    /// Its SubjectKeyIdentifier.
    pub key_id: Vec<u8>,
    /// Its key type.
    pub key_type: KeyType,
    /// Its expiry, Unix seconds.
    pub not_after: u64,
}

/// A CSR whose signature was checked.
#[derive(Debug, Clone)]
pub struct CsrInfo {
    /// The requested key's type.
    pub key_type: KeyType,
    /// The subjectPublicKey bits.
    pub public_key_raw: Vec<u8>,
    /// Its key identifier.
    pub key_id: Vec<u8>,
    /// The subject's CN.
    pub common_name: Option<String>,
    /// Requested DNS names.
    pub dns_names: Vec<String>,
    /// Requested IP addresses, as text.
    pub ip_addresses: Vec<String>,
    /// Requested URIs.
    pub uris: Vec<String>,
}

/// Why the signer refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SignerError {
    /// No CA, or not allowed.
    #[error("{0}")]
    Denied(String),
    /// The input was refused.
    #[error("{0}")]
    Invalid(String),
}

/// A mount's CA, used on a plugin's behalf.
#[async_trait::async_trait]
pub trait CaSigner: Send + Sync {
    /// A new leaf key pair.
    async fn generate_key(&self, key_type: KeyType) -> Result<GeneratedKey, SignerError>;
    /// The CA.
    fn issuer(&self) -> Result<IssuerInfo, SignerError>;
    /// Checks a TBSCertificate (not a CA, this issuer, within the CA's
    /// lifetime, a serial the CA never issued) and signs it.
    async fn sign_tbs(&self, tbs: &[u8]) -> Result<Vec<u8>, SignerError>;
    /// Parses a PEM CSR, checking its signature.
    fn parse_csr(&self, pem: &str) -> Result<CsrInfo, SignerError>;
    /// Puts a serial (hex) on the CRL.
    async fn revoke(&self, serial: &str) -> Result<(), SignerError>;
}
