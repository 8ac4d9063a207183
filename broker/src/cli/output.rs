//! How the client commands print an answer: a table for a person
//! (`-format=table`, the default), the whole answer as JSON
//! (`-format=json`), or one field's value alone (`-field=NAME`, nothing
//! else, for scripts: `$(broker read -field=password database/creds/app)`).

use anyhow::bail;
use clap::{Args, ValueEnum};
use serde_json::Value;

/// How to print.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Key and value columns, for a person.
    #[default]
    Table,
    /// The whole answer, as the API gave it.
    Json,
    /// The whole answer, as YAML.
    Yaml,
}

/// `-format` and `-field`, shared by the commands that print an answer.
#[derive(Debug, Clone, Default, Args)]
pub struct Output {
    /// How to print the answer (`BROKER_FORMAT`, else `VAULT_FORMAT`).
    #[arg(long, value_enum, env = "BROKER_FORMAT")]
    pub format: Option<Format>,
    /// Print only this field's value (from the answer's data, else its
    /// auth block, else the answer itself), with no newline.
    #[arg(long, value_name = "NAME")]
    pub field: Option<String>,
}

impl Output {
    fn format(&self) -> Format {
        self.format
            .unwrap_or_else(|| match std::env::var("VAULT_FORMAT").ok().as_deref() {
                Some("json") => Format::Json,
                _ => Format::Table,
            })
    }

    /// Prints `answer` (a whole API response).
    pub fn print(&self, answer: &Value) -> anyhow::Result<()> {
        if let Some(field) = &self.field {
            // The auth block's fields go by the names the table shows
            // (`token`, `token_accessor`, …), as in Vault's CLI.
            let in_auth = AUTH_NAMES
                .iter()
                .find(|(_, shown)| shown == field)
                .map_or(field.as_str(), |(key, _)| key);
            let value = answer
                .get("data")
                .and_then(|d| d.get(field))
                .or_else(|| answer.get("auth").and_then(|a| a.get(in_auth)))
                .or_else(|| answer.get(field))
                .filter(|v| !v.is_null());
            let Some(value) = value else {
                bail!("field {field:?} is not in the answer");
            };
            print!("{}", plain(value));
            return Ok(());
        }
        match self.format() {
            Format::Json => println!("{}", serde_json::to_string_pretty(answer)?),
            Format::Yaml => println!("{}", yaml(answer)?),
            Format::Table => print!("{}", table(answer)),
        }
        Ok(())
    }

    /// Prints a list answer's keys (`data.keys`).
    pub fn print_keys(&self, answer: &Value) -> anyhow::Result<()> {
        if self.field.is_some() || self.format() != Format::Table {
            return self.print(answer);
        }
        println!("Keys\n----");
        for key in answer["data"]["keys"].as_array().into_iter().flatten() {
            println!("{}", plain(key));
        }
        Ok(())
    }
}

/// An auth block's fields and the names Vault's CLI shows them by.
const AUTH_NAMES: [(&str, &str); 5] = [
    ("client_token", "token"),
    ("accessor", "token_accessor"),
    ("lease_duration", "token_duration"),
    ("renewable", "token_renewable"),
    ("policies", "token_policies"),
];

/// `value` as a YAML document.
fn yaml(value: &Value) -> anyhow::Result<String> {
    use yaml_rust2::Yaml;
    fn convert(value: &Value) -> Yaml {
        match value {
            Value::Null => Yaml::Null,
            Value::Bool(b) => Yaml::Boolean(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Yaml::Integer(i),
                None => Yaml::Real(n.to_string()),
            },
            Value::String(s) => Yaml::String(s.clone()),
            Value::Array(items) => Yaml::Array(items.iter().map(convert).collect()),
            Value::Object(fields) => {
                let mut hash = yaml_rust2::yaml::Hash::new();
                for (key, value) in fields {
                    hash.insert(Yaml::String(key.clone()), convert(value));
                }
                Yaml::Hash(hash)
            }
        }
    }
    let mut out = String::new();
    yaml_rust2::YamlEmitter::new(&mut out)
        .dump(&convert(value))
        .map_err(|e| anyhow::anyhow!("cannot write YAML: {e:?}"))?;
    Ok(out)
}

/// A value as text: a string as it is, anything else as JSON.
pub fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The answer's rows as Vault's CLI shows them: the lease, the auth block
/// (`token`, `token_accessor`, …), then the data's keys, sorted.
fn rows(answer: &Value) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    if let Some(lease) = answer["lease_id"].as_str().filter(|l| !l.is_empty()) {
        rows.push(("lease_id".into(), lease.to_owned()));
        rows.push((
            "lease_duration".into(),
            format!("{}s", answer["lease_duration"]),
        ));
        rows.push(("lease_renewable".into(), plain(&answer["renewable"])));
    }
    if let Some(auth) = answer["auth"].as_object() {
        for (key, name) in AUTH_NAMES {
            if let Some(value) = auth.get(key) {
                rows.push((name.into(), plain(value)));
            }
        }
    }
    if let Some(data) = answer["data"].as_object() {
        let mut keys: Vec<_> = data.keys().collect();
        keys.sort();
        for key in keys {
            rows.push((key.clone(), plain(&data[key])));
        }
    }
    rows
}

/// Rows in two aligned columns under `Key` and `Value`.
pub fn table(answer: &Value) -> String {
    let rows = rows(answer);
    if rows.is_empty() {
        return "Success! Nothing to show.\n".into();
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(3).max(3);
    let mut out = format!("{:width$}    Value\n{:width$}    -----\n", "Key", "---");
    for (key, value) in rows {
        out.push_str(&format!("{key:width$}    {value}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_holds_the_whole_answer() {
        let answer =
            json!({"data": {"keys": ["a", "b"], "n": 3, "ok": true, "x": null, "s": "it's: here"}});
        let text = yaml(&answer).unwrap();
        let parsed = yaml_rust2::YamlLoader::load_from_str(&text).unwrap();
        let data = &parsed[0]["data"];
        assert_eq!(data["keys"][1].as_str(), Some("b"));
        assert_eq!(data["n"].as_i64(), Some(3));
        assert_eq!(data["ok"].as_bool(), Some(true));
        assert_eq!(data["s"].as_str(), Some("it's: here"));
    }

    #[test]
    fn a_secret_shows_its_lease_then_its_data() {
        let answer = json!({"lease_id": "database/creds/app/x", "lease_duration": 3600, "renewable": true,
            "data": {"username": "u", "password": "p"}});
        let text = table(&answer);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Key                Value");
        assert_eq!(lines[2], "lease_id           database/creds/app/x");
        assert_eq!(lines[3], "lease_duration     3600s");
        assert_eq!(lines[5], "password           p");
        assert_eq!(lines[6], "username           u");
    }
}
