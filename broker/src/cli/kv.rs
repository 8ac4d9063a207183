//! `broker kv …`: the KV engine by secret path, as Vault's `vault kv`: the
//! mount is the path's first segment (or `-mount`), and version 2's
//! `data/`, `metadata/`, `undelete/` and `destroy/` paths are put in for
//! the user.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::args::body;
use super::output::Output;
use super::{Exit, client};
use crate::client::Client;

/// A secret's path and where its mount is.
#[derive(Debug, Args)]
pub struct SecretPath {
    /// The secret: `secret/app` (mount `secret`), or `app` with -mount.
    pub path: String,
    /// The KV mount (default: the path's first segment).
    #[arg(long)]
    pub mount: Option<String>,
}

/// `broker kv …`.
#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Read a secret (its latest version, or -version).
    #[command(disable_version_flag = true)]
    Get {
        #[command(flatten)]
        at: SecretPath,
        /// A version (version 2 mounts).
        #[arg(long)]
        version: Option<u64>,
        #[command(flatten)]
        output: Output,
    },
    /// Write a secret (a new version on version 2 mounts).
    Put {
        #[command(flatten)]
        at: SecretPath,
        /// `key=value`, `key=@file`, `key=-`, or `-` for a JSON object.
        data: Vec<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Change some of a secret's fields, keeping the others (version 2).
    Patch {
        #[command(flatten)]
        at: SecretPath,
        /// `key=value`, `key=@file`, `key=-`, or `-` for a JSON object.
        data: Vec<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Delete a secret's latest version (version 2: recoverable with undelete).
    Delete {
        #[command(flatten)]
        at: SecretPath,
    },
    /// Bring deleted versions back (version 2).
    Undelete {
        #[command(flatten)]
        at: SecretPath,
        /// The versions, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        versions: Vec<u64>,
    },
    /// Destroy versions for good (version 2).
    Destroy {
        #[command(flatten)]
        at: SecretPath,
        /// The versions, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        versions: Vec<u64>,
    },
    /// A secret's metadata (version 2): `get`, or `delete` (every version).
    Metadata {
        /// `get` or `delete`.
        action: String,
        #[command(flatten)]
        at: SecretPath,
        #[command(flatten)]
        output: Output,
    },
}

/// `(mount, rest)` of a secret path.
fn split(at: &SecretPath) -> anyhow::Result<(String, String)> {
    let path = at.path.trim_matches('/');
    match &at.mount {
        Some(mount) => Ok((mount.trim_matches('/').to_owned(), path.to_owned())),
        None => match path.split_once('/') {
            Some((mount, rest)) if !rest.is_empty() => Ok((mount.to_owned(), rest.to_owned())),
            _ => {
                anyhow::bail!("{path:?} names no secret under a mount: give mount/path, or -mount")
            }
        },
    }
}

/// The mount's KV version: from `sys/mounts` when the token may read it,
/// else 2 (the version `secrets enable -version=2 kv` and most setups use).
async fn version(client: &Client, mount: &str) -> u8 {
    let Ok(Some(mounts)) = client.request(Method::GET, "sys/mounts", None).await else {
        return 2;
    };
    match mounts["data"][format!("{mount}/")]["options"]["version"].as_str() {
        Some("1") => 1,
        _ => 2,
    }
}

/// Runs a kv command.
pub async fn run(cmd: KvCommand) -> anyhow::Result<()> {
    let client = client()?;
    match cmd {
        KvCommand::Get {
            at,
            version: v,
            output,
        } => {
            let (mount, rest) = split(&at)?;
            let path = match version(&client, &mount).await {
                1 => format!("{mount}/{rest}"),
                _ => match v {
                    Some(v) => format!("{mount}/data/{rest}?version={v}"),
                    None => format!("{mount}/data/{rest}"),
                },
            };
            let Some(mut answer) = client.read(&path).await? else {
                return Err(Exit::with(2, format!("no value found at {}", at.path)));
            };
            // Version 2 nests the secret under data.data: shown as the data.
            if let Some(inner) = answer["data"].get("data").cloned()
                && answer["data"].get("metadata").is_some()
            {
                answer["metadata"] = answer["data"]["metadata"].take();
                answer["data"] = inner;
            }
            output.print(&answer)
        }
        KvCommand::Put { at, data, output } => {
            let (mount, rest) = split(&at)?;
            let fields = body(&data)?;
            let answer = match version(&client, &mount).await {
                1 => {
                    client
                        .request(Method::POST, &format!("{mount}/{rest}"), Some(&fields))
                        .await?
                }
                _ => {
                    let mut wrapped = Map::new();
                    wrapped.insert("data".into(), Value::Object(fields));
                    client
                        .request(
                            Method::POST,
                            &format!("{mount}/data/{rest}"),
                            Some(&wrapped),
                        )
                        .await?
                }
            };
            match answer {
                Some(answer) => output.print(&answer),
                None => {
                    println!("Success! Data written to: {}", at.path);
                    Ok(())
                }
            }
        }
        KvCommand::Patch { at, data, output } => {
            let (mount, rest) = split(&at)?;
            if version(&client, &mount).await == 1 {
                anyhow::bail!(
                    "kv patch needs a version 2 mount; {mount}/ is version 1 (use kv put)"
                );
            }
            let mut wrapped = Map::new();
            wrapped.insert("data".into(), Value::Object(body(&data)?));
            match client
                .request(
                    Method::PATCH,
                    &format!("{mount}/data/{rest}"),
                    Some(&wrapped),
                )
                .await?
            {
                Some(answer) => output.print(&answer),
                None => {
                    println!("Success! Data patched at: {}", at.path);
                    Ok(())
                }
            }
        }
        KvCommand::Delete { at } => {
            let (mount, rest) = split(&at)?;
            let path = match version(&client, &mount).await {
                1 => format!("{mount}/{rest}"),
                _ => format!("{mount}/data/{rest}"),
            };
            client.request(Method::DELETE, &path, None).await?;
            println!("Success! Data deleted (if it existed) at: {}", at.path);
            Ok(())
        }
        KvCommand::Undelete { at, versions } => {
            versions_op(&client, &at, versions, "undelete").await
        }
        KvCommand::Destroy { at, versions } => versions_op(&client, &at, versions, "destroy").await,
        KvCommand::Metadata { action, at, output } => {
            let (mount, rest) = split(&at)?;
            let path = format!("{mount}/metadata/{rest}");
            match action.as_str() {
                "get" => match client.read(&path).await? {
                    Some(answer) => output.print(&answer),
                    None => Err(Exit::with(2, format!("no value found at {}", at.path))),
                },
                "delete" => {
                    client.request(Method::DELETE, &path, None).await?;
                    println!("Success! Data deleted (if it existed) at: {path}");
                    Ok(())
                }
                other => anyhow::bail!("kv metadata {other:?}: use get or delete"),
            }
        }
    }
}

/// `undelete` or `destroy` of `versions` (version 2 mounts).
async fn versions_op(
    client: &Client,
    at: &SecretPath,
    versions: Vec<u64>,
    what: &str,
) -> anyhow::Result<()> {
    let (mount, rest) = split(at)?;
    let mut fields = Map::new();
    fields.insert("versions".into(), json!(versions));
    client
        .request(
            Method::POST,
            &format!("{mount}/{what}/{rest}"),
            Some(&fields),
        )
        .await?;
    println!("Success! Data written to: {mount}/{what}/{rest}");
    Ok(())
}
