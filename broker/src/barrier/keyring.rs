//! The keyring: versioned AES-256 data keys. Held only in memory, zeroized
//! on drop, and written to storage only wrapped by the KMS.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

type Key = Zeroizing<[u8; 32]>;

/// Versioned data keys; one is active for sealing.
#[derive(Clone)]
pub struct Keyring {
    active: u32,
    keys: BTreeMap<u32, Key>,
    /// When each term was made (Unix seconds); terms made before this was
    /// kept have none.
    installed: BTreeMap<u32, i64>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.active)
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    active: u32,
    keys: BTreeMap<u32, String>,
    #[serde(default)]
    installed: BTreeMap<u32, i64>,
}

fn random_key() -> Result<Key, String> {
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::fill(key.as_mut()).map_err(|e| e.to_string())?;
    Ok(key)
}

impl Keyring {
    /// A keyring with one fresh key, version 1.
    pub fn generate() -> Result<Self, String> {
        Ok(Self {
            active: 1,
            keys: BTreeMap::from([(1, random_key()?)]),
            installed: BTreeMap::from([(1, crate::clock::unix_now_signed())]),
        })
    }

    /// The active term, and when it was made (if known).
    pub fn term(&self) -> (u32, Option<i64>) {
        (self.active, self.installed.get(&self.active).copied())
    }

    /// This keyring with one more term, active, made now: the old terms
    /// stay, so what they sealed still opens.
    pub fn rotated(&self) -> Result<Self, String> {
        let mut next = self.clone();
        let term = next.rotate()?;
        next.installed.insert(term, crate::clock::unix_now_signed());
        Ok(next)
    }

    pub(crate) fn active(&self) -> (u32, &[u8; 32]) {
        // `keys` always holds `active`: every constructor and `rotate` ensure it.
        match self.keys.get(&self.active) {
            Some(k) => (self.active, k),
            None => unreachable!("the active key is always in the keyring"),
        }
    }

    pub(crate) fn get(&self, version: u32) -> Option<&[u8; 32]> {
        self.keys.get(&version).map(|k| &**k)
    }

    pub(crate) fn rotate(&mut self) -> Result<u32, String> {
        let next = self
            .active
            .checked_add(1)
            .ok_or("the keyring has no term left")?;
        self.keys.insert(next, random_key()?);
        self.active = next;
        Ok(next)
    }

    /// The keyring as bytes, to be wrapped by the KMS.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let stored = Stored {
            active: self.active,
            installed: self.installed.clone(),
            keys: self
                .keys
                .iter()
                .map(|(v, k)| (*v, hex::encode(k.as_ref())))
                .collect(),
        };
        let bytes = serde_json::to_vec(&stored).unwrap_or_default();
        // The hex strings inside `stored` are plain Strings: wipe them.
        for (_, mut k) in stored.keys {
            zeroize::Zeroize::zeroize(&mut k);
        }
        Zeroizing::new(bytes)
    }

    /// A keyring from [`Keyring::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let stored: Stored =
            serde_json::from_slice(bytes).map_err(|_| "the keyring does not parse".to_string())?;
        let mut keys = BTreeMap::new();
        for (version, mut text) in stored.keys {
            let mut key = Zeroizing::new([0u8; 32]);
            let decoded = hex::decode_to_slice(&text, key.as_mut());
            zeroize::Zeroize::zeroize(&mut text);
            decoded.map_err(|_| format!("keyring key {version} is malformed"))?;
            keys.insert(version, key);
        }
        if !keys.contains_key(&stored.active) {
            return Err("the keyring's active key is missing".into());
        }
        Ok(Self {
            active: stored.active,
            keys,
            installed: stored.installed,
        })
    }
}
