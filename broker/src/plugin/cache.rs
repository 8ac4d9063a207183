//! The on-disk cache of compiled components.
//!
//! Compiling a component with Cranelift takes seconds; loading a compiled
//! artifact takes milliseconds. Artifacts are keyed by the component's
//! SHA-256 and the engine's compatibility hash (wasmtime version and
//! settings), so an upgrade never loads a stale artifact.
//!
//! Loading an artifact runs native code from it: the cache directory is
//! created with mode 0700 and must be writable by the broker alone.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::PluginError;

/// Where compiled components are kept, if anywhere.
#[derive(Debug, Clone)]
pub(crate) struct CompileCache {
    dir: Option<PathBuf>,
}

impl CompileCache {
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    /// The compiled component for `wasm`, from the cache or freshly compiled
    /// (and then stored).
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> Result<Component, PluginError> {
        let Some(dir) = &self.dir else {
            return compile(engine, wasm);
        };
        let path = dir.join(format!("{}.cwasm", cache_key(engine, wasm)));
        if path.exists() {
            match load(engine, &path) {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unusable compiled plugin")
                }
            }
        }
        let component = compile(engine, wasm)?;
        if let Err(e) = store(dir, &path, &component) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot cache compiled plugin");
        }
        Ok(component)
    }
}

fn compile(engine: &Engine, wasm: &[u8]) -> Result<Component, PluginError> {
    Component::new(engine, wasm)
        .map_err(|e| PluginError::Load(format!("not a valid component: {e:#}")))
}

/// SHA-256 of the component, then a hash of what makes artifacts compatible.
fn cache_key(engine: &Engine, wasm: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{}-{:016x}", hex::encode(Sha256::digest(wasm)), h.finish())
}

#[allow(unsafe_code)]
fn load(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file was written by `store` below from `Component::serialize`
    // into a directory only this user can write, and its name carries the
    // engine's compatibility hash; wasmtime checks the header again.
    unsafe { Component::deserialize_file(engine, path) }
}

fn store(dir: &Path, path: &Path, component: &Component) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    // Write beside, then rename: a reader never sees half a file.
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
