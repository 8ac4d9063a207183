//! The hash chain over audit lines, and its verification.
//!
//! Each line is a JSON object carrying `seq` (its position in the chain),
//! `prev_hash` (the previous line's `hash`) and `hash`: SHA-256, in hex,
//! over the line's canonical form without `hash`. The canonical form is
//! JSON with object keys sorted and no whitespace, so it does not depend on
//! how a line was written. An edited line fails its own hash; a missing,
//! inserted or reordered line breaks `seq` or `prev_hash`.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first line of a new chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where a chain stands: the last line's hash and sequence number.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainHead {
    /// The last line's `hash` ([`GENESIS`] before the first line).
    pub hash: String,
    /// The last line's `seq` (0 before the first line).
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

/// Writes `value` in canonical form: sorted keys, no whitespace.
pub fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
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

/// The hash of an entry (an object whose `hash` field, if any, is ignored).
pub fn hash_of(entry: &Value) -> String {
    let mut text = String::with_capacity(512);
    match entry {
        Value::Object(map) if map.contains_key("hash") => {
            let mut without = map.clone();
            without.remove("hash");
            canonical(&Value::Object(without), &mut text);
        }
        other => canonical(other, &mut text),
    }
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Links `entry` to `head`: sets `seq` and `prev_hash`, then `hash`;
/// returns the line (without newline) and moves `head` on.
pub fn link(mut entry: serde_json::Map<String, Value>, head: &mut ChainHead) -> String {
    let seq = head.seq + 1;
    entry.insert("seq".into(), Value::from(seq));
    entry.insert("prev_hash".into(), Value::String(head.hash.clone()));
    let mut entry = Value::Object(entry);
    let hash = hash_of(&entry);
    entry["hash"] = Value::String(hash.clone());
    *head = ChainHead { hash, seq };
    entry.to_string()
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// Not a JSON object with `seq`, `prev_hash` and `hash`.
    #[error("not an audit entry: {0}")]
    Malformed(String),
    /// The content does not match its own hash.
    #[error("the line was edited: its content does not match its hash")]
    Edited,
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
}

/// Checks `line` against the chain so far and moves `head` on. `head` is
/// `None` for the first line read, whose `prev_hash` cannot be checked
/// (the chain may have begun in an earlier, rotated file).
pub fn verify_line(line: &str, head: &mut Option<ChainHead>) -> Result<(), ChainBreak> {
    let entry: Value =
        serde_json::from_str(line).map_err(|e| ChainBreak::Malformed(e.to_string()))?;
    let field = |name: &str| {
        entry
            .get(name)
            .ok_or_else(|| ChainBreak::Malformed(format!("no {name}")))
    };
    let seq = field("seq")?
        .as_u64()
        .ok_or_else(|| ChainBreak::Malformed("seq is not a number".into()))?;
    let prev = field("prev_hash")?
        .as_str()
        .ok_or_else(|| ChainBreak::Malformed("prev_hash is not a string".into()))?;
    let hash = field("hash")?
        .as_str()
        .ok_or_else(|| ChainBreak::Malformed("hash is not a string".into()))?;
    if hash_of(&entry) != hash {
        return Err(ChainBreak::Edited);
    }
    if let Some(h) = head.as_ref() {
        let expected = h.seq + 1;
        if seq > expected {
            return Err(ChainBreak::Missing {
                missing: seq - expected,
                expected,
                found: seq,
            });
        }
        if seq < expected {
            return Err(ChainBreak::OutOfOrder {
                expected,
                found: seq,
            });
        }
        if prev != h.hash {
            return Err(ChainBreak::Unlinked);
        }
    }
    *head = Some(ChainHead {
        hash: hash.to_owned(),
        seq,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(n: usize) -> Vec<String> {
        let mut head = ChainHead::default();
        (0..n)
            .map(|i| {
                let Value::Object(m) =
                    json!({ "type": "request", "n": i, "z": { "b": 1, "a": [2, 3] } })
                else {
                    unreachable!()
                };
                link(m, &mut head)
            })
            .collect()
    }

    fn verify(lines: &[String]) -> Result<(), (usize, ChainBreak)> {
        let mut head = None;
        for (i, l) in lines.iter().enumerate() {
            verify_line(l, &mut head).map_err(|e| (i + 1, e))?;
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
        assert_eq!(verify(&chain(5)), Ok(()));
    }

    #[test]
    fn each_kind_of_tampering_is_found_at_its_line() {
        let lines = chain(5);
        let mut edited = lines.clone();
        edited[2] = edited[2].replace("\"n\":2", "\"n\":7");
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
                seq: 2,
            };
            let Value::Object(m) = json!({ "type": "forged" }) else {
                unreachable!()
            };
            link(m, &mut head)
        };
        let mut forged = lines.clone();
        forged[2] = other;
        assert_eq!(verify(&forged), Err((3, ChainBreak::Unlinked)));
    }
}
