//! The storage layout's version, and the upgrade from older layouts.
//!
//! Layout 1 (up to this change) kept a mount's entries under
//! `mounts/<mount path>/`: a remount would have lost them, and a mount
//! enabled again at a path would have read its predecessor's leftovers.
//! Layout 2 keys them by the mount's UUID, `logical/<uuid>/`, as Vault
//! does. The upgrade runs at open, before anything is served:
//!
//! 1. a mount without a UUID (written before mounts had one) gets one, and
//!    the mount table is saved;
//! 2. every entry is copied to its new key (sealed again: a sealed value
//!    names its key);
//! 3. the layout version is written;
//! 4. the old entries are deleted.
//!
//! A crash before 3 repeats the copy on the next start (the copies are
//! overwritten with the same values); after 3, step 4 runs again at every
//! open until nothing is left under `mounts/`.

use super::{CoreError, MOUNTS_KEY, MountTable, random_uuid};
use crate::barrier::SealedStorage;
use crate::framework::StorageView;

const LAYOUT_KEY: &str = "core/storage-layout";
/// Where layout 1 kept mounts' entries.
const LEGACY_MOUNTS: &str = "mounts/";
/// The layout this version writes.
const CURRENT: u32 = 2;

/// Records that `store` (just initialized) has the current layout.
pub(super) async fn mark_current(store: &SealedStorage) -> Result<(), CoreError> {
    store.put(LAYOUT_KEY, &CURRENT).await?;
    Ok(())
}

/// Brings `store` to the current layout (see the module docs).
pub(super) async fn upgrade(
    store: &SealedStorage,
    mounts: &mut MountTable,
) -> Result<(), CoreError> {
    let layout: u32 = store.get(LAYOUT_KEY).await?.unwrap_or(1);
    if layout > CURRENT {
        return Err(CoreError::Damaged(
            "the storage was written by a newer broker; run that version",
        ));
    }
    if layout < CURRENT {
        if mounts.values().any(|e| e.uuid.is_empty()) {
            for entry in mounts.values_mut().filter(|e| e.uuid.is_empty()) {
                entry.uuid = random_uuid();
            }
            store.put(MOUNTS_KEY, &*mounts).await?;
        }
        let mut moved = 0usize;
        for (path, entry) in mounts.iter() {
            let old_root = format!("{LEGACY_MOUNTS}{path}");
            let new = StorageView::for_mount(store.clone(), &entry.uuid);
            for key in store.list(&old_root).await? {
                let Some(rest) = key.strip_prefix(&old_root) else {
                    continue;
                };
                if store.copy(&key, &new.key(rest)).await? {
                    moved += 1;
                }
            }
        }
        store.put(LAYOUT_KEY, &CURRENT).await?;
        tracing::info!(
            mounts = mounts.len(),
            entries = moved,
            "storage upgraded: mounts' entries are now keyed by mount UUID"
        );
    }
    // Layout 1's entries, copied already: what a crash left, and what
    // belonged to mounts disabled before the upgrade.
    for key in store.list(LEGACY_MOUNTS).await? {
        store.delete(&key).await?;
    }
    Ok(())
}
