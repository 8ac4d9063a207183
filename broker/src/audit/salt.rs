//! The per-broker HMAC salt: 32 random bytes, sealed in storage, made on
//! first use. It never leaves the broker.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::AuditError;
use crate::barrier::SealedStorage;

const SALT_KEY: &str = "core/audit/salt";

/// The HMAC key of the audit log.
pub struct Salt {
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Salt(..)")
    }
}

impl Salt {
    /// The broker's salt, created and sealed on first use.
    pub async fn load_or_create(store: &SealedStorage) -> Result<Self, AuditError> {
        if let Some(hex_key) = store.get::<Zeroizing<String>>(SALT_KEY).await? {
            let key = hex::decode(hex_key.as_str())
                .map_err(|_| AuditError::Invalid("the audit salt is damaged".into()))?;
            return Ok(Self {
                key: Zeroizing::new(key),
            });
        }
        let mut key = Zeroizing::new(vec![0u8; 32]);
        getrandom::fill(&mut key)
            .map_err(|e| AuditError::Invalid(format!("no randomness for the audit salt: {e}")))?;
        store
            .put(SALT_KEY, &Zeroizing::new(hex::encode(key.as_slice())))
            .await?;
        Ok(Self { key })
    }

    /// A salt from its key, for tests.
    #[cfg(test)]
    pub(crate) fn from_key(key: Vec<u8>) -> Self {
        Self {
            key: Zeroizing::new(key),
        }
    }

    /// `hmac-sha256:<hex>`, as Vault writes it.
    pub fn hmac(&self, value: &str) -> String {
        // HMAC takes keys of any length; this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return "hmac-sha256:".to_owned();
        };
        mac.update(value.as_bytes());
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }
}
