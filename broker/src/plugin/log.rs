//! A call's log lines, held until the call ends so that the secrets it made
//! can be masked out of them before they reach the broker's log: the
//! password an `issue` returns, the one `rotate-root` sets, a private key
//! the host generated for the guest.
//!
//! Masking guards against a plugin's mistakes (a debug line that prints
//! the statement it ran), not its malice: a plugin set on leaking what it
//! makes can encode it first. What it must never do is let a line out
//! before the call's secrets are known, or let a line be lost unwritten.

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use zeroize::Zeroizing;

/// Log lines longer than this are cut, after masking.
const MAX_LINE: usize = 2048;
/// What is held of a line before masking: more than is written, so that a
/// secret straddling the cut is still whole when it is looked for.
const HELD_LINE: usize = 4 * MAX_LINE;
/// Log lines past this many in one call are dropped.
const MAX_LINES: usize = 64;
/// Shorter strings are not secrets to mask (they would garble every line
/// they happen to appear in), and any run this long of a secret is masked
/// wherever it appears, so that part of a password does not get through.
const MIN_SECRET_LEN: usize = 6;
/// Secrets up to this long are also looked for in pieces
/// ([`MIN_SECRET_LEN`] at a time); longer ones (PEM keys) whole, and line
/// by line.
const MAX_PIECEWISE: usize = 128;
/// In a call that failed, whose output (and so whose secrets) the host
/// never saw, a word this long that mixes letters and digits is masked.
const MIN_UNKNOWN_SECRET: usize = 16;
/// What masked text reads as.
const MASK: &str = "[redacted]";
/// Output fields that name or describe a credential rather than unlock
/// it; their text stays readable. Every other string in a call's output is
/// treated as secret, so a third-party plugin's own fields are masked.
const PUBLIC_FIELDS: &[&str] = &[
    "username",
    "user",
    "name",
    "db_name",
    "serial_number",
    "certificate",
    "issuing_ca",
    "ca_chain",
    "expiration",
    "private_key_type",
];

/// How a call ended, as far as its log is concerned.
#[derive(Debug, Clone)]
pub(crate) enum Outcome<'a> {
    /// It returned: these JSON texts hold its secrets (none for a call that
    /// makes none, such as `revoke`).
    Returned(Vec<&'a str>),
    /// It failed, or was abandoned: what it made is unknown, so quoted
    /// literals and long mixed words are masked too.
    Failed,
}

/// The lines one call logged, and the secrets the host handed it.
#[derive(Default)]
struct Lines {
    lines: Vec<(tracing::Level, Zeroizing<String>)>,
    dropped: usize,
    secrets: Vec<Zeroizing<String>>,
}

/// A call's held log. Shared between the call's store and its caller, so
/// that lines survive a call abandoned at its deadline.
#[derive(Clone, Default)]
pub(crate) struct CallLog(Arc<Mutex<Lines>>);

impl std::fmt::Debug for CallLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallLog").finish_non_exhaustive()
    }
}

impl CallLog {
    fn lines(&self) -> std::sync::MutexGuard<'_, Lines> {
        // A panic elsewhere while holding the lock leaves nothing half-done here.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds a line from the guest: cut to [`HELD_LINE`], with control
    /// characters replaced so that it cannot forge lines of its own.
    pub(crate) fn push(&self, level: tracing::Level, mut message: String) {
        let mut held = self.lines();
        if held.lines.len() >= MAX_LINES {
            held.dropped += 1;
            return;
        }
        truncate(&mut message, HELD_LINE);
        if message.chars().any(char::is_control) {
            message = message
                .chars()
                .map(|c| if c.is_control() { '�' } else { c })
                .collect();
        }
        held.lines.push((level, Zeroizing::new(message)));
    }

    /// Notes a secret the host gave the guest (a generated private key).
    pub(crate) fn secret(&self, secret: &str) {
        self.lines().secrets.push(Zeroizing::new(secret.to_owned()));
    }

    /// A guard that writes the held lines, as for a failed call, if the
    /// call is abandoned (its future dropped, or a panic) before
    /// [`FlushOnDrop::flush`] runs.
    pub(crate) fn flush_on_drop(&self, plugin: Arc<str>) -> FlushOnDrop {
        FlushOnDrop {
            log: Some(self.clone()),
            plugin,
        }
    }

    /// Writes the held lines to the broker's log, masked (see [`Outcome`]).
    fn flush(&self, plugin: &str, outcome: &Outcome<'_>) {
        let (lines, dropped) = self.take_masked(outcome);
        for (level, line) in lines {
            match level {
                tracing::Level::TRACE => tracing::trace!(plugin, "{line}"),
                tracing::Level::DEBUG => tracing::debug!(plugin, "{line}"),
                tracing::Level::INFO => tracing::info!(plugin, "{line}"),
                tracing::Level::WARN => tracing::warn!(plugin, "{line}"),
                _ => tracing::error!(plugin, "{line}"),
            }
        }
        if dropped > 0 {
            tracing::warn!(
                plugin,
                dropped,
                "plugin log lines past {MAX_LINES} in one call were dropped"
            );
        }
    }

    /// Takes the held lines, masked and cut, and how many were dropped.
    fn take_masked(&self, outcome: &Outcome<'_>) -> (Vec<(tracing::Level, String)>, usize) {
        let (lines, dropped, mut secrets) = {
            let mut held = self.lines();
            (
                std::mem::take(&mut held.lines),
                std::mem::take(&mut held.dropped),
                std::mem::take(&mut held.secrets),
            )
        };
        if lines.is_empty() {
            return (Vec::new(), dropped);
        }
        let failed = match outcome {
            Outcome::Returned(outputs) => {
                for output in outputs {
                    if let Ok(output) = serde_json::from_str::<Value>(output) {
                        collect(&output, &mut secrets);
                    }
                }
                false
            }
            Outcome::Failed => true,
        };
        let lines = lines
            .into_iter()
            .map(|(level, line)| {
                let mut line = mask(&line, &secrets, failed);
                truncate(&mut line, MAX_LINE);
                (level, line)
            })
            .collect();
        (lines, dropped)
    }
}

/// Writes a call's held lines exactly once: through [`Self::flush`] when
/// the call ends, or when dropped if it never got there.
pub(crate) struct FlushOnDrop {
    log: Option<CallLog>,
    plugin: Arc<str>,
}

impl std::fmt::Debug for FlushOnDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlushOnDrop").finish_non_exhaustive()
    }
}

impl FlushOnDrop {
    /// Writes the lines for a call that ended with `outcome`.
    pub(crate) fn flush(mut self, outcome: &Outcome<'_>) {
        if let Some(log) = self.log.take() {
            log.flush(&self.plugin, outcome);
        }
    }
}

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        if let Some(log) = self.log.take() {
            log.flush(&self.plugin, &Outcome::Failed);
        }
    }
}

fn truncate(line: &mut String, max: usize) {
    if line.len() > max {
        let mut cut = max;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
}

/// Every string in `value` long enough to mask, except the text of public
/// fields (a public name over an object or a list of objects hides
/// nothing: only its strings are public).
fn collect(value: &Value, secrets: &mut Vec<Zeroizing<String>>) {
    match value {
        Value::String(s) if s.len() >= MIN_SECRET_LEN => secrets.push(Zeroizing::new(s.clone())),
        Value::Array(items) => items.iter().for_each(|v| collect(v, secrets)),
        Value::Object(fields) => {
            for (key, v) in fields {
                let public_text = PUBLIC_FIELDS.contains(&key.as_str())
                    && match v {
                        Value::String(_) => true,
                        Value::Array(items) => items.iter().all(Value::is_string),
                        _ => false,
                    };
                if !public_text {
                    collect(v, secrets);
                }
            }
        }
        _ => {}
    }
}

/// `line` with every byte that belongs to a secret replaced: whole
/// secrets, a line of a multi-line one, any [`MIN_SECRET_LEN`] run of a
/// short one; and, for a failed call, quoted literals and long mixed words.
fn mask(line: &str, secrets: &[Zeroizing<String>], failed: bool) -> String {
    let mut hidden = vec![false; line.len()];
    let mut hide = |pattern: &str| {
        for (at, found) in line.match_indices(pattern) {
            hidden[at..at + found.len()].fill(true);
        }
    };
    for secret in secrets {
        for part in std::iter::once(secret.as_str()).chain(secret.lines()) {
            if part.len() < MIN_SECRET_LEN {
                continue;
            }
            if part.len() > MAX_PIECEWISE {
                hide(part);
                continue;
            }
            for (start, _) in part.char_indices() {
                let end = start + MIN_SECRET_LEN;
                if let Some(piece) = part.get(start..end) {
                    hide(piece);
                }
            }
        }
    }
    if failed {
        hide_unknown_secrets(line, &mut hidden);
    }
    let mut out = String::with_capacity(line.len());
    let mut masking = false;
    for (at, c) in line.char_indices() {
        if hidden[at] {
            if !masking {
                out.push_str(MASK);
                masking = true;
            }
        } else {
            masking = false;
            out.push(c);
        }
    }
    out
}

/// For a call whose secrets are unknown: the inside of every `'…'`
/// literal, and every word of [`MIN_UNKNOWN_SECRET`] or more characters
/// holding both a letter and a digit (a generated password or token).
fn hide_unknown_secrets(line: &str, hidden: &mut [bool]) {
    let bytes = line.as_bytes();
    let mut quote = None;
    for (at, b) in bytes.iter().enumerate() {
        if *b == b'\'' {
            match quote.take() {
                Some(open) => hidden[open + 1..at].fill(true),
                None => quote = Some(at),
            }
        }
    }
    let separator = |c: char| c.is_whitespace() || c == '\'' || c == '"';
    let mut word_start = None;
    let end = std::iter::once((line.len(), ' '));
    for (at, c) in line.char_indices().chain(end) {
        if !separator(c) {
            word_start.get_or_insert(at);
            continue;
        }
        if let Some(start) = word_start.take() {
            let word = &line[start..at];
            if word.chars().count() >= MIN_UNKNOWN_SECRET
                && word.chars().any(|c| c.is_ascii_alphabetic())
                && word.chars().any(|c| c.is_ascii_digit())
            {
                hidden[start..at].fill(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flushed(log: &CallLog, outcome: &Outcome<'_>) -> Vec<String> {
        let (lines, _) = log.take_masked(outcome);
        lines.into_iter().map(|(_, line)| line).collect()
    }

    #[test]
    fn secrets_in_the_output_are_masked_and_names_are_not() {
        let log = CallLog::default();
        log.push(
            tracing::Level::INFO,
            "CREATE USER 'v-app-1' IDENTIFIED BY 'Zx9-secret-pw'".into(),
        );
        log.push(
            tracing::Level::DEBUG,
            "token tok-abcdef1234 in nested output, its start Zx9-se".into(),
        );
        let output = r#"{"username": "v-app-1", "password": "Zx9-secret-pw",
                         "extra": {"list": ["tok-abcdef1234"]}, "short": "abc",
                         "user": {"password": "inner-s3cret-value"}}"#;
        let revocation = r#"{"username": "v-app-1"}"#;
        log.push(tracing::Level::INFO, "inner-s3cret-value".into());
        assert_eq!(
            flushed(&log, &Outcome::Returned(vec![output, revocation])),
            [
                "CREATE USER 'v-app-1' IDENTIFIED BY '[redacted]'",
                "token [redacted] in nested output, its start [redacted]",
                "[redacted]",
            ]
        );
    }

    #[test]
    fn a_failed_call_masks_quoted_literals_and_long_mixed_words() {
        let log = CallLog::default();
        log.push(
            tracing::Level::INFO,
            "ALTER USER \"admin\" PASSWORD 'n3w-r00t' failed; token A1b2C3d4E5f6G7h8i9 rolled back"
                .into(),
        );
        assert_eq!(
            flushed(&log, &Outcome::Failed),
            ["ALTER USER \"admin\" PASSWORD '[redacted]' failed; token [redacted] rolled back"]
        );
    }

    #[test]
    fn an_abandoned_call_still_writes_its_lines() {
        let log = CallLog::default();
        log.push(tracing::Level::INFO, "before 'Zx9-secret-pw'".into());
        drop(log.flush_on_drop("p".into()));
        // The guard took the lines out to write them.
        assert!(flushed(&log, &Outcome::Failed).is_empty());
    }

    #[test]
    fn a_host_secret_is_masked_line_by_line() {
        let log = CallLog::default();
        log.secret(
            "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49\n-----END PRIVATE KEY-----\n",
        );
        log.push(
            tracing::Level::INFO,
            "key line MIGHAgEAMBMGByqGSM49AgEGCCqGSM49".into(),
        );
        assert_eq!(
            flushed(&log, &Outcome::Returned(vec![])),
            ["key line [redacted]"]
        );
    }

    #[test]
    fn lines_are_bounded_and_cannot_forge_lines() {
        let log = CallLog::default();
        log.push(
            tracing::Level::INFO,
            "one\nINFO forged line\u{1b}[2J".into(),
        );
        log.push(tracing::Level::INFO, "é".repeat(MAX_LINE));
        for _ in 0..MAX_LINES {
            log.push(tracing::Level::INFO, "more".into());
        }
        let (lines, dropped) = log.take_masked(&Outcome::Returned(vec![]));
        assert_eq!(lines[0].1, "one�INFO forged line�[2J");
        assert!(lines[1].1.len() <= MAX_LINE);
        assert_eq!(lines.len(), MAX_LINES);
        assert_eq!(dropped, 2);
    }

    #[test]
    fn a_secret_across_the_cut_is_masked_before_the_cut() {
        let log = CallLog::default();
        let secret = "S3cret-across-the-cut";
        let line = format!("{}{secret}", "x".repeat(MAX_LINE - 5));
        log.push(tracing::Level::INFO, line);
        let output = format!(r#"{{"password": "{secret}"}}"#);
        let line = &flushed(&log, &Outcome::Returned(vec![&output]))[0];
        assert!(line.len() <= MAX_LINE);
        assert!(
            line.ends_with("x[reda") && !line.contains("S3cret"),
            "{line}"
        );
    }
}
