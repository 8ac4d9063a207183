//! What the client commands take from the command line as Vault's CLI
//! does: single-dash long flags (`-format=json`, `-field=password`) and
//! data as `key=value`, `key=@file`, `key=-` (standard input) or `-` (a
//! JSON object on standard input).

use std::ffi::OsString;
use std::io::Read;

use anyhow::{Context, bail};
use serde_json::{Map, Value};

/// `-name` and `-name=value` (two letters or more) as `--name`, before a
/// `--`: Vault's CLI spells long flags with one dash, clap with two. A
/// lone `-`, `-h`, negative numbers and everything after `--` are left.
pub fn vault_style(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut rest = false;
    for arg in args {
        if rest {
            out.push(arg);
            continue;
        }
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            rest = true;
            out.push(arg);
            continue;
        }
        let name = text
            .strip_prefix('-')
            .filter(|t| !t.starts_with('-'))
            .map(|t| t.split('=').next().unwrap_or_default());
        match name {
            Some(name)
                if name.len() >= 2
                    && name.starts_with(|c: char| c.is_ascii_alphabetic())
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
            {
                out.push(OsString::from(format!("-{text}")));
            }
            _ => out.push(arg),
        }
    }
    out
}

/// The request body `pairs` make: `key=value` (repeated keys make a list),
/// `key=@file` (the file's text), `key=-` (standard input), or a single
/// `-` (a JSON object on standard input).
pub fn body(pairs: &[String]) -> anyhow::Result<Map<String, Value>> {
    if pairs.len() == 1 && pairs[0] == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
        return match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => Ok(map),
            _ => bail!("standard input is not a JSON object"),
        };
    }
    let mut body = Map::new();
    // Errors name the argument by position, never by text: it may be a
    // secret typed without its key.
    for (n, pair) in pairs.iter().enumerate() {
        let Some((key, value)) = pair.split_once('=') else {
            bail!(
                "data argument {} is not key=value (use key=@file for a file, key=- for standard input)",
                n + 1
            );
        };
        if key.is_empty() {
            bail!("data argument {} has no key before '='", n + 1);
        }
        let value = if let Some(file) = value.strip_prefix('@') {
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {file} (for {key})"))?
        } else if value == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read standard input")?;
            text.trim_end_matches('\n').to_owned()
        } else {
            value.to_owned()
        };
        match body.get_mut(key) {
            Some(Value::Array(list)) => list.push(Value::String(value)),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(value)]);
            }
            None => {
                body.insert(key.to_owned(), Value::String(value));
            }
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        assert_eq!(
            vault_style(os(&[
                "broker",
                "read",
                "-format=json",
                "-field",
                "password",
                "-h",
                "-",
                "-5",
                "--",
                "-x=y"
            ])),
            os(&[
                "broker",
                "read",
                "--format=json",
                "--field",
                "password",
                "-h",
                "-",
                "-5",
                "--",
                "-x=y"
            ])
        );
        assert_eq!(vault_style(os(&["--format=json"])), os(&["--format=json"]));
    }

    #[test]
    fn pairs_make_a_body() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.hcl");
        std::fs::write(&file, "path \"x\" {}").unwrap();
        let b = body(&[
            "a=1".into(),
            "b=x=y".into(),
            format!("p=@{}", file.display()),
            "l=1".into(),
            "l=2".into(),
        ])
        .unwrap();
        assert_eq!(b["a"], "1");
        assert_eq!(b["b"], "x=y");
        assert_eq!(b["p"], "path \"x\" {}");
        assert_eq!(b["l"], serde_json::json!(["1", "2"]));
        let e = body(&["a=1".into(), "s3cr3t".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("data argument 2 is not key=value") && !e.contains("s3cr3t"),
            "{e}"
        );
        let e = body(&["=s3cr3t".into()]).unwrap_err().to_string();
        assert!(e.contains("no key") && !e.contains("s3cr3t"), "{e}");
        assert!(
            body(&["k=@/no/such/file".into()])
                .unwrap_err()
                .to_string()
                .contains("/no/such/file")
        );
    }
}
