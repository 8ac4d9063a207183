//! `broker audit verify`: checks the hash chain of audit files.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::audit::chain::{ChainHead, verify_line};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check that audit files are intact: no line edited, missing,
    /// inserted or reordered.
    ///
    /// Give a device's files oldest first (rotated files, then the
    /// current one): the chain is followed across them. Exits non-zero at
    /// the first broken line, naming the file and line.
    Verify {
        /// Audit files, oldest first.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

pub fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Verify { files } = cmd;
    let mut head: Option<ChainHead> = None;
    let mut lines = 0u64;
    for path in &files {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.with_context(|| format!("cannot read {}", path.display()))?;
            verify_line(&line, &mut head)
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), n + 1))?;
            lines += 1;
        }
    }
    match head {
        Some(h) => println!(
            "ok: {lines} lines in {} file(s), chain intact through seq {}",
            files.len(),
            h.seq
        ),
        None => println!("ok: no lines"),
    }
    Ok(())
}
