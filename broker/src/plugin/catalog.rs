//! The plugin catalog: loaded plugins by name and by alias, the built-ins
//! and those an operator registered by SHA-256 (Vault's
//! `sys/plugins/catalog`).
//!
//! A registered plugin is a file in the plugin directory, named by its
//! `command`, whose SHA-256 must match the one registered: checked when it
//! is registered, reloaded, and loaded at unseal. A file that changed is
//! refused (the plugin stays unavailable, and using it says why) rather
//! than run. Only dev mode loads a directory's plugins unpinned. The
//! catalog must never run code whose hash an operator did not approve.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{BUILTIN, Plugin, PluginError, PluginRuntime};

/// What an operator registered (`sys/plugins/catalog/{type}/{name}`), as
/// stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The catalog name mounts and configs use.
    pub name: String,
    /// Vault's plugin type: `database` or `secret`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The component's file name in the plugin directory.
    pub command: String,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
    /// The version the operator registered it as (may be empty).
    #[serde(default)]
    pub version: String,
}

/// Why a registration or reload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The request is wrong (a bad name, command or hash): HTTP 400.
    #[error("{0}")]
    Invalid(String),
    /// The file is not what was registered: HTTP 400.
    #[error("{0}")]
    HashMismatch(String),
    /// The component did not load: HTTP 400.
    #[error("{0}")]
    Load(String),
}

#[derive(Debug, Default)]
struct Entries {
    plugins: BTreeMap<String, Plugin>,
    aliases: BTreeMap<String, String>,
    builtin: BTreeSet<String>,
    registered: BTreeMap<String, Registration>,
    /// Registered plugins that could not be loaded, and why.
    refused: BTreeMap<String, String>,
}

/// Plugins by catalog name, with Vault's names as aliases. Shared (cheap
/// to clone): registrations change it in place.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: Arc<RwLock<Entries>>,
    runtime: Option<PluginRuntime>,
    directory: Option<PathBuf>,
}

/// A plugin name: what a URL path segment and a config field can carry.
fn valid_name(name: &str) -> Result<(), CatalogError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(CatalogError::Invalid(
            "a plugin name is 1 to 128 letters, digits, '-', '_' or '.', not starting with '.'"
                .into(),
        ))
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Catalog {
    /// An empty catalog that cannot load plugins.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.entries.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.entries.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// A catalog of the built-in plugins, which registers more through
    /// `runtime`.
    pub async fn builtin(runtime: &PluginRuntime) -> Result<Self, PluginError> {
        let mut catalog = Self::new();
        catalog.runtime = Some(runtime.clone());
        for b in BUILTIN {
            let plugin = runtime
                .load(b.wasm)
                .await
                .map_err(|e| PluginError::Load(format!("built-in {}: {e}", b.crate_name)))?;
            let name = plugin.info().name.clone();
            catalog.insert(plugin)?;
            catalog.write().builtin.insert(name);
        }
        Ok(catalog)
    }

    /// The directory registered plugins' files are read from.
    pub fn with_directory(mut self, dir: Option<PathBuf>) -> Self {
        self.directory = dir;
        self
    }

    /// Loads every `*.wasm` file in `dir` (sorted by name) unpinned: dev
    /// mode only (Vault's `-dev-plugin-dir`). An unreadable file, a
    /// component that does not load or a name already taken is an error
    /// naming the file.
    pub async fn load_directory_unpinned(&self, dir: &Path) -> Result<(), PluginError> {
        let runtime = self.runtime()?;
        let unreadable =
            |e: std::io::Error| PluginError::Load(format!("cannot read {}: {e}", dir.display()));
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(unreadable)? {
            let path = entry.map_err(unreadable)?.path();
            if path.extension().is_some_and(|e| e == "wasm") && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        for path in files {
            let failed = |e: &dyn std::fmt::Display| {
                PluginError::Load(format!("plugin {}: {e}", path.display()))
            };
            let wasm = std::fs::read(&path).map_err(|e| failed(&e))?;
            let plugin = runtime.load(&wasm).await.map_err(|e| failed(&e))?;
            self.insert(plugin).map_err(|e| failed(&e))?;
            tracing::warn!(file = %path.display(), "plugin loaded without a pinned SHA-256 (dev mode)");
        }
        Ok(())
    }

    fn runtime(&self) -> Result<&PluginRuntime, PluginError> {
        self.runtime
            .as_ref()
            .ok_or_else(|| PluginError::Runtime("this catalog cannot load plugins".into()))
    }

    /// Adds a plugin under its own name; its name and aliases must be new.
    pub fn insert(&self, plugin: Plugin) -> Result<(), PluginError> {
        let mut entries = self.write();
        let info = plugin.info();
        let names = std::iter::once(&info.name).chain(&info.aliases);
        for name in names {
            if entries.plugins.contains_key(name) || entries.aliases.contains_key(name) {
                return Err(PluginError::Load(format!(
                    "a plugin named {name} is already in the catalog"
                )));
            }
        }
        for alias in &info.aliases {
            entries.aliases.insert(alias.clone(), info.name.clone());
        }
        entries.plugins.insert(info.name.clone(), plugin);
        Ok(())
    }

    /// The plugin with this name or alias.
    pub fn get(&self, name: &str) -> Option<Plugin> {
        let entries = self.read();
        let name = entries.aliases.get(name).map_or(name, String::as_str);
        entries.plugins.get(name).cloned()
    }

    /// The plugin with this name or alias, or why there is none (a
    /// registered plugin whose file no longer matches says so).
    pub fn lookup(&self, name: &str) -> Result<Plugin, String> {
        if let Some(p) = self.get(name) {
            return Ok(p);
        }
        match self.read().refused.get(name) {
            Some(why) => Err(format!("plugin {name:?} is registered but refused: {why}")),
            None => Err(format!("unknown plugin_name {name:?}")),
        }
    }

    /// Every loaded plugin, by catalog name.
    pub fn iter(&self) -> Vec<Plugin> {
        self.read().plugins.values().cloned().collect()
    }

    /// Every loaded plugin with the name it is cataloged under.
    pub fn named(&self) -> Vec<(String, Plugin)> {
        self.read()
            .plugins
            .iter()
            .map(|(n, p)| (n.clone(), p.clone()))
            .collect()
    }

    /// Whether `name` is a built-in plugin.
    pub fn is_builtin(&self, name: &str) -> bool {
        let entries = self.read();
        let name = entries.aliases.get(name).map_or(name, String::as_str);
        entries.builtin.contains(name)
    }

    /// Every registration, by name.
    pub fn registrations(&self) -> Vec<Registration> {
        self.read().registered.values().cloned().collect()
    }

    /// The registration of `name`, if it is registered.
    pub fn registration(&self, name: &str) -> Option<Registration> {
        self.read().registered.get(name).cloned()
    }

    /// Why a registered plugin is not loaded, if it is not.
    pub fn refusal(&self, name: &str) -> Option<String> {
        self.read().refused.get(name).cloned()
    }

    /// Reads `registration`'s file, checks its SHA-256 and loads it: the
    /// plugin, ready to [`Self::install`]. `registering`: the hash was
    /// just given (a mismatch is a wrong hash or file), rather than stored
    /// (a mismatch is a file changed since).
    pub async fn load_registered(
        &self,
        registration: &Registration,
        registering: bool,
    ) -> Result<Plugin, CatalogError> {
        valid_name(&registration.name)?;
        let command = &registration.command;
        if command.is_empty()
            || command.contains('/')
            || command.contains('\\')
            || command.starts_with('.')
        {
            return Err(CatalogError::Invalid(
                "command must be the name of a file in the plugin directory (no '/', not starting with '.')".into(),
            ));
        }
        let want = registration.sha256.to_ascii_lowercase();
        if want.len() != 64 || !want.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(CatalogError::Invalid(
                "sha256 must be 64 hex digits (the SHA-256 of the plugin's file)".into(),
            ));
        }
        let Some(dir) = &self.directory else {
            return Err(CatalogError::Invalid(
                "this broker has no plugin directory: set [plugins] directory in its configuration"
                    .into(),
            ));
        };
        let path = dir.join(command);
        let wasm = std::fs::read(&path).map_err(|e| {
            CatalogError::Invalid(format!(
                "cannot read {command} in the plugin directory: {e}"
            ))
        })?;
        let got = sha256_hex(&wasm);
        if got != want && registering {
            return Err(CatalogError::HashMismatch(format!(
                "the SHA-256 of {command} is {got}, not the sha256 given ({want}): check that the file is the one you mean to run, and give its hash (sha256sum {command})"
            )));
        }
        if got != want {
            return Err(CatalogError::HashMismatch(format!(
                "the SHA-256 of {command} is {got}, not the registered {want}: the file changed since it was registered; check it, then register it again with its new hash"
            )));
        }
        let runtime = self
            .runtime()
            .map_err(|e| CatalogError::Load(e.to_string()))?;
        runtime
            .load(&wasm)
            .await
            .map_err(|e| CatalogError::Load(format!("{command}: {e}")))
    }

    /// Puts a registered plugin under its registered name, replacing an
    /// earlier registration of that name. Built-in names are refused.
    pub fn install(&self, registration: Registration, plugin: Plugin) -> Result<(), CatalogError> {
        let mut entries = self.write();
        let name = registration.name.clone();
        let builtin_name = entries.builtin.contains(&name)
            || entries
                .aliases
                .get(&name)
                .is_some_and(|n| entries.builtin.contains(n));
        if builtin_name {
            return Err(CatalogError::Invalid(format!(
                "{name} is a built-in plugin's name; register yours under another"
            )));
        }
        if entries.aliases.contains_key(&name) {
            return Err(CatalogError::Invalid(format!(
                "{name} is another plugin's alias; register yours under another name"
            )));
        }
        entries.plugins.insert(name.clone(), plugin);
        entries.refused.remove(&name);
        entries.registered.insert(name, registration);
        Ok(())
    }

    /// Records that a registered plugin could not be loaded: it is taken
    /// out of the catalog, and using it says why.
    pub fn refuse(&self, registration: Registration, why: String) {
        let mut entries = self.write();
        let name = registration.name.clone();
        if !entries.builtin.contains(&name) {
            entries.plugins.remove(&name);
        }
        entries.refused.insert(name.clone(), why);
        entries.registered.insert(name, registration);
    }

    /// Removes a registered plugin. Built-ins cannot be removed.
    pub fn remove(&self, name: &str) -> Result<(), CatalogError> {
        let mut entries = self.write();
        if entries.builtin.contains(name) {
            return Err(CatalogError::Invalid(format!(
                "{name} is built in and cannot be removed"
            )));
        }
        entries.registered.remove(name);
        entries.refused.remove(name);
        entries.plugins.remove(name);
        Ok(())
    }

    /// Loads `registrations` (as stored), replacing what was registered
    /// before: at unseal, and when another node changed them. A plugin
    /// whose file does not match is refused and logged; the others load.
    pub async fn sync(&self, registrations: Vec<Registration>) {
        let keep: BTreeSet<String> = registrations.iter().map(|r| r.name.clone()).collect();
        let gone: Vec<String> = self
            .read()
            .registered
            .keys()
            .filter(|n| !keep.contains(*n))
            .cloned()
            .collect();
        for name in gone {
            let _ = self.remove(&name);
        }
        for registration in registrations {
            let unchanged = self.registration(&registration.name).as_ref() == Some(&registration)
                && self.get(&registration.name).is_some();
            if unchanged {
                continue;
            }
            match self.load_registered(&registration, false).await {
                Ok(plugin) => {
                    if let Err(e) = self.install(registration.clone(), plugin) {
                        tracing::error!(plugin = %registration.name, error = %e, "registered plugin refused");
                        self.refuse(registration, e.to_string());
                    }
                }
                Err(e) => {
                    tracing::error!(plugin = %registration.name, error = %e, "registered plugin refused");
                    self.refuse(registration, e.to_string());
                }
            }
        }
    }

    /// Drops the connections (SQL pools, Redis connections, HTTP clients)
    /// kept under `key`, in every runtime the plugins were loaded by.
    pub fn forget_connections(&self, key: &str) {
        let mut seen: Vec<*const ()> = Vec::new();
        for plugin in self.iter() {
            let shared = plugin.shared_id();
            if !seen.contains(&shared) {
                seen.push(shared);
                plugin.forget_connections(key);
            }
        }
    }

    /// The connection pools its plugins' calls draw from: one set per
    /// runtime the plugins were loaded by (usually one).
    pub fn pools(&self) -> Vec<Arc<crate::sql::Pools>> {
        let mut all: Vec<Arc<crate::sql::Pools>> = Vec::new();
        for plugin in self.iter() {
            let pools = plugin.pools();
            if !all.iter().any(|p| Arc::ptr_eq(p, pools)) {
                all.push(pools.clone());
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_are_checked() {
        for ok in ["redis-database-plugin", "my_plugin.v2", "a"] {
            valid_name(ok).unwrap();
        }
        for bad in ["", ".hidden", "a/b", "../x", "a b", &"x".repeat(129)] {
            assert!(valid_name(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn an_accepted_name_is_one_path_segment(name in ".{0,40}") {
            if valid_name(&name).is_ok() {
                prop_assert!(!name.contains('/') && !name.contains('\\') && !name.starts_with('.'));
            }
        }
    }
}
