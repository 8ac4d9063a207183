//! CA keys held in an HSM (Vault's managed keys: `root/generate/kms`,
//! `intermediate/generate/kms`): the key pair is generated in the PKCS#11
//! token, its private half sensitive and never extractable, and every
//! signature over a CA's certificates and CRLs is the token's.
//!
//! The broker keeps only the key's label and public key ([`ManagedKeyRef`],
//! in the CA record). This module must never import a key into the token,
//! ask for a private key's value, or return a signature it has not checked
//! against the stored public key (a swapped or faulty key would otherwise
//! put certificates no one can verify into the world).

use std::sync::{Arc, Mutex, PoisonError};

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::PkiError;
use crate::hsm::{Hsm, HsmError, operation};
use crate::plugin::KeyType;

/// DER of the named curve P-256 (prime256v1, 1.2.840.10045.3.1.7): the
/// `CKA_EC_PARAMS` of the keys made here.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// The public exponent of RSA keys made here: 65537.
const RSA_EXPONENT: &[u8] = &[0x01, 0x00, 0x01];
const PRIVATE: &str = "private key";
const PUBLIC: &str = "public key";

/// What the CA record keeps of an HSM-held key: where it is and its public
/// half, never anything secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedKeyRef {
    /// The key pair's `CKA_LABEL` in the token (`managed_key_name`).
    pub label: String,
    /// Its type: `ec-p256` or `rsa2048`.
    pub key_type: KeyType,
    /// The subjectPublicKey bits: an uncompressed EC point, or a PKCS#1
    /// RSAPublicKey.
    #[serde(with = "b64")]
    pub public_key: Vec<u8>,
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

/// The key types a managed key may have (what SoftHSM and most HSMs make
/// and sign with through the mechanisms used here).
pub fn supported(key_type: KeyType) -> Result<(), PkiError> {
    match key_type {
        KeyType::EcP256 | KeyType::Rsa2048 => Ok(()),
        _ => Err(PkiError::Invalid(
            "a managed (kms) key is ec with key_bits 256, or rsa with key_bits 2048".into(),
        )),
    }
}

/// A label for a key pair: 1 to 128 bytes, no control characters.
pub fn check_label(label: &str) -> Result<(), PkiError> {
    if label.is_empty() || label.len() > 128 || label.chars().any(char::is_control) {
        return Err(PkiError::Invalid(
            "managed_key_name must be 1 to 128 bytes without control characters".into(),
        ));
    }
    Ok(())
}

impl From<HsmError> for PkiError {
    fn from(e: HsmError) -> Self {
        match e {
            HsmError::Exists { .. } | HsmError::NoKey { .. } | HsmError::Ambiguous { .. } => {
                PkiError::Invalid(e.to_string())
            }
            other => PkiError::Hsm(other.to_string()),
        }
    }
}

/// A key pair in the token, ready to sign. Signing blocks on the token:
/// call it from a blocking thread.
pub struct ManagedKey {
    hsm: Arc<Hsm>,
    reference: ManagedKeyRef,
    /// Why the last signature failed: rcgen's error for a remote key
    /// carries no text, so the CA reads it here.
    last_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for ManagedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedKey")
            .field("token", &self.hsm.token_label())
            .field("label", &self.reference.label)
            .field("key_type", &self.reference.key_type)
            .finish()
    }
}

impl ManagedKey {
    /// The key `reference` names, in `hsm`'s token (looked up when it
    /// first signs).
    pub fn new(hsm: Arc<Hsm>, reference: ManagedKeyRef) -> Result<Self, PkiError> {
        supported(reference.key_type)?;
        check_label(&reference.label)?;
        Ok(Self {
            hsm,
            reference,
            last_error: Mutex::new(None),
        })
    }

    /// Generates a key pair of `key_type` labelled `label` in the token;
    /// refuses a label some key already has. Blocking.
    pub fn generate(hsm: Arc<Hsm>, label: &str, key_type: KeyType) -> Result<Self, PkiError> {
        supported(key_type)?;
        check_label(label)?;
        let public_key = hsm.with_session(|session| {
            for (class, what) in [
                (ObjectClass::PRIVATE_KEY, PRIVATE),
                (ObjectClass::PUBLIC_KEY, PUBLIC),
            ] {
                if hsm.find(session, class, label, what)?.is_some() {
                    return Err(hsm.exists(what, label));
                }
            }
            generate_pair(session, label, key_type)
        })?;
        tracing::info!(
            token = hsm.token_label(),
            label,
            ?key_type,
            "generated a CA key pair in the HSM"
        );
        Self::new(
            hsm,
            ManagedKeyRef {
                label: label.to_owned(),
                key_type,
                public_key,
            },
        )
    }

    /// What the CA record keeps.
    pub fn reference(&self) -> &ManagedKeyRef {
        &self.reference
    }

    /// The token holding it.
    pub fn hsm(&self) -> &Arc<Hsm> {
        &self.hsm
    }

    /// Why the last signature failed, if one did.
    pub fn take_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Signs `message` in the token, then checks the signature with the
    /// stored public key. Blocking.
    pub fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        let label = &self.reference.label;
        let key_type = self.reference.key_type;
        let signature = self.hsm.with_session(|session| {
            let key = self
                .hsm
                .find_required(session, ObjectClass::PRIVATE_KEY, label, PRIVATE)?;
            sign_in_token(session, key, key_type, message)
        })?;
        let verifier: &dyn ring::signature::VerificationAlgorithm = match key_type {
            KeyType::Rsa2048 => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            _ => &ring::signature::ECDSA_P256_SHA256_ASN1,
        };
        ring::signature::UnparsedPublicKey::new(verifier, &self.reference.public_key)
            .verify(message, &signature)
            .map_err(|_| {
                PkiError::Hsm(format!(
                    "the signature of key '{label}' in token '{}' does not verify with the CA's \
                     public key: the token holds another key under that label",
                    self.hsm.token_label()
                ))
            })?;
        Ok(signature)
    }
}

impl PublicKeyData for ManagedKey {
    fn der_bytes(&self) -> &[u8] {
        &self.reference.public_key
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        super::keys::algorithm(self.reference.key_type)
    }
}

impl SigningKey for ManagedKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.sign_message(msg).map_err(|e| {
            *self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
            rcgen::Error::RemoteKeyError
        })
    }
}

/// Makes the pair; returns its public key bits.
fn generate_pair(session: &Session, label: &str, key_type: KeyType) -> Result<Vec<u8>, HsmError> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| HsmError::Operation {
        what: "making a key id",
        cause: e.to_string(),
        rv: None,
    })?;
    let common = |private: bool| {
        vec![
            Attribute::Token(true),
            Attribute::Private(private),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
        ]
    };
    let mut public = common(false);
    public.push(Attribute::Verify(true));
    let mut private = common(true);
    private.extend([
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
    ]);
    let mechanism = match key_type {
        KeyType::Rsa2048 => {
            public.extend([
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(RSA_EXPONENT.to_vec()),
            ]);
            Mechanism::RsaPkcsKeyPairGen
        }
        _ => {
            public.push(Attribute::EcParams(P256_PARAMS.to_vec()));
            Mechanism::EccKeyPairGen
        }
    };
    let (public_handle, _) = session
        .generate_key_pair(&mechanism, &public, &private)
        .map_err(|e| operation("generating a CA key pair", e))?;
    let what = "reading the new public key";
    match key_type {
        KeyType::Rsa2048 => {
            let attributes = session
                .get_attributes(
                    public_handle,
                    &[AttributeType::Modulus, AttributeType::PublicExponent],
                )
                .map_err(|e| operation(what, e))?;
            let (mut n, mut e) = (None, None);
            for attribute in attributes {
                match attribute {
                    Attribute::Modulus(v) => n = Some(v),
                    Attribute::PublicExponent(v) => e = Some(v),
                    _ => {}
                }
            }
            let (Some(n), Some(e)) = (n, e) else {
                return Err(malformed(what, "no modulus or exponent"));
            };
            rsa_public_key(&n, &e).map_err(|m| malformed(what, &m))
        }
        _ => {
            let attributes = session
                .get_attributes(public_handle, &[AttributeType::EcPoint])
                .map_err(|e| operation(what, e))?;
            let point = attributes.into_iter().find_map(|a| match a {
                Attribute::EcPoint(v) => Some(v),
                _ => None,
            });
            let point = point.ok_or_else(|| malformed(what, "no CKA_EC_POINT"))?;
            ec_point(&point).map_err(|m| malformed(what, &m))
        }
    }
}

fn malformed(what: &'static str, why: &str) -> HsmError {
    HsmError::Operation {
        what,
        cause: why.to_owned(),
        rv: None,
    }
}

/// Signs in the token: ECDSA over the SHA-256 digest (raw `r || s`, made
/// DER for X.509), or RSA PKCS#1 v1.5 with SHA-256 (the token hashes).
fn sign_in_token(
    session: &Session,
    key: ObjectHandle,
    key_type: KeyType,
    message: &[u8],
) -> Result<Vec<u8>, HsmError> {
    match key_type {
        KeyType::Rsa2048 => session
            .sign(&Mechanism::Sha256RsaPkcs, key, message)
            .map_err(|e| operation("signing with the CA key", e)),
        _ => {
            let digest = Sha256::digest(message);
            let raw = session
                .sign(&Mechanism::Ecdsa, key, &digest)
                .map_err(|e| operation("signing with the CA key", e))?;
            ecdsa_der(&raw).map_err(|m| malformed("signing with the CA key", &m))
        }
    }
}

/// The uncompressed P-256 point of a `CKA_EC_POINT`: PKCS#11 says a DER
/// OCTET STRING around it, and some tokens give the bare point.
pub fn ec_point(value: &[u8]) -> Result<Vec<u8>, String> {
    let point = match value {
        [0x04, 0x41, rest @ ..] if rest.len() == 65 => rest,
        [0x04, 0x81, 0x41, rest @ ..] if rest.len() == 65 => rest,
        bare if bare.len() == 65 => bare,
        _ => return Err("CKA_EC_POINT is not a P-256 point".into()),
    };
    if point[0] != 0x04 {
        return Err("CKA_EC_POINT is not an uncompressed point".into());
    }
    Ok(point.to_vec())
}

/// A PKCS#1 RSAPublicKey from the modulus and exponent (big-endian).
fn rsa_public_key(n: &[u8], e: &[u8]) -> Result<Vec<u8>, String> {
    use rsa::pkcs1::EncodeRsaPublicKey;
    let key = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(n),
        rsa::BigUint::from_bytes_be(e),
    )
    .map_err(|e| format!("not an RSA public key: {e}"))?;
    key.to_pkcs1_der()
        .map(|d| d.as_bytes().to_vec())
        .map_err(|e| format!("cannot encode the RSA public key: {e}"))
}

/// An ECDSA signature as X.509 carries it (`ECDSA-Sig-Value`, RFC 3279
/// §2.2.3) from the token's raw `r || s` (PKCS#11 v2.40 §2.3.1), each half
/// as long as the curve's order.
pub fn ecdsa_der(raw: &[u8]) -> Result<Vec<u8>, String> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) || raw.len() > 132 {
        return Err(format!(
            "an ECDSA signature of {} bytes is not r || s",
            raw.len()
        ));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let mut body = der_integer(r);
    body.extend(der_integer(s));
    let mut out = vec![0x30];
    push_length(&mut out, body.len());
    out.extend(body);
    Ok(out)
}

/// An unsigned big-endian number as a DER INTEGER: no leading zero bytes
/// but one, and a zero byte before a set high bit (else it would read as
/// negative).
fn der_integer(unsigned: &[u8]) -> Vec<u8> {
    let digits: &[u8] = match unsigned.iter().position(|b| *b != 0) {
        Some(first) => &unsigned[first..],
        None => &[0],
    };
    let pad = digits[0] & 0x80 != 0;
    let mut out = vec![0x02];
    push_length(&mut out, digits.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(digits);
    out
}

fn push_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use x509_parser::der_parser::ber::BerObjectContent;
    use x509_parser::der_parser::der::parse_der;

    use super::*;

    /// The two INTEGERs of a DER SEQUENCE, as unsigned big-endian bytes
    /// without leading zeros.
    fn parse_pair(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (rest, seq) = parse_der(der).unwrap();
        assert!(rest.is_empty());
        let BerObjectContent::Sequence(items) = seq.content else {
            panic!("not a sequence")
        };
        assert_eq!(items.len(), 2);
        let int = |o: &x509_parser::der_parser::ber::BerObject<'_>| {
            let BerObjectContent::Integer(bytes) = o.content else {
                panic!("not an integer")
            };
            // DER: minimal, so at most one leading zero, only before a high bit.
            if bytes.len() > 1 {
                assert!(!(bytes[0] == 0 && bytes[1] & 0x80 == 0), "not minimal");
                assert!(!(bytes[0] == 0xff && bytes[1] & 0x80 != 0), "not minimal");
            }
            assert!(bytes[0] & 0x80 == 0, "negative");
            strip(bytes)
        };
        (int(&items[0]), int(&items[1]))
    }

    fn strip(bytes: &[u8]) -> Vec<u8> {
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        bytes[first..].to_vec()
    }

    proptest! {
        #[test]
        fn der_signatures_hold_the_same_numbers(r in any::<[u8; 32]>(), s in any::<[u8; 32]>(), zeros in 0usize..32) {
            let mut r = r;
            // Leading zero bytes, as a short r has.
            for b in r.iter_mut().take(zeros) {
                *b = 0;
            }
            let mut raw = r.to_vec();
            raw.extend_from_slice(&s);
            let der = ecdsa_der(&raw).unwrap();
            let (pr, ps) = parse_pair(&der);
            prop_assert_eq!(pr, strip(&r));
            prop_assert_eq!(ps, strip(&s));
        }

        #[test]
        fn any_bytes_as_a_signature_give_der_or_a_refusal(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
            match ecdsa_der(&raw) {
                Ok(der) => {
                    let (r, s) = parse_pair(&der);
                    let (hr, hs) = raw.split_at(raw.len() / 2);
                    prop_assert_eq!(r, strip(hr));
                    prop_assert_eq!(s, strip(hs));
                }
                Err(_) => prop_assert!(raw.is_empty() || raw.len() % 2 == 1 || raw.len() > 132),
            }
        }

        #[test]
        fn any_bytes_as_an_ec_point_give_a_point_or_a_refusal(value in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(point) = ec_point(&value) {
                prop_assert_eq!(point.len(), 65);
                prop_assert_eq!(point[0], 0x04);
            }
        }
    }

    #[test]
    fn hostile_signatures_and_points_are_refused() {
        assert!(ecdsa_der(&[]).is_err());
        assert!(ecdsa_der(&[1, 2, 3]).is_err());
        assert!(ecdsa_der(&[0; 200]).is_err());
        // All zero halves are still well-formed INTEGERs (0), not a panic.
        assert_eq!(
            ecdsa_der(&[0; 64]).unwrap(),
            vec![0x30, 6, 2, 1, 0, 2, 1, 0]
        );
        let mut point = vec![0x04];
        point.extend([7u8; 64]);
        assert_eq!(ec_point(&point).unwrap(), point);
        let mut wrapped = vec![0x04, 0x41];
        wrapped.extend(&point);
        assert_eq!(ec_point(&wrapped).unwrap(), point);
        wrapped[2] = 0x02; // compressed
        assert!(ec_point(&wrapped).is_err());
        assert!(ec_point(&[0x04, 0x41, 0x04]).is_err());
        assert!(ec_point(&[0x04; 66]).is_err());
    }

    #[test]
    fn a_signature_made_der_verifies() {
        // A real P-256 signature from ring, taken apart to r || s and made
        // DER again: ring must accept it.
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        for message in [&b"tbs"[..], &[0u8; 1000][..]] {
            let raw = key.sign(&rng, message).unwrap();
            let der = ecdsa_der(raw.as_ref()).unwrap();
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_ASN1,
                key.public_key().as_ref(),
            )
            .verify(message, &der)
            .unwrap();
        }
    }

    #[test]
    fn kms_keys_are_p256_or_rsa2048() {
        assert!(supported(KeyType::EcP256).is_ok());
        assert!(supported(KeyType::Rsa2048).is_ok());
        assert!(supported(KeyType::Ed25519).is_err());
        assert!(check_label("").is_err());
        assert!(check_label("root\u{7}").is_err());
        assert!(check_label("ca-root-2025").is_ok());
    }
}
