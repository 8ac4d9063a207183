//! KV version 2's handlers: `config`, `data/<path>` (read a version,
//! write with check-and-set, merge-patch, soft-delete the newest),
//! `delete/`, `undelete/` and `destroy/` of chosen versions,
//! `metadata/<path>` (read, write, patch, delete with every version, list)
//! and `subkeys/<path>`.
//!
//! Every change to a secret's metadata holds the secret's lock from the
//! read of its metadata to the write, so two writes never get one version
//! number. A new version's value is stored before the metadata that names
//! it: a crash between the two leaves a value no metadata names, which the
//! next write of that version number replaces. Responses are Vault's,
//! shape for shape; a version that was deleted or destroyed answers 404
//! with its metadata, as Vault's does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::metadata::{Config, KeyMetadata, MAX_VERSIONS, check_custom_metadata};
use super::path::SecretPath;
use super::patch::{merge_patch, subkeys};
use super::stamp::Timestamp;
use super::{KvBackend, KvError, check_size, list_folder, secret_path, store};
use crate::duration::Ttl;
use crate::framework::{Error, Reply, Request, StorageView, data, list, no_content};

/// One version's value, as stored. `Debug` shows nothing of it.
#[derive(Serialize, Deserialize)]
struct VersionRecord {
    data: Map<String, Value>,
}

impl std::fmt::Debug for VersionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionRecord").finish_non_exhaustive()
    }
}

/// The most version numbers one `delete`, `undelete` or `destroy` takes.
const MAX_VERSIONS_PER_REQUEST: usize = MAX_VERSIONS as usize;

/// The lock name of the mount's settings (no secret's path starts with a
/// NUL).
const CONFIG_LOCK: &str = "\0config";

async fn load_config(view: &StorageView) -> Result<Config, Error> {
    Ok(view.get(store::CONFIG).await?.unwrap_or_default())
}

async fn load_metadata(
    view: &StorageView,
    path: &SecretPath,
) -> Result<Option<KeyMetadata>, Error> {
    Ok(view.get(&store::metadata_key(path)).await?)
}

/// `options.cas`, if given: a whole number, or its text.
fn cas_option(options: Option<&Value>) -> Result<Option<u64>, KvError> {
    let Some(Value::Object(options)) = options else {
        return Ok(None);
    };
    match options.get("cas") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 9_007_199_254_740_992.0)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or(KvError::CasInvalid),
        Some(Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| KvError::CasInvalid),
        Some(_) => Err(KvError::CasInvalid),
    }
}

/// The `data` object of a write or a patch.
fn data_field(req: &Request) -> Result<&Map<String, Value>, KvError> {
    match req.data.get("data") {
        Some(Value::Object(data)) => Ok(data),
        _ => Err(KvError::NoData),
    }
}

/// `versions`: a list of whole numbers (or their text), a comma-separated
/// string of them, or one number; at least one.
fn versions_field(req: &Request) -> Result<Vec<u64>, KvError> {
    let bad = || KvError::Versions("versions must be whole numbers".into());
    let one = |v: &Value| match v {
        Value::Number(n) => n.as_u64().ok_or_else(bad),
        Value::String(s) => s.trim().parse::<u64>().map_err(|_| bad()),
        _ => Err(bad()),
    };
    let versions: Vec<u64> = match req.data.get("versions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u64>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?,
        Some(Value::Array(items)) => items.iter().map(one).collect::<Result<_, _>>()?,
        Some(v) => vec![one(v)?],
    };
    if versions.is_empty() {
        return Err(KvError::NoVersions);
    }
    if versions.len() > MAX_VERSIONS_PER_REQUEST {
        return Err(KvError::Versions(format!(
            "at most {MAX_VERSIONS_PER_REQUEST} versions in one request"
        )));
    }
    Ok(versions)
}

/// `custom_metadata` as text to text (a number or boolean is taken as its
/// text, as Vault does); a `null` value is `None`: a key a metadata patch
/// removes.
fn custom_metadata_field(
    req: &Request,
) -> Result<Option<BTreeMap<String, Option<String>>>, KvError> {
    let bad = || KvError::CustomMetadata("custom_metadata must map keys to text".into());
    match req.data.get("custom_metadata") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    Value::Bool(b) => Some(b.to_string()),
                    Value::Null => None,
                    _ => return Err(bad()),
                };
                Ok((k.clone(), v))
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err(bad()),
    }
}

/// A signed duration (`delete_version_after` of `config`): seconds, or
/// text such as `"1h"`; negative (`-1`, `"-1s"`) turns it off.
fn signed_duration(req: &Request, name: &str) -> Result<Option<i64>, Error> {
    let bad = |why: String| Error::field(name, format!("{name}: {why}"));
    let secs = |t: Ttl| i64::try_from(t.secs()).unwrap_or(i64::MAX);
    match req.data.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(s) if s < 0 => Ok(Some(-1)),
            Some(s) => Ttl::from_secs(s.unsigned_abs())
                .map(|t| Some(secs(t)))
                .map_err(|e| bad(e.to_string())),
            None => Err(bad("must be a whole number of seconds".into())),
        },
        Some(Value::String(s)) => match s.trim().strip_prefix('-') {
            // Any negative value turns it off; its size does not matter.
            Some(rest) => Ttl::parse(rest)
                .map(|_| Some(-1))
                .map_err(|e| bad(e.to_string())),
            None => Ttl::parse(s)
                .map(|t| Some(secs(t)))
                .map_err(|e| bad(e.to_string())),
        },
        Some(_) => Err(bad("must be a duration".into())),
    }
}

impl KvBackend {
    // --- config ---------------------------------------------------------

    pub(super) async fn config_read(&self, req: &Request) -> Result<Reply, Error> {
        Ok(data(load_config(&req.mount.storage).await?.to_json()))
    }

    pub(super) async fn config_write(&self, req: &Request) -> Result<Reply, Error> {
        let max_versions = req.uint("max_versions", u64::from(MAX_VERSIONS))?;
        let cas_required = req.bool("cas_required")?;
        let delete_version_after = signed_duration(req, "delete_version_after")?;
        if max_versions.is_none() && cas_required.is_none() && delete_version_after.is_none() {
            return Ok(no_content());
        }
        let view = &req.mount.storage;
        let _held = self.locks.lock(&req.mount.uuid, CONFIG_LOCK).await;
        let mut config = load_config(view).await?;
        if let Some(m) = max_versions {
            config.max_versions = u32::try_from(m).unwrap_or(MAX_VERSIONS);
        }
        if let Some(c) = cas_required {
            config.cas_required = c;
        }
        if let Some(d) = delete_version_after {
            config.delete_version_after = d;
        }
        view.put(store::CONFIG, &config).await?;
        Ok(no_content())
    }

    // --- data/<path> ----------------------------------------------------

    /// Whether a write creates the secret: whether it has metadata.
    pub(super) async fn data_exists(&self, req: &Request) -> Result<bool, Error> {
        let Ok(path) = SecretPath::parse(req.param("path")?) else {
            return Ok(false);
        };
        Ok(load_metadata(&req.mount.storage, &path).await?.is_some())
    }

    pub(super) async fn data_read(&self, req: &Request) -> Result<Reply, Error> {
        Ok(match find_version(req).await? {
            Found::Readable { record, metadata } => {
                data(json!({ "data": record.data, "metadata": metadata }))
            }
            Found::Unreadable { metadata } => Reply::Missing {
                data: json!({ "data": null, "metadata": metadata }),
            },
        })
    }

    pub(super) async fn data_write(&self, req: &Request) -> Result<Reply, Error> {
        let path = secret_path(req)?;
        let value = data_field(req)?;
        check_size(value)?;
        let cas = cas_option(req.data.get("options"))?;
        let view = &req.mount.storage;
        let _held = self.locks.lock(&req.mount.uuid, path.as_str()).await;
        let config = load_config(view).await?;
        // A new secret's metadata is made when its first version is.
        let now = Timestamp::now();
        let meta = load_metadata(view, &path)
            .await?
            .unwrap_or_else(|| KeyMetadata::new(now));
        meta.check_cas(cas, &config)?;
        commit(view, &path, meta, &config, value.clone(), now).await
    }

    pub(super) async fn data_patch(&self, req: &Request) -> Result<Reply, Error> {
        let path = secret_path(req)?;
        let changes = data_field(req)?;
        let cas = cas_option(req.data.get("options"))?;
        let view = &req.mount.storage;
        let _held = self.locks.lock(&req.mount.uuid, path.as_str()).await;
        let Some(meta) = load_metadata(view, &path).await? else {
            return Err(Error::NotFound(String::new()));
        };
        let config = load_config(view).await?;
        meta.check_cas(cas, &config)?;
        let current = meta.current_version;
        let Some(vm) = meta.versions.get(&current) else {
            return Err(Error::NotFound(String::new()));
        };
        if !vm.readable(Timestamp::now()) {
            // Vault's patch answers the version's metadata itself here.
            return Ok(Reply::Missing {
                data: vm.to_json(current, &meta.custom_metadata),
            });
        }
        let Some(record) = view
            .get::<VersionRecord>(&store::version_key(&path, current))
            .await?
        else {
            return Err(Error::NotFound(String::new()));
        };
        let mut value = Value::Object(record.data);
        merge_patch(&mut value, &Value::Object(changes.clone()));
        let Value::Object(value) = value else {
            return Err(Error::Internal(
                "a merge patch of an object made a non-object".into(),
            ));
        };
        check_size(&value)?;
        commit(view, &path, meta, &config, value, Timestamp::now()).await
    }

    /// `DELETE data/<path>`: soft-deletes the newest version.
    pub(super) async fn data_delete(&self, req: &Request) -> Result<Reply, Error> {
        let path = secret_path(req)?;
        let view = &req.mount.storage;
        let _held = self.locks.lock(&req.mount.uuid, path.as_str()).await;
        let Some(mut meta) = load_metadata(view, &path).await? else {
            return Ok(no_content());
        };
        let now = Timestamp::now();
        let current = meta.current_version;
        match meta.versions.get_mut(&current) {
            Some(vm) if vm.readable(now) => vm.deletion_time = Some(now),
            _ => return Ok(no_content()),
        }
        view.put(&store::metadata_key(&path), &meta).await?;
        Ok(no_content())
    }

    // --- delete/, undelete/, destroy/ ----------------------------------

    pub(super) async fn versions_delete(&self, req: &Request) -> Result<Reply, Error> {
        let path = secret_path(req)?;
        let versions = versions_field(req)?;
        let view = &req.mount.storage;
        let _held = self.locks.lock(&req.mount.uuid, path.as_str()).await;
        let Some(mut meta) = load_metadata(view, &path).await? else {
            return Ok(no_content());
        };
        let now = Timestamp::now();
        for v in versions {
            if let Some(vm) = meta.versions.get_mut(&v)
                && vm.readable(now)
            {
                vm.deletion_time = Some(now);
            }
        }
        view.put(&store::metadata_key(&path), &meta).await?;
        Ok(no_content())
    }

    pub(super) async fn versions_undelete(&self, req: &Request) -> Result<Reply, Error> {
        let path = secret_path(req)?;
        let versions = versions_field(req)?;
        let view = &req.mount.storage;
        let _held = self.locks.lock(&req.mount.uuid, path.as_str()).await;
        let Some(mut meta) = load_metadata(view, &path).await? else {
            return Ok(no_content());
        };
        let config = load_config(view).await?;
        // Undeleted, a version's clock starts again, as in Vault.
        let deletion_time = meta.deletion_time(Timestamp::now(), &config);
        for v in versions {
            if let Some(vm) = meta.versions.get_mut(&v)
                && !vm.destroyed
            {
                vm.deletion_time = deletion_time;
            }
        }
        view.put(&store::metadata_key(&path), &meta).await?;
        Ok(no_content())
    }

    pub(super) async fn versions_destroy(&self, req: &Request) -> Result<Reply, Error> {
        let path = secret_path(req)?;
        let versions = versions_field(req)?;
        let view = &req.mount.storage;
        let _held = self.locks.lock(&req.mount.uuid, path.as_str()).await;
        let Some(mut meta) = load_metadata(view, &path).await? else {
            return Ok(no_content());
        };
        let mut gone = Vec::new();
        for v in versions {
            if let Some(vm) = meta.versions.get_mut(&v) {
                vm.destroyed = true;
                gone.push(v);
            }
        }
        // Marked first, so no read finds a value half destroyed; then the
        // values go. A failure here fails the request, which may be sent
        // again: destroying a destroyed version removes its value again.
        view.put(&store::metadata_key(&path), &meta).await?;
        for v in gone {
            view.delete(&store::version_key(&path, v)).await?;
        }
        Ok(no_content())
    }

    // --- metadata/<path> ------------------------------------------------

    /// Whether a write creates the secret's metadata.
    pub(super) async fn metadata_exists(&self, req: &Request) -> Result<bool, Error> {
        self.data_exists(req).await
    }

    pub(super) async fn metadata_read(&self, req: &Request) -> Result<Reply, Error> {
        let path = secret_path(req)?;
        match load_metadata(&req.mount.storage, &path).await? {
            Some(meta) => Ok(data(meta.to_json())),
            None => Err(Error::NotFound(String::new())),
        }
    }

    pub(super) async fn metadata_write(&self, req: &Request) -> Result<Reply, Error> {
        self.change_metadata(req, false).await
    }

    pub(super) async fn metadata_patch(&self, req: &Request) -> Result<Reply, Error> {
        self.change_metadata(req, true).await
    }

    /// A metadata write (`patch`: only to existing metadata, and a `null`
    /// in `custom_metadata` removes that key; else the given
    /// `custom_metadata` replaces the old, and the metadata is made if need
    /// be).
    async fn change_metadata(&self, req: &Request, patch: bool) -> Result<Reply, Error> {
        let path = secret_path(req)?;
        let max_versions = req.uint("max_versions", u64::from(MAX_VERSIONS))?;
        let cas_required = req.bool("cas_required")?;
        let delete_version_after = req.duration("delete_version_after")?;
        let custom = custom_metadata_field(req)?;
        if !patch
            && max_versions.is_none()
            && cas_required.is_none()
            && delete_version_after.is_none()
            && custom.is_none()
        {
            // Vault's: nothing to set, nothing made.
            return Ok(no_content());
        }
        let view = &req.mount.storage;
        let _held = self.locks.lock(&req.mount.uuid, path.as_str()).await;
        let mut meta = match load_metadata(view, &path).await? {
            Some(meta) => meta,
            None if patch => return Err(Error::NotFound(String::new())),
            None => KeyMetadata::new(Timestamp::now()),
        };
        if let Some(m) = max_versions {
            meta.max_versions = u32::try_from(m).unwrap_or(MAX_VERSIONS);
        }
        if let Some(c) = cas_required {
            meta.cas_required = c;
        }
        if let Some(d) = delete_version_after {
            meta.delete_version_after = d.as_secs();
        }
        if let Some(custom) = custom {
            if patch {
                for (key, value) in custom {
                    match value {
                        Some(value) => meta.custom_metadata.insert(key, value),
                        None => meta.custom_metadata.remove(&key),
                    };
                }
            } else {
                // A null value is an empty one here, which the check refuses.
                meta.custom_metadata = custom
                    .into_iter()
                    .map(|(k, v)| (k, v.unwrap_or_default()))
                    .collect();
            }
            check_custom_metadata(&meta.custom_metadata)?;
        }
        view.put(&store::metadata_key(&path), &meta).await?;
        Ok(no_content())
    }

    /// `DELETE metadata/<path>`: the secret, every version and its
    /// metadata, for good.
    pub(super) async fn metadata_delete(&self, req: &Request) -> Result<Reply, Error> {
        let path = secret_path(req)?;
        let view = &req.mount.storage;
        let _held = self.locks.lock(&req.mount.uuid, path.as_str()).await;
        // Values first: metadata gone first would leave values nothing
        // names. Every value under the secret goes, also one a crashed
        // write left behind.
        view.delete_all(&store::versions_folder(&path)).await?;
        view.delete(&store::metadata_key(&path)).await?;
        Ok(no_content())
    }

    pub(super) async fn metadata_list(&self, req: &Request) -> Result<Reply, Error> {
        let folder = list_folder(req)?;
        list(
            req.mount
                .storage
                .list(&store::metadata_folder(folder))
                .await?,
        )
    }

    // --- subkeys/<path> -------------------------------------------------

    pub(super) async fn subkeys_read(&self, req: &Request) -> Result<Reply, Error> {
        let depth = req.uint("depth", u64::from(u32::MAX))?.unwrap_or(0);
        let depth = u32::try_from(depth).unwrap_or(u32::MAX);
        Ok(match find_version(req).await? {
            Found::Readable { record, metadata } => data(json!({
                "subkeys": subkeys(&record.data, depth),
                "metadata": metadata,
            })),
            Found::Unreadable { metadata } => Reply::Missing {
                data: json!({ "subkeys": null, "metadata": metadata }),
            },
        })
    }
}

/// A version a read asked for (`?version=`, else the newest).
enum Found {
    /// Its value, and its metadata as Vault shows it.
    Readable { record: VersionRecord, metadata: Value },
    /// Deleted or destroyed: its metadata only (Vault's 404 with data).
    Unreadable { metadata: Value },
}

/// The version `req` asks for of the secret at its path; `NotFound` when
/// the secret or the version does not exist (or was destroyed since its
/// metadata was read).
async fn find_version(req: &Request) -> Result<Found, Error> {
    let path = secret_path(req)?;
    let asked = req.uint("version", u64::MAX)?.filter(|&v| v > 0);
    let view = &req.mount.storage;
    let Some(meta) = load_metadata(view, &path).await? else {
        return Err(Error::NotFound(String::new()));
    };
    let version = asked.unwrap_or(meta.current_version);
    let Some(vm) = meta.versions.get(&version) else {
        return Err(Error::NotFound(String::new()));
    };
    let metadata = vm.to_json(version, &meta.custom_metadata);
    if !vm.readable(Timestamp::now()) {
        return Ok(Found::Unreadable { metadata });
    }
    match view
        .get::<VersionRecord>(&store::version_key(&path, version))
        .await?
    {
        Some(record) => Ok(Found::Readable { record, metadata }),
        None => Err(Error::NotFound(String::new())),
    }
}

/// Stores `value` as the next version, made at `now`, of the secret at
/// `path` (its metadata `meta`, already checked), then the metadata, then
/// removes the values of versions past `max_versions`. Answers Vault's
/// write response: the new version's metadata.
async fn commit(
    view: &StorageView,
    path: &SecretPath,
    mut meta: KeyMetadata,
    config: &Config,
    value: Map<String, Value>,
    now: Timestamp,
) -> Result<Reply, Error> {
    let (version, removed) = meta.add_version(now, config);
    view.put(
        &store::version_key(path, version),
        &VersionRecord { data: value },
    )
    .await?;
    view.put(&store::metadata_key(path), &meta).await?;
    for old in removed {
        // The write stands; a value left behind is named by no metadata
        // and goes with the secret's metadata.
        if let Err(e) = view.delete(&store::version_key(path, old)).await {
            tracing::warn!(error = %e, version = old, "an old KV version's value was not removed");
        }
    }
    let shown = meta
        .versions
        .get(&version)
        .map(|vm| vm.to_json(version, &meta.custom_metadata))
        .unwrap_or(Value::Null);
    Ok(data(shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_is_a_whole_number_or_its_text() {
        let cas = |v: Value| cas_option(Some(&json!({ "cas": v })));
        assert_eq!(cas(json!(0)).unwrap(), Some(0));
        assert_eq!(cas(json!(3)).unwrap(), Some(3));
        assert_eq!(cas(json!("4")).unwrap(), Some(4));
        assert_eq!(cas(json!(2.0)).unwrap(), Some(2));
        assert_eq!(cas(Value::Null).unwrap(), None);
        assert_eq!(cas_option(None).unwrap(), None);
        assert_eq!(cas_option(Some(&json!({}))).unwrap(), None);
        for bad in [json!(-1), json!(1.5), json!("one"), json!([1]), json!(1e300)] {
            assert!(matches!(cas(bad), Err(KvError::CasInvalid)));
        }
    }
}
