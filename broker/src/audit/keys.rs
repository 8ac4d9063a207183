//! The audit chain's two keys, made per broker on first use and sealed in
//! storage beside the salt:
//!
//! - the **chain key** (32 random bytes): every line carries an HMAC-SHA256
//!   under it (`mac`), so the broker itself can tell its own lines from
//!   lines an intruder rewrote and re-hashed. It is not the salt: the salt
//!   answers `sys/audit-hash` for any input, which would let a token holder
//!   compute a valid `mac` for a forged line.
//! - the **checkpoint key** (an Ed25519 seed): checkpoint lines carry a
//!   signature under it, and its public half (`sys/audit-public-key`) lets an
//!   auditor check a set of files without any of the broker's secrets.
//!
//! This module must never hand out either secret: only MACs, signatures and
//! the public key leave it, and `Debug` shows neither key.

use hmac::{Hmac, Mac};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::AuditError;
use crate::barrier::SealedStorage;

const CHAIN_KEY: &str = "core/audit/chain-key";
const CHECKPOINT_KEY: &str = "core/audit/checkpoint-key";

/// What a checkpoint signature covers: this context, then the line's `hash`.
/// The context keeps the signature from being valid for anything else.
const SIGNED_CONTEXT: &[u8] = b"broker audit checkpoint v1\n";

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the
/// 32-byte key follows it. Written, not parsed: the reader uses x509-parser.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The keys the audit chain is made with.
pub struct ChainKeys {
    chain: Zeroizing<Vec<u8>>,
    signer: Ed25519KeyPair,
    public: PublicKey,
}

impl std::fmt::Debug for ChainKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainKeys")
            .field("key_id", &self.public.key_id())
            .finish_non_exhaustive()
    }
}

async fn load_or_make(store: &SealedStorage, key: &str) -> Result<Zeroizing<Vec<u8>>, AuditError> {
    if let Some(hex_key) = store.get::<Zeroizing<String>>(key).await? {
        let bytes = hex::decode(hex_key.as_str())
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| AuditError::Invalid(format!("the audit key {key} is damaged")))?;
        return Ok(Zeroizing::new(bytes));
    }
    let mut bytes = Zeroizing::new(vec![0u8; 32]);
    getrandom::fill(&mut bytes)
        .map_err(|e| AuditError::Invalid(format!("no randomness for an audit key: {e}")))?;
    store
        .put(key, &Zeroizing::new(hex::encode(bytes.as_slice())))
        .await?;
    Ok(bytes)
}

impl ChainKeys {
    /// The broker's keys, created and sealed on first use.
    pub async fn load_or_create(store: &SealedStorage) -> Result<Self, AuditError> {
        let chain = load_or_make(store, CHAIN_KEY).await?;
        let seed = load_or_make(store, CHECKPOINT_KEY).await?;
        Self::from_secrets(chain, &seed)
    }

    /// Keys from their secret bytes (32 each).
    pub fn from_secrets(chain: Zeroizing<Vec<u8>>, seed: &[u8]) -> Result<Self, AuditError> {
        let signer = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|e| {
            AuditError::Invalid(format!("the audit checkpoint key is damaged: {e}"))
        })?;
        let public = PublicKey(signer.public_key().as_ref().to_vec());
        Ok(Self {
            chain,
            signer,
            public,
        })
    }

    /// Fresh random keys, for tests and benchmarks.
    pub fn generate() -> Result<Self, AuditError> {
        let mut chain = Zeroizing::new(vec![0u8; 32]);
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut chain)
            .and_then(|()| getrandom::fill(seed.as_mut()))
            .map_err(|e| AuditError::Invalid(format!("no randomness for an audit key: {e}")))?;
        Self::from_secrets(chain, seed.as_ref())
    }

    /// The HMAC of a line's canonical body under the chain key, in hex.
    pub fn mac(&self, body: &[u8]) -> String {
        // HMAC takes keys of any length; this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.chain) else {
            return String::new();
        };
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `mac` (hex) is the chain key's HMAC of `body`, compared in
    /// constant time.
    pub fn mac_matches(&self, body: &[u8], mac: &str) -> bool {
        let (Ok(given), Ok(mut expected)) = (
            hex::decode(mac),
            Hmac::<Sha256>::new_from_slice(&self.chain),
        ) else {
            return false;
        };
        expected.update(body);
        expected.verify_slice(&given).is_ok()
    }

    /// The checkpoint signature over a line's `hash`, in hex.
    pub fn sign(&self, hash: &str) -> String {
        let mut message = SIGNED_CONTEXT.to_vec();
        message.extend_from_slice(hash.as_bytes());
        hex::encode(self.signer.sign(&message).as_ref())
    }

    /// The checkpoint key's public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }
}

/// An Ed25519 public key that checks checkpoint signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(Vec<u8>);

/// Why a public key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PublicKeyError {
    /// Not PEM, or not a `PUBLIC KEY` block.
    #[error("not a PEM public key (expected a -----BEGIN PUBLIC KEY----- block)")]
    NotPem,
    /// A public key, but not Ed25519.
    #[error("not an Ed25519 public key")]
    NotEd25519,
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), as
    /// `sys/audit-public-key` gives it and `openssl pkey -pubin` reads it.
    pub fn from_pem(text: &str) -> Result<Self, PublicKeyError> {
        let block = pem::parse(text).map_err(|_| PublicKeyError::NotPem)?;
        if block.tag() != "PUBLIC KEY" {
            return Err(PublicKeyError::NotPem);
        }
        use x509_parser::prelude::FromDer;
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(block.contents())
            .map_err(|_| PublicKeyError::NotPem)?;
        if spki.algorithm.algorithm.to_id_string() != "1.3.101.112" {
            return Err(PublicKeyError::NotEd25519);
        }
        let key = spki.subject_public_key.data.to_vec();
        if key.len() != 32 {
            return Err(PublicKeyError::NotEd25519);
        }
        Ok(Self(key))
    }

    /// The PEM `PUBLIC KEY` form.
    pub fn to_pem(&self) -> String {
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.0);
        pem::encode(&pem::Pem::new("PUBLIC KEY", der))
    }

    /// A short name for the key, written in every checkpoint: the first 16
    /// hex digits of the SHA-256 of the raw key.
    pub fn key_id(&self) -> String {
        hex::encode(&Sha256::digest(&self.0)[..8])
    }

    /// Whether `signature` (hex) signs `hash` under this key.
    pub fn verifies(&self, hash: &str, signature: &str) -> bool {
        let Ok(signature) = hex::decode(signature) else {
            return false;
        };
        let mut message = SIGNED_CONTEXT.to_vec();
        message.extend_from_slice(hash.as_bytes());
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&message, &signature)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_under_the_public_key_and_nothing_else() {
        let keys = ChainKeys::generate().unwrap();
        let sig = keys.sign("abc");
        let public = PublicKey::from_pem(&keys.public().to_pem()).unwrap();
        assert_eq!(&public, keys.public());
        assert!(public.verifies("abc", &sig));
        assert!(!public.verifies("abd", &sig));
        let other = ChainKeys::generate().unwrap();
        assert!(!other.public().verifies("abc", &sig));
        assert!(!public.verifies("abc", "zz"));
    }

    #[test]
    fn macs_depend_on_the_key() {
        let a = ChainKeys::generate().unwrap();
        let b = ChainKeys::generate().unwrap();
        let mac = a.mac(b"line");
        assert!(a.mac_matches(b"line", &mac));
        assert!(!a.mac_matches(b"lime", &mac));
        assert!(!b.mac_matches(b"line", &mac));
        assert!(!a.mac_matches(b"line", "not hex"));
    }

    #[test]
    fn other_pem_is_refused() {
        assert!(matches!(
            PublicKey::from_pem("hello"),
            Err(PublicKeyError::NotPem)
        ));
        let cert = pem::encode(&pem::Pem::new("CERTIFICATE", vec![1, 2, 3]));
        assert!(PublicKey::from_pem(&cert).is_err());
    }
}
