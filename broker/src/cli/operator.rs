//! `broker operator …`: one-time and maintenance tasks on a broker's storage.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Initialize a new broker's storage and print its root token, once.
    ///
    /// Creates the KMS key (with the `local` provider, a key file of mode
    /// 0600), generates the storage keyring wrapped by it, and a root
    /// token of which only a hash is kept. Run it once, before the first
    /// `broker server --config FILE`; it refuses storage already in use.
    Init {
        /// The server's configuration file.
        #[arg(long, value_name = "FILE", env = "BROKER_CONFIG")]
        config: PathBuf,
        /// How to print the root token.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// For a person.
    Text,
    /// `{"root_token": "…"}`, for scripts.
    Json,
}

pub async fn run(cmd: OperatorCommand) -> anyhow::Result<()> {
    match cmd {
        OperatorCommand::Init { config, format } => {
            let config = Config::load(&config)?;
            let token = crate::server::initialize(&config)
                .await
                .context("cannot initialize")?;
            match format {
                Format::Json => println!("{}", serde_json::json!({ "root_token": *token })),
                Format::Text => println!(
                    "Root token: {}\n\n\
                     The broker is initialized. This token is shown only now and is\n\
                     all-powerful: keep it somewhere safe, use it to set the broker up,\n\
                     and start the server with `broker server --config FILE`.",
                    *token
                ),
            }
            Ok(())
        }
    }
}
