//! The token strings themselves: how they are made, told apart and turned
//! into the keyed hash that is all the store keeps of a service token.
//!
//! Nothing here writes a token anywhere; `Debug` never shows one.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::TokenError;

/// Service tokens: `brs.` and 32 characters of randomness (192 bits).
pub const SERVICE_PREFIX: &str = "brs.";
/// Batch tokens: `brb.` and the sealed entry, base64url.
pub const BATCH_PREFIX: &str = "brb.";

/// The longest token accepted in a header or a body. A batch token is a
/// sealed entry of bounded size; anything longer is not one of ours.
pub const MAX_TOKEN_LEN: usize = 8192;

/// A fresh service token.
pub fn generate_service() -> Result<Zeroizing<String>, TokenError> {
    let mut bytes = Zeroizing::new([0u8; 24]);
    getrandom::fill(bytes.as_mut()).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(Zeroizing::new(format!(
        "{SERVICE_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(bytes.as_ref())
    )))
}

/// A fresh accessor: a random id in the UUID form Vault's clients expect,
/// unrelated to the token, so it can be shown and logged.
pub fn generate_accessor() -> String {
    crate::core::random_uuid()
}

/// The key the store hashes tokens with, itself sealed in storage.
pub struct TokenKey(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A new random key.
    pub fn generate() -> Result<Self, TokenError> {
        let mut key = Zeroizing::new(vec![0u8; 32]);
        getrandom::fill(&mut key).map_err(|e| TokenError::Random(e.to_string()))?;
        Ok(Self(key))
    }

    /// The key from its stored bytes.
    pub fn from_bytes(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }

    /// The bytes to store (sealed).
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The keyed hash a service token is stored under: hex HMAC-SHA256.
    /// Without the key (sealed behind the barrier) the stored ids say
    /// nothing about the tokens.
    pub fn id(&self, token: &str) -> String {
        // HMAC takes a key of any length: this cannot fail.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => return String::new(),
        };
        mac.update(token.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// What kind of token a string claims to be, by its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A service token (looked up by its hash).
    Service,
    /// A batch token (opened, not looked up).
    Batch,
    /// Anything else (the root token has its own form).
    Other,
}

/// The form of `token`.
pub fn form(token: &str) -> Form {
    if token.starts_with(SERVICE_PREFIX) {
        Form::Service
    } else if token.starts_with(BATCH_PREFIX) {
        Form::Batch
    } else {
        Form::Other
    }
}

/// Encodes a sealed batch entry as a token.
pub fn batch_token(sealed: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(format!("{BATCH_PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed)))
}

/// The sealed entry a batch token carries, if it is well formed.
pub fn batch_payload(token: &str) -> Option<Vec<u8>> {
    let body = token.strip_prefix(BATCH_PREFIX)?;
    if body.len() > MAX_TOKEN_LEN {
        return None;
    }
    URL_SAFE_NO_PAD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_tokens_are_random_and_hash_under_the_key_only() {
        let a = generate_service().unwrap();
        let b = generate_service().unwrap();
        assert_ne!(*a, *b);
        assert_eq!(form(&a), Form::Service);
        assert_eq!(a.len(), SERVICE_PREFIX.len() + 32);
        let key = TokenKey::generate().unwrap();
        let other = TokenKey::generate().unwrap();
        assert_eq!(key.id(&a), key.id(&a));
        assert_ne!(key.id(&a), key.id(&b));
        assert_ne!(key.id(&a), other.id(&a));
        assert!(!key.id(&a).contains(&a[SERVICE_PREFIX.len()..]));
        assert_eq!(format!("{key:?}"), "TokenKey(..)");
    }

    #[test]
    fn batch_tokens_round_trip_and_refuse_junk() {
        let t = batch_token(b"sealed bytes");
        assert_eq!(form(&t), Form::Batch);
        assert_eq!(batch_payload(&t).unwrap(), b"sealed bytes");
        assert_eq!(batch_payload("brb.!!!"), None);
        assert_eq!(batch_payload("brs.abc"), None);
        assert_eq!(form("brk.0123"), Form::Other);
    }

    proptest::proptest! {
        #[test]
        fn no_string_panics_the_parsers(s in ".{0,200}") {
            let _ = form(&s);
            let _ = batch_payload(&s);
            let _ = batch_payload(&format!("{BATCH_PREFIX}{s}"));
        }
    }
}
