//! `broker pki issue MOUNT/ROLE common_name=…`: a certificate from a PKI
//! role, printed, or written to files (the private key readable by its
//! owner only).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use super::args::body;
use super::client;
use super::output::{Output, plain};

/// `broker pki …`.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Issue a certificate and key from a role (`broker pki issue pki/web
    /// common_name=api.example.com ttl=24h -cert-out=api.pem -key-out=api.key`).
    Issue {
        /// The mount and role: `pki/web`.
        role: String,
        /// The request's fields: `common_name=…`, `alt_names=…`, `ttl=…`.
        fields: Vec<String>,
        /// Write the certificate (with the issuing CA after it) here.
        #[arg(long)]
        cert_out: Option<PathBuf>,
        /// Write the private key here (mode 0600).
        #[arg(long)]
        key_out: Option<PathBuf>,
        #[command(flatten)]
        output: Output,
    },
}

/// Writes `text` to `path` with `mode`, replacing what was there.
fn write_file(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Runs a pki command.
pub async fn run(cmd: PkiCommand) -> anyhow::Result<()> {
    let PkiCommand::Issue {
        role,
        fields,
        cert_out,
        key_out,
        output,
    } = cmd;
    let Some((mount, name)) = role.trim_matches('/').rsplit_once('/') else {
        bail!("{role:?}: give the mount and the role, e.g. pki/web");
    };
    let answer = client()?
        .request(
            Method::POST,
            &format!("{mount}/issue/{name}"),
            Some(&body(&fields)?),
        )
        .await?
        .unwrap_or(Value::Null);
    let data = &answer["data"];
    if cert_out.is_none() && key_out.is_none() {
        return output.print(&answer);
    }
    if let Some(path) = &cert_out {
        let mut pem = plain(&data["certificate"]);
        if let Some(ca) = data["issuing_ca"].as_str() {
            pem = format!("{}\n{}\n", pem.trim_end(), ca.trim_end());
        }
        write_file(path, &pem, 0o644)?;
    }
    if let Some(path) = &key_out {
        write_file(
            path,
            &format!("{}\n", plain(&data["private_key"]).trim_end()),
            0o600,
        )?;
    }
    println!(
        "Success! Issued serial {} (lease {}).",
        plain(&data["serial_number"]),
        answer["lease_id"]
            .as_str()
            .filter(|l| !l.is_empty())
            .unwrap_or("none")
    );
    Ok(())
}
