//! The `local` seal: a 256-bit key in a file created with mode 0600. Fine
//! for development and single hosts; use an HSM or a cloud KMS where the
//! key must not share a disk with the data.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{Seal, SealError, SealKind, WrappedBlob, aead};

/// A key held in a local file.
pub struct LocalSeal {
    path: PathBuf,
    key: Zeroizing<[u8; 32]>,
    key_id: String,
}

impl std::fmt::Debug for LocalSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSeal")
            .field("path", &self.path)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

fn unavailable(cause: String) -> SealError {
    SealError::Unavailable {
        provider: SealKind::Local,
        cause,
    }
}

impl LocalSeal {
    fn with_key(path: &Path, key: Zeroizing<[u8; 32]>) -> Self {
        Self {
            path: path.to_owned(),
            key_id: aead::fingerprint(&key),
            key,
        }
    }

    /// Creates a new key file at `path` (mode 0600); fails if one exists.
    pub fn create(path: &Path) -> Result<Self, SealError> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut()).map_err(|e| unavailable(format!("no randomness: {e}")))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| unavailable(format!("cannot create {}: {e}", path.display())))?;
        let text = Zeroizing::new(hex::encode(key.as_ref()));
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| unavailable(format!("cannot write {}: {e}", path.display())))?;
        Ok(Self::with_key(path, key))
    }

    /// Opens the key file at `path`; refuses one that others can read.
    pub fn open(path: &Path) -> Result<Self, SealError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| unavailable(format!("cannot read {}: {e}", path.display())))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(unavailable(format!(
                "{} is readable by other users; run `chmod 600 {}`",
                path.display(),
                path.display()
            )));
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| unavailable(format!("cannot read {}: {e}", path.display())))?,
        );
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), key.as_mut()).map_err(|_| {
            unavailable(format!(
                "{} does not hold a 256-bit hex key",
                path.display()
            ))
        })?;
        Ok(Self::with_key(path, key))
    }

    /// Opens the key file, creating it first if it does not exist.
    pub fn open_or_create(path: &Path) -> Result<Self, SealError> {
        if path.exists() {
            Self::open(path)
        } else {
            Self::create(path)
        }
    }

    /// Unwraps a keyring stored by the broker before seals wrapped a root
    /// key (the key file wrapped the keyring itself, with this associated
    /// data); used once, to move such storage to the root key layout.
    pub(crate) fn open_legacy(&self, wrapped: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        aead::open(&self.key, wrapped, b"broker keyring v1")
    }
}

#[async_trait::async_trait]
impl Seal for LocalSeal {
    fn kind(&self) -> SealKind {
        SealKind::Local
    }

    async fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<WrappedBlob, SealError> {
        Ok(WrappedBlob {
            provider: SealKind::Local,
            key_id: self.key_id.clone(),
            ciphertext: aead::seal(&self.key, plaintext, aad).map_err(unavailable)?,
        })
    }

    async fn decrypt(
        &self,
        blob: &WrappedBlob,
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if blob.provider != SealKind::Local {
            return Err(SealError::Mismatch {
                provider: SealKind::Local,
                found: blob.provider.to_string(),
            });
        }
        aead::open(&self.key, &blob.ciphertext, aad).ok_or(SealError::Unwrap {
            provider: SealKind::Local,
        })
    }

    fn as_local(&self) -> Option<&LocalSeal> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn key_file_is_private_and_wraps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kms.key");
        let seal = LocalSeal::create(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let wrapped = seal.encrypt(b"root key", b"aad").await.unwrap();
        let again = LocalSeal::open(&path).unwrap();
        assert_eq!(wrapped.key_id, again.key_id);
        assert_eq!(
            &*again.decrypt(&wrapped, b"aad").await.unwrap(),
            b"root key"
        );
        assert!(matches!(
            again.decrypt(&wrapped, b"other").await,
            Err(SealError::Unwrap { .. })
        ));
        assert!(LocalSeal::create(&path).is_err(), "never overwrites a key");
        let other = LocalSeal::create(&dir.path().join("other.key")).unwrap();
        assert!(matches!(
            other.decrypt(&wrapped, b"aad").await,
            Err(SealError::Unwrap { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = LocalSeal::open(&path).unwrap_err().to_string();
        assert!(refused.contains("local seal unavailable"), "{refused}");
    }
}
