//! `broker server`: the API server, from a configuration file, or
//! `--dev` for a throwaway one in one command, like Vault's dev mode.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::config::Config;
use crate::server::ServeOptions;

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The configuration file (TOML: listener, storage, seal, …).
    #[arg(
        long,
        value_name = "FILE",
        env = "BROKER_CONFIG",
        required_unless_present = "dev"
    )]
    config: Option<PathBuf>,
    /// Development mode: temporary storage, a generated local seal key, a known
    /// root token, plain HTTP on loopback. Never for production.
    #[arg(long)]
    dev: bool,
    /// The root token in dev mode (default: a random one, printed).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "BROKER_DEV_ROOT_TOKEN_ID",
        requires = "dev"
    )]
    dev_root_token_id: Option<String>,
    /// Where the dev server listens.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8200")]
    dev_listen_address: SocketAddr,
    /// Keep dev-mode data in this directory instead of a temporary one.
    #[arg(long, value_name = "DIR", requires = "dev")]
    dev_data_dir: Option<PathBuf>,
    /// Load every `*.wasm` plugin in this directory, unpinned (Vault's
    /// -dev-plugin-dir). Outside dev mode a plugin runs only once it is
    /// registered by SHA-256 in sys/plugins/catalog.
    #[arg(long, value_name = "DIR", requires = "dev")]
    dev_plugin_dir: Option<PathBuf>,
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    match &args.config {
        Some(path) if !args.dev => run_configured(path).await,
        _ => run_dev(args).await,
    }
}

async fn run_configured(path: &std::path::Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let unsealer = crate::server::open(&config)
        .await
        .context("cannot start the server")?;
    let address = config.listener.address;
    let options = ServeOptions::from_config(&config);
    let tls = match config.listener.tls() {
        Some((cert, key)) => Some(crate::server::tls_config(cert, key)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    tracing::info!(address = %listener.local_addr()?, tls = tls.is_some(), storage = ?config.storage, seal = %config.seal.kind(), sealed = unsealer.core().is_none(), "broker started");
    crate::server::serve(listener, tls, unsealer, options)
        .await
        .context("server failed")
}

async fn run_dev(args: ServerArgs) -> anyhow::Result<()> {
    let temp;
    let dir = match &args.dev_data_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            d.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("broker-dev-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            temp.path().to_owned()
        }
    };
    let token = match args.dev_root_token_id {
        Some(t) => t,
        None => crate::core::generate_root_token()
            .map_err(anyhow::Error::msg)?
            .to_string(),
    };
    let unsealer = crate::server::open_dev(
        &dir,
        args.dev_plugin_dir.as_deref(),
        &token,
        Duration::from_secs(60),
        Duration::from_secs(1),
    )
    .await
    .context("cannot start the dev server")?;
    let listener = tokio::net::TcpListener::bind(args.dev_listen_address)
        .await
        .with_context(|| format!("cannot listen on {}", args.dev_listen_address))?;
    let addr = listener.local_addr()?;
    println!(
        "==> broker dev server started. Do not run in production: data lives in {dir}\n\n    \
         Listening on: http://{addr}\n    Root token:   {token}\n\n\
         Try it:\n\n    \
         export VAULT_ADDR=http://{addr} VAULT_TOKEN={token}\n    \
         curl -s -H \"X-Vault-Token: $VAULT_TOKEN\" -X POST $VAULT_ADDR/v1/sys/mounts/database -d '{{\"type\":\"database\"}}'\n    \
         curl -s -H \"X-Vault-Token: $VAULT_TOKEN\" $VAULT_ADDR/v1/sys/mounts\n    \
         curl -s -H \"X-Vault-Token: $VAULT_TOKEN\" $VAULT_ADDR/v1/sys/internal/specs/openapi\n\n\
         The README's quickstart continues from here to a PostgreSQL login.\n",
        dir = dir.display()
    );
    crate::server::serve(listener, None, unsealer, ServeOptions::default())
        .await
        .context("server failed")
}
