//! The `file` audit device: JSON lines appended to a file (or standard
//! output), hash-chained, reopened on SIGHUP for log rotation.
//!
//! Opening never follows a symlink at the last component, creates files
//! with mode 0600 and tightens an existing regular file to 0600. Where a
//! device may write is checked by the caller ([`super::AuditPolicy`]); a
//! file it allowed is then opened beneath the allowed directory with no
//! symlink anywhere on the way ([`Target::Beneath`]), now and on every
//! reopen, so swapping a directory for a link after the check leads nowhere.

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
    /// A file the operator named (configuration file, dev mode).
    File(PathBuf),
    /// A file `file` (relative, no `..`) beneath the directory `dir`, opened
    /// with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`.
    Beneath {
        /// The allowed directory, canonical.
        dir: PathBuf,
        /// The file's path below it.
        file: PathBuf,
    },
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

    /// The file's path, for reading it back (`None` for stdout).
    fn path(&self) -> Option<PathBuf> {
        match self {
            Self::Stdout => None,
            Self::File(path) => Some(path.clone()),
            Self::Beneath { dir, file } => Some(dir.join(file)),
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
    /// A failed write may have left a partial line: the next write starts
    /// on a fresh line, so its first entry stays whole.
    torn: bool,
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

fn open_file(target: &Target) -> std::io::Result<File> {
    let file = match target {
        Target::Stdout => return Err(std::io::Error::other("standard output is not a file")),
        // Write-only: a FIFO opened for reading too would be its own reader.
        Target::File(path) => OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?,
        Target::Beneath { dir, file } => {
            use rustix::fs::{Mode, OFlags, ResolveFlags};
            let dir = rustix::fs::open(
                dir,
                OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            // Non-blocking: a FIFO swapped in for the file must not hang
            // the open (and, audit failing closed, every request).
            let file = File::from(rustix::fs::openat2(
                &dir,
                file,
                OFlags::WRONLY
                    | OFlags::APPEND
                    | OFlags::CREATE
                    | OFlags::NOFOLLOW
                    | OFlags::NONBLOCK
                    | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
            )?);
            if !file.metadata()?.is_file() {
                return Err(std::io::Error::other(
                    "the audit file is not a regular file",
                ));
            }
            file
        }
    };
    let meta = file.metadata()?;
    if meta.is_file() && meta.permissions().mode() & 0o777 != 0o600 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// The chain head at the end of an existing regular file: its last
/// complete line. Anything else (a pipe, a device) starts a new chain.
fn head_of(path: &Path) -> ChainHead {
    let is_file = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0);
    if !is_file {
        return ChainHead::default();
    }
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(mut file) => head_in(&mut file),
        Err(_) => ChainHead::default(),
    }
}

/// The last complete line's head in `file`, read from its tail.
fn head_in(file: &mut File) -> ChainHead {
    const TAIL: u64 = 256 * 1024;
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
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(mut file) => torn_in(&mut file),
        Err(_) => false,
    }
}

/// Whether `file` (a regular file) ends without a newline.
fn torn_in(file: &mut File) -> bool {
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
    /// A new or empty file continues `resume`, the head the broker saved
    /// when it last stopped: a file rotated away while the broker was down
    /// then leaves no break between the old file and the new one.
    pub fn open(target: Target, resume: Option<ChainHead>) -> std::io::Result<Self> {
        let (out, head) = match &target {
            Target::Stdout => (Output::Stdout, ChainHead::default()),
            Target::File(_) | Target::Beneath { .. } => {
                // Opened first: a path that escapes fails here, before any read.
                let mut file = open_file(&target)?;
                let path = target.path().unwrap_or_default();
                let head = match head_of(&path) {
                    head if head == ChainHead::default() => resume.unwrap_or_default(),
                    head => head,
                };
                // A crash mid-line leaves no newline: start on a fresh line,
                // so the next entry stays whole (verify reports the torn one).
                if ends_mid_line(&path) {
                    file.write_all(b"\n")?;
                }
                (Output::File(file), head)
            }
        };
        Ok(Self {
            target,
            state: Mutex::new(State {
                out,
                head,
                torn: false,
            }),
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
        self.append_all(vec![entry], durable)
    }

    /// Appends `entries` in order, chained, with one write and (when
    /// `durable`) one sync for them all: the expiration worker's batch of
    /// revocations costs one fsync, not one per lease.
    pub fn append_all(
        &self,
        entries: Vec<Map<String, Value>>,
        durable: bool,
    ) -> std::io::Result<()> {
        let mut state = self.lock();
        let mut head = state.head.clone();
        let mut lines = String::new();
        if state.torn {
            lines.push('\n');
        }
        for entry in entries {
            lines.push_str(&link(entry, &mut head));
            lines.push('\n');
        }
        let written = match &mut state.out {
            Output::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(lines.as_bytes()).and_then(|()| out.flush())
            }
            Output::File(file) => file
                .write_all(lines.as_bytes())
                .and_then(|()| if durable { file.sync_data() } else { Ok(()) }),
        };
        match written {
            Ok(()) => {
                state.head = head;
                state.torn = false;
                Ok(())
            }
            Err(e) => {
                Self::resync(&mut state);
                Err(e)
            }
        }
    }

    /// After a failed write: some of its lines may be in the file (a write
    /// cut short by a full disk, or whole but not synced). The chain must go
    /// on from the file's last line, not from the head before the write, or
    /// the next line would repeat a `seq` the file already holds and fork
    /// the chain. The file is read through the device's own descriptor
    /// (`/proc/self/fd`), not its path: log rotation may have renamed it,
    /// and the path may already name a new, empty file.
    fn resync(state: &mut State) {
        state.torn = true;
        let Output::File(file) = &state.out else {
            return;
        };
        // Only a regular file: reading a pipe would take its reader's data.
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return;
        }
        use std::os::fd::AsRawFd;
        let Ok(mut own) = File::open(format!("/proc/self/fd/{}", file.as_raw_fd())) else {
            return;
        };
        let found = head_in(&mut own);
        if found != ChainHead::default() {
            state.head = found;
        }
        state.torn = torn_in(&mut own);
    }

    /// Reopens the file (after log rotation moved it away); the chain
    /// continues from the last line written.
    pub fn reopen(&self) -> std::io::Result<()> {
        if self.target != Target::Stdout {
            let file = open_file(&self.target)?;
            self.lock().out = Output::File(file);
        }
        Ok(())
    }

    /// The device and inode of the open file: two devices naming one file
    /// by different strings (`/d//a.log`, a link) have the same identity.
    pub fn identity(&self) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        match &self.lock().out {
            Output::Stdout => None,
            Output::File(file) => file.metadata().ok().map(|m| (m.dev(), m.ino())),
        }
    }

    /// The last line's hash and seq.
    pub fn head(&self) -> ChainHead {
        self.lock().head.clone()
    }
}
