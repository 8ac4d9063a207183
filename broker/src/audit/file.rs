//! The `file` audit device: JSON lines appended to a file (or standard
//! output), in a keyed, anchored chain ([`super::chain`]), reopened on SIGHUP
//! for log rotation.
//!
//! Opening never follows a symlink at the last component, creates files
//! with mode 0600 and tightens an existing regular file to 0600. Where a
//! device may write is checked by the caller ([`super::AuditPolicy`]); a
//! file it allowed is then opened beneath the allowed directory with no
//! symlink anywhere on the way ([`Target::Beneath`]), now and on every
//! reopen, so swapping a directory for a link after the check leads nowhere.
//!
//! An existing file is read in full when it is opened: every line must be
//! the broker's own (its MAC checks), linked, and the file must begin and
//! reach where the broker recorded ([`Anchor`]). A file that fails is never
//! written to: the device *refuses* (its writes fail, so the request fails
//! closed if no other device takes it) until the file is moved aside and the
//! device reopened (SIGHUP or restart), which starts a new file continuing
//! the recorded chain. This module must never append to a file it has not
//! checked, nor write an entry outside the chain.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Map, Value};

use super::chain::{
    Anchor, CHECKPOINT_AFTER, CHECKPOINT_EVERY, ChainHead, Reason, Verifier, checkpoint_entry, link,
};
use super::keys::ChainKeys;

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
    /// Why the file failed its check: the device writes nothing until the
    /// file is replaced and reopened.
    refused: Option<String>,
    /// A checkpoint to write before the next entry, and whether it opens
    /// the file (a new or empty file must begin with one).
    pending: Option<(Reason, bool)>,
    /// The seq the pending checkpoint took in a write that failed: if the
    /// file holds that line after all, it is not written twice.
    pending_seq: Option<u64>,
    entries_since_checkpoint: u64,
    last_checkpoint: Instant,
    /// The current file's first line (a regular file only).
    first: Option<ChainHead>,
    /// What is recorded (or is to be) in sealed storage for the file.
    anchor: Option<Anchor>,
    /// The anchor moved since it was last taken for storage.
    anchor_moved: bool,
    /// The output is a regular file (a FIFO or a device has no anchor).
    regular: bool,
}

/// An open file device.
pub struct FileDevice {
    target: Target,
    keys: Arc<ChainKeys>,
    /// The node whose chain this is, on storage several nodes share: every
    /// line carries it (inside the hash).
    node: Option<String>,
    state: Mutex<State>,
}

impl std::fmt::Debug for FileDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDevice")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The open file again, for reading, through its descriptor: the path may
/// name another file by now (log rotation).
fn reread(file: &File) -> std::io::Result<File> {
    use std::os::fd::AsRawFd;
    File::open(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// What an existing file holds, once checked.
struct Checked {
    /// Its last whole line: the chain goes on from there.
    head: ChainHead,
    /// Its first line.
    first: ChainHead,
}

/// Reads `file` in full and checks it: the broker's MAC on every line, the
/// linkage, and the `anchor` recorded for it. The error says what is wrong
/// and where.
fn check(file: &mut File, keys: &ChainKeys, anchor: Option<&Anchor>) -> Result<Checked, String> {
    let mut verifier = Verifier::for_broker(keys, anchor);
    let mut reader = std::io::BufReader::new(file);
    let mut buf = Vec::new();
    let mut n = 0u64;
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("cannot read the file: {e}")),
        }
        n += 1;
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim_end_matches('\n');
        if text.is_empty() {
            continue;
        }
        verifier.line(text).map_err(|e| format!("line {n}: {e}"))?;
    }
    verifier.finish().map_err(|e| e.to_string())?;
    match (verifier.head(), verifier.file_first()) {
        (Some(head), Some(first)) => Ok(Checked {
            head: head.clone(),
            first: first.clone(),
        }),
        _ => Err("the file holds no audit entry".into()),
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
    /// Opens (creating) the target and checks what it holds.
    ///
    /// An existing file must pass [`check`] against `recorded`, the anchor
    /// saved for this device: the chain then goes on from its last line.
    /// If it fails, the device is opened but refuses to write
    /// ([`Self::refused`]). A new or empty file continues the recorded
    /// chain (the file before it was rotated away), or starts one.
    pub fn open(
        target: Target,
        keys: Arc<ChainKeys>,
        recorded: Option<Anchor>,
        node: Option<String>,
    ) -> std::io::Result<Self> {
        let mut state = State {
            out: Output::Stdout,
            head: ChainHead::default(),
            torn: false,
            refused: None,
            pending: Some((Reason::Start, true)),
            pending_seq: None,
            entries_since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            first: None,
            anchor: None,
            anchor_moved: false,
            regular: false,
        };
        if target != Target::Stdout {
            // Opened first: a path that escapes fails here, before any read.
            let file = open_file(&target)?;
            Self::adopt(&mut state, file, &keys, recorded)?;
        }
        Ok(Self {
            target,
            keys,
            node,
            state: Mutex::new(state),
        })
    }

    /// Makes `file` the output: checks what it holds and sets where the
    /// chain goes on. `recorded` is the anchor the file must match.
    fn adopt(
        state: &mut State,
        mut file: File,
        keys: &ChainKeys,
        recorded: Option<Anchor>,
    ) -> std::io::Result<()> {
        let meta = file.metadata()?;
        state.regular = meta.is_file();
        state.refused = None;
        state.first = None;
        state.anchor = recorded.clone();
        let continued = recorded.as_ref().map(|a| a.head.clone());
        if !state.regular || meta.len() == 0 {
            // Nothing to check (a new file, a FIFO): the first line written
            // will be a checkpoint that opens the file.
            if let Some(head) = continued {
                state.head = head;
            }
            let reason = if state.head.seq > 0 {
                Reason::Continue
            } else {
                Reason::Start
            };
            state.pending = Some((reason, true));
        } else {
            match check(&mut reread(&file)?, keys, recorded.as_ref()) {
                Ok(checked) => {
                    state.head = checked.head;
                    state.first = Some(checked.first.clone());
                    state.anchor = Some(Anchor {
                        first: checked.first,
                        head: recorded.map_or_else(|| state.head.clone(), |a| a.head),
                    });
                    state.pending = Some((Reason::Start, false));
                    // A crash mid-line leaves no newline: start on a fresh
                    // line, so the next entry stays whole.
                    if torn_in(&mut reread(&file)?) {
                        file.write_all(b"\n")?;
                    }
                }
                Err(why) => {
                    // Kept as recorded: a new file will continue from here.
                    if let Some(head) = continued {
                        state.head = head;
                    }
                    state.pending = None;
                    state.refused = Some(why);
                }
            }
        }
        state.anchor_moved = true;
        state.out = Output::File(file);
        Ok(())
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

    /// Why the device refuses to write, if it does.
    pub fn refused(&self) -> Option<String> {
        self.lock().refused.clone()
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
        self.write(&mut state, entries, None, durable)
    }

    /// Writes the checkpoint an opened device owes (the one that starts the
    /// device or opens its file), if any. A refused device writes nothing.
    pub fn start(&self) -> std::io::Result<()> {
        let mut state = self.lock();
        if state.pending.is_none() || state.refused.is_some() {
            return Ok(());
        }
        self.write(&mut state, Vec::new(), None, true)
    }

    /// Writes a checkpoint now (with any pending one first).
    pub fn checkpoint(&self, reason: Reason) -> std::io::Result<()> {
        let mut state = self.lock();
        self.write(&mut state, Vec::new(), Some(reason), true)
    }

    /// `entry` with this device's node id, if it has one.
    fn stamped(&self, mut entry: Map<String, Value>) -> Map<String, Value> {
        if let Some(node) = &self.node {
            entry.insert("node_id".into(), Value::String(node.clone()));
        }
        entry
    }

    fn write(
        &self,
        state: &mut State,
        entries: Vec<Map<String, Value>>,
        closing: Option<Reason>,
        durable: bool,
    ) -> std::io::Result<()> {
        if let Some(why) = &state.refused {
            return Err(std::io::Error::other(format!(
                "the audit file failed its check and the device refuses to continue its chain: {why}; move the file aside and send SIGHUP (or restart)"
            )));
        }
        let keys = &*self.keys;
        let mut head = state.head.clone();
        let mut lines = String::new();
        if state.torn {
            lines.push('\n');
        }
        // The checkpoints this write holds: (line, opens the file).
        let mut checkpoints: Vec<(ChainHead, bool)> = Vec::new();
        let mut opened_at = None;
        if let Some((reason, opens)) = state.pending {
            if opens {
                opened_at = Some(head.seq + 1);
            }
            lines.push_str(&link(
                self.stamped(checkpoint_entry(reason, opens, keys)),
                &mut head,
                keys,
            ));
            lines.push('\n');
            checkpoints.push((head.clone(), opens));
        }
        let count = entries.len() as u64;
        for entry in entries {
            lines.push_str(&link(self.stamped(entry), &mut head, keys));
            lines.push('\n');
        }
        let since = state.entries_since_checkpoint + count;
        let closing = closing.or_else(|| {
            (since >= CHECKPOINT_EVERY
                || (count > 0 && state.last_checkpoint.elapsed() >= CHECKPOINT_AFTER))
                .then_some(Reason::Interval)
        });
        if let Some(reason) = closing {
            lines.push_str(&link(
                self.stamped(checkpoint_entry(reason, false, keys)),
                &mut head,
                keys,
            ));
            lines.push('\n');
            checkpoints.push((head.clone(), false));
        }
        // A checkpoint is synced: the anchor recorded from it must never be
        // ahead of what a power loss leaves on disk.
        // Only a regular file can be synced: a pipe or a device answers
        // EINVAL, which would fail every checkpoint for nothing.
        let durable = (durable || !checkpoints.is_empty()) && state.regular;
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
                state.pending = None;
                state.pending_seq = None;
                state.entries_since_checkpoint = if checkpoints.is_empty() { since } else { 0 };
                if let Some((last, _)) = checkpoints.last() {
                    state.last_checkpoint = Instant::now();
                    if let Some((first, true)) = checkpoints.first() {
                        state.first = Some(first.clone());
                    }
                    if state.regular
                        && let Some(first) = state.first.clone()
                    {
                        state.anchor = Some(Anchor {
                            first,
                            head: last.clone(),
                        });
                        state.anchor_moved = true;
                    }
                }
                Ok(())
            }
            Err(e) => {
                state.pending_seq = opened_at;
                Self::resync(state);
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
        if !state.regular {
            return;
        }
        let Ok(mut own) = reread(file) else {
            return;
        };
        let found = head_in(&mut own);
        if found != ChainHead::default() {
            // The checkpoint that opens the file made it in: not again.
            if let Some(seq) = state.pending_seq
                && found.seq >= seq
            {
                state.pending = None;
            }
            state.head = found;
        }
        state.torn = torn_in(&mut own);
    }

    /// Reopens the file (SIGHUP, after log rotation moved it away). The old
    /// file gets a closing checkpoint; a new, empty file begins with one
    /// that continues the chain. If the path still names the same file,
    /// nothing else changes. Any other file there must pass the same check
    /// as at start; a device that refused is checked afresh, so moving its
    /// file aside and reopening is how an operator resumes it.
    pub fn reopen(&self) -> std::io::Result<()> {
        if self.target == Target::Stdout {
            return Ok(());
        }
        let file = open_file(&self.target)?;
        let mut state = self.lock();
        let same = |a: &File, b: &File| {
            use std::os::unix::fs::MetadataExt;
            match (a.metadata(), b.metadata()) {
                (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                _ => false,
            }
        };
        if let Output::File(old) = &state.out
            && same(old, &file)
            && state.refused.is_none()
        {
            return Ok(());
        }
        if state.refused.is_none() {
            // Best effort: the old file may be gone or full; the new one's
            // first line links to the chain either way.
            if let Err(e) = self.write(&mut state, Vec::new(), Some(Reason::Rotate), true) {
                tracing::warn!(target_file = ?self.target, error = %e, "no closing checkpoint in the rotated audit file");
            }
        }
        let recorded = state.anchor.clone();
        let head = state.head.clone();
        // A refused file is checked against what is recorded; a healthy
        // device's new file continues from where it is now.
        let recorded = if state.refused.is_some() {
            recorded
        } else {
            state.first.clone().map(|first| Anchor { first, head })
        };
        Self::adopt(&mut state, file, &self.keys, recorded)?;
        if state.refused.is_none() && state.pending.is_some() {
            self.write(&mut state, Vec::new(), None, true)?;
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

    /// Whether the anchor moved since [`Self::take_moved`].
    pub fn moved(&self) -> bool {
        self.lock().anchor_moved
    }

    /// Whether the anchor moved, and from now on: not.
    pub fn take_moved(&self) -> bool {
        std::mem::take(&mut self.lock().anchor_moved)
    }

    /// The anchor to record for this device (regular files only).
    pub fn anchor(&self) -> Option<Anchor> {
        self.lock().anchor.clone()
    }
}
