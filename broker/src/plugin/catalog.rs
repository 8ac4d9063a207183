//! The plugin catalog: loaded plugins by name and by alias.

use std::collections::BTreeMap;

use super::{BUILTIN, Plugin, PluginError, PluginRuntime};

/// Plugins by catalog name, with Vault's names as aliases.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    plugins: BTreeMap<String, Plugin>,
    aliases: BTreeMap<String, String>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// A catalog of the built-in plugins.
    pub async fn builtin(runtime: &PluginRuntime) -> Result<Self, PluginError> {
        let mut catalog = Self::new();
        for b in BUILTIN {
            let plugin = runtime
                .load(b.wasm)
                .await
                .map_err(|e| PluginError::Load(format!("built-in {}: {e}", b.crate_name)))?;
            catalog.insert(plugin)?;
        }
        Ok(catalog)
    }

    /// Loads every `*.wasm` file in `dir` (sorted by name) into the
    /// catalog. An unreadable file, a component that does not load or a
    /// name already taken is an error naming the file.
    pub async fn load_directory(
        &mut self,
        runtime: &PluginRuntime,
        dir: &std::path::Path,
    ) -> Result<(), PluginError> {
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
            tracing::info!(file = %path.display(), "plugin loaded");
        }
        Ok(())
    }

    /// Adds a plugin; its name and aliases must be new.
    pub fn insert(&mut self, plugin: Plugin) -> Result<(), PluginError> {
        let info = plugin.info();
        let names = std::iter::once(&info.name).chain(&info.aliases);
        for name in names.clone() {
            if self.get(name).is_some() {
                return Err(PluginError::Load(format!(
                    "a plugin named {name} is already in the catalog"
                )));
            }
        }
        for alias in &info.aliases {
            self.aliases.insert(alias.clone(), info.name.clone());
        }
        self.plugins.insert(info.name.clone(), plugin);
        Ok(())
    }

    /// The plugin with this name or alias.
    pub fn get(&self, name: &str) -> Option<&Plugin> {
        let name = self.aliases.get(name).map_or(name, String::as_str);
        self.plugins.get(name)
    }

    /// Every plugin, by catalog name.
    pub fn iter(&self) -> impl Iterator<Item = &Plugin> {
        self.plugins.values()
    }

    /// The connection pools its plugins' calls draw from: one set per
    /// runtime the plugins were loaded by (usually one).
    pub fn pools(&self) -> Vec<std::sync::Arc<crate::sql::Pools>> {
        let mut all: Vec<std::sync::Arc<crate::sql::Pools>> = Vec::new();
        for plugin in self.plugins.values() {
            let pools = plugin.pools();
            if !all.iter().any(|p| std::sync::Arc::ptr_eq(p, pools)) {
                all.push(pools.clone());
            }
        }
        all
    }
}
