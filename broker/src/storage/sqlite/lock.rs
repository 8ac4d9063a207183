//! One broker process per SQLite file, enforced.
//!
//! The backend keeps the expiration worker's claims and a read cache in
//! memory, which is sound only if no other process writes the file: a second
//! broker on the same file would revoke the same leases and serve configs
//! the other had changed. So opening the backend takes an exclusive `flock`
//! on `<file>.lock`, held for as long as the backend lives; the kernel
//! releases it when the process ends, however it ends.
//!
//! The lock is on a file of its own, never on the database file: closing
//! any descriptor of the database file would drop the POSIX locks SQLite
//! holds on it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use crate::storage::StorageError;

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub(super) struct FileLock {
    _file: File,
}

/// The lock file beside the database at `path`.
pub(super) fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl FileLock {
    /// Takes the lock for the database at `path`, or says who has it.
    pub(super) fn acquire(path: &Path) -> Result<Self, StorageError> {
        let lock = lock_path(path);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&lock)
            .map_err(|e| StorageError::Locked(format!("cannot open {}: {e}", lock.display())))?;
        flock(&file, FlockOperation::NonBlockingLockExclusive).map_err(|e| {
            if e == rustix::io::Errno::WOULDBLOCK {
                StorageError::Locked(format!(
                    "{} is in use by another broker process (it holds {}); \
                     several nodes share PostgreSQL storage, not an SQLite file",
                    path.display(),
                    lock.display()
                ))
            } else {
                StorageError::Locked(format!("cannot lock {}: {e}", lock.display()))
            }
        })?;
        Ok(Self { _file: file })
    }
}
