//! The built-in Redis credential plugin: each lease gets a Redis ACL user
//! (Redis 6 and later), made with Vault's `redis-database-plugin` fields.
//!
//! Written with the public SDK only, as a third party would write one, and
//! reaching Redis only through the host's `redis` capability: the host
//! connects as the mount's admin and refuses commands that could take over
//! the server. A role's `creation_statements` are ACL rules (a JSON list,
//! as Vault takes them: `["~*", "+@read"]`); the user is created `on`
//! with the broker's password, and deleted on revocation. Redis users do
//! not expire, so renewal has nothing to do: the lease's end deletes it.

use broker_plugin_sdk::prelude::*;
use broker_plugin_sdk::{password, redis, username};
use serde::{Deserialize, Deserializer, Serialize};

/// Vault's default shape: display name, role, randomness and time.
const DEFAULT_USERNAME_TEMPLATE: &str =
    "v_{{display_name | truncate 10}}_{{role_name | truncate 10}}_{{random 20}}_{{unix_time}}";

/// Redis user names have no set limit; this keeps them readable.
const USERNAME_LIMIT: username::Limit = username::Limit {
    max_chars: 100,
    max_bytes: 100,
};

/// The connection config as the plugin sees it (the host keeps the
/// password and connects itself).
#[derive(Debug, Deserialize)]
pub struct Config {
    /// The admin user the host logs in as.
    #[serde(default)]
    pub username: Option<String>,
    /// How usernames are made; see the SDK's `username` module.
    #[serde(default)]
    pub username_template: Option<String>,
    /// The admin password `rotate-root` sets, made by the host.
    #[serde(default)]
    pub new_password: Option<String>,
}

/// ACL rules: a JSON list, or a string holding one (Vault's form), or a
/// list of such strings.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rules(pub Vec<String>);

impl<'de> Deserialize<'de> for Rules {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        rules(&value).map(Rules).map_err(serde::de::Error::custom)
    }
}

fn rules(value: &serde_json::Value) -> std::result::Result<Vec<String>, String> {
    use serde_json::Value as J;
    match value {
        J::Null => Ok(Vec::new()),
        J::String(s) if s.trim().is_empty() => Ok(Vec::new()),
        J::String(s) => match serde_json::from_str::<J>(s) {
            Ok(inner @ J::Array(_)) => rules(&inner),
            // Not JSON: rules separated by spaces, as redis-cli takes them.
            _ => Ok(s.split_whitespace().map(str::to_owned).collect()),
        },
        J::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    J::String(_) => out.extend(rules(item)?),
                    _ => return Err("ACL rules must be strings".into()),
                }
            }
            Ok(out)
        }
        _ => Err(
            "creation_statements must be a JSON list of ACL rules, e.g. [\"~*\", \"+@read\"]"
                .into(),
        ),
    }
}

/// Rules a role may not hold: they set or clear the user's passwords
/// (the broker makes the only one), or reset the user.
fn check_rule(rule: &str) -> Result<()> {
    let lower = rule.to_ascii_lowercase();
    if rule.starts_with(['>', '<', '#', '!'])
        || matches!(lower.as_str(), "nopass" | "resetpass" | "reset")
    {
        return Err(Error::request(format!(
            "ACL rule {:?} is not allowed in a role: the broker sets the user's only password",
            rule.chars().next().map(String::from).unwrap_or_default()
        )));
    }
    Ok(())
}

/// A role (`roles/:name`), with Vault's field names.
#[derive(Debug, Deserialize)]
pub struct Role {
    /// ACL rules for the new user: `["~*", "+@read"]`.
    #[serde(default)]
    pub creation_statements: Rules,
}

/// What the lease keeps to revoke the user.
#[derive(Debug, Serialize, Deserialize)]
pub struct Revocation {
    /// The ACL user's name.
    pub username: String,
}

const CONNECTION_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["host", "username", "password"],
  "properties": {
    "host": {"type": "string"},
    "port": {"type": "integer", "default": 6379},
    "username": {"type": "string", "description": "an admin user allowed ACL SETUSER and ACL DELUSER"},
    "password": {"type": "string", "writeOnly": true},
    "username_template": {"type": "string"}
  }
}"#;

const ROLE_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["creation_statements"],
  "properties": {
    "creation_statements": {"type": ["string", "array"], "description": "ACL rules as a JSON list: [\"~*\", \"+@read\"]"}
  }
}"#;

/// The plugin.
#[derive(Debug)]
pub struct Redis;

fn setuser(username: &str, password: &str, rules: &[String]) -> Result<()> {
    let secret = format!(">{password}");
    let mut args: Vec<&str> = vec!["ACL", "SETUSER", username, "reset", "on", &secret];
    args.extend(rules.iter().map(String::as_str));
    redis::command(&args)
        .map(drop)
        .map_err(|e| e.redact(password))
}

impl Plugin for Redis {
    type Config = Config;
    type Role = Role;
    type Revocation = Revocation;

    fn info() -> Info {
        Info::new("redis", env!("CARGO_PKG_VERSION"))
            .alias("redis-database-plugin")
            .capability(Capability::Redis)
            .connection_schema(CONNECTION_SCHEMA)
            .role_schema(ROLE_SCHEMA)
    }

    fn verify_connection(_: &Connection<Config>) -> Result<()> {
        redis::command(&["PING"])?;
        Ok(())
    }

    fn prepare(
        connection: &Connection<Config>,
        request: &IssueRequest<Role>,
    ) -> Result<Prepared<Revocation>> {
        let rules = &request.role.creation_statements.0;
        if rules.is_empty() {
            return Err(Error::request(
                "the role has no creation_statements: give its ACL rules as a JSON list, e.g. [\"~*\", \"+@read\"]",
            ));
        }
        for rule in rules {
            check_rule(rule)?;
        }
        let username = username::for_request(
            connection.config.username_template.as_deref(),
            DEFAULT_USERNAME_TEMPLATE,
            request,
            USERNAME_LIMIT,
        )?;
        if !matches!(
            redis::command(&["ACL", "GETUSER", &username])?,
            redis::Reply::Nil
        ) {
            return Err(Error::request(format!(
                "a Redis user named {username:?} already exists; give the username template a {{{{random N}}}} part"
            )));
        }
        let password = password::provided_or_generate(request.password.as_deref());
        Prepared::new(
            serde_json::json!({ "username": username, "password": password }),
            Revocation { username },
        )
    }

    fn create(
        _: &Connection<Config>,
        request: &IssueRequest<Role>,
        prepared: &Prepared<Revocation>,
    ) -> Result<()> {
        let password = prepared.field("password")?;
        setuser(
            &prepared.revocation.username,
            password,
            &request.role.creation_statements.0,
        )
    }

    fn revoke(_: &Connection<Config>, revocation: Revocation) -> Result<()> {
        // 0 when the user is already gone: that is success too.
        redis::command(&["ACL", "DELUSER", &revocation.username])?;
        Ok(())
    }

    fn rotate_root(connection: &Connection<Config>) -> Result<serde_json::Value> {
        let username = connection
            .config
            .username
            .as_deref()
            .ok_or_else(|| Error::config("rotate-root needs the connection's username"))?;
        let password = connection
            .config
            .new_password
            .clone()
            .unwrap_or_else(|| password::generate(password::DEFAULT_LENGTH));
        let secret = format!(">{password}");
        redis::command(&["ACL", "SETUSER", username, "resetpass", &secret])
            .map_err(|e| e.redact(&password))?;
        Ok(serde_json::json!({ "password": password }))
    }
}

broker_plugin_sdk::register_plugin!(Redis);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_come_in_vaults_forms() {
        let j = |v: serde_json::Value| rules(&v).unwrap();
        assert_eq!(
            j(serde_json::json!("[\"~*\", \"+@read\"]")),
            ["~*", "+@read"]
        );
        assert_eq!(j(serde_json::json!(["~*", "+@read"])), ["~*", "+@read"]);
        assert_eq!(j(serde_json::json!(["[\"+@admin\"]"])), ["+@admin"]);
        assert_eq!(j(serde_json::json!("~app:* +get")), ["~app:*", "+get"]);
        assert!(rules(&serde_json::json!(7)).is_err());
        assert!(rules(&serde_json::json!([1])).is_err());
    }

    proptest::proptest! {
        /// Whatever a role holds, parsing never panics, and rules from text
        /// are whole words.
        #[test]
        fn any_creation_statements_parse_or_are_refused(text in ".{0,80}", list in proptest::collection::vec(".{0,20}", 0..5)) {
            if let Ok(rules) = rules(&serde_json::json!(text)) {
                for rule in rules {
                    proptest::prop_assert!(!rule.is_empty());
                }
            }
            let _ = rules(&serde_json::json!(list));
        }

        /// A rule that would set a password is refused, whatever follows.
        #[test]
        fn password_setting_rules_are_refused(first in "[<>#!]", rest in ".{0,30}") {
            let rule = format!("{first}{rest}");
            proptest::prop_assert!(check_rule(&rule).is_err());
        }
    }

    #[test]
    fn password_rules_are_refused() {
        for rule in [">x", "<x", "#abc", "!abc", "nopass", "RESETPASS", "reset"] {
            assert!(check_rule(rule).is_err(), "{rule}");
        }
        for rule in ["~*", "+@read", "-flushall", "&*", "allkeys"] {
            check_rule(rule).unwrap();
        }
    }
}
