//! The keyed, anchored hash chain over audit lines, and its verification.
//!
//! Every line is a JSON object carrying `seq` (its position in the chain),
//! `prev_hash` (the previous line's `hash`), `mac` and `hash`:
//!
//! - the line's *body* is its canonical form without `hash`, `mac` and
//!   `signature`: JSON with object keys sorted and no whitespace, so it does
//!   not depend on how a line was written;
//! - `mac` is the HMAC-SHA256 of the body under the chain key, which only
//!   the broker holds ([`super::keys`]): it tells the broker's own lines from
//!   lines an intruder edited and re-hashed;
//! - `hash` is SHA-256 over the body, a newline and the `mac`: anyone can
//!   recompute it, so an edit that is not re-hashed shows at its line, and a
//!   missing, inserted or reordered line breaks `seq` or `prev_hash`.
//!
//! Re-hashing after an edit is within anyone's reach, so the chain is
//! anchored by **checkpoints**: lines of type `checkpoint` whose
//! `signature` is an Ed25519 signature over their `hash` under a key whose
//! public half an auditor holds. A valid signature at seq N vouches for every
//! line up to N through the linkage. The broker writes one as the first line
//! of every file (`opens_file`, so lines dropped at a file's start show), at
//! every start, every [`CHECKPOINT_EVERY`] entries or [`CHECKPOINT_AFTER`],
//! on reopen (log rotation) and at a clean stop, so a complete file ends at
//! one. Lines after the last checkpoint are reported as not covered.
//!
//! This module must never accept a line whose `hash` does not match it, and
//! must never report a chain as covered by a signature it did not check.

use std::time::Duration;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::keys::{ChainKeys, PublicKey};

/// The `prev_hash` of the first line of a new chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A checkpoint is written after at most this many entries...
pub const CHECKPOINT_EVERY: u64 = 1000;
/// ...or with the first entry this long after the last checkpoint.
pub const CHECKPOINT_AFTER: Duration = Duration::from_secs(60);

/// Fields that are not part of a line's body.
const UNHASHED: [&str; 3] = ["hash", "mac", "signature"];

/// Where a chain stands: a line's hash and sequence number.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainHead {
    /// The line's `hash` ([`GENESIS`] before the first line).
    pub hash: String,
    /// The line's `seq` (0 before the first line).
    pub seq: u64,
}

impl Default for ChainHead {
    fn default() -> Self {
        Self {
            hash: GENESIS.to_owned(),
            seq: 0,
        }
    }
}

/// What the broker records in sealed storage for a device's file: its first
/// line and its last checkpoint. At start, the file must still begin with
/// `first` and still hold `head` at its place.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Anchor {
    /// The file's first line.
    pub first: ChainHead,
    /// The file's last checkpoint the broker wrote.
    pub head: ChainHead,
}

/// Why the broker wrote a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A device opened (broker start, device enabled).
    Start,
    /// A new file continues the chain of an earlier one (log rotation).
    Continue,
    /// Enough entries, or enough time, since the last checkpoint.
    Interval,
    /// The file is about to be reopened (SIGHUP, log rotation).
    Rotate,
    /// The broker stops cleanly.
    Shutdown,
}

impl Reason {
    /// As written in the line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Continue => "continue",
            Self::Interval => "interval",
            Self::Rotate => "rotate",
            Self::Shutdown => "shutdown",
        }
    }
}

/// Writes `value` in canonical form: sorted keys, no whitespace.
pub fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => canonical_map(map, &[], out),
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// `map` in canonical form, leaving out the keys in `skip`.
fn canonical_map(map: &Map<String, Value>, skip: &[&str], out: &mut String) {
    let mut keys: Vec<&String> = map.keys().filter(|k| !skip.contains(&k.as_str())).collect();
    keys.sort();
    out.push('{');
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(k.clone()).to_string());
        out.push(':');
        canonical(&map[k], out);
    }
    out.push('}');
}

/// A line's body: its canonical form without `hash`, `mac`, `signature`.
fn body_of(entry: &Map<String, Value>) -> String {
    let mut text = String::with_capacity(1024);
    canonical_map(entry, &UNHASHED, &mut text);
    text
}

/// The public hash of a line from its body and its `mac`.
fn hash_of(body: &str, mac: &str) -> String {
    let mut h = Sha256::new();
    h.update(body.as_bytes());
    h.update(b"\n");
    h.update(mac.as_bytes());
    hex::encode(h.finalize())
}

/// A checkpoint entry (not yet linked).
pub fn checkpoint_entry(reason: Reason, opens_file: bool, keys: &ChainKeys) -> Map<String, Value> {
    let mut entry = Map::new();
    entry.insert(
        "time".into(),
        Value::String(humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()),
    );
    entry.insert("type".into(), Value::from("checkpoint"));
    entry.insert(
        "checkpoint".into(),
        serde_json::json!({
            "reason": reason.as_str(),
            "opens_file": opens_file,
            "key_id": keys.public().key_id(),
        }),
    );
    entry
}

/// Links `entry` to `head`: sets `seq`, `prev_hash`, `mac` and `hash` (and
/// signs a checkpoint); returns the line (without newline) and moves `head`.
pub fn link(mut entry: Map<String, Value>, head: &mut ChainHead, keys: &ChainKeys) -> String {
    let seq = head.seq + 1;
    entry.insert("seq".into(), Value::from(seq));
    entry.insert("prev_hash".into(), Value::String(head.hash.clone()));
    // Whatever the caller put there would be outside the hash.
    for k in UNHASHED {
        entry.remove(k);
    }
    let body = body_of(&entry);
    let mac = keys.mac(body.as_bytes());
    let hash = hash_of(&body, &mac);
    if entry.get("type").and_then(Value::as_str) == Some("checkpoint") {
        entry.insert("signature".into(), Value::String(keys.sign(&hash)));
    }
    entry.insert("mac".into(), Value::String(mac));
    entry.insert("hash".into(), Value::String(hash.clone()));
    *head = ChainHead { hash, seq };
    Value::Object(entry).to_string()
}

/// What is wrong with a line, or with a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// Not a JSON object with `seq`, `prev_hash`, `mac` and `hash`.
    #[error("not an audit entry: {0}")]
    Malformed(String),
    /// The content does not match its own hash.
    #[error("the line was edited: its content does not match its hash")]
    Edited,
    /// The hash fits but the broker's MAC does not: edited and re-hashed.
    #[error("the line was rewritten and re-hashed: its MAC is not the broker's")]
    Forged,
    /// Lines are missing before this one.
    #[error("{missing} line(s) missing before this one (expected seq {expected}, found {found})")]
    Missing {
        /// How many.
        missing: u64,
        /// The seq that should come next.
        expected: u64,
        /// The seq found.
        found: u64,
    },
    /// This line does not belong here: inserted, or moved from elsewhere.
    #[error("line inserted or out of order (expected seq {expected}, found {found})")]
    OutOfOrder {
        /// The seq that should come next.
        expected: u64,
        /// The seq found.
        found: u64,
    },
    /// The seq fits but the line does not follow the previous one.
    #[error("the line does not follow the previous one (prev_hash differs)")]
    Unlinked,
    /// A file does not begin with the checkpoint the broker opens each file with.
    #[error(
        "the file does not begin with a checkpoint that opens it: lines were dropped from its start, or another writer made it"
    )]
    NotAnchored,
    /// A checkpoint's signature does not verify under the given public key.
    #[error("the checkpoint's signature does not verify under the given public key (key_id {0})")]
    BadSignature(String),
    /// The file does not hold what the broker recorded for it.
    #[error("{0}")]
    NotRecorded(String),
}

/// A line taken apart, its hash checked.
#[derive(Debug)]
struct Line {
    seq: u64,
    prev: String,
    hash: String,
    mac: String,
    body: String,
    checkpoint: Option<Checkpoint>,
}

#[derive(Debug)]
struct Checkpoint {
    reason: String,
    opens_file: bool,
    key_id: String,
    signature: String,
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn parse(line: &str) -> Result<Line, ChainBreak> {
    let Value::Object(entry) =
        serde_json::from_str(line).map_err(|e| ChainBreak::Malformed(e.to_string()))?
    else {
        return Err(ChainBreak::Malformed("not a JSON object".into()));
    };
    let text = |name: &str| {
        entry
            .get(name)
            .ok_or_else(|| ChainBreak::Malformed(format!("no {name}")))?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ChainBreak::Malformed(format!("{name} is not a string")))
    };
    let seq = entry
        .get("seq")
        .ok_or_else(|| ChainBreak::Malformed("no seq".into()))?
        .as_u64()
        .ok_or_else(|| ChainBreak::Malformed("seq is not a number".into()))?;
    let prev = text("prev_hash")?;
    let hash = text("hash")?;
    let mac = text("mac")?;
    let body = body_of(&entry);
    if hash_of(&body, &mac) != hash {
        return Err(ChainBreak::Edited);
    }
    // The broker writes lowercase hex only; another spelling of the same
    // bytes would be an edit that decodes to the same value.
    if !is_hex(&mac, 64) {
        return Err(ChainBreak::Edited);
    }
    let checkpoint = if entry.get("type").and_then(Value::as_str) == Some("checkpoint") {
        let info = entry.get("checkpoint");
        let field = |name: &str| info.and_then(|i| i.get(name));
        Some(Checkpoint {
            reason: field("reason")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            opens_file: field("opens_file").and_then(Value::as_bool) == Some(true),
            key_id: field("key_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            signature: text("signature").and_then(|sig| {
                if is_hex(&sig, 128) {
                    Ok(sig)
                } else {
                    Err(ChainBreak::Edited)
                }
            })?,
        })
    } else {
        None
    };
    Ok(Line {
        seq,
        prev,
        hash,
        mac,
        body,
        checkpoint,
    })
}

fn link_to(line: &Line, head: Option<&ChainHead>) -> Result<(), ChainBreak> {
    let Some(h) = head else {
        // The first line read: it may continue a chain begun in an earlier,
        // rotated file, but a chain's first line follows nothing.
        if line.seq == 1 && line.prev != GENESIS {
            return Err(ChainBreak::Unlinked);
        }
        return Ok(());
    };
    // A hostile file may hold any seq: no arithmetic that can overflow.
    let expected = h
        .seq
        .checked_add(1)
        .ok_or_else(|| ChainBreak::Malformed("seq is out of range".into()))?;
    if line.seq > expected {
        return Err(ChainBreak::Missing {
            missing: line.seq - expected,
            expected,
            found: line.seq,
        });
    }
    if line.seq < expected {
        return Err(ChainBreak::OutOfOrder {
            expected,
            found: line.seq,
        });
    }
    if line.prev != h.hash {
        return Err(ChainBreak::Unlinked);
    }
    Ok(())
}

/// Checks `line`'s hash and its link to the chain so far, and moves `head`
/// on. `head` is `None` for the first line read. Neither the MAC nor a
/// signature is checked: see [`Verifier`].
pub fn verify_line(line: &str, head: &mut Option<ChainHead>) -> Result<(), ChainBreak> {
    let line = parse(line)?;
    link_to(&line, head.as_ref())?;
    *head = Some(ChainHead {
        hash: line.hash,
        seq: line.seq,
    });
    Ok(())
}

/// The last signed checkpoint seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Covered {
    /// Its seq.
    pub seq: u64,
    /// Why it was written (`shutdown`, `rotate`, `interval`...).
    pub reason: String,
}

/// Follows a chain across one or more files, line by line.
///
/// An auditor gives the checkpoint [`PublicKey`]; the broker, checking its
/// own file at start, gives its [`ChainKeys`] too, so every line's MAC is
/// checked, and an [`Anchor`].
#[derive(Debug, Default)]
pub struct Verifier<'a> {
    public: Option<&'a PublicKey>,
    keys: Option<&'a ChainKeys>,
    /// Lines that are not JSON are skipped if the next line links over them
    /// (a write cut short by a crash or a full disk).
    tolerate_torn: bool,
    anchor: Option<&'a Anchor>,
    head: Option<ChainHead>,
    covered: Option<Covered>,
    file_first: Option<ChainHead>,
    new_file: bool,
    lines: u64,
    torn: u64,
}

impl<'a> Verifier<'a> {
    /// For an auditor: signatures are checked under `public` if given.
    pub fn new(public: Option<&'a PublicKey>) -> Self {
        Self {
            public,
            new_file: true,
            ..Self::default()
        }
    }

    /// For the broker checking one of its files against what it recorded.
    pub fn for_broker(keys: &'a ChainKeys, anchor: Option<&'a Anchor>) -> Self {
        Self {
            public: Some(keys.public()),
            keys: Some(keys),
            tolerate_torn: true,
            anchor,
            new_file: true,
            ..Self::default()
        }
    }

    /// The next line is the first of another file.
    pub fn next_file(&mut self) {
        self.new_file = true;
        self.file_first = None;
    }

    /// Checks one line.
    pub fn line(&mut self, text: &str) -> Result<(), ChainBreak> {
        let line = match parse(text) {
            Err(ChainBreak::Malformed(_)) if self.tolerate_torn => {
                self.torn += 1;
                return Ok(());
            }
            other => other?,
        };
        if let Some(keys) = self.keys
            && !keys.mac_matches(line.body.as_bytes(), &line.mac)
        {
            return Err(ChainBreak::Forged);
        }
        if self.new_file {
            if !line.checkpoint.as_ref().is_some_and(|c| c.opens_file) {
                return Err(ChainBreak::NotAnchored);
            }
            if let Some(a) = self.anchor
                && (a.first.seq != line.seq || a.first.hash != line.hash)
            {
                return Err(ChainBreak::NotRecorded(format!(
                    "the file begins at seq {} but the broker recorded that it begins at seq {} with another line: lines were dropped from its start, or another file was put in its place",
                    line.seq, a.first.seq
                )));
            }
        }
        link_to(&line, self.head.as_ref())?;
        if let Some(a) = self.anchor
            && line.seq == a.head.seq
            && line.hash != a.head.hash
        {
            return Err(ChainBreak::NotRecorded(format!(
                "the line at seq {} is not the one the broker recorded: the file was rewritten",
                line.seq
            )));
        }
        if let Some(c) = &line.checkpoint {
            if let Some(public) = self.public
                && (c.key_id != public.key_id() || !public.verifies(&line.hash, &c.signature))
            {
                return Err(ChainBreak::BadSignature(c.key_id.clone()));
            }
            self.covered = Some(Covered {
                seq: line.seq,
                reason: c.reason.clone(),
            });
        }
        let head = ChainHead {
            hash: line.hash,
            seq: line.seq,
        };
        if self.new_file {
            self.file_first = Some(head.clone());
            self.new_file = false;
        }
        self.head = Some(head);
        self.lines += 1;
        Ok(())
    }

    /// After the last line: the file must reach what the broker recorded.
    pub fn finish(&self) -> Result<(), ChainBreak> {
        if let Some(a) = self.anchor {
            let last = self.head.as_ref().map_or(0, |h| h.seq);
            if last < a.head.seq {
                return Err(ChainBreak::NotRecorded(format!(
                    "the file ends at seq {last} but the broker recorded a checkpoint at seq {}: lines were dropped from its end, or an older copy was put in its place",
                    a.head.seq
                )));
            }
        }
        Ok(())
    }

    /// The last line checked.
    pub fn head(&self) -> Option<&ChainHead> {
        self.head.as_ref()
    }

    /// The first line of the current file.
    pub fn file_first(&self) -> Option<&ChainHead> {
        self.file_first.as_ref()
    }

    /// The last checkpoint (signed, if a key was given).
    pub fn covered(&self) -> Option<&Covered> {
        self.covered.as_ref()
    }

    /// Lines after the last checkpoint.
    pub fn uncovered(&self) -> u64 {
        match (&self.head, &self.covered) {
            (Some(h), Some(c)) => h.seq.saturating_sub(c.seq),
            (Some(_), None) => self.lines,
            (None, _) => 0,
        }
    }

    /// Whole lines checked.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Lines skipped as torn.
    pub fn torn(&self) -> u64 {
        self.torn
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn keys() -> &'static ChainKeys {
        static KEYS: std::sync::OnceLock<ChainKeys> = std::sync::OnceLock::new();
        KEYS.get_or_init(|| ChainKeys::generate().unwrap())
    }

    fn entry(i: usize) -> Map<String, Value> {
        let Value::Object(m) =
            json!({ "type": "request", "n": i, "z": { "b": 1, "a": [2, 3], "s": "text é" } })
        else {
            unreachable!()
        };
        m
    }

    /// A file as the broker writes it: an opening checkpoint, `n` entries
    /// with a checkpoint after every `every`, and a closing one.
    fn chain(n: usize, every: usize) -> Vec<String> {
        let keys = keys();
        let mut head = ChainHead::default();
        let mut lines = vec![link(
            checkpoint_entry(Reason::Start, true, keys),
            &mut head,
            keys,
        )];
        for i in 0..n {
            lines.push(link(entry(i), &mut head, keys));
            if (i + 1) % every == 0 {
                lines.push(link(
                    checkpoint_entry(Reason::Interval, false, keys),
                    &mut head,
                    keys,
                ));
            }
        }
        lines.push(link(
            checkpoint_entry(Reason::Shutdown, false, keys),
            &mut head,
            keys,
        ));
        lines
    }

    /// As an auditor does: with the public key, the file must end covered.
    fn verify(lines: &[String]) -> Result<(), (usize, ChainBreak)> {
        let mut v = Verifier::new(Some(keys().public()));
        for (i, l) in lines.iter().enumerate() {
            v.line(l).map_err(|e| (i + 1, e))?;
        }
        if v.uncovered() > 0 || v.head().is_none() {
            return Err((lines.len(), ChainBreak::Malformed("uncovered".into())));
        }
        Ok(())
    }

    #[test]
    fn canonical_form_sorts_keys() {
        let mut a = String::new();
        canonical(
            &json!({ "b": 1, "a": { "d": [1, "x"], "c": null } }),
            &mut a,
        );
        assert_eq!(a, r#"{"a":{"c":null,"d":[1,"x"]},"b":1}"#);
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(5, 2)), Ok(()));
        let mut head = None;
        for l in chain(5, 2) {
            verify_line(&l, &mut head).unwrap();
        }
    }

    #[test]
    fn each_kind_of_tampering_is_found_at_its_line() {
        let lines = chain(5, 100);
        let mut edited = lines.clone();
        edited[2] = edited[2].replace("\"n\":1", "\"n\":7");
        assert_ne!(edited, lines);
        assert_eq!(verify(&edited), Err((3, ChainBreak::Edited)));

        let mut missing = lines.clone();
        missing.remove(2);
        assert!(matches!(
            verify(&missing),
            Err((3, ChainBreak::Missing { missing: 1, .. }))
        ));

        let mut reordered = lines.clone();
        reordered.swap(1, 2);
        assert!(matches!(
            verify(&reordered),
            Err((2, ChainBreak::Missing { .. }))
        ));

        let mut inserted = lines.clone();
        inserted.insert(3, lines[1].clone());
        assert!(matches!(
            verify(&inserted),
            Err((4, ChainBreak::OutOfOrder { .. }))
        ));

        // A line from another chain, with a fitting seq.
        let other = {
            let mut head = ChainHead {
                hash: "ab".repeat(32),
                seq: 3,
            };
            let Value::Object(m) = json!({ "type": "forged" }) else {
                unreachable!()
            };
            link(m, &mut head, keys())
        };
        let mut forged = lines.clone();
        forged[3] = other;
        assert_eq!(verify(&forged), Err((4, ChainBreak::Unlinked)));

        let mut headless = lines.clone();
        headless.remove(0);
        assert_eq!(verify(&headless), Err((1, ChainBreak::NotAnchored)));

        let mut tailless = lines.clone();
        tailless.pop();
        assert!(verify(&tailless).is_err());
    }

    #[test]
    fn an_edit_rehashed_is_found_by_the_signature_and_by_the_mac() {
        let lines = chain(5, 100);
        let forged = rehash_from(&lines, 2, |e| {
            e.insert("n".into(), json!(99));
        });
        assert!(matches!(
            verify(&forged),
            Err((7, ChainBreak::BadSignature(_)))
        ));
        let mut broker = Verifier::for_broker(keys(), None);
        let found = forged
            .iter()
            .enumerate()
            .find_map(|(i, l)| broker.line(l).err().map(|e| (i + 1, e)));
        assert_eq!(found, Some((3, ChainBreak::Forged)));
    }

    #[test]
    fn the_broker_checks_its_file_against_its_anchor() {
        let lines = chain(6, 3);
        let parse_head = |l: &str| {
            let p = parse(l).unwrap();
            ChainHead {
                seq: p.seq,
                hash: p.hash,
            }
        };
        let anchor = Anchor {
            first: parse_head(&lines[0]),
            head: parse_head(lines.last().unwrap()),
        };
        let check = |lines: &[String]| {
            let mut v = Verifier::for_broker(keys(), Some(&anchor));
            lines.iter().try_for_each(|l| v.line(l))?;
            v.finish()
        };
        assert_eq!(check(&lines), Ok(()));
        // Cut at a checkpoint: the file alone looks complete, the anchor does not.
        assert!(matches!(
            check(&lines[..5]),
            Err(ChainBreak::NotRecorded(_))
        ));
        // Another file of the same chain in its place.
        assert!(check(&lines[5..]).is_err());
        // Torn lines are skipped if the chain links over them.
        let mut torn = lines.clone();
        torn.insert(3, lines[3][..20].to_owned());
        assert_eq!(check(&torn), Ok(()));
    }

    /// An attacker's edit at `at`, then every hash after it recomputed and
    /// relinked; the MAC and signatures cannot be recomputed.
    fn rehash_from(
        lines: &[String],
        at: usize,
        edit: impl Fn(&mut Map<String, Value>),
    ) -> Vec<String> {
        let mut out = lines[..at].to_vec();
        let mut prev = parse(&lines[at - 1]).unwrap().hash;
        for (i, l) in lines[at..].iter().enumerate() {
            let Ok(Value::Object(mut e)) = serde_json::from_str::<Value>(l) else {
                unreachable!()
            };
            if i == 0 {
                edit(&mut e);
            }
            e.insert("prev_hash".into(), Value::String(prev.clone()));
            let mac = e["mac"].as_str().unwrap().to_owned();
            let hash = hash_of(&body_of(&e), &mac);
            e.insert("hash".into(), Value::String(hash.clone()));
            prev = hash;
            out.push(Value::Object(e).to_string());
        }
        out
    }

    #[derive(Debug, Clone)]
    enum Tamper {
        /// Replace the character at (line, position) with another.
        Char(usize, usize, char),
        /// Drop lines [from, from + n).
        Drop(usize, usize),
        /// Swap two lines.
        Swap(usize, usize),
        /// Repeat a line after another.
        Duplicate(usize, usize),
        /// Change a field of a line and re-hash everything after it.
        Rehash(usize, i64),
    }

    fn tamper() -> impl Strategy<Value = Tamper> {
        prop_oneof![
            (
                any::<usize>(),
                any::<usize>(),
                proptest::char::range('!', '~')
            )
                .prop_map(|(l, p, c)| Tamper::Char(l, p, c)),
            (any::<usize>(), 1usize..6).prop_map(|(f, n)| Tamper::Drop(f, n)),
            (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Tamper::Swap(a, b)),
            (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Tamper::Duplicate(a, b)),
            (any::<usize>(), any::<i64>()).prop_map(|(l, v)| Tamper::Rehash(l, v)),
        ]
    }

    fn apply(lines: &[String], t: &Tamper) -> Vec<String> {
        let n = lines.len();
        let mut out = lines.to_vec();
        match *t {
            Tamper::Char(l, p, c) => {
                let line = &mut out[l % n];
                let mut chars: Vec<char> = line.chars().collect();
                let p = p % chars.len();
                chars[p] = c;
                *line = chars.into_iter().collect();
            }
            Tamper::Drop(from, k) => {
                let from = from % n;
                out.drain(from..(from + k).min(n));
            }
            Tamper::Swap(a, b) => out.swap(a % n, b % n),
            Tamper::Duplicate(a, b) => {
                let line = out[a % n].clone();
                out.insert(b % (n + 1), line);
            }
            Tamper::Rehash(l, v) => {
                let at = 1 + l % (n - 1);
                out = rehash_from(lines, at, |e| {
                    e.insert("tampered".into(), json!(v));
                });
            }
        }
        out
    }

    /// A prefix of the original that ends at a checkpoint is a complete
    /// file as far as the file alone can tell (the broker's anchor is what
    /// finds that cut).
    fn is_prefix_at_checkpoint(original: &[String], file: &[String]) -> bool {
        !file.is_empty()
            && original.starts_with(file)
            && parse(&file[file.len() - 1]).is_ok_and(|l| l.checkpoint.is_some())
    }

    proptest! {
        #[test]
        fn any_tampering_is_refused_by_the_auditor(
            n in 1usize..12,
            every in 1usize..5,
            t in tamper(),
        ) {
            let lines = chain(n, every);
            let tampered = apply(&lines, &t);
            let expect_ok = tampered == lines || is_prefix_at_checkpoint(&lines, &tampered);
            prop_assert_eq!(verify(&tampered).is_ok(), expect_ok, "{:?}", t);
        }

        #[test]
        fn any_tampering_is_refused_by_the_broker_against_its_anchor(
            n in 1usize..12,
            every in 1usize..5,
            t in tamper(),
        ) {
            let lines = chain(n, every);
            let head_of = |l: &str| {
                let p = parse(l).unwrap();
                ChainHead { seq: p.seq, hash: p.hash }
            };
            let anchor = Anchor {
                first: head_of(&lines[0]),
                head: head_of(&lines[lines.len() - 1]),
            };
            let tampered = apply(&lines, &t);
            let mut v = Verifier::for_broker(keys(), Some(&anchor));
            let result = tampered.iter().try_for_each(|l| v.line(l)).and_then(|()| v.finish());
            // A character change may leave a line that is not JSON, which
            // the broker skips as torn; the next line then does not link,
            // or the file ends short of the anchor.
            prop_assert_eq!(result.is_ok(), tampered == lines, "{:?}", t);
        }

        #[test]
        fn the_verifier_never_panics_on_arbitrary_lines(text in ".{0,200}") {
            let _ = Verifier::new(Some(keys().public())).line(&text);
            let _ = Verifier::for_broker(keys(), None).line(&text);
        }

        /// Lines that parse and hash correctly but carry any seq: the
        /// linkage arithmetic must not overflow.
        #[test]
        fn hostile_seqs_are_refused_without_a_panic(
            seqs in proptest::collection::vec(any::<u64>(), 1..5),
        ) {
            let mut v = Verifier::new(None);
            for seq in seqs {
                let mac = "0".repeat(64);
                let Value::Object(mut e) = json!({ "type": "request", "seq": seq,
                    "prev_hash": GENESIS, "mac": mac }) else { unreachable!() };
                let hash = hash_of(&body_of(&e), &mac);
                e.insert("hash".into(), Value::String(hash));
                let _ = v.line(&Value::Object(e).to_string());
            }
        }
    }
}
