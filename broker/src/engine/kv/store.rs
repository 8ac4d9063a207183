//! Where a KV mount keeps things in its storage view (already rooted at
//! the mount's UUID and sealed by the barrier), and the locks that let one
//! write at a time change a secret.
//!
//! ```text
//! data/<path>                      version 1: the secret's value
//! config                           version 2: the mount's settings
//! metadata/<path>                  version 2: a secret's metadata (its versions)
//! versions/<sha256(path)>/<n>      version 2: the value of version n
//! ```
//!
//! Metadata and each version are separate records, so a read opens the
//! metadata and the one version it wants, never the history. Versions are
//! filed under a hash of the path: one secret's folder can then never hold
//! another's (`a`'s versions and `a/1`'s would otherwise share `a/`), and
//! the key has a fixed length whatever the path. Metadata keeps the path
//! as written, so listing `metadata/` lists secrets and folders as Vault does.

use sha2::{Digest, Sha256};

use super::path::SecretPath;

/// A version 2 mount's settings.
pub const CONFIG: &str = "config";

/// The record of a version 1 secret.
pub fn v1_key(path: &SecretPath) -> String {
    format!("data/{path}")
}

/// The folder version 1 lists for `folder` (`""`: the top).
pub fn v1_folder(folder: &str) -> String {
    format!("data/{folder}")
}

/// A version 2 secret's metadata.
pub fn metadata_key(path: &SecretPath) -> String {
    format!("metadata/{path}")
}

/// The folder version 2 lists for `folder` (`""`: the top).
pub fn metadata_folder(folder: &str) -> String {
    format!("metadata/{folder}")
}

/// The folder of a version 2 secret's versions.
pub fn versions_folder(path: &SecretPath) -> String {
    format!("versions/{}", hex::encode(Sha256::digest(path.as_str())))
}

/// The value of version `n` of a version 2 secret.
pub fn version_key(path: &SecretPath, n: u64) -> String {
    format!("{}/{n}", versions_folder(path))
}

/// How many locks writes share. Two secrets that hash to the same one
/// wait for each other, which costs only time.
const STRIPES: usize = 64;

/// Locks that serialize the writes to one secret (read, change, write its
/// metadata) within this process. Vault does the same, per key, on its one
/// active node. Several broker nodes on one database do not share them:
/// two nodes writing one secret at the same instant may each record a
/// version, the later metadata write winning.
#[derive(Debug)]
pub struct Locks {
    stripes: [tokio::sync::Mutex<()>; STRIPES],
}

impl Default for Locks {
    fn default() -> Self {
        Self {
            stripes: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
        }
    }
}

impl Locks {
    /// Waits for, and holds, the lock of `name` on the mount `uuid`.
    pub async fn lock(&self, uuid: &str, name: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let mut hasher = Sha256::new();
        hasher.update(uuid.as_bytes());
        hasher.update([0]);
        hasher.update(name.as_bytes());
        let digest = hasher.finalize();
        self.stripes[usize::from(digest[0]) % STRIPES].lock().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secrets_versions_never_share_a_folder_with_another_secret() {
        let a = SecretPath::parse("a").unwrap();
        let a1 = SecretPath::parse("a/1").unwrap();
        assert_ne!(versions_folder(&a), versions_folder(&a1));
        assert!(!version_key(&a1, 1).starts_with(&format!("{}/", versions_folder(&a))));
        assert_eq!(version_key(&a, 3), format!("{}/3", versions_folder(&a)));
        assert_eq!(metadata_key(&a1), "metadata/a/1");
        assert_eq!(v1_key(&a1), "data/a/1");
    }
}
