//! `broker plugin …`: list, describe and load plugins.

use std::path::PathBuf;

use crate::plugin::{Catalog, Plugin, PluginRuntime, RuntimeConfig};
use anyhow::Context;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List the built-in plugins with their aliases, versions and SHA-256.
    List,
    /// Show what a plugin needs and the JSON Schemas of its configuration.
    ///
    /// NAME is a built-in plugin's name or alias (`postgres`,
    /// `mysql-database-plugin`, …), or a path to a `.wasm` component built
    /// with the SDK, which is compiled and checked the way the broker would
    /// load it.
    Describe {
        /// A built-in name or alias, or a path to a component.
        name: String,
    },
    /// Create a new plugin crate that builds to a component and passes its
    /// own tests on the first run.
    ///
    /// The crate issues PostgreSQL logins, as a starting point; its
    /// README.md says how to build, test (`cargo test`, and `cargo test
    /// --features harness` in the broker's real host) and register it by
    /// SHA-256. Needs the wasm32-wasip2 target (`rustup target add
    /// wasm32-wasip2`).
    New {
        /// The plugin's name: lower-case letters, digits and '-'.
        name: String,
        /// Where to create the crate's directory (default: here).
        #[arg(long, value_name = "DIR", default_value = ".")]
        path: PathBuf,
        /// The plugin SDK (the sdk/ folder of the broker's source; default:
        /// the one this broker was built from).
        #[arg(long, value_name = "DIR")]
        sdk: Option<PathBuf>,
    },
}

async fn runtime() -> anyhow::Result<PluginRuntime> {
    let config = RuntimeConfig {
        cache_dir: RuntimeConfig::default_cache_dir(),
        ..RuntimeConfig::default()
    };
    PluginRuntime::new(config).context("cannot start the plugin runtime")
}

fn capabilities(p: &Plugin) -> String {
    let caps: Vec<String> = p
        .info()
        .capabilities
        .iter()
        .map(|c| format!("{c:?}"))
        .collect();
    if caps.is_empty() {
        "none".into()
    } else {
        caps.join(", ")
    }
}

pub async fn run(cmd: PluginCommand) -> anyhow::Result<()> {
    if let PluginCommand::New { name, path, sdk } = &cmd {
        let dir = super::plugin_new::create(name, path, sdk.clone())?;
        println!(
            "Created {dir}. Next:\n\n    cd {dir}\n    cargo test\n    cargo build --release --target wasm32-wasip2\n\nthen register it by SHA-256 as its README.md shows.",
            dir = dir.display()
        );
        return Ok(());
    }
    let runtime = runtime().await?;
    match cmd {
        PluginCommand::New { .. } => {}
        PluginCommand::List => {
            let catalog = Catalog::builtin(&runtime).await?;
            for p in catalog.iter() {
                let p = &p;
                let info = p.info();
                println!(
                    "{} {} (contract {})",
                    info.name, info.version, info.api_version
                );
                println!(
                    "  aliases:      {}",
                    if info.aliases.is_empty() {
                        "none".into()
                    } else {
                        info.aliases.join(", ")
                    }
                );
                println!("  capabilities: {}", capabilities(p));
                println!("  sha256:       {}", info.sha256);
            }
        }
        PluginCommand::Describe { name } => {
            let plugin = if name.ends_with(".wasm") || name.contains('/') {
                let path = PathBuf::from(&name);
                let wasm = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                runtime.load(&wasm).await?
            } else {
                let catalog = Catalog::builtin(&runtime).await?;
                catalog.get(&name).with_context(|| {
                    let names: Vec<String> = catalog
                        .iter()
                        .iter()
                        .map(|p| p.info().name.clone())
                        .collect();
                    format!(
                        "no built-in plugin named {name:?}; built-in: {}",
                        names.join(", ")
                    )
                })?
            };
            let info = plugin.info();
            println!("name:         {}", info.name);
            println!("version:      {}", info.version);
            println!("contract:     broker:plugin@{}", info.api_version);
            println!("capabilities: {}", capabilities(&plugin));
            println!("sha256:       {}", info.sha256);
            println!("connection config schema:\n{}", info.connection_schema);
            println!("role schema:\n{}", info.role_schema);
        }
    }
    Ok(())
}
