//! A call's log lines, held until the call ends so that the secrets it made
//! can be masked out of them before they reach the broker's log: the
//! password an `issue` returns, the one `rotate-root` sets, a private key
//! the host generated for the guest.
//!
//! Masking guards against a plugin's mistakes (a debug line that prints
//! the statement it ran), not its malice: a plugin set on leaking what it
//! makes can encode it first. What it must never do is let a line out
//! before the call's secrets are known.

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
/// Shorter strings are not masked: they would garble every line they
/// happen to appear in, and no generated secret is this short.
const MIN_SECRET_LEN: usize = 6;
/// What masked text reads as.
const MASK: &str = "[redacted]";
/// Output fields that name or describe a credential rather than unlock
/// it; they stay readable. Every other string in a call's output is
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

/// The lines one call logged, and the secrets the host handed it.
#[derive(Default)]
struct Lines {
    lines: Vec<(tracing::Level, String)>,
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
        held.lines.push((level, message));
    }

    /// Notes a secret the host gave the guest (a generated private key).
    pub(crate) fn secret(&self, secret: &str) {
        self.lines().secrets.push(Zeroizing::new(secret.to_owned()));
    }

    /// Writes the held lines to the broker's log, with every secret masked:
    /// the host's, and each string of `output` (the call's JSON result)
    /// outside [`PUBLIC_FIELDS`].
    pub(crate) fn flush(&self, plugin: &str, output: Option<&str>) {
        let (lines, dropped) = self.take_masked(output);
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

    /// Takes the held lines, masked, and how many were dropped.
    fn take_masked(&self, output: Option<&str>) -> (Vec<(tracing::Level, String)>, usize) {
        let (lines, dropped, mut secrets) = {
            let mut held = self.lines();
            (
                std::mem::take(&mut held.lines),
                std::mem::take(&mut held.dropped),
                std::mem::take(&mut held.secrets),
            )
        };
        if lines.is_empty() {
            return (lines, dropped);
        }
        if let Some(Ok(output)) = output.map(serde_json::from_str::<Value>) {
            collect(&output, &mut secrets);
        }
        let lines = lines
            .into_iter()
            .map(|(level, line)| {
                let mut line = mask(line, &secrets);
                truncate(&mut line, MAX_LINE);
                (level, line)
            })
            .collect();
        (lines, dropped)
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

/// Every string in `value` not under a public field, long enough to mask.
fn collect(value: &Value, secrets: &mut Vec<Zeroizing<String>>) {
    match value {
        Value::String(s) if s.len() >= MIN_SECRET_LEN => secrets.push(Zeroizing::new(s.clone())),
        Value::Array(items) => items.iter().for_each(|v| collect(v, secrets)),
        Value::Object(fields) => fields
            .iter()
            .filter(|(k, _)| !PUBLIC_FIELDS.contains(&k.as_str()))
            .for_each(|(_, v)| collect(v, secrets)),
        _ => {}
    }
}

fn mask(mut line: String, secrets: &[Zeroizing<String>]) -> String {
    for secret in secrets {
        // Each line of a multi-line secret (a PEM key) on its own too, since
        // a guest may log one line of it.
        for part in std::iter::once(secret.as_str()).chain(secret.lines()) {
            if part.len() >= MIN_SECRET_LEN && line.contains(part) {
                line = line.replace(part, MASK);
            }
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flushed(log: &CallLog, output: Option<&str>) -> Vec<String> {
        let (lines, _) = log.take_masked(output);
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
            "token tok-abcdef1234 in nested output".into(),
        );
        let output = r#"{"username": "v-app-1", "password": "Zx9-secret-pw",
                         "extra": {"list": ["tok-abcdef1234"]}, "short": "abc"}"#;
        assert_eq!(
            flushed(&log, Some(output)),
            [
                "CREATE USER 'v-app-1' IDENTIFIED BY '[redacted]'",
                "token [redacted] in nested output",
            ]
        );
    }

    #[test]
    fn a_host_secret_is_masked_line_by_line() {
        let log = CallLog::default();
        log.secret("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49\n-----END PRIVATE KEY-----\n");
        log.push(
            tracing::Level::INFO,
            "key line MIGHAgEAMBMGByqGSM49AgEGCCqGSM49".into(),
        );
        assert_eq!(flushed(&log, None), ["key line [redacted]"]);
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
        let (lines, dropped) = log.take_masked(None);
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
        let line = &flushed(&log, Some(&output))[0];
        assert!(line.len() <= MAX_LINE);
        assert!(
            line.ends_with("x[reda") && !line.contains("S3cret"),
            "{line}"
        );
    }
}
