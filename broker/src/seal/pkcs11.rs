//! The `pkcs11` seal: an AES-256 key inside an HSM token wraps the root
//! key with `CKM_AES_GCM`; the key never leaves the token.
//!
//! It must never read the key out (it is made `CKA_SENSITIVE`, not
//! `CKA_EXTRACTABLE`), never log the PIN, and never make a key while
//! unwrapping: a missing key at unseal is an error, since a new key could
//! not open what the old one wrapped.
//!
//! ```toml
//! [seal]
//! type = "pkcs11"
//! lib = "/usr/lib/softhsm/libsofthsm2.so"
//! token_label = "broker"         # or: slot = 0
//! key_label = "broker-root-wrap"
//! # pin = "…"                    # else $BROKER_PKCS11_PIN
//! # generate_key = false         # the key must already exist
//! ```
//!
//! **The key.** Found by `key_label` in the token. When absent at the first
//! wrap (`operator init`, `sys/init`, a rekey or a migration to this seal)
//! it is generated there, unless `generate_key = false` (for HSMs whose
//! keys an officer makes). Unwrapping never makes one.
//!
//! **A blob** is the 12-byte IV (random, from the host) followed by the
//! token's ciphertext and 16-byte tag; its `key_id` is the key's label, so
//! after `key_label` changes, blobs wrapped by the old key still open as
//! long as that key stays in the token.

use std::sync::{Arc, Mutex, PoisonError};

use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{Seal, SealError, SealKind, WrappedBlob};
use crate::hsm::{Hsm, HsmConnection, HsmError, HsmSettings, Pin, operation};

const IV_LEN: usize = 12;
const TAG_BITS: u64 = 128;
const TAG_LEN: usize = 16;
const WHAT: &str = "AES key";

/// `[seal] type = "pkcs11"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11SealSettings {
    /// The PKCS#11 library (a `.so` path).
    pub lib: std::path::PathBuf,
    /// The token, by label.
    #[serde(default)]
    pub token_label: Option<String>,
    /// The token, by slot id.
    #[serde(default)]
    pub slot: Option<u64>,
    /// The user PIN; absent, `BROKER_PKCS11_PIN` is read.
    #[serde(default)]
    pub pin: Option<Pin>,
    /// The AES key's label (`CKA_LABEL`).
    pub key_label: String,
    /// Whether a missing key is generated at the first wrap (default true).
    #[serde(default = "yes")]
    pub generate_key: bool,
}

fn yes() -> bool {
    true
}

impl Pkcs11SealSettings {
    /// The token half of these settings.
    pub fn hsm(&self) -> HsmSettings {
        HsmSettings {
            lib: self.lib.clone(),
            token_label: self.token_label.clone(),
            slot: self.slot,
            pin: self.pin.clone(),
        }
    }

    /// Checks what parsing cannot.
    pub fn check(&self) -> Result<(), String> {
        self.hsm().check()?;
        check_label(&self.key_label)
    }
}

/// A key label: 1 to 128 bytes, no control characters (it is shown in
/// messages and stored as each blob's key id).
fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() || label.len() > 128 || label.chars().any(char::is_control) {
        return Err("key_label must be 1 to 128 bytes without control characters".into());
    }
    Ok(())
}

/// A non-extractable AES-256 key in an HSM.
pub struct Pkcs11Seal {
    hsm: Arc<HsmConnection>,
    key_label: String,
    generate_key: bool,
    /// Serializes "find, else create" so two wraps at once cannot make two
    /// keys with one label.
    creating: Arc<Mutex<()>>,
}

impl std::fmt::Debug for Pkcs11Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Seal")
            .field("hsm", &self.hsm)
            .field("key_label", &self.key_label)
            .field("generate_key", &self.generate_key)
            .finish()
    }
}

fn unavailable(cause: String) -> SealError {
    SealError::Unavailable {
        provider: SealKind::Pkcs11,
        cause,
    }
}

impl From<HsmError> for SealError {
    fn from(e: HsmError) -> Self {
        match e {
            HsmError::Operation { .. } | HsmError::Exists { .. } => SealError::Refused {
                provider: SealKind::Pkcs11,
                cause: e.to_string(),
            },
            other => unavailable(other.to_string()),
        }
    }
}

impl Pkcs11Seal {
    /// The seal the settings describe; it connects to the token (and logs
    /// in) when first used, so a missing HSM or a wrong PIN shows then,
    /// and the next use tries again.
    pub fn open(settings: &Pkcs11SealSettings) -> Result<Self, SealError> {
        settings.check().map_err(unavailable)?;
        Ok(Self {
            hsm: Arc::new(HsmConnection::new(settings.hsm())),
            key_label: settings.key_label.clone(),
            generate_key: settings.generate_key,
            creating: Arc::default(),
        })
    }

    /// Connects to the token the settings name and logs in now; the key is
    /// looked up when first used.
    pub async fn connect(settings: &Pkcs11SealSettings) -> Result<Self, SealError> {
        let seal = Self::open(settings)?;
        seal.hsm().await?;
        Ok(seal)
    }

    /// The seal over an HSM already connected (shared with CA keys).
    pub fn new(hsm: Arc<Hsm>, key_label: &str, generate_key: bool) -> Result<Self, SealError> {
        check_label(key_label).map_err(unavailable)?;
        Ok(Self {
            hsm: Arc::new(HsmConnection::ready(hsm)),
            key_label: key_label.to_owned(),
            generate_key,
            creating: Arc::default(),
        })
    }

    /// The token this seal uses, connecting first if need be.
    pub async fn hsm(&self) -> Result<Arc<Hsm>, SealError> {
        Ok(self.hsm.get().await?)
    }

    /// The label of the key new blobs are wrapped with.
    pub fn key_label(&self) -> &str {
        &self.key_label
    }
}

/// Makes the AES-256 key: in the token, private, sensitive, never
/// extractable, for encryption and decryption only.
fn create_key(session: &Session, label: &str) -> Result<ObjectHandle, HsmError> {
    session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Wrap(false),
                Attribute::Unwrap(false),
                Attribute::Label(label.as_bytes().to_vec()),
            ],
        )
        .map_err(|e| operation("generating the seal's AES key", e))
}

/// Whether the token's answer to a decryption means "this blob does not
/// open with this key" rather than "the token failed". PKCS#11 says
/// `CKR_ENCRYPTED_DATA_INVALID`; SoftHSM2 answers a GCM tag that does not
/// match with `CKR_GENERAL_ERROR`, so that counts too (the key was found
/// and the session worked a moment before).
fn is_unwrap_failure(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::EncryptedDataInvalid
            | RvError::EncryptedDataLenRange
            | RvError::DataInvalid
            | RvError::DataLenRange
            | RvError::FunctionFailed
            | RvError::GeneralError
    )
}

#[async_trait::async_trait]
impl Seal for Pkcs11Seal {
    fn kind(&self) -> SealKind {
        SealKind::Pkcs11
    }

    async fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<WrappedBlob, SealError> {
        let plaintext = Zeroizing::new(plaintext.to_vec());
        let aad = aad.to_vec();
        let label = self.key_label.clone();
        let generate = self.generate_key;
        let creating = self.creating.clone();
        let ciphertext = self
            .hsm()
            .await?
            .run("wrapping the root key", move |hsm, session| {
                let key = {
                    let _one_at_a_time = creating.lock().unwrap_or_else(PoisonError::into_inner);
                    match hsm.find(session, ObjectClass::SECRET_KEY, &label, WHAT)? {
                        Some(key) => key,
                        None if generate => {
                            let key = create_key(session, &label)?;
                            tracing::info!(token = hsm.token_label(), key_label = %label, "generated the pkcs11 seal's AES key");
                            key
                        }
                        None => return Err(hsm.no_key(WHAT, &label)),
                    }
                };
                let mut iv = [0u8; IV_LEN];
                getrandom::fill(&mut iv).map_err(|e| HsmError::Operation {
                    what: "making an IV",
                    cause: e.to_string(),
                    rv: None,
                })?;
                let mut nonce = iv;
                let params = GcmParams::new(&mut nonce, &aad, TAG_BITS.into())
                    .map_err(|e| operation("wrapping the root key", e))?;
                let sealed = session
                    .encrypt(&Mechanism::AesGcm(params), key, &plaintext)
                    .map_err(|e| operation("wrapping the root key", e))?;
                let mut out = iv.to_vec();
                out.extend(sealed);
                Ok(out)
            })
            .await?;
        Ok(WrappedBlob {
            provider: SealKind::Pkcs11,
            key_id: self.key_label.clone(),
            ciphertext,
        })
    }

    async fn decrypt(
        &self,
        blob: &WrappedBlob,
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if blob.provider != SealKind::Pkcs11 {
            return Err(SealError::Mismatch {
                provider: SealKind::Pkcs11,
                found: blob.provider.to_string(),
            });
        }
        if blob.ciphertext.len() < IV_LEN + TAG_LEN {
            return Err(SealError::Unwrap {
                provider: SealKind::Pkcs11,
            });
        }
        check_label(&blob.key_id).map_err(|_| SealError::Mismatch {
            provider: SealKind::Pkcs11,
            found: "a key id that is not a valid key label".into(),
        })?;
        let label = blob.key_id.clone();
        let sealed = blob.ciphertext.clone();
        let aad = aad.to_vec();
        let opened = self
            .hsm()
            .await?
            .run("unwrapping the root key", move |hsm, session| {
                let key = hsm.find_required(session, ObjectClass::SECRET_KEY, &label, WHAT)?;
                let (iv, body) = sealed.split_at(IV_LEN);
                let mut nonce = [0u8; IV_LEN];
                nonce.copy_from_slice(iv);
                let params = GcmParams::new(&mut nonce, &aad, TAG_BITS.into())
                    .map_err(|e| operation("unwrapping the root key", e))?;
                match session.decrypt(&Mechanism::AesGcm(params), key, body) {
                    Ok(plain) => Ok(Some(Zeroizing::new(plain))),
                    Err(cryptoki::error::Error::Pkcs11(rv, _)) if is_unwrap_failure(rv) => Ok(None),
                    Err(e) => Err(operation("unwrapping the root key", e)),
                }
            })
            .await?;
        opened.ok_or(SealError::Unwrap {
            provider: SealKind::Pkcs11,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_hide_the_pin() {
        let s: Pkcs11SealSettings = toml::from_str(
            r#"
            lib = "/usr/lib/softhsm/libsofthsm2.so"
            token_label = "broker"
            key_label = "root-wrap"
            pin = "1234-secret"
            "#,
        )
        .unwrap();
        assert!(s.generate_key);
        assert!(s.check().is_ok());
        assert!(!format!("{s:?}").contains("1234-secret"));
        let unknown = toml::from_str::<Pkcs11SealSettings>(
            "lib = \"/x.so\"\ntoken_label = \"t\"\nkey_label = \"k\"\nkey_lable = \"typo\"",
        );
        assert!(unknown.is_err());
        let mut bad = s.clone();
        bad.key_label = String::new();
        assert!(bad.check().is_err());
        bad.key_label = "a\nb".into();
        assert!(bad.check().is_err());
    }

    #[tokio::test]
    async fn a_missing_library_keeps_the_seal_closed_with_the_cause() {
        let settings = Pkcs11SealSettings {
            lib: "/nonexistent/libsofthsm2.so".into(),
            token_label: Some("t".into()),
            slot: None,
            pin: Some(Pin::new("1234")),
            key_label: "k".into(),
            generate_key: true,
        };
        let e = Pkcs11Seal::connect(&settings)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("pkcs11 seal unavailable: cannot load /nonexistent/libsofthsm2.so: "),
            "{e}"
        );
    }
}
