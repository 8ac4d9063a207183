//! The key hierarchy in storage: the seal wraps the root key; the root key
//! encrypts the keyring; the keyring's terms seal every other value.
//!
//! ```text
//! core/seal-config  plain JSON: the seal's type and its share counts
//! core/root-key     the root key, wrapped by the seal (a WrappedBlob)
//! core/keyring      format byte, then the keyring under the root key
//! ```
//!
//! Rotating the barrier key rewrites only `core/keyring` (no seal call);
//! rekeying or migrating the seal rewrites only `core/root-key`. This module
//! must never write the root key or the keyring unencrypted.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::CoreError;
use crate::barrier::Keyring;
use crate::seal::{Seal, SealKind, WrappedBlob, aead};
use crate::storage::Storage;

pub(crate) const SEAL_CONFIG_KEY: &str = "core/seal-config";
pub(crate) const ROOT_KEY_KEY: &str = "core/root-key";
/// The keyring, encrypted by the root key.
pub const KEYRING_KEY: &str = "core/keyring";

/// The records stored outside the barrier (each encrypted, or not secret,
/// in its own way): the rewrap leaves them alone. A new raw record must be
/// listed here.
pub const RAW_KEYS: &[&str] = &[SEAL_CONFIG_KEY, ROOT_KEY_KEY, KEYRING_KEY, RECOVERY_KEY_KEY];

/// The associated data each record is bound to (its own storage key).
const ROOT_KEY_AAD: &[u8] = ROOT_KEY_KEY.as_bytes();
const KEYRING_AAD: &[u8] = KEYRING_KEY.as_bytes();

/// The first byte of `core/keyring`: the layout of what follows. A keyring
/// stored before there was a root key starts with a random nonce instead,
/// and is told apart by the missing `core/root-key`.
const KEYRING_FORMAT: u8 = 1;

/// The root key: 256 bits, zeroized on drop, never shown in `Debug`.
pub struct RootKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey(..)")
    }
}

impl RootKey {
    fn generate() -> Result<Self, CoreError> {
        crate::seal::shamir::random_key()
            .map(Self)
            .map_err(CoreError::Keyring)
    }

    /// The keyring encrypted for `core/keyring`.
    pub(crate) fn encrypt_keyring(&self, keyring: &Keyring) -> Result<Vec<u8>, CoreError> {
        let mut out = vec![KEYRING_FORMAT];
        out.extend(
            aead::seal(&self.0, &keyring.to_bytes(), KEYRING_AAD).map_err(CoreError::Keyring)?,
        );
        Ok(out)
    }

    fn decrypt_keyring(&self, stored: &[u8]) -> Result<Keyring, CoreError> {
        let Some((&KEYRING_FORMAT, sealed)) = stored.split_first() else {
            return Err(CoreError::Keyring(
                "core/keyring has an unknown format (written by a newer broker?)".into(),
            ));
        };
        let plain = aead::open(&self.0, sealed, KEYRING_AAD).ok_or_else(|| {
            CoreError::Keyring("core/keyring does not open with the root key (altered?)".into())
        })?;
        Keyring::from_bytes(&plain).map_err(CoreError::Keyring)
    }

    /// The root key wrapped by `seal`, for `core/root-key`.
    pub(crate) async fn wrap(&self, seal: &dyn Seal) -> Result<Vec<u8>, CoreError> {
        let blob = seal.encrypt(self.0.as_ref(), ROOT_KEY_AAD).await?;
        serde_json::to_vec(&blob).map_err(|e| CoreError::Keyring(e.to_string()))
    }
}

/// `core/seal-config`: which seal wraps the root key, and how its shares
/// (for `shamir`) or recovery shares (for the others) are split. Not
/// secret: `sys/seal-status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealConfig {
    /// The seal's type.
    #[serde(rename = "type")]
    pub kind: SealKind,
    /// Unseal key shares (`shamir`); 0 for the others.
    #[serde(default)]
    pub secret_shares: u32,
    /// How many unseal key shares unseal.
    #[serde(default)]
    pub secret_threshold: u32,
    /// Recovery key shares (auto-unseal seals); 0 for `shamir`.
    #[serde(default)]
    pub recovery_shares: u32,
    /// How many recovery shares authorize a rekey.
    #[serde(default)]
    pub recovery_threshold: u32,
}

impl SealConfig {
    /// The split operators hold: unseal shares for `shamir`, recovery
    /// shares otherwise, as (shares, threshold).
    pub fn operator_split(&self) -> (u32, u32) {
        if self.kind.auto_unseals() {
            (self.recovery_shares, self.recovery_threshold)
        } else {
            (self.secret_shares, self.secret_threshold)
        }
    }
}

/// Whether storage holds a broker (any key record).
pub async fn is_initialized(storage: &Storage) -> Result<bool, CoreError> {
    Ok(storage.get(KEYRING_KEY).await?.is_some())
}

/// The seal configuration stored at init, if any (a broker initialized
/// before seals were configurable has none: it used a `local` key file).
pub async fn seal_config(storage: &Storage) -> Result<Option<SealConfig>, CoreError> {
    match storage.get(SEAL_CONFIG_KEY).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| CoreError::Damaged("core/seal-config does not parse")),
    }
}

/// Replaces the stored seal configuration (after a recovery rekey).
pub async fn store_seal_config(storage: &Storage, config: &SealConfig) -> Result<(), CoreError> {
    let bytes = serde_json::to_vec(config).map_err(|e| CoreError::Keyring(e.to_string()))?;
    storage.put(SEAL_CONFIG_KEY, &bytes).await?;
    Ok(())
}

/// Writes a new root key and keyring, wrapped by `seal`, with `config`.
/// The keyring is written last: it is what marks storage initialized.
pub async fn initialize(
    storage: &Storage,
    seal: &dyn Seal,
    config: &SealConfig,
) -> Result<(RootKey, Keyring), CoreError> {
    if is_initialized(storage).await? {
        return Err(CoreError::AlreadyInitialized);
    }
    let root = RootKey::generate()?;
    let keyring = Keyring::generate().map_err(CoreError::Keyring)?;
    let config_bytes = serde_json::to_vec(config).map_err(|e| CoreError::Keyring(e.to_string()))?;
    storage.put(SEAL_CONFIG_KEY, &config_bytes).await?;
    storage.put(ROOT_KEY_KEY, &root.wrap(seal).await?).await?;
    if !storage
        .put_new(KEYRING_KEY, &root.encrypt_keyring(&keyring)?)
        .await?
    {
        return Err(CoreError::AlreadyInitialized);
    }
    Ok((root, keyring))
}

/// Opens the root key with `seal`, then the keyring with the root key.
/// Nothing is written, but for storage from before the root key existed:
/// its keyring (wrapped by the `local` key file itself) is moved under a
/// new root key, once.
pub async fn unseal(storage: &Storage, seal: &dyn Seal) -> Result<(RootKey, Keyring), CoreError> {
    let stored_keyring = storage
        .get(KEYRING_KEY)
        .await?
        .ok_or(CoreError::NotInitialized)?;
    let Some(wrapped_root) = storage.get(ROOT_KEY_KEY).await? else {
        return upgrade_legacy(storage, seal, &stored_keyring).await;
    };
    let blob: WrappedBlob = serde_json::from_slice(&wrapped_root)
        .map_err(|_| CoreError::Damaged("core/root-key does not parse"))?;
    let plain = seal.decrypt(&blob, ROOT_KEY_AAD).await?;
    let root = root_from(&plain)?;
    let keyring = match root.decrypt_keyring(&stored_keyring) {
        Ok(keyring) => keyring,
        // An upgrade stopped between its two writes: the root key is
        // stored, the keyring still in the old layout. Finish it.
        Err(e) => match seal.as_local().and_then(|l| l.open_legacy(&stored_keyring)) {
            Some(plain) => {
                let keyring = Keyring::from_bytes(&plain).map_err(CoreError::Keyring)?;
                store_keyring(storage, &root, &keyring).await?;
                keyring
            }
            None => return Err(e),
        },
    };
    Ok((root, keyring))
}

fn root_from(plain: &[u8]) -> Result<RootKey, CoreError> {
    let bytes: [u8; 32] = plain
        .try_into()
        .map_err(|_| CoreError::Damaged("the root key has the wrong length"))?;
    Ok(RootKey(Zeroizing::new(bytes)))
}

/// Opens a keyring the `local` key file wrapped directly, and stores it
/// under a new root key wrapped by the same seal. Safe to repeat after a
/// crash: until the keyring is rewritten, the old layout still opens.
async fn upgrade_legacy(
    storage: &Storage,
    seal: &dyn Seal,
    stored_keyring: &[u8],
) -> Result<(RootKey, Keyring), CoreError> {
    let local = seal.as_local().ok_or(CoreError::Keyring(format!(
        "this storage's keyring is wrapped by a local key file, not by the {} seal; \
         start once with the old [kms] local configuration to upgrade it",
        seal.kind()
    )))?;
    let plain = local
        .open_legacy(stored_keyring)
        .ok_or(crate::seal::SealError::Unwrap {
            provider: SealKind::Local,
        })?;
    let keyring = Keyring::from_bytes(&plain).map_err(CoreError::Keyring)?;
    let root = RootKey::generate()?;
    let config = SealConfig {
        kind: SealKind::Local,
        secret_shares: 0,
        secret_threshold: 0,
        recovery_shares: 0,
        recovery_threshold: 0,
    };
    let config_bytes =
        serde_json::to_vec(&config).map_err(|e| CoreError::Keyring(e.to_string()))?;
    // Root key first, keyring last: a crash between them leaves a root key
    // beside the old keyring, which `unseal` finishes moving.
    storage.put(SEAL_CONFIG_KEY, &config_bytes).await?;
    let encrypted = root.encrypt_keyring(&keyring)?;
    storage.put(ROOT_KEY_KEY, &root.wrap(seal).await?).await?;
    storage.put(KEYRING_KEY, &encrypted).await?;
    tracing::info!("the keyring moved under a root key wrapped by the local seal");
    Ok((root, keyring))
}

/// The keyring as stored now, opened with `root`, and the stored bytes
/// (for a compare-and-swap): what a node adopts after another rotated.
pub async fn stored_keyring(
    storage: &Storage,
    root: &RootKey,
) -> Result<(Keyring, Vec<u8>), CoreError> {
    let stored = storage
        .get(KEYRING_KEY)
        .await?
        .ok_or(CoreError::NotInitialized)?;
    Ok((root.decrypt_keyring(&stored)?, stored))
}

/// Stores `keyring` under `root` only if the stored keyring is still
/// `expected` (as read by [`stored_keyring`]); whether it was. Two nodes
/// rotating at once must not each store a different key for one term.
pub async fn replace_keyring(
    storage: &Storage,
    root: &RootKey,
    expected: &[u8],
    keyring: &Keyring,
) -> Result<bool, CoreError> {
    Ok(storage
        .compare_and_put(KEYRING_KEY, expected, &root.encrypt_keyring(keyring)?)
        .await?)
}

/// Stores `keyring` under `root` (after a rotation).
pub async fn store_keyring(
    storage: &Storage,
    root: &RootKey,
    keyring: &Keyring,
) -> Result<(), CoreError> {
    storage
        .put(KEYRING_KEY, &root.encrypt_keyring(keyring)?)
        .await?;
    Ok(())
}

/// Wraps `root` with `seal` and stores it with `config` (a rekey or a seal
/// migration): the keyring is untouched.
pub async fn rewrap_root(
    storage: &Storage,
    root: &RootKey,
    seal: &dyn Seal,
    config: &SealConfig,
) -> Result<(), CoreError> {
    let wrapped = root.wrap(seal).await?;
    // Check the new wrapping opens before it replaces the old one.
    let blob: WrappedBlob =
        serde_json::from_slice(&wrapped).map_err(|e| CoreError::Keyring(e.to_string()))?;
    let back = seal.decrypt(&blob, ROOT_KEY_AAD).await?;
    if back.as_slice() != root.0.as_slice() {
        return Err(CoreError::Keyring(
            "the new seal did not give the root key back".into(),
        ));
    }
    let config_bytes = serde_json::to_vec(config).map_err(|e| CoreError::Keyring(e.to_string()))?;
    storage.put(ROOT_KEY_KEY, &wrapped).await?;
    storage.put(SEAL_CONFIG_KEY, &config_bytes).await?;
    Ok(())
}

pub(crate) const RECOVERY_KEY_KEY: &str = "core/recovery-key";

/// Stores the recovery key of an auto-unseal seal, wrapped by that seal:
/// it must be checked while the broker is sealed, before the barrier opens.
pub async fn store_recovery_key(
    storage: &Storage,
    seal: &dyn Seal,
    key: &[u8; 32],
) -> Result<(), CoreError> {
    let blob = seal.encrypt(key, RECOVERY_KEY_KEY.as_bytes()).await?;
    let bytes = serde_json::to_vec(&blob).map_err(|e| CoreError::Keyring(e.to_string()))?;
    storage.put(RECOVERY_KEY_KEY, &bytes).await?;
    Ok(())
}

/// The recovery key, unwrapped by `seal`; `None` if there is none.
pub async fn recovery_key(
    storage: &Storage,
    seal: &dyn Seal,
) -> Result<Option<Zeroizing<[u8; 32]>>, CoreError> {
    let Some(bytes) = storage.get(RECOVERY_KEY_KEY).await? else {
        return Ok(None);
    };
    let blob: WrappedBlob = serde_json::from_slice(&bytes)
        .map_err(|_| CoreError::Damaged("core/recovery-key does not parse"))?;
    let plain = seal.decrypt(&blob, RECOVERY_KEY_KEY.as_bytes()).await?;
    let key: [u8; 32] = plain
        .as_slice()
        .try_into()
        .map_err(|_| CoreError::Damaged("the recovery key has the wrong length"))?;
    Ok(Some(Zeroizing::new(key)))
}
