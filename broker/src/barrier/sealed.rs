//! Typed access to storage through the barrier: values go in as JSON,
//! sealed under their key, and come out opened and parsed.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Barrier, BarrierError};
use crate::storage::{Storage, StorageError};

/// Why a sealed read or write failed.
#[derive(Debug, thiserror::Error)]
pub enum SealedError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The barrier refused (tampered, moved, unknown key).
    #[error("{key}: {source}")]
    Barrier {
        /// The storage key.
        key: String,
        /// Why.
        source: BarrierError,
    },
    /// Others kept writing the record between this writer's read and its
    /// write, every time it tried.
    #[error("{key}: written by others at every try; try again")]
    Contended {
        /// The storage key.
        key: String,
    },
    /// The value does not parse as what the caller expects.
    #[error("{key}: stored value does not parse: {message}")]
    Decode {
        /// The storage key.
        key: String,
        /// What serde said (never the value).
        message: String,
    },
}

/// Storage whose values are sealed by a barrier.
#[derive(Debug, Clone)]
pub struct SealedStorage {
    storage: Storage,
    barrier: std::sync::Arc<Barrier>,
}

impl SealedStorage {
    /// Seals values for `storage` with `barrier`.
    pub fn new(storage: Storage, barrier: std::sync::Arc<Barrier>) -> Self {
        Self { storage, barrier }
    }

    /// The raw storage (for leases, whose columns stay queryable).
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The barrier.
    pub fn barrier(&self) -> &Barrier {
        &self.barrier
    }

    /// Reads and opens `key`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SealedError> {
        let Some(sealed) = self.storage.get(key).await? else {
            return Ok(None);
        };
        self.open_as(key, &sealed).map(Some)
    }

    fn seal<T: Serialize>(&self, key: &str, value: &T) -> Result<Vec<u8>, SealedError> {
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(value).map_err(|e| {
            SealedError::Decode {
                key: key.to_owned(),
                message: e.to_string(),
            }
        })?);
        self.barrier
            .seal(key, &plain)
            .map_err(|source| SealedError::Barrier {
                key: key.to_owned(),
                source,
            })
    }

    /// Seals and writes `value` at `key`.
    pub async fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), SealedError> {
        let sealed = self.seal(key, value)?;
        Ok(self.storage.put(key, &sealed).await?)
    }

    /// Rewrites the record at `key` through `change`, which gets what is
    /// stored (`None` if nothing) and returns the new value and a result
    /// for the caller. The write lands only if nothing else wrote `key`
    /// since it was read; otherwise `change` runs again on what is stored
    /// then. For records several nodes rewrite whole (the mount tables): a
    /// node's stale copy never overwrites another node's change.
    pub async fn update<T, R, E>(
        &self,
        key: &str,
        mut change: impl FnMut(Option<T>) -> Result<(T, R), E>,
    ) -> Result<(T, R), E>
    where
        T: Serialize + DeserializeOwned,
        E: From<SealedError>,
    {
        const TRIES: usize = 32;
        for _ in 0..TRIES {
            let raw = self.storage.get(key).await.map_err(SealedError::from)?;
            let current = match &raw {
                Some(sealed) => Some(self.open_as::<T>(key, sealed)?),
                None => None,
            };
            let (next, out) = change(current)?;
            let sealed = self.seal(key, &next)?;
            let written = match &raw {
                Some(expected) => self.storage.compare_and_put(key, expected, &sealed).await,
                None => self.storage.put_new(key, &sealed).await,
            }
            .map_err(SealedError::from)?;
            if written {
                return Ok((next, out));
            }
        }
        Err(SealedError::Contended {
            key: key.to_owned(),
        }
        .into())
    }

    fn open_as<T: DeserializeOwned>(&self, key: &str, sealed: &[u8]) -> Result<T, SealedError> {
        let plain = self
            .barrier
            .open(key, sealed)
            .map_err(|source| SealedError::Barrier {
                key: key.to_owned(),
                source,
            })?;
        serde_json::from_slice(&plain).map_err(|e| SealedError::Decode {
            key: key.to_owned(),
            message: e.to_string(),
        })
    }

    /// Seals and writes `value` at `key` only if `key` is new, atomically;
    /// whether it was written. For records that must never be overwritten.
    pub async fn create<T: Serialize>(&self, key: &str, value: &T) -> Result<bool, SealedError> {
        let sealed = self.seal(key, value)?;
        Ok(self.storage.put_new(key, &sealed).await?)
    }

    /// Deletes `key`; whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool, SealedError> {
        Ok(self.storage.delete(key).await?)
    }

    /// Copies the value at `from` to `to`, opened and sealed again under its
    /// new key (a sealed value names its key: a raw copy would not open);
    /// whether there was a value. The plaintext never leaves zeroizing memory.
    pub async fn copy(&self, from: &str, to: &str) -> Result<bool, SealedError> {
        let Some(sealed) = self.storage.get(from).await? else {
            return Ok(false);
        };
        let barrier_error = |key: &str| {
            let key = key.to_owned();
            move |source| SealedError::Barrier { key, source }
        };
        let plain = self
            .barrier
            .open(from, &sealed)
            .map_err(barrier_error(from))?;
        let resealed = self.barrier.seal(to, &plain).map_err(barrier_error(to))?;
        self.storage.put(to, &resealed).await?;
        Ok(true)
    }

    /// Keys under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, SealedError> {
        Ok(self.storage.list(prefix).await?)
    }
}
