//! A mount's storage: sealed entries under one root, `logical/<uuid>/`,
//! so a mount's data follows its UUID, not its path, and two mounts can
//! never read each other's keys.
//!
//! Keys given to a view are relative to its root. Folders are whole path
//! segments: listing or deleting `role` never reaches `roles/…`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::barrier::{SealedError, SealedStorage};

/// Where mounts' storage lives: `logical/<mount uuid>/`.
pub const LOGICAL: &str = "logical/";

/// Sealed storage seen from one root.
#[derive(Debug, Clone)]
pub struct StorageView {
    store: SealedStorage,
    /// Ends with `/`.
    root: String,
}

impl StorageView {
    /// The view of `store` under `root` (a trailing `/` is added).
    pub fn new(store: SealedStorage, root: &str) -> Self {
        let mut root = root.trim_end_matches('/').to_owned();
        root.push('/');
        Self { store, root }
    }

    /// The view of the mount whose UUID is `uuid`.
    pub fn for_mount(store: SealedStorage, uuid: &str) -> Self {
        Self::new(store, &format!("{LOGICAL}{uuid}"))
    }

    /// The root, ending with `/`.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The full storage key of `key`.
    pub fn key(&self, key: &str) -> String {
        format!("{}{}", self.root, key.trim_start_matches('/'))
    }

    /// The sealed storage underneath (for the lease store).
    pub fn sealed(&self) -> &SealedStorage {
        &self.store
    }

    /// Reads and opens `key`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SealedError> {
        self.store.get(&self.key(key)).await
    }

    /// Seals and writes `value` at `key`.
    pub async fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), SealedError> {
        self.store.put(&self.key(key), value).await
    }

    /// Writes `value` at `key` only if `key` is new; whether it was written.
    pub async fn create<T: Serialize>(&self, key: &str, value: &T) -> Result<bool, SealedError> {
        self.store.create(&self.key(key), value).await
    }

    /// Deletes `key`; whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool, SealedError> {
        self.store.delete(&self.key(key)).await
    }

    /// The entries one level below `folder`: names, and folders with a
    /// trailing `/`, sorted bytewise, each once.
    pub async fn list(&self, folder: &str) -> Result<Vec<String>, SealedError> {
        let prefix = self.folder(folder);
        let mut names: Vec<String> = self
            .store
            .list(&prefix)
            .await?
            .iter()
            .filter_map(|k| k.strip_prefix(prefix.as_str()))
            .filter(|tail| !tail.is_empty())
            .map(|tail| match tail.split_once('/') {
                Some((head, _)) => format!("{head}/"),
                None => tail.to_owned(),
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    /// Every full key below `folder` (`""`: the whole view).
    pub async fn keys(&self, folder: &str) -> Result<Vec<String>, SealedError> {
        self.store.list(&self.folder(folder)).await
    }

    /// Deletes everything below `folder` (`""`: the whole view); how many
    /// entries went.
    pub async fn delete_all(&self, folder: &str) -> Result<usize, SealedError> {
        let keys = self.keys(folder).await?;
        for key in &keys {
            self.store.delete(key).await?;
        }
        Ok(keys.len())
    }

    /// The full prefix of `folder`, as a whole segment.
    fn folder(&self, folder: &str) -> String {
        let folder = folder.trim_matches('/');
        if folder.is_empty() {
            self.root.clone()
        } else {
            format!("{}{folder}/", self.root)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    async fn store() -> (tempfile::TempDir, SealedStorage) {
        let dir = tempfile::tempdir().unwrap();
        let storage: crate::storage::Storage = Arc::new(
            crate::storage::SqliteBackend::open(&dir.path().join("db"))
                .await
                .unwrap(),
        );
        let barrier = crate::barrier::Barrier::new(crate::barrier::Keyring::generate().unwrap());
        (dir, SealedStorage::new(storage, Arc::new(barrier)))
    }

    #[tokio::test]
    async fn folders_are_whole_segments_and_views_do_not_overlap() {
        let (_dir, store) = store().await;
        let a = StorageView::for_mount(store.clone(), "a");
        let ab = StorageView::for_mount(store.clone(), "ab");
        for key in ["role/x", "role/y", "roles/z", "role/deep/w"] {
            a.put(key, &1).await.unwrap();
        }
        ab.put("role/other", &2).await.unwrap();
        assert_eq!(a.list("role").await.unwrap(), ["deep/", "x", "y"]);
        assert_eq!(a.list("role/").await.unwrap(), ["deep/", "x", "y"]);
        assert_eq!(a.list("").await.unwrap(), ["role/", "roles/"]);
        assert_eq!(ab.list("role").await.unwrap(), ["other"]);
        // Deleting a folder never reaches a sibling sharing its prefix.
        assert_eq!(a.delete_all("role").await.unwrap(), 3);
        assert_eq!(a.list("").await.unwrap(), ["roles/"]);
        // Deleting a whole view leaves the other mount's.
        assert_eq!(a.delete_all("").await.unwrap(), 1);
        assert_eq!(ab.get::<i32>("role/other").await.unwrap(), Some(2));
        // A value moved elsewhere is sealed under its new key.
        assert!(
            store
                .copy(&ab.key("role/other"), &a.key("moved"))
                .await
                .unwrap()
        );
        assert_eq!(a.get::<i32>("moved").await.unwrap(), Some(2));
    }
}
