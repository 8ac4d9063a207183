//! `broker server`: the API server. `--dev` starts a throwaway broker in
//! one command, like Vault's dev mode.

use anyhow::Context;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Development mode: temporary storage, a generated KMS
    /// key, a known root token, plain HTTP on loopback. Never for production.
    #[arg(long)]
    dev: bool,
    /// The root token in dev mode (default: a random one, printed).
    #[arg(long, value_name = "TOKEN", env = "BROKER_DEV_ROOT_TOKEN_ID")]
    dev_root_token_id: Option<String>,
    /// Where the dev server listens.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8200")]
    dev_listen_address: SocketAddr,
    /// Keep dev-mode data in this directory instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    dev_data_dir: Option<PathBuf>,
}

fn random_token() -> anyhow::Result<String> {
    let mut b = [0u8; 18];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(format!("brk.{}", hex::encode(b)))
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    if !args.dev {
        anyhow::bail!(
            "only dev mode is available yet: run `broker server --dev` (a configuration file for real deployments is coming)"
        );
    }
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
        None => random_token()?,
    };
    let core = broker::server::open_dev_core(&dir, &token, std::time::Duration::from_secs(60))
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
         curl -s -H \"X-Vault-Token: $VAULT_TOKEN\" -X POST $VAULT_ADDR/v1/sys/mounts/database -d '{{\"type\":\"database\"}}'\n",
        dir = dir.display()
    );
    broker::server::serve(listener, core)
        .await
        .context("server failed")
}
