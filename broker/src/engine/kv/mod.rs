//! The `kv` secrets engine, Vault-compatible: secrets stored as JSON
//! objects at paths the client chooses, either as one value per path
//! (version 1) or as numbered versions with metadata, check-and-set,
//! soft deletion and destruction (version 2).
//!
//! ```text
//! POST sys/mounts/secret {"type": "kv", "options": {"version": "2"}}   (or "type": "kv-v2")
//! POST secret/data/app/db {"data": {"password": "s3cr3t"}, "options": {"cas": 0}}
//! GET  secret/data/app/db            → {"data": {"data": {...}, "metadata": {"version": 1, ...}}}
//! ```
//!
//! A mount's version is its `options.version` ("1", the default, or "2"),
//! fixed when it is enabled; it chooses the path table the mount serves
//! ([`paths`]): version 1 reads and writes at any path (`kv/<path>`),
//! version 2 under `data/`, `metadata/`, `delete/`, `undelete/`,
//! `destroy/`, `subkeys/` and `config`, so policies name those as in Vault
//! (`secret/data/app/*`). Storage is the mount's sealed view ([`store`]):
//! a version 2 secret's metadata and each of its versions are separate
//! records. Paths are checked by [`path`], the bookkeeping of versions is
//! [`metadata`], merge patches and subkeys are [`patch`].
//!
//! A secret's values must never reach a log line, an error message or a
//! `Debug` output; the audit log HMACs them (every string and number, as
//! no field here is marked clear).

mod metadata;
mod path;
mod patch;
mod paths;
mod stamp;
mod store;
mod v1;
mod v2;

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::framework::{
    Backend, Error, MountOptions, PathInfo, PatternError, Reply, Request, Services, Table,
};
use path::{PathError, SecretPath};

/// The largest value a secret version may hold, as JSON, in bytes. Vault's
/// own bound comes from its storage (512 KiB on Consul); ours is the same,
/// below the API's 1 MiB request limit so a merge patch cannot grow a
/// secret past it either.
pub const MAX_VALUE_BYTES: usize = 512 * 1024;

/// Why a KV request is refused. Every case is the client's to fix (400),
/// with Vault's words where Vault has them; none quotes a secret's value.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The path is not one a secret may have.
    #[error(transparent)]
    Path(#[from] PathError),
    /// `options.cas` is not the secret's current version.
    #[error("check-and-set parameter did not match the current version")]
    CasMismatch,
    /// The mount or the secret requires `options.cas`, and none was given.
    #[error("check-and-set parameter required for this call")]
    CasRequired,
    /// `options.cas` is not a whole number.
    #[error("error parsing check-and-set parameter")]
    CasInvalid,
    /// A version 2 write without `data`.
    #[error("no data provided")]
    NoData,
    /// A version 1 write of an empty object.
    #[error("missing data fields")]
    NoFields,
    /// A value past [`MAX_VALUE_BYTES`].
    #[error("data: the secret is {0} bytes as JSON; a secret version holds at most {MAX_VALUE_BYTES}")]
    TooLarge(usize),
    /// `versions` is empty.
    #[error("No version number provided")]
    NoVersions,
    /// `versions` is not a list of whole numbers, or too long.
    #[error("versions: {0}")]
    Versions(String),
    /// `custom_metadata` breaks Vault's bounds.
    #[error("custom_metadata validation failed: {0}")]
    CustomMetadata(String),
    /// `options.version` of a new mount is neither "1" nor "2".
    #[error("options: invalid kv version {0:?}: a kv mount is version \"1\" (the default) or \"2\"")]
    MountVersion(String),
}

impl From<KvError> for Error {
    fn from(e: KvError) -> Self {
        let field = match &e {
            KvError::Path(_) => "path",
            KvError::TooLarge(_) => "data",
            KvError::Versions(_) => "versions",
            KvError::CustomMetadata(_) => "custom_metadata",
            KvError::MountVersion(_) => "options",
            // Vault's words exactly, as clients match them: no field name
            // put before them.
            KvError::CasMismatch
            | KvError::CasRequired
            | KvError::CasInvalid
            | KvError::NoData
            | KvError::NoVersions
            | KvError::NoFields => return Error::invalid(e.to_string()),
        };
        Error::field(field, e.to_string())
    }
}

/// Which KV a mount is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// One value per path.
    V1,
    /// Versions, metadata, check-and-set.
    V2,
}

impl Version {
    /// The version `options` ask for, as Vault reads it: none (or `""`) is
    /// version 1.
    pub fn of(options: &MountOptions) -> Result<Self, KvError> {
        match options.get("version").map(String::as_str) {
            None | Some("" | "1") => Ok(Self::V1),
            Some("2") => Ok(Self::V2),
            Some(other) => Err(KvError::MountVersion(
                other.chars().take(16).collect::<String>(),
            )),
        }
    }
}

/// The `kv` mount type: both versions' tables, and the locks that
/// serialize writes to one secret.
#[derive(Debug)]
pub struct KvBackend {
    v1: Table<Self>,
    v2: Table<Self>,
    locks: store::Locks,
}

/// Builds the backend: the registry's constructor for this mount type.
pub fn factory(_services: &Services) -> Result<Arc<dyn Backend>, PatternError> {
    Ok(Arc::new(KvBackend::new()?))
}

impl KvBackend {
    /// Both tables; KV needs none of the host's services.
    fn new() -> Result<Self, PatternError> {
        Ok(Self {
            v1: Table::new(paths::v1())?,
            v2: Table::new(paths::v2())?,
            locks: store::Locks::default(),
        })
    }

    /// The table of a mount with `options`. A stored mount's version was
    /// checked when it was enabled; anything but "2" is version 1.
    fn table(&self, options: &MountOptions) -> &Table<Self> {
        match Version::of(options) {
            Ok(Version::V2) => &self.v2,
            _ => &self.v1,
        }
    }
}

#[async_trait::async_trait]
impl Backend for KvBackend {
    fn description(&self) -> &'static str {
        "key/value secrets: one value per path (version 1) or versioned (version 2)"
    }

    fn paths(&self) -> &[PathInfo] {
        self.v1.paths()
    }

    fn paths_for(&self, options: &MountOptions) -> &[PathInfo] {
        self.table(options).paths()
    }

    fn tables(&self) -> Vec<&[PathInfo]> {
        vec![self.v1.paths(), self.v2.paths()]
    }

    fn mount_options(&self, options: MountOptions) -> Result<MountOptions, Error> {
        Version::of(&options)?;
        Ok(options)
    }

    async fn exists(&self, index: usize, request: &Request) -> Result<Option<bool>, Error> {
        self.table(&request.mount.options)
            .exists(self, index, request)
            .await
    }

    async fn handle(&self, index: usize, request: &Request) -> Result<Reply, Error> {
        self.table(&request.mount.options)
            .call(self, index, request)
            .await
    }
}

/// The secret a request names in its `{path+}` parameter.
fn secret_path(req: &Request) -> Result<SecretPath, Error> {
    SecretPath::parse(req.param("path")?).map_err(|e| KvError::from(e).into())
}

/// The folder a list names: its `{path+}` parameter, or the mount's top on
/// a path without one.
fn list_folder(req: &Request) -> Result<&str, Error> {
    path::folder(req.params.get("path").unwrap_or_default()).map_err(|e| KvError::from(e).into())
}

/// Refuses a value past [`MAX_VALUE_BYTES`].
fn check_size(value: &Map<String, Value>) -> Result<(), KvError> {
    // Counted without keeping the text: it is the secret.
    let mut counter = ByteCount(0);
    if serde_json::to_writer(&mut counter, value).is_err() {
        return Err(KvError::TooLarge(usize::MAX));
    }
    if counter.0 > MAX_VALUE_BYTES {
        return Err(KvError::TooLarge(counter.0));
    }
    Ok(())
}

/// A writer that only counts.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Access;
    use serde_json::json;

    #[test]
    fn a_mounts_version_is_1_or_2() {
        let options = |v: &str| MountOptions::from([("version".to_owned(), v.to_owned())]);
        assert_eq!(Version::of(&MountOptions::new()).unwrap(), Version::V1);
        assert_eq!(Version::of(&options("")).unwrap(), Version::V1);
        assert_eq!(Version::of(&options("1")).unwrap(), Version::V1);
        assert_eq!(Version::of(&options("2")).unwrap(), Version::V2);
        for bad in ["3", "v2", " 2", "02"] {
            let e = Error::from(Version::of(&options(bad)).unwrap_err());
            assert_eq!(e.field_name(), Some("options"), "{bad}");
        }
    }

    #[test]
    fn both_tables_build_and_none_is_open() {
        let backend = KvBackend::new().unwrap();
        for table in backend.tables() {
            assert!(!table.is_empty());
            assert!(table.iter().all(|p| p.access == Access::Token));
        }
        let v2 = MountOptions::from([("version".to_owned(), "2".to_owned())]);
        assert!(crate::framework::find(backend.paths_for(&v2), "data/a/b").is_some());
        assert!(crate::framework::find(backend.paths_for(&v2), "a/b").is_none());
        assert!(crate::framework::find(backend.paths(), "data/a/b").is_some());
        assert!(backend.mount_options(v2).is_ok());
    }

    #[test]
    fn a_values_size_is_bounded() {
        let small = json!({ "password": "x" });
        assert!(check_size(small.as_object().unwrap()).is_ok());
        let big = json!({ "blob": "x".repeat(MAX_VALUE_BYTES) });
        let e = check_size(big.as_object().unwrap()).unwrap_err();
        assert!(matches!(e, KvError::TooLarge(n) if n > MAX_VALUE_BYTES));
        assert!(!e.to_string().contains("xxxx"));
    }
}
