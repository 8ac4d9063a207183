//! `broker audit verify`: checks audit files the way an auditor can, with
//! no secret of the broker's: the hash chain, the file boundaries and, with
//! the checkpoint public key, the signed checkpoints that vouch for it.
//! `broker audit enable|disable|list` manage a running broker's devices.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

use crate::audit::chain::Verifier;
use crate::audit::keys::PublicKey;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Enable an audit device on a running broker (`broker audit enable
    /// file file_path=/var/log/broker/audit.log`).
    Enable {
        /// The device type (`file`).
        kind: String,
        /// Where to enable it (default: the type).
        #[arg(long)]
        path: Option<String>,
        /// Its options, `key=value` (`file_path`, `log_raw`, `hmac_accessor`, `fsync`).
        options: Vec<String>,
    },
    /// Disable an audit device.
    Disable {
        /// The device's path.
        path: String,
    },
    /// The enabled audit devices.
    List {
        #[command(flatten)]
        output: super::output::Output,
    },
    /// Check that audit files are intact: no line edited, missing,
    /// inserted or reordered, none dropped at a file's start or end.
    ///
    /// Give a device's files oldest first (rotated files, then the
    /// current one): the chain is followed across them. Files of several
    /// nodes sharing one database may be given together: each node's lines
    /// name it (`node_id`), its files form a chain of their own, and each
    /// node is reported on a line of its own. Every file must
    /// begin with the checkpoint the broker opens it with, and the last
    /// must end with a checkpoint (the broker writes one at a clean stop
    /// and on rotation). With --public-key, every checkpoint's signature is
    /// checked, which is what finds an edit whose hashes were recomputed.
    /// Exits non-zero at the first broken line, naming the file and line.
    Verify {
        /// The checkpoint public key (PEM), as `GET sys/audit-public-key`
        /// gives it. Without it, signatures are not checked.
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
        /// Accept lines after the last checkpoint (a file the broker is
        /// still writing): they are counted and reported, not vouched for.
        #[arg(long)]
        open_end: bool,
        /// Audit files, oldest first.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

fn read_key(path: &Path) -> anyhow::Result<PublicKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    PublicKey::from_pem(&text).with_context(|| format!("{}", path.display()))
}

/// The node id a line names (`node_id`), if it is an entry that names one.
fn node_of(line: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()?
        .get("node_id")?
        .as_str()
        .map(str::to_owned)
}

/// The node id the first entry of `path` names (`None`: a file of a
/// broker alone on its storage, whose lines name no node).
fn node_of_file(path: &Path) -> anyhow::Result<Option<String>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = std::io::BufReader::new(file);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = reader
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if read == 0 {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim_end_matches('\n');
        if !text.is_empty() {
            return Ok(node_of(text));
        }
    }
}

/// The files by the node whose chain they hold, each node's in the order
/// given, the nodes in the order first met.
fn by_node(files: &[PathBuf]) -> anyhow::Result<Vec<(Option<String>, Vec<PathBuf>)>> {
    let mut groups: Vec<(Option<String>, Vec<PathBuf>)> = Vec::new();
    for path in files {
        let node = node_of_file(path)?;
        match groups.iter_mut().find(|(n, _)| *n == node) {
            Some((_, paths)) => paths.push(path.clone()),
            None => groups.push((node, vec![path.clone()])),
        }
    }
    Ok(groups)
}

pub async fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    use reqwest::Method;
    use serde_json::{Value, json};
    let (public_key, open_end, files) = match cmd {
        AuditCommand::Verify {
            public_key,
            open_end,
            files,
        } => (public_key, open_end, files),
        AuditCommand::Enable {
            kind,
            path,
            options,
        } => {
            let path = path.unwrap_or_else(|| kind.clone());
            let mut body = serde_json::Map::new();
            body.insert("type".into(), json!(kind));
            body.insert(
                "options".into(),
                Value::Object(super::args::body(&options)?),
            );
            super::client()?
                .request(
                    Method::PUT,
                    &format!("sys/audit/{}", path.trim_matches('/')),
                    Some(&body),
                )
                .await?;
            println!(
                "Success! Enabled the {kind} audit device at: {}/",
                path.trim_matches('/')
            );
            return Ok(());
        }
        AuditCommand::Disable { path } => {
            super::client()?
                .request(
                    Method::DELETE,
                    &format!("sys/audit/{}", path.trim_matches('/')),
                    None,
                )
                .await?;
            println!(
                "Success! Disabled the audit device (if it existed) at: {}/",
                path.trim_matches('/')
            );
            return Ok(());
        }
        AuditCommand::List { output } => {
            let answer = super::client()?
                .request(Method::GET, "sys/audit", None)
                .await?
                .unwrap_or(Value::Null);
            if output.field.is_some() || output.format.is_some() {
                return output.print(&answer);
            }
            let devices = answer
                .get("data")
                .filter(|d| d.is_object())
                .unwrap_or(&answer);
            println!("{:<16}{:<8}Options", "Path", "Type");
            println!("{:<16}{:<8}-------", "----", "----");
            for (path, device) in devices.as_object().into_iter().flatten() {
                if device.get("type").is_none() {
                    continue;
                }
                println!(
                    "{path:<16}{:<8}{}",
                    super::output::plain(&device["type"]),
                    device["options"]
                );
            }
            return Ok(());
        }
    };
    let public = public_key.as_deref().map(read_key).transpose()?;
    if public.is_none() {
        eprintln!(
            "warning: no --public-key: checkpoint signatures were not checked, so an edit whose hashes were recomputed would not be found"
        );
    }
    let groups = by_node(&files)?;
    // One broker alone on its storage: one chain, reported as such.
    if let [(None, files)] = groups.as_slice() {
        let summary = verify_chain(files, None, public.as_ref(), open_end)?;
        println!("ok: {summary}");
        return Ok(());
    }
    // Several nodes: each node's files are a chain of their own.
    let mut broken = 0;
    for (node, files) in &groups {
        let name = node.as_deref().unwrap_or("(no node id)");
        match verify_chain(files, node.as_deref(), public.as_ref(), open_end) {
            Ok(summary) => println!("node {name}: ok: {summary}"),
            Err(e) => {
                broken += 1;
                println!("node {name}: BROKEN: {e:#}");
            }
        }
    }
    if broken > 0 {
        anyhow::bail!(
            "{broken} of {} nodes' audit chains are broken",
            groups.len()
        );
    }
    Ok(())
}

/// Verifies one chain: `files` oldest first, every line naming `node` (if
/// any). A one-line summary of what was checked.
fn verify_chain(
    files: &[PathBuf],
    node: Option<&str>,
    public: Option<&PublicKey>,
    open_end: bool,
) -> anyhow::Result<String> {
    let mut verifier = Verifier::new(public);
    for path in files {
        verifier.next_file();
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut reader = std::io::BufReader::new(file);
        let mut buf = Vec::new();
        let mut n = 0u64;
        loop {
            buf.clear();
            let read = reader
                .read_until(b'\n', &mut buf)
                .with_context(|| format!("cannot read {}", path.display()))?;
            if read == 0 {
                break;
            }
            n += 1;
            let text = String::from_utf8_lossy(&buf);
            let text = text.trim_end_matches('\n');
            if text.is_empty() {
                continue;
            }
            verifier
                .line(text)
                .map_err(|e| anyhow::anyhow!("{}:{n}: {e}", path.display()))?;
            if let Some(node) = node
                && node_of(text).as_deref() != Some(node)
            {
                anyhow::bail!(
                    "{}:{n}: the line is not node {node}'s (each node writes a chain of its own)",
                    path.display()
                );
            }
        }
        // The broker begins every file with a checkpoint: an empty one has
        // lost everything.
        if verifier.file_first().is_none() {
            anyhow::bail!("{}: the file holds no audit entry", path.display());
        }
    }
    let Some(head) = verifier.head() else {
        anyhow::bail!("no audit entry");
    };
    let uncovered = verifier.uncovered();
    if uncovered > 0 {
        let tail = format!(
            "the last {uncovered} line(s) (through seq {}) are not covered by a checkpoint: the file may have been cut short there, or those lines forged",
            head.seq
        );
        if !open_end {
            anyhow::bail!(
                "{}: {tail} (give --open-end for a file the broker is still writing)",
                files
                    .last()
                    .map_or_else(String::new, |p| p.display().to_string())
            );
        }
        eprintln!("warning: {tail}");
    }
    let signed = match (public, verifier.covered()) {
        (None, _) => "checkpoints not checked (no --public-key)".to_owned(),
        (Some(_), Some(c)) => format!(
            "signed checkpoints verified through seq {} (the last written at: {})",
            c.seq, c.reason
        ),
        (Some(_), None) => "no checkpoint".to_owned(),
    };
    Ok(format!(
        "{} lines in {} file(s), chain intact through seq {}; {signed}",
        verifier.lines(),
        files.len(),
        head.seq
    ))
}
