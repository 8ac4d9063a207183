//! Key pairs for CAs and leaves, by [`KeyType`].

use rcgen::{KeyPair, PublicKeyData, SignatureAlgorithm};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::PkiError;
use crate::plugin::{GeneratedKey, KeyType};

/// The signature algorithm a key of `key_type` signs with.
pub fn algorithm(key_type: KeyType) -> &'static SignatureAlgorithm {
    match key_type {
        KeyType::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyType::Ed25519 => &rcgen::PKCS_ED25519,
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
    }
}

/// The key type of an algorithm rcgen reports (for imported keys and CSRs).
pub fn key_type_of(alg: &SignatureAlgorithm, public_key_raw: &[u8]) -> Result<KeyType, PkiError> {
    Ok(
        if alg == &rcgen::PKCS_ECDSA_P256_SHA256 || alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
            // The curve is the key's, not the signature's hash: the
            // uncompressed point's length tells it.
            match public_key_raw.len() {
                65 => KeyType::EcP256,
                97 => KeyType::EcP384,
                _ => {
                    return Err(PkiError::Invalid(
                        "unsupported EC key: use P-256 or P-384".into(),
                    ));
                }
            }
        } else if alg == &rcgen::PKCS_ED25519 {
            KeyType::Ed25519
        } else if alg == &rcgen::PKCS_RSA_SHA256
            || alg == &rcgen::PKCS_RSA_SHA384
            || alg == &rcgen::PKCS_RSA_SHA512
        {
            // PKCS#1 RSAPublicKey: the modulus length gives the size.
            match public_key_raw.len() {
                0..=300 => KeyType::Rsa2048,
                301..=430 => KeyType::Rsa3072,
                _ => KeyType::Rsa4096,
            }
        } else {
            return Err(PkiError::Invalid(
                "unsupported key algorithm: use EC P-256/P-384, Ed25519 or RSA".into(),
            ));
        },
    )
}

/// The key type named by Vault's `key_type` and `key_bits`.
pub fn from_vault(key_type: &str, key_bits: u64) -> Result<KeyType, PkiError> {
    Ok(match (key_type, key_bits) {
        ("ec", 0 | 256) => KeyType::EcP256,
        ("ec", 384) => KeyType::EcP384,
        ("rsa", 0 | 2048) => KeyType::Rsa2048,
        ("rsa", 3072) => KeyType::Rsa3072,
        ("rsa", 4096) => KeyType::Rsa4096,
        ("ed25519", _) => KeyType::Ed25519,
        _ => {
            return Err(PkiError::Invalid(format!(
                "unsupported key_type {key_type:?} with key_bits {key_bits}: use ec (256, 384), rsa (2048, 3072, 4096) or ed25519"
            )));
        }
    })
}

/// RFC 7093 method 1: SHA-256 of the SubjectPublicKeyInfo, first 160 bits.
pub fn key_id(key: &impl PublicKeyData) -> Vec<u8> {
    Sha256::digest(key.subject_public_key_info())[..20].to_vec()
}

/// A fresh key pair.
pub fn generate(key_type: KeyType) -> Result<KeyPair, PkiError> {
    let bits = match key_type {
        KeyType::Rsa2048 => 2048,
        KeyType::Rsa3072 => 3072,
        KeyType::Rsa4096 => 4096,
        other => return Ok(KeyPair::generate_for(algorithm(other))?),
    };
    // ring signs with RSA keys but cannot make them.
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, bits)
        .map_err(|e| PkiError::Crypto(format!("RSA key generation: {e}")))?;
    let pem = key
        .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
        .map_err(|e| PkiError::Crypto(format!("RSA key encoding: {e}")))?;
    Ok(KeyPair::from_pkcs8_pem_and_sign_algo(
        &pem,
        &rcgen::PKCS_RSA_SHA256,
    )?)
}

/// Loads a PEM private key (PKCS#8, or SEC1/PKCS#1 where ring takes it).
pub fn load(pem: &str) -> Result<KeyPair, PkiError> {
    KeyPair::from_pem(pem)
        .or_else(|_| KeyPair::from_pkcs8_pem_and_sign_algo(pem, &rcgen::PKCS_RSA_SHA256))
        .map_err(|_| {
            PkiError::Invalid(
                "the private key does not parse: give a PKCS#8 PEM EC, Ed25519 or RSA key".into(),
            )
        })
}

/// A leaf key for a requester.
pub fn generate_leaf(key_type: KeyType) -> Result<GeneratedKey, PkiError> {
    let key = generate(key_type)?;
    Ok(GeneratedKey {
        key_type,
        private_key_pem: Zeroizing::new(key.serialize_pem()),
        public_key_raw: key.public_key_raw().to_vec(),
        key_id: key_id(&key),
    })
}
