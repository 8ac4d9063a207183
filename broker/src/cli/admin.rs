//! `broker secrets|auth|policy|lease …`: the system paths an operator uses
//! to set a broker up, as Vault's CLI spells them.

use anyhow::Context;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::client;
use super::output::{Output, plain};
use crate::client::Client;

/// `broker secrets …`.
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Mount a secrets engine (`database`, `pki`, `kv`).
    #[command(disable_version_flag = true)]
    Enable {
        /// The engine type.
        kind: String,
        /// Where to mount it (default: the type).
        #[arg(long)]
        path: Option<String>,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        /// For `kv`: version 1 or 2.
        #[arg(long)]
        version: Option<u8>,
        /// Default lease TTL (`1h`).
        #[arg(long)]
        default_lease_ttl: Option<String>,
        /// Max lease TTL.
        #[arg(long)]
        max_lease_ttl: Option<String>,
    },
    /// Unmount a secrets engine, revoking its leases first.
    Disable {
        /// The mount's path.
        path: String,
    },
    /// The mounted secrets engines.
    List {
        #[command(flatten)]
        output: Output,
    },
    /// Change a mount's description or lease TTLs.
    Tune {
        /// The mount's path.
        path: String,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        /// Default lease TTL.
        #[arg(long)]
        default_lease_ttl: Option<String>,
        /// Max lease TTL.
        #[arg(long)]
        max_lease_ttl: Option<String>,
    },
}

/// `broker auth …`.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Enable an auth method (`approle`, `jwt`, `cert`).
    Enable {
        /// The method type.
        kind: String,
        /// Where to mount it under `auth/` (default: the type).
        #[arg(long)]
        path: Option<String>,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
    },
    /// Disable an auth method, revoking the tokens it issued.
    Disable {
        /// The method's path under `auth/`.
        path: String,
    },
    /// The enabled auth methods.
    List {
        #[command(flatten)]
        output: Output,
    },
}

/// `broker policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Write a policy from a file (`-` for standard input).
    Write {
        /// The policy's name.
        name: String,
        /// The HCL file.
        file: String,
    },
    /// Show a policy's text.
    Read {
        /// The policy's name.
        name: String,
        #[command(flatten)]
        output: Output,
    },
    /// The policies' names.
    List {
        #[command(flatten)]
        output: Output,
    },
    /// Delete a policy.
    Delete {
        /// The policy's name.
        name: String,
    },
}

/// `broker lease …`.
#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// Renew a lease.
    Renew {
        /// The lease id.
        lease_id: String,
        /// How much longer (`1h`).
        #[arg(long)]
        increment: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Revoke a lease (or, with -prefix, every lease under a prefix).
    Revoke {
        /// The lease id (or prefix).
        lease_id: String,
        /// Revoke every lease under the prefix.
        #[arg(long)]
        prefix: bool,
    },
    /// A lease's times.
    Lookup {
        /// The lease id.
        lease_id: String,
        #[command(flatten)]
        output: Output,
    },
}

fn object(pairs: &[(&str, Option<Value>)]) -> Map<String, Value> {
    pairs
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| ((*k).to_owned(), v)))
        .collect()
}

/// Prints a mount listing (`sys/mounts`, `sys/auth`) as Path, Type,
/// Accessor, Description.
fn print_mounts(answer: &Value, output: &Output) -> anyhow::Result<()> {
    if output.field.is_some() || output.format.is_some() {
        return output.print(answer);
    }
    let data = answer["data"]
        .as_object()
        .context("the answer lists no mounts")?;
    println!("{:<24}{:<12}{:<28}Description", "Path", "Type", "Accessor");
    println!("{:<24}{:<12}{:<28}-----------", "----", "----", "--------");
    for (path, m) in data {
        println!(
            "{path:<24}{:<12}{:<28}{}",
            plain(&m["type"]),
            plain(&m["accessor"]),
            plain(&m["description"])
        );
    }
    Ok(())
}

/// The two mount tables: secrets engines (`sys/mounts`) and auth methods
/// (`sys/auth`), enabled, disabled and listed the same way.
#[derive(Debug, Clone, Copy)]
enum Mounts {
    Secrets,
    Auth,
}

impl Mounts {
    fn base(self) -> &'static str {
        match self {
            Self::Secrets => "sys/mounts",
            Self::Auth => "sys/auth",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::Secrets => "secrets engine",
            Self::Auth => "auth method",
        }
    }

    async fn enable(
        self,
        client: &Client,
        kind: &str,
        path: &str,
        body: Map<String, Value>,
    ) -> anyhow::Result<()> {
        let path = path.trim_matches('/');
        client
            .request(
                Method::POST,
                &format!("{}/{path}", self.base()),
                Some(&body),
            )
            .await?;
        println!("Success! Enabled the {kind} {} at: {path}/", self.what());
        Ok(())
    }

    async fn disable(self, client: &Client, path: &str) -> anyhow::Result<()> {
        let path = path.trim_matches('/');
        client
            .request(Method::DELETE, &format!("{}/{path}", self.base()), None)
            .await?;
        println!(
            "Success! Disabled the {} (if it existed) at: {path}/",
            self.what()
        );
        Ok(())
    }

    async fn list(self, client: &Client, output: &Output) -> anyhow::Result<()> {
        let answer = client
            .request(Method::GET, self.base(), None)
            .await?
            .unwrap_or(Value::Null);
        print_mounts(&answer, output)
    }
}

/// Runs a secrets command.
pub async fn secrets(cmd: SecretsCommand) -> anyhow::Result<()> {
    let client = client()?;
    match cmd {
        SecretsCommand::Enable {
            kind,
            path,
            description,
            version,
            default_lease_ttl,
            max_lease_ttl,
        } => {
            let path = path.unwrap_or_else(|| kind.clone());
            let config = object(&[
                ("default_lease_ttl", default_lease_ttl.map(Value::from)),
                ("max_lease_ttl", max_lease_ttl.map(Value::from)),
            ]);
            let body = object(&[
                ("type", Some(json!(kind))),
                ("description", description.map(Value::from)),
                (
                    "options",
                    version.map(|v| json!({"version": v.to_string()})),
                ),
                (
                    "config",
                    (!config.is_empty()).then_some(Value::Object(config)),
                ),
            ]);
            Mounts::Secrets.enable(&client, &kind, &path, body).await?;
        }
        SecretsCommand::Disable { path } => Mounts::Secrets.disable(&client, &path).await?,
        SecretsCommand::List { output } => Mounts::Secrets.list(&client, &output).await?,
        SecretsCommand::Tune {
            path,
            description,
            default_lease_ttl,
            max_lease_ttl,
        } => {
            let body = object(&[
                ("description", description.map(Value::from)),
                ("default_lease_ttl", default_lease_ttl.map(Value::from)),
                ("max_lease_ttl", max_lease_ttl.map(Value::from)),
            ]);
            client
                .request(
                    Method::POST,
                    &format!("sys/mounts/{}/tune", path.trim_matches('/')),
                    Some(&body),
                )
                .await?;
            println!(
                "Success! Tuned the secrets engine at: {}/",
                path.trim_matches('/')
            );
        }
    }
    Ok(())
}

/// Runs an auth command.
pub async fn auth(cmd: AuthCommand) -> anyhow::Result<()> {
    let client = client()?;
    match cmd {
        AuthCommand::Enable {
            kind,
            path,
            description,
        } => {
            let path = path.unwrap_or_else(|| kind.clone());
            let body = object(&[
                ("type", Some(json!(kind))),
                ("description", description.map(Value::from)),
            ]);
            Mounts::Auth.enable(&client, &kind, &path, body).await?;
        }
        AuthCommand::Disable { path } => Mounts::Auth.disable(&client, &path).await?,
        AuthCommand::List { output } => Mounts::Auth.list(&client, &output).await?,
    }
    Ok(())
}

/// Runs a policy command.
pub async fn policy(cmd: PolicyCommand) -> anyhow::Result<()> {
    let client = client()?;
    match cmd {
        PolicyCommand::Write { name, file } => {
            let text = if file == "-" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .context("cannot read the policy from standard input")?;
                text
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {file}"))?
            };
            let body = object(&[("policy", Some(json!(text)))]);
            client
                .request(
                    Method::PUT,
                    &format!("sys/policies/acl/{name}"),
                    Some(&body),
                )
                .await?;
            println!("Success! Uploaded policy: {name}");
        }
        PolicyCommand::Read { name, output } => {
            let answer = client
                .read(&format!("sys/policies/acl/{name}"))
                .await?
                .ok_or_else(|| super::Exit::with(2, format!("no policy named: {name}")))?;
            if output.field.is_some() || output.format.is_some() {
                output.print(&answer)?;
            } else {
                println!("{}", plain(&answer["data"]["policy"]));
            }
        }
        PolicyCommand::List { output } => {
            let answer = client
                .list("sys/policies/acl")
                .await?
                .unwrap_or(Value::Null);
            if output.field.is_some() || output.format.is_some() {
                output.print(&answer)?;
            } else {
                for key in answer["data"]["keys"].as_array().into_iter().flatten() {
                    println!("{}", plain(key));
                }
            }
        }
        PolicyCommand::Delete { name } => {
            client
                .request(Method::DELETE, &format!("sys/policies/acl/{name}"), None)
                .await?;
            println!("Success! Deleted policy: {name}");
        }
    }
    Ok(())
}

/// Runs a lease command.
pub async fn lease(cmd: LeaseCommand) -> anyhow::Result<()> {
    let client = client()?;
    match cmd {
        LeaseCommand::Renew {
            lease_id,
            increment,
            output,
        } => {
            let body = object(&[
                ("lease_id", Some(json!(lease_id))),
                ("increment", increment.map(Value::from)),
            ]);
            let answer = client
                .request(Method::PUT, "sys/leases/renew", Some(&body))
                .await?
                .unwrap_or(Value::Null);
            output.print(&answer)?;
        }
        LeaseCommand::Revoke { lease_id, prefix } => {
            if prefix {
                client
                    .request(
                        Method::PUT,
                        &format!("sys/leases/revoke-prefix/{}", lease_id.trim_matches('/')),
                        None,
                    )
                    .await?;
                println!("Success! Revoked every lease under: {lease_id}");
            } else {
                let body = object(&[("lease_id", Some(json!(lease_id)))]);
                client
                    .request(Method::PUT, "sys/leases/revoke", Some(&body))
                    .await?;
                println!("Success! Revoked lease: {lease_id}");
            }
        }
        LeaseCommand::Lookup { lease_id, output } => {
            let body = object(&[("lease_id", Some(json!(lease_id)))]);
            let answer = client
                .request(Method::PUT, "sys/leases/lookup", Some(&body))
                .await?
                .unwrap_or(Value::Null);
            output.print(&answer)?;
        }
    }
    Ok(())
}
