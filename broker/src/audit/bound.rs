//! Bounds on what one audit entry may hold, so that a request cannot make
//! the log grow much faster than the request itself (a full disk stops a
//! fail-closed broker for everyone).
//!
//! A string written in clear (a field such as `type`, an object key, the
//! path, an error message) longer than [`CLEAR_LIMIT`] bytes is cut there
//! and followed by a marker giving its whole length and its HMAC under the
//! audit salt, so `sys/audit-hash` of the original still finds it. A request
//! or response `data` whose logged form exceeds [`DATA_LIMIT`] (many small
//! values each HMAC'd to 77 bytes) is replaced the same way as a whole.
//!
//! This module must never write more of a clear value than the limit, nor
//! write any part of a value that is HMAC'd.

use serde_json::Value;

use super::Salt;

/// Bytes of a clear string kept before the marker.
pub const CLEAR_LIMIT: usize = 256;

/// Bytes of a logged `data` object kept whole.
pub const DATA_LIMIT: usize = 64 * 1024;

/// The marker that follows a cut value.
pub const MARKER: &str = "…[truncated:";

fn marker(len: usize, salt: &Salt, whole: &str) -> String {
    format!("{MARKER} {len} bytes; whole {}]", salt.hmac(whole))
}

/// `s`, cut at [`CLEAR_LIMIT`] (on a character boundary) with a marker.
pub fn clear_str(s: &str, salt: &Salt) -> String {
    if s.len() <= CLEAR_LIMIT {
        return s.to_owned();
    }
    let cut = (0..=CLEAR_LIMIT)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}{}", &s[..cut], marker(s.len(), salt, s))
}

/// A value logged in clear, every string and key in it bounded.
pub fn clear_value(value: &Value, salt: &Salt) -> Value {
    match value {
        Value::String(s) => Value::String(clear_str(s, salt)),
        Value::Array(items) => Value::Array(items.iter().map(|v| clear_value(v, salt)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (clear_str(k, salt), clear_value(v, salt)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `logged` (the redacted form of `original`) if it is small enough;
/// otherwise a marker with the original's HMAC.
pub fn data(original: &Value, logged: Value, salt: &Salt) -> Value {
    let len = logged.to_string().len();
    if len <= DATA_LIMIT {
        return logged;
    }
    Value::String(marker(len, salt, &original.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn salt() -> Salt {
        Salt::from_key(vec![7; 32])
    }

    #[test]
    fn a_long_value_is_cut_with_its_length_and_hmac() {
        let s = salt();
        let long = "x".repeat(50_000);
        let cut = clear_str(&long, &s);
        assert!(cut.len() < CLEAR_LIMIT + 120, "{}", cut.len());
        assert!(cut.starts_with(&"x".repeat(CLEAR_LIMIT)));
        assert!(cut.contains("50000 bytes"));
        assert!(cut.contains(&s.hmac(&long)));
        assert_eq!(clear_str("short", &s), "short");
    }

    #[test]
    fn keys_and_nested_strings_are_bounded() {
        let s = salt();
        let v = serde_json::json!({ "k".repeat(1000): ["v".repeat(1000), 1] });
        assert!(clear_value(&v, &s).to_string().len() < 1000);
    }

    proptest! {
        #[test]
        fn a_clear_string_is_bounded_and_keeps_a_prefix(s in ".{0,400}") {
            let cut = clear_str(&s, &salt());
            prop_assert!(cut.len() <= CLEAR_LIMIT + 120);
            let kept = cut.split(MARKER).next().unwrap_or_default();
            prop_assert!(s.starts_with(kept));
            prop_assert_eq!(cut == s, s.len() <= CLEAR_LIMIT);
        }
    }
}
