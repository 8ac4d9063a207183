//! KV version 2's bookkeeping: the mount's settings ([`Config`]) and each
//! secret's metadata ([`KeyMetadata`]): which versions it has, when each
//! was made and deleted, whether it was destroyed, and the settings of the
//! secret itself. Pure data and rules, no storage: the handlers load a
//! record, apply one of these rules and store it.
//!
//! The rules are Vault's: a secret keeps its last `max_versions` versions
//! (the secret's setting, else the mount's, else 10) and older ones are
//! removed as a write goes past them; a version's deletion time comes from
//! the shorter non-zero `delete_version_after` of the mount and the secret,
//! unless the mount turned it off. This module never holds a secret's
//! value, only its metadata.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::KvError;
use super::stamp::{Timestamp, go_duration};

/// Versions a secret keeps when neither it nor its mount says.
pub const DEFAULT_MAX_VERSIONS: u32 = 10;

/// The most versions a secret or a mount may be set to keep: a secret's
/// metadata lists every version it keeps and is read on every read.
pub const MAX_VERSIONS: u32 = 1000;

/// Custom metadata bounds, Vault's.
pub const MAX_CUSTOM_KEYS: usize = 64;
/// The longest custom metadata key, in bytes.
pub const MAX_CUSTOM_KEY_BYTES: usize = 128;
/// The longest custom metadata value, in bytes.
pub const MAX_CUSTOM_VALUE_BYTES: usize = 512;

/// A mount's settings (`config`). Zero values mean "not set".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Versions each secret keeps (0: 10).
    #[serde(default)]
    pub max_versions: u32,
    /// Every write must give `options.cas`.
    #[serde(default)]
    pub cas_required: bool,
    /// Seconds after which a new version is deleted: 0 not set, negative
    /// turns every secret's setting off.
    #[serde(default)]
    pub delete_version_after: i64,
}

impl Config {
    /// As `GET config` shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "max_versions": self.max_versions,
            "cas_required": self.cas_required,
            "delete_version_after": go_duration(self.delete_version_after),
        })
    }
}

/// One version of a secret, as its metadata records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionMeta {
    /// When it was written.
    pub created_time: Timestamp,
    /// When it is (or was) deleted; a time still to come is a scheduled
    /// deletion (`delete_version_after`), and the version reads until then.
    #[serde(default)]
    pub deletion_time: Option<Timestamp>,
    /// Its value is gone for good.
    #[serde(default)]
    pub destroyed: bool,
}

impl VersionMeta {
    /// Whether it was deleted before `now`.
    pub fn deleted(&self, now: Timestamp) -> bool {
        self.deletion_time.is_some_and(|t| t < now)
    }

    /// Whether its value may be read at `now`.
    pub fn readable(&self, now: Timestamp) -> bool {
        !self.destroyed && !self.deleted(now)
    }

    /// As reads, writes and subkeys show it, with its number and the
    /// secret's custom metadata.
    pub fn to_json(&self, version: u64, custom: &BTreeMap<String, String>) -> Value {
        json!({
            "created_time": self.created_time.rfc3339(),
            "deletion_time": Timestamp::rfc3339_or_empty(self.deletion_time),
            "destroyed": self.destroyed,
            "version": version,
            "custom_metadata": custom_json(custom),
        })
    }
}

/// Custom metadata as Vault shows it: `null` when there is none.
fn custom_json(custom: &BTreeMap<String, String>) -> Value {
    if custom.is_empty() {
        Value::Null
    } else {
        json!(custom)
    }
}

/// A secret's metadata: its versions and its own settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMetadata {
    /// The newest version's number (0: none yet).
    pub current_version: u64,
    /// Versions below this one were removed by `max_versions` (Vault's
    /// count: 0 until the first removal).
    pub oldest_version: u64,
    /// When the metadata was made.
    pub created_time: Timestamp,
    /// When the newest version was written (or the metadata made).
    pub updated_time: Timestamp,
    /// Versions this secret keeps (0: the mount's setting).
    #[serde(default)]
    pub max_versions: u32,
    /// Every write to this secret must give `options.cas`.
    #[serde(default)]
    pub cas_required: bool,
    /// Seconds after which a new version is deleted (0: not set).
    #[serde(default)]
    pub delete_version_after: u64,
    /// The operator's own key/value pairs about the secret.
    #[serde(default)]
    pub custom_metadata: BTreeMap<String, String>,
    /// The versions kept, by number.
    #[serde(default)]
    pub versions: BTreeMap<u64, VersionMeta>,
}

impl KeyMetadata {
    /// Metadata for a secret with no version yet.
    pub fn new(now: Timestamp) -> Self {
        Self {
            current_version: 0,
            oldest_version: 0,
            created_time: now,
            updated_time: now,
            max_versions: 0,
            cas_required: false,
            delete_version_after: 0,
            custom_metadata: BTreeMap::new(),
            versions: BTreeMap::new(),
        }
    }

    /// How many versions this secret keeps under `config`.
    pub fn max_versions(&self, config: &Config) -> u32 {
        [self.max_versions, config.max_versions, DEFAULT_MAX_VERSIONS]
            .into_iter()
            .find(|&m| m > 0)
            .unwrap_or(DEFAULT_MAX_VERSIONS)
    }

    /// Whether a write must carry `options.cas`.
    pub fn cas_required(&self, config: &Config) -> bool {
        self.cas_required || config.cas_required
    }

    /// Checks a write's `options.cas` against the current version, as
    /// Vault does: `0` means "only if there is no version yet".
    pub fn check_cas(&self, cas: Option<u64>, config: &Config) -> Result<(), KvError> {
        match cas {
            Some(cas) if cas != self.current_version => Err(KvError::CasMismatch),
            Some(_) => Ok(()),
            None if self.cas_required(config) => Err(KvError::CasRequired),
            None => Ok(()),
        }
    }

    /// When a version made at `created` is to be deleted: after the
    /// shorter of the mount's and the secret's non-zero
    /// `delete_version_after`, unless the mount turned it off.
    pub fn deletion_time(&self, created: Timestamp, config: &Config) -> Option<Timestamp> {
        if config.delete_version_after < 0 {
            return None;
        }
        let mount = config.delete_version_after.unsigned_abs();
        [mount, self.delete_version_after]
            .into_iter()
            .filter(|&d| d > 0)
            .min()
            .map(|after| created.plus_secs(after))
    }

    /// Records a new version made at `created` and returns its number and
    /// the numbers of the versions that went past `max_versions` (their
    /// values are to be removed from storage). Vault's arithmetic: once
    /// `current - oldest` reaches the limit, everything up to `current -
    /// limit` goes and `oldest` moves past it.
    pub fn add_version(&mut self, created: Timestamp, config: &Config) -> (u64, Vec<u64>) {
        let deletion_time = self.deletion_time(created, config);
        self.current_version = self.current_version.saturating_add(1);
        let version = self.current_version;
        self.versions.insert(
            version,
            VersionMeta {
                created_time: created,
                deletion_time,
                destroyed: false,
            },
        );
        self.updated_time = created;
        let max = u64::from(self.max_versions(config));
        let mut removed = Vec::new();
        if version.saturating_sub(self.oldest_version) >= max {
            let last_removed = version - max;
            let kept = self.versions.split_off(&(last_removed + 1));
            removed = std::mem::replace(&mut self.versions, kept)
                .into_keys()
                .collect();
            self.oldest_version = last_removed + 1;
        }
        (version, removed)
    }

    /// As `GET metadata/<path>` shows it.
    pub fn to_json(&self) -> Value {
        let versions: serde_json::Map<String, Value> = self
            .versions
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    json!({
                        "created_time": v.created_time.rfc3339(),
                        "deletion_time": Timestamp::rfc3339_or_empty(v.deletion_time),
                        "destroyed": v.destroyed,
                    }),
                )
            })
            .collect();
        json!({
            "versions": versions,
            "current_version": self.current_version,
            "oldest_version": self.oldest_version,
            "created_time": self.created_time.rfc3339(),
            "updated_time": self.updated_time.rfc3339(),
            "max_versions": self.max_versions,
            "cas_required": self.cas_required,
            "delete_version_after": go_duration(
                i64::try_from(self.delete_version_after).unwrap_or(i64::MAX)
            ),
            "custom_metadata": custom_json(&self.custom_metadata),
        })
    }
}

/// Checks custom metadata against Vault's bounds: at most 64 keys, keys of
/// 1-128 bytes, values of 1-512, all printable. Keys are named in the
/// error (they are labels, as in Vault); values never are.
pub fn check_custom_metadata(custom: &BTreeMap<String, String>) -> Result<(), KvError> {
    let bad = |why: String| Err(KvError::CustomMetadata(why));
    if custom.len() > MAX_CUSTOM_KEYS {
        return bad(format!(
            "payload must contain at most {MAX_CUSTOM_KEYS} keys, provided {}",
            custom.len()
        ));
    }
    for (key, value) in custom {
        let shown: String = key.chars().filter(|c| !c.is_control()).take(64).collect();
        if key.is_empty() || key.len() > MAX_CUSTOM_KEY_BYTES {
            return bad(format!(
                "length of key {shown:?} is {} but must be 0 < len(key) <= {MAX_CUSTOM_KEY_BYTES}",
                key.len()
            ));
        }
        if value.is_empty() || value.len() > MAX_CUSTOM_VALUE_BYTES {
            return bad(format!(
                "length of value for key {shown:?} is {} but must be 0 < len(value) <= {MAX_CUSTOM_VALUE_BYTES}",
                value.len()
            ));
        }
        if key.chars().any(char::is_control) {
            return bad(format!("key {shown:?} contains unprintable characters"));
        }
        if value.chars().any(char::is_control) {
            return bad(format!(
                "value for key {shown:?} contains unprintable characters"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(secs: u64) -> Timestamp {
        Timestamp::from_secs(1_700_000_000 + secs)
    }

    #[test]
    fn the_secrets_setting_wins_then_the_mounts_then_ten() {
        let mut meta = KeyMetadata::new(t(0));
        let mut config = Config::default();
        assert_eq!(meta.max_versions(&config), 10);
        config.max_versions = 3;
        assert_eq!(meta.max_versions(&config), 3);
        meta.max_versions = 5;
        assert_eq!(meta.max_versions(&config), 5);
    }

    #[test]
    fn versions_past_the_limit_are_removed_oldest_first() {
        let config = Config {
            max_versions: 3,
            ..Config::default()
        };
        let mut meta = KeyMetadata::new(t(0));
        let mut removed = Vec::new();
        for i in 1..=5 {
            let (v, gone) = meta.add_version(t(i), &config);
            assert_eq!(v, i);
            removed.extend(gone);
        }
        // Vault's count: at version 3 the window is full and "version 0"
        // goes, then 1 and 2.
        assert_eq!(removed, vec![1, 2]);
        assert_eq!(meta.versions.keys().copied().collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!((meta.current_version, meta.oldest_version), (5, 3));
        // Lowering the limit takes effect at the next write, which removes
        // everything past it at once.
        meta.max_versions = 1;
        let (v, gone) = meta.add_version(t(9), &config);
        assert_eq!((v, gone), (6, vec![3, 4, 5]));
        assert_eq!(meta.versions.keys().copied().collect::<Vec<_>>(), [6]);
        assert_eq!(meta.updated_time, t(9));
    }

    #[test]
    fn cas_is_checked_as_vault_does() {
        let config = Config::default();
        let mut meta = KeyMetadata::new(t(0));
        assert!(meta.check_cas(Some(0), &config).is_ok());
        assert!(matches!(
            meta.check_cas(Some(1), &config),
            Err(KvError::CasMismatch)
        ));
        meta.add_version(t(1), &config);
        assert!(matches!(
            meta.check_cas(Some(0), &config),
            Err(KvError::CasMismatch)
        ));
        assert!(meta.check_cas(Some(1), &config).is_ok());
        assert!(meta.check_cas(None, &config).is_ok());
        meta.cas_required = true;
        assert!(matches!(
            meta.check_cas(None, &config),
            Err(KvError::CasRequired)
        ));
        meta.cas_required = false;
        let required = Config {
            cas_required: true,
            ..Config::default()
        };
        assert!(matches!(
            meta.check_cas(None, &required),
            Err(KvError::CasRequired)
        ));
    }

    #[test]
    fn deletion_time_takes_the_shorter_setting_unless_the_mount_turns_it_off() {
        let created = t(0);
        let mut meta = KeyMetadata::new(created);
        let mut config = Config::default();
        assert_eq!(meta.deletion_time(created, &config), None);
        config.delete_version_after = 60;
        assert_eq!(meta.deletion_time(created, &config), Some(created.plus_secs(60)));
        meta.delete_version_after = 30;
        assert_eq!(meta.deletion_time(created, &config), Some(created.plus_secs(30)));
        meta.delete_version_after = 90;
        assert_eq!(meta.deletion_time(created, &config), Some(created.plus_secs(60)));
        config.delete_version_after = 0;
        assert_eq!(meta.deletion_time(created, &config), Some(created.plus_secs(90)));
        config.delete_version_after = -1;
        assert_eq!(meta.deletion_time(created, &config), None);
        // A new version carries it.
        config.delete_version_after = 0;
        let (v, _) = meta.add_version(created, &config);
        assert_eq!(meta.versions[&v].deletion_time, Some(created.plus_secs(90)));
        assert!(meta.versions[&v].readable(created));
        assert!(!meta.versions[&v].readable(created.plus_secs(91)));
    }

    #[test]
    fn custom_metadata_is_bounded_as_in_vault() {
        let ok: BTreeMap<String, String> = [("team".into(), "payments".into())].into();
        assert!(check_custom_metadata(&ok).is_ok());
        let many: BTreeMap<String, String> =
            (0..65).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert!(check_custom_metadata(&many).is_err());
        for (k, v) in [
            ("", "v"),
            ("k", ""),
            (&*"k".repeat(129), "v"),
            ("k", &*"v".repeat(513)),
            ("k\n", "v"),
            ("k", "v\u{0}"),
        ] {
            let one: BTreeMap<String, String> = [(k.to_owned(), v.to_owned())].into();
            let e = check_custom_metadata(&one).unwrap_err().to_string();
            assert!(e.starts_with("custom_metadata validation failed"), "{e}");
        }
        // The value is never quoted.
        let secret: BTreeMap<String, String> = [("k".into(), format!("hunter2{}", "x".repeat(600)))].into();
        assert!(!check_custom_metadata(&secret).unwrap_err().to_string().contains("hunter2"));
    }

    #[test]
    fn metadata_reads_as_vaults() {
        let created = t(0);
        let mut meta = KeyMetadata::new(created);
        let (v, _) = meta.add_version(created, &Config::default());
        let shown = meta.to_json();
        assert_eq!(shown["current_version"], 1);
        assert_eq!(shown["oldest_version"], 0);
        assert_eq!(shown["delete_version_after"], "0s");
        assert_eq!(shown["custom_metadata"], Value::Null);
        assert_eq!(shown["versions"]["1"]["deletion_time"], "");
        assert_eq!(shown["versions"]["1"]["destroyed"], false);
        let version = meta.versions[&v].to_json(v, &meta.custom_metadata);
        assert_eq!(version["version"], 1);
        assert_eq!(version["created_time"], created.rfc3339());
    }

    proptest! {
        /// Whatever the sequence of writes and limits: versions are numbered
        /// one by one, a secret never keeps more than its limit, what is
        /// kept is the newest, and what is removed is reported once.
        #[test]
        fn the_window_keeps_the_newest_versions(limits in prop::collection::vec(0u32..6, 1..40),
                                                mount in 0u32..6) {
            let config = Config { max_versions: mount, ..Config::default() };
            let mut meta = KeyMetadata::new(t(0));
            let mut seen_removed = std::collections::BTreeSet::new();
            for (i, limit) in limits.iter().enumerate() {
                meta.max_versions = *limit;
                let before = meta.current_version;
                let (v, removed) = meta.add_version(t(i as u64), &config);
                prop_assert_eq!(v, before + 1);
                let max = u64::from(meta.max_versions(&config));
                prop_assert!(meta.versions.len() as u64 <= max);
                prop_assert!(meta.versions.contains_key(&v));
                for r in removed {
                    prop_assert!(r < meta.oldest_version);
                    prop_assert!(seen_removed.insert(r), "version {} removed twice", r);
                }
                // Kept versions are a contiguous run ending at the newest.
                let kept: Vec<u64> = meta.versions.keys().copied().collect();
                let expected: Vec<u64> = (v + 1 - kept.len() as u64..=v).collect();
                prop_assert_eq!(kept, expected);
                prop_assert!(meta.oldest_version <= v);
            }
        }
    }
}
