//! `?help=1`: a path's documentation as text, from its table entry, in the
//! shape Vault answers (`{"help": "..."}`).

use std::fmt::Write;

use super::{Access, PathInfo};

/// The help text of `info`, reached as `path` on a mount of type `kind`.
pub fn text(kind: &str, path: &str, info: &PathInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Request:        {path}");
    let _ = writeln!(out, "Matching Route: {} ({kind})", info.pattern.as_str());
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", info.summary);
    let ops: Vec<&str> = info.operations.iter().map(|o| o.as_str()).collect();
    let _ = writeln!(out);
    let _ = writeln!(out, "Operations: {}", ops.join(", "));
    let access = match info.access {
        Access::Open => "anyone, without a token (not audited)",
        Access::Public => "anyone, without a token",
        Access::Token => "a token whose policies allow the operation",
        Access::Sudo => "a token with sudo on this path",
    };
    let _ = writeln!(out, "Who may call: {access}");
    let params: Vec<&str> = info.pattern.parameters().collect();
    if !params.is_empty() || !info.fields.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "## PARAMETERS");
        for p in params {
            let _ = writeln!(out, "\n    {p} (string, in the path)");
        }
        for f in &info.fields {
            let mut notes = Vec::new();
            if f.required {
                notes.push("required".to_owned());
            }
            if let Some(d) = &f.default {
                notes.push(format!("default {d}"));
            }
            if f.sensitive {
                notes.push("secret: never returned".to_owned());
            }
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!("; {}", notes.join("; "))
            };
            let _ = writeln!(out, "\n    {} ({}{notes})", f.name, f.kind.name());
            let _ = writeln!(out, "        {}", f.description);
        }
    }
    if !info.description.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "## DESCRIPTION");
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", info.description);
    }
    out
}
