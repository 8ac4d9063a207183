//! `broker operator …`: one-time and maintenance tasks on a broker's storage.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Initialize a new broker's storage and print its key shares and
    /// root token, once.
    ///
    /// Makes the root key and the storage keyring, and a root token of
    /// which only a hash is kept. With the `shamir` seal (the default) the
    /// key that wraps the root key is split into `--key-shares` unseal
    /// shares; with an auto-unseal seal (`local`, `pkcs11`, `awskms`) the
    /// seal wraps it and `--recovery-shares` recovery shares are made
    /// (for `sys/rekey` and for unsealing after `sys/seal`). Run it once,
    /// before the first `broker server --config FILE` (or PUT sys/init on
    /// a running server instead); it refuses storage already in use.
    Init {
        /// The server's configuration file.
        #[arg(long, value_name = "FILE", env = "BROKER_CONFIG")]
        config: PathBuf,
        /// Unseal key shares to make (shamir seal).
        #[arg(long, default_value_t = 5)]
        key_shares: u32,
        /// Unseal key shares needed to unseal (shamir seal).
        #[arg(long, default_value_t = 3)]
        key_threshold: u32,
        /// Recovery key shares to make (auto-unseal seals; 0 for none).
        #[arg(long, default_value_t = 5)]
        recovery_shares: u32,
        /// Recovery key shares needed (auto-unseal seals).
        #[arg(long, default_value_t = 3)]
        recovery_threshold: u32,
        /// How to print the shares and root token.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Give one key share to a sealed broker (asked for without echo when
    /// not given); it unseals once enough are given. With an auto-unseal
    /// seal, after `sys/seal`, give recovery shares.
    Unseal {
        /// The key share (hex or base64); `-` reads it from standard input.
        key: Option<String>,
        /// Forget the shares given so far.
        #[arg(long)]
        reset: bool,
        /// The shares are the previous seal's, during a seal migration.
        #[arg(long)]
        migrate: bool,
    },
    /// Seal the broker: its keys leave memory until it is unsealed again.
    Seal,
    /// Make new key shares for the same root key (`-init` with the new
    /// split, then each holder gives a current share with `-nonce`; the
    /// new shares are printed once, at the threshold).
    #[command(disable_version_flag = true)]
    Rekey {
        /// Start a rekey.
        #[arg(long)]
        init: bool,
        /// New shares to make (with -init).
        #[arg(long, default_value_t = 5)]
        key_shares: u32,
        /// New shares needed (with -init).
        #[arg(long, default_value_t = 3)]
        key_threshold: u32,
        /// The rekey's nonce (printed by -init), with a current share.
        #[arg(long)]
        nonce: Option<String>,
        /// Show the rekey in progress.
        #[arg(long)]
        status: bool,
        /// Cancel the rekey in progress.
        #[arg(long)]
        cancel: bool,
        /// `barrier` (the unseal shares) or `recovery` (an auto-unseal
        /// seal's recovery shares).
        #[arg(long, default_value = "barrier")]
        target: String,
        /// A current share (asked for without echo when absent; `-` reads
        /// standard input).
        key: Option<String>,
    },
    /// Rotate the barrier key (a new term; old values are moved in the
    /// background; `broker read sys/key-status` shows how far).
    Rotate {
        /// Wait for the background rewrap to finish, showing its progress.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// For a person.
    Text,
    /// `{"keys": […], "recovery_keys": […], "root_token": "…", …}`, for scripts.
    Json,
}

pub async fn run(cmd: OperatorCommand) -> anyhow::Result<()> {
    match cmd {
        OperatorCommand::Unseal {
            key,
            reset,
            migrate,
        } => unseal(key, reset, migrate).await,
        OperatorCommand::Rekey {
            init,
            key_shares,
            key_threshold,
            nonce,
            status,
            cancel,
            target,
            key,
        } => {
            let base = match target.as_str() {
                "barrier" => "sys/rekey",
                "recovery" => "sys/rekey-recovery-key",
                other => anyhow::bail!("-target={other}: use barrier or recovery"),
            };
            let client = super::client()?;
            let path = format!("{base}/init");
            let answer = if cancel {
                client.request(Method::DELETE, &path, None).await?;
                println!("Success! The rekey was cancelled (if there was one).");
                return Ok(());
            } else if status {
                client.request(Method::GET, &path, None).await?
            } else if init {
                let mut body = Map::new();
                body.insert("secret_shares".into(), json!(key_shares));
                body.insert("secret_threshold".into(), json!(key_threshold));
                client.request(Method::PUT, &path, Some(&body)).await?
            } else {
                let nonce = nonce.context("give -nonce (printed by -init) with a current share")?;
                let key = share(key.as_deref())?;
                let mut body = Map::new();
                body.insert("nonce".into(), json!(nonce));
                body.insert("key".into(), json!(key.as_str()));
                client
                    .request(Method::PUT, &format!("{base}/update"), Some(&body))
                    .await?
            }
            .unwrap_or(Value::Null);
            print_rekey(&answer);
            Ok(())
        }
        OperatorCommand::Seal => {
            super::client()?
                .request(Method::PUT, "sys/seal", None)
                .await?;
            println!("Success! The broker is sealed.");
            Ok(())
        }
        OperatorCommand::Rotate { wait } => {
            let client = super::client()?;
            client.request(Method::PUT, "sys/rotate", None).await?;
            let status = client
                .request(Method::GET, "sys/key-status", None)
                .await?
                .unwrap_or(Value::Null);
            let term = status["data"]["term"].clone();
            println!(
                "Success! Rotated the barrier key: term {term} is in use; older values are moved in the background."
            );
            if wait {
                wait_for_rewrap(&client, &term).await?;
            }
            Ok(())
        }
        OperatorCommand::Init {
            config,
            key_shares,
            key_threshold,
            recovery_shares,
            recovery_threshold,
            format,
        } => {
            let config = Config::load(&config)?;
            let request = crate::unseal::InitRequest {
                secret_shares: Some(key_shares),
                secret_threshold: Some(key_threshold),
                recovery_shares: Some(recovery_shares),
                recovery_threshold: Some(recovery_threshold),
                ..Default::default()
            };
            let init = crate::server::initialize(&config, &request)
                .await
                .context("cannot initialize")?;
            match format {
                Format::Json => println!("{}", init.to_json()),
                Format::Text => print_init(&init, config.seal.kind()),
            }
            Ok(())
        }
    }
}

fn print_init(init: &crate::unseal::InitResponse, kind: crate::seal::SealKind) {
    for (i, key) in init.keys.iter().enumerate() {
        println!("Unseal Key {}: {}", i + 1, key.as_str());
    }
    for (i, key) in init.recovery_keys.iter().enumerate() {
        println!("Recovery Key {}: {}", i + 1, key.as_str());
    }
    println!("\nRoot token: {}\n", init.root_token.as_str());
    if kind.auto_unseals() {
        println!(
            "The broker is initialized; the {kind} seal unseals it at start. The recovery\n\
             keys authorize a rekey and unseal the broker after `sys/seal`: give each to a\n\
             different person."
        );
    } else {
        println!(
            "The broker is initialized and sealed. Start it with `broker server --config FILE`\n\
             and give it {} of these unseal keys (PUT sys/unseal, or hvac's\n\
             submit_unseal_keys). Give each key to a different person.",
            init.keys.len().min(3)
        );
    }
    println!(
        "\nThese are shown only now. The root token is all-powerful: keep it somewhere\n\
         safe, use it to set the broker up, then revoke it."
    );
}

/// A key share from the argument, standard input (`-`) or the terminal.
fn share(key: Option<&str>) -> anyhow::Result<zeroize::Zeroizing<String>> {
    match key {
        None => super::secret_from_terminal("Key share (will be hidden): "),
        Some("-") => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read the key share from standard input")?;
            Ok(zeroize::Zeroizing::new(line.trim().to_owned()))
        }
        Some(key) => Ok(zeroize::Zeroizing::new(key.to_owned())),
    }
}

/// A rekey's state, or its new shares once complete (shown this once).
fn print_rekey(answer: &Value) {
    if answer["complete"] == true {
        for (i, key) in answer["keys"].as_array().into_iter().flatten().enumerate() {
            println!("Key {}: {}", i + 1, super::output::plain(key));
        }
        println!(
            "\nThe rekey is complete: these {} shares replace the old ones, of which none works any longer. They are shown only now; give each to a different person.",
            answer["keys"].as_array().map_or(0, Vec::len)
        );
        return;
    }
    let row = |k: &str, v: &Value| println!("{k:<18}{}", super::output::plain(v));
    println!("{:<18}Value\n{:<18}-----", "Key", "---");
    row("Nonce", &answer["nonce"]);
    row("Started", &answer["started"]);
    row(
        "Rekey Progress",
        &Value::String(format!("{}/{}", answer["progress"], answer["required"])),
    );
    row("New Shares", &answer["n"]);
    row("New Threshold", &answer["t"]);
}

/// `broker operator unseal`: one share, then the progress as Vault shows it.
async fn unseal(key: Option<String>, reset: bool, migrate: bool) -> anyhow::Result<()> {
    let client = super::client()?;
    let mut body = Map::new();
    if reset {
        body.insert("reset".into(), json!(true));
    } else {
        let key = match key.as_deref() {
            None => super::secret_from_terminal("Unseal Key (will be hidden): ")?,
            other => share(other)?,
        };
        body.insert("key".into(), json!(key.as_str()));
        if migrate {
            body.insert("migrate".into(), json!(true));
        }
    }
    let status = client
        .request(Method::PUT, "sys/unseal", Some(&body))
        .await?
        .unwrap_or(Value::Null);
    let row = |k: &str, v: String| println!("{k:<18}{v}");
    println!("{:<18}Value\n{:<18}-----", "Key", "---");
    row("Seal Type", super::output::plain(&status["type"]));
    row("Sealed", super::output::plain(&status["sealed"]));
    row("Total Shares", super::output::plain(&status["n"]));
    row("Threshold", super::output::plain(&status["t"]));
    if status["sealed"] == true {
        row(
            "Unseal Progress",
            format!("{}/{}", status["progress"], status["t"]),
        );
        row("Unseal Nonce", super::output::plain(&status["nonce"]));
    }
    Ok(())
}

/// Follows `sys/key-status` until the rewrap to `term` is done, on one
/// line rewritten in place at a terminal, a line per change otherwise.
async fn wait_for_rewrap(client: &crate::client::Client, term: &Value) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    let terminal = std::io::stdout().is_terminal();
    let mut last = String::new();
    loop {
        let status = client
            .request(Method::GET, "sys/key-status", None)
            .await?
            .unwrap_or(Value::Null);
        let rewrap = &status["data"]["rewrap"];
        let done = rewrap["term"] == *term && rewrap["done"] == true;
        let line = format!(
            "rewrap to term {term}: pass {}, {} values looked at, {} moved{}",
            rewrap["pass"],
            rewrap["visited"],
            rewrap["rewrapped"],
            if done { ", done" } else { "" }
        );
        if line != last {
            if terminal {
                print!("\r{line}");
                let _ = std::io::stdout().flush();
            } else {
                println!("{line}");
            }
            last = line;
        }
        if done {
            if terminal {
                println!();
            }
            return Ok(());
        }
        if let Some(error) = rewrap["error"].as_str() {
            eprintln!("\nthe rewrap is waiting to retry: {error}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
