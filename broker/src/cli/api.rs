//! `broker read|write|list|delete|patch PATH` and `broker status`: any
//! path of the API, as Vault's CLI reaches it, with the address and token
//! from the environment ([`crate::client`]).

use clap::Args;
use reqwest::Method;
use serde_json::Value;

use super::args::body;
use super::output::Output;
use super::{Exit, client};

/// `broker read PATH`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The path to read (`database/creds/app`, `sys/mounts`, …).
    pub path: String,
    #[command(flatten)]
    pub output: Output,
}

/// `broker write PATH [KEY=VALUE…]`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// The path to write.
    pub path: String,
    /// The data: `key=value`, `key=@file`, `key=-` (standard input), or
    /// `-` alone for a JSON object on standard input.
    pub data: Vec<String>,
    #[command(flatten)]
    pub output: Output,
}

/// `broker list PATH`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The path whose keys to list (`database/roles`, `sys/policies/acl`).
    pub path: String,
    #[command(flatten)]
    pub output: Output,
}

/// `broker delete PATH`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The path to delete.
    pub path: String,
}

/// Reads `path`: its answer printed; exit 2 when nothing is there.
pub async fn read(args: ReadArgs) -> anyhow::Result<()> {
    let client = client()?;
    match client.read(&args.path).await? {
        Some(answer) => args.output.print(&answer),
        None => Err(Exit::with(2, format!("no value found at {}", args.path))),
    }
}

/// Writes `data` to `path` with `method` (POST for write, PATCH for patch).
pub async fn write(args: WriteArgs, method: Method) -> anyhow::Result<()> {
    let client = client()?;
    let body = body(&args.data)?;
    match client.request(method, &args.path, Some(&body)).await? {
        Some(answer) => args.output.print(&answer),
        None => {
            println!("Success! Data written to: {}", args.path);
            Ok(())
        }
    }
}

/// Lists `path`'s keys; exit 2 when there are none.
pub async fn list(args: ListArgs) -> anyhow::Result<()> {
    let client = client()?;
    match client.list(&args.path).await? {
        Some(answer) => args.output.print_keys(&answer),
        None => Err(Exit::with(2, format!("no value found at {}", args.path))),
    }
}

/// Deletes `path`.
pub async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    client()?.request(Method::DELETE, &args.path, None).await?;
    println!("Success! Data deleted (if it existed) at: {}", args.path);
    Ok(())
}

/// `broker status`: the seal state, no token needed. Exit 0 unsealed, 2
/// sealed, 1 when it cannot be read (as Vault's).
pub async fn status(output: Output) -> anyhow::Result<()> {
    let client = client()?;
    let Some(seal) = client.request(Method::GET, "sys/seal-status", None).await? else {
        anyhow::bail!("sys/seal-status answered nothing");
    };
    let leader = client
        .request(Method::GET, "sys/leader", None)
        .await
        .ok()
        .flatten()
        .unwrap_or(Value::Null);
    let sealed = seal["sealed"] == true;
    if output.field.is_some()
        || output
            .format
            .is_some_and(|f| f != super::output::Format::Table)
    {
        output.print(&seal)?;
    } else {
        let row = |k: &str, v: &Value| println!("{k:<24}{}", super::output::plain(v));
        println!("{:<24}Value\n{:<24}-----", "Key", "---");
        row("Seal Type", &seal["type"]);
        row("Initialized", &seal["initialized"]);
        row("Sealed", &seal["sealed"]);
        row(
            if seal["recovery_seal"] == true {
                "Total Recovery Shares"
            } else {
                "Total Shares"
            },
            &seal["n"],
        );
        row("Threshold", &seal["t"]);
        if sealed {
            row(
                "Unseal Progress",
                &Value::String(format!("{}/{}", seal["progress"], seal["t"])),
            );
        }
        row("Version", &seal["version"]);
        row("Cluster ID", &seal["cluster_id"]);
        if !leader.is_null() {
            row("HA Enabled", &leader["ha_enabled"]);
            if leader["ha_enabled"] == true {
                row("Node ID", &leader["node_id"]);
                row("Periodic Job Node", &leader["leader_address"]);
            }
        }
        if seal["migration"] == true {
            row("Seal Migration in Progress", &Value::Bool(true));
        }
    }
    if sealed {
        return Err(Exit::silent(2));
    }
    Ok(())
}
