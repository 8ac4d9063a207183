//! The `file` audit device: JSON lines appended to a file (or standard
//! output), hash-chained, reopened on SIGHUP for log rotation.
//!
//! Opening never follows a symlink at the last component, creates files
//! with mode 0600 and tightens an existing regular file to 0600. Where a
//! device may write is checked by the caller ([`super::AuditPolicy`]).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Map, Value};

use super::chain::{ChainHead, link};

/// Where a device writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The broker's standard output.
    Stdout,
    /// A file.
    File(PathBuf),
}

impl Target {
    /// `"stdout"` or a path.
    pub fn parse(file_path: &str) -> Self {
        if file_path == "stdout" {
            Self::Stdout
        } else {
            Self::File(PathBuf::from(file_path))
        }
    }
}

enum Output {
    Stdout,
    File(File),
}

struct State {
    out: Output,
    head: ChainHead,
}

/// An open file device.
pub struct FileDevice {
    target: Target,
    state: Mutex<State>,
}

impl std::fmt::Debug for FileDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDevice")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

fn open_file(path: &Path) -> std::io::Result<File> {
    // Write-only: a FIFO opened for reading too would be its own reader.
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if meta.is_file() && meta.permissions().mode() & 0o777 != 0o600 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// The chain head at the end of an existing regular file: its last
/// complete line. Anything else (a pipe, a device) starts a new chain.
fn head_of(path: &Path) -> ChainHead {
    const TAIL: u64 = 256 * 1024;
    let is_file = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0);
    if !is_file {
        return ChainHead::default();
    }
    let Ok(mut file) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    else {
        return ChainHead::default();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let mut bytes = Vec::new();
    if file
        .seek(SeekFrom::Start(len.saturating_sub(TAIL)))
        .is_err()
        || file.read_to_end(&mut bytes).is_err()
    {
        return ChainHead::default();
    }
    String::from_utf8_lossy(&bytes)
        .lines()
        .rev()
        .find_map(|line| {
            let v: Value = serde_json::from_str(line).ok()?;
            Some(ChainHead {
                hash: v.get("hash")?.as_str()?.to_owned(),
                seq: v.get("seq")?.as_u64()?,
            })
        })
        .unwrap_or_default()
}

/// Whether a regular file's last byte is not a newline.
fn ends_mid_line(path: &Path) -> bool {
    let Ok(mut file) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    else {
        return false;
    };
    let len = file
        .metadata()
        .map_or(0, |m| if m.is_file() { m.len() } else { 0 });
    let mut last = [0u8; 1];
    len > 0
        && file.seek(SeekFrom::Start(len - 1)).is_ok()
        && file.read_exact(&mut last).is_ok()
        && last[0] != b'\n'
}

impl FileDevice {
    /// Opens (creating) the target; an existing file's chain continues.
    pub fn open(target: Target) -> std::io::Result<Self> {
        let (out, head) = match &target {
            Target::Stdout => (Output::Stdout, ChainHead::default()),
            Target::File(path) => {
                let head = head_of(path);
                let mut file = open_file(path)?;
                // A crash mid-line leaves no newline: start on a fresh line,
                // so the next entry stays whole (verify reports the torn one).
                if ends_mid_line(path) {
                    file.write_all(b"\n")?;
                }
                (Output::File(file), head)
            }
        };
        Ok(Self {
            target,
            state: Mutex::new(State { out, head }),
        })
    }

    /// Where it writes.
    pub fn target(&self) -> &Target {
        &self.target
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic mid-write leaves at worst a partial line, which verify
        // reports; the device stays usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends `entry` to the chain; with `durable`, returns only once the
    /// line is on disk. The chain moves on only if the write succeeded.
    pub fn append(&self, entry: Map<String, Value>, durable: bool) -> std::io::Result<()> {
        let mut state = self.lock();
        let mut head = state.head.clone();
        let mut line = link(entry, &mut head);
        line.push('\n');
        match &mut state.out {
            Output::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(line.as_bytes())?;
                out.flush()?;
            }
            Output::File(file) => {
                file.write_all(line.as_bytes())?;
                if durable {
                    file.sync_data()?;
                }
            }
        }
        state.head = head;
        Ok(())
    }

    /// Reopens the file (after log rotation moved it away); the chain
    /// continues from the last line written.
    pub fn reopen(&self) -> std::io::Result<()> {
        if let Target::File(path) = &self.target {
            let file = open_file(path)?;
            self.lock().out = Output::File(file);
        }
        Ok(())
    }

    /// The last line's hash and seq.
    pub fn head(&self) -> ChainHead {
        self.lock().head.clone()
    }
}
