//! The `local` KMS provider: a 256-bit key in a file created with mode
//! 0600. Fine for development and single hosts; use an HSM or a cloud KMS
//! where the key must not share a disk with the data.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use super::{Kms, KmsError};

/// Binds wrapped blobs to their purpose.
const AAD: &[u8] = b"broker keyring v1";

/// A key held in a local file.
pub struct LocalKms {
    path: PathBuf,
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for LocalKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKms")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl LocalKms {
    /// Creates a new key file at `path` (mode 0600); fails if one exists.
    pub fn create(path: &Path) -> Result<Self, KmsError> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut()).map_err(|e| KmsError::Key(format!("no randomness: {e}")))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| KmsError::Key(format!("cannot create {}: {e}", path.display())))?;
        let text = Zeroizing::new(hex::encode(key.as_ref()));
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| KmsError::Key(format!("cannot write {}: {e}", path.display())))?;
        Ok(Self {
            path: path.to_owned(),
            key,
        })
    }

    /// Opens the key file at `path`; refuses one that others can read.
    pub fn open(path: &Path) -> Result<Self, KmsError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| KmsError::Key(format!("cannot read {}: {e}", path.display())))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(KmsError::Key(format!(
                "{} is readable by other users; run `chmod 600 {}`",
                path.display(),
                path.display()
            )));
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| KmsError::Key(format!("cannot read {}: {e}", path.display())))?,
        );
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), key.as_mut()).map_err(|_| {
            KmsError::Key(format!(
                "{} does not hold a 256-bit hex key",
                path.display()
            ))
        })?;
        Ok(Self {
            path: path.to_owned(),
            key,
        })
    }

    /// Opens the key file, creating it first if it does not exist.
    pub fn open_or_create(path: &Path) -> Result<Self, KmsError> {
        if path.exists() {
            Self::open(path)
        } else {
            Self::create(path)
        }
    }
}

impl Kms for LocalKms {
    fn wrap(&self, plaintext: &[u8]) -> Result<Vec<u8>, KmsError> {
        let cipher = Aes256Gcm::new_from_slice(self.key.as_ref())
            .map_err(|_| KmsError::Key("bad key length".into()))?;
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| KmsError::Key(format!("no randomness: {e}")))?;
        let mut out = nonce.to_vec();
        out.extend(
            cipher
                .encrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: plaintext,
                        aad: AAD,
                    },
                )
                .map_err(|_| KmsError::Key("encryption failed".into()))?,
        );
        Ok(out)
    }

    fn unwrap(&self, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        if wrapped.len() < 12 + 16 {
            return Err(KmsError::Unwrap);
        }
        let cipher = Aes256Gcm::new_from_slice(self.key.as_ref())
            .map_err(|_| KmsError::Key("bad key length".into()))?;
        let (nonce, ciphertext) = wrapped.split_at(12);
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: AAD,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| KmsError::Unwrap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_private_and_wraps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kms.key");
        let kms = LocalKms::create(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let wrapped = kms.wrap(b"keyring").unwrap();
        let again = LocalKms::open(&path).unwrap();
        assert_eq!(&*again.unwrap(&wrapped).unwrap(), b"keyring");
        assert!(LocalKms::create(&path).is_err(), "never overwrites a key");
        let other = LocalKms::create(&dir.path().join("other.key")).unwrap();
        assert!(matches!(other.unwrap(&wrapped), Err(KmsError::Unwrap)));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            LocalKms::open(&path).is_err(),
            "a world-readable key is refused"
        );
    }
}
