//! The built-in RabbitMQ credential plugin: each lease gets a RabbitMQ user
//! with vhost and topic permissions, made through the management HTTP API
//! with the fields of Vault's `rabbitmq` secrets engine (`tags`, `vhosts`,
//! `vhost_topics`).
//!
//! Written with the public SDK only, as a third party would write one, and
//! reaching RabbitMQ only through the host's `http` capability: requests go
//! to the mount's `connection_url` origin alone, authenticated by the host
//! as the mount's admin. Revocation deletes the user, which closes its
//! connections. RabbitMQ users do not expire, so renewal has nothing to do.

use std::collections::BTreeMap;

use broker_plugin_sdk::http::{self, Request, segment};
use broker_plugin_sdk::prelude::*;
use broker_plugin_sdk::{password, username};
use serde::{Deserialize, Deserializer, Serialize};

/// The shape of Vault's rabbitmq usernames: role, randomness.
const DEFAULT_USERNAME_TEMPLATE: &str =
    "v-{{display_name | truncate 10}}-{{role_name | truncate 10}}-{{random 20}}-{{unix_time}}";

const USERNAME_LIMIT: username::Limit = username::Limit {
    max_chars: 100,
    max_bytes: 100,
};

/// The connection config as the plugin sees it (the host keeps the
/// password and adds it to every request itself).
#[derive(Debug, Deserialize)]
pub struct Config {
    /// The management user the host authenticates as.
    #[serde(default)]
    pub username: Option<String>,
    /// How usernames are made; see the SDK's `username` module.
    #[serde(default)]
    pub username_template: Option<String>,
    /// The admin password `rotate-root` sets, made by the host.
    #[serde(default)]
    pub new_password: Option<String>,
}

/// A vhost's permissions: regular expressions over resource names.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VhostPermission {
    /// Which resources the user may configure.
    #[serde(default)]
    pub configure: String,
    /// Which it may write to.
    #[serde(default)]
    pub write: String,
    /// Which it may read from.
    #[serde(default)]
    pub read: String,
}

/// A topic exchange's permissions: regular expressions over routing keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TopicPermission {
    /// Which routing keys it may publish with.
    #[serde(default)]
    pub write: String,
    /// Which it may bind with.
    #[serde(default)]
    pub read: String,
}

/// A JSON object given as an object or as a string holding one (Vault's
/// form: `vhosts='{"/": {...}}'`).
fn json_field<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(T::default()),
        serde_json::Value::String(s) if s.trim().is_empty() => Ok(T::default()),
        serde_json::Value::String(s) => serde_json::from_str(&s).map_err(serde::de::Error::custom),
        other => serde_json::from_value(other).map_err(serde::de::Error::custom),
    }
}

/// Tags as a comma-separated string (Vault's form) or a list.
fn tags_field<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(Vec::new()),
        serde_json::Value::String(s) => Ok(s
            .split(',')
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect()),
        other => serde_json::from_value(other).map_err(serde::de::Error::custom),
    }
}

/// A role (`roles/:name`), with Vault's rabbitmq field names.
#[derive(Debug, Deserialize)]
pub struct Role {
    /// User tags (`management`, `monitoring`, …).
    #[serde(default, deserialize_with = "tags_field")]
    pub tags: Vec<String>,
    /// Permissions per vhost.
    #[serde(default, deserialize_with = "json_field")]
    pub vhosts: BTreeMap<String, VhostPermission>,
    /// Topic permissions per vhost, then per exchange.
    #[serde(default, deserialize_with = "json_field")]
    pub vhost_topics: BTreeMap<String, BTreeMap<String, TopicPermission>>,
}

/// What the lease keeps to revoke the user.
#[derive(Debug, Serialize, Deserialize)]
pub struct Revocation {
    /// The RabbitMQ user's name.
    pub username: String,
}

const CONNECTION_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["connection_url", "username", "password"],
  "properties": {
    "connection_url": {"type": "string", "description": "the management API's base URL, e.g. http://rabbitmq:15672 (Vault's connection_uri is taken too)"},
    "username": {"type": "string", "description": "a user with the administrator tag"},
    "password": {"type": "string", "writeOnly": true},
    "ca_cert": {"type": "string", "description": "PEM CA certificates that verify an https:// API's certificate"},
    "username_template": {"type": "string"}
  }
}"#;

const ROLE_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "tags": {"type": ["string", "array"], "description": "comma-separated user tags"},
    "vhosts": {"type": ["string", "object"], "description": "{\"/\": {\"configure\": \".*\", \"write\": \".*\", \"read\": \".*\"}}"},
    "vhost_topics": {"type": ["string", "object"], "description": "{\"/\": {\"amq.topic\": {\"write\": \".*\", \"read\": \".*\"}}}"}
  }
}"#;

/// The plugin.
#[derive(Debug)]
pub struct RabbitMq;

/// Fails unless the response is 2xx (or `also` for an accepted status).
fn expect(response: &http::Response, what: &str, also: Option<u16>) -> Result<()> {
    if response.is_success() || Some(response.status) == also {
        return Ok(());
    }
    let message = format!("{what}: {}", response.error_text());
    Err(match response.status {
        401 | 403 => Error::config(message),
        500.. => Error::unavailable(message),
        _ => Error::request(message),
    })
}

fn put_user(username: &str, password: &str, tags: &[String]) -> Result<()> {
    let body = serde_json::json!({ "password": password, "tags": tags.join(",") });
    let response = Request::put(&format!("/api/users/{}", segment(username)))
        .json(&body)?
        .send()?;
    expect(&response, "cannot create the user", None).map_err(|e| e.redact(password))
}

fn grant(username: &str, role: &Role) -> Result<()> {
    for (vhost, permission) in &role.vhosts {
        let url = format!("/api/permissions/{}/{}", segment(vhost), segment(username));
        let response = Request::put(&url).json(permission)?.send()?;
        expect(
            &response,
            &format!("cannot grant permissions on vhost {vhost:?}"),
            None,
        )?;
    }
    for (vhost, exchanges) in &role.vhost_topics {
        for (exchange, permission) in exchanges {
            let url = format!(
                "/api/topic-permissions/{}/{}",
                segment(vhost),
                segment(username)
            );
            let body = serde_json::json!({
                "exchange": exchange,
                "write": permission.write,
                "read": permission.read,
            });
            let response = Request::put(&url).json(&body)?.send()?;
            expect(
                &response,
                &format!("cannot grant topic permissions on vhost {vhost:?}"),
                None,
            )?;
        }
    }
    Ok(())
}

fn delete_user(username: &str) -> Result<()> {
    let response = Request::delete(&format!("/api/users/{}", segment(username))).send()?;
    // 404: already gone, which is what revocation wants.
    expect(&response, "cannot delete the user", Some(404))
}

impl Plugin for RabbitMq {
    type Config = Config;
    type Role = Role;
    type Revocation = Revocation;

    fn info() -> Info {
        Info::new("rabbitmq", env!("CARGO_PKG_VERSION"))
            .alias("rabbitmq-database-plugin")
            .capability(Capability::Http)
            .connection_schema(CONNECTION_SCHEMA)
            .role_schema(ROLE_SCHEMA)
    }

    fn verify_connection(_: &Connection<Config>) -> Result<()> {
        let response = Request::get("/api/whoami").send()?;
        expect(&response, "cannot log in to the management API", None)
    }

    fn prepare(
        connection: &Connection<Config>,
        request: &IssueRequest<Role>,
    ) -> Result<Prepared<Revocation>> {
        let username = username::for_request(
            connection.config.username_template.as_deref(),
            DEFAULT_USERNAME_TEMPLATE,
            request,
            USERNAME_LIMIT,
        )?;
        let existing = Request::get(&format!("/api/users/{}", segment(&username))).send()?;
        if existing.status != 404 {
            expect(&existing, "cannot look the new user up", None)?;
            return Err(Error::request(format!(
                "a RabbitMQ user named {username:?} already exists; give the username template a {{{{random N}}}} part"
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
        let username = &prepared.revocation.username;
        put_user(username, prepared.field("password")?, &request.role.tags)?;
        if let Err(e) = grant(username, &request.role) {
            // Half made: take it back now rather than leave it to the lease.
            let _ = delete_user(username);
            return Err(e);
        }
        Ok(())
    }

    fn revoke(_: &Connection<Config>, revocation: Revocation) -> Result<()> {
        delete_user(&revocation.username)
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
        // A PUT replaces the user whole: keep its tags.
        #[derive(Deserialize)]
        struct User {
            #[serde(default, deserialize_with = "tags_field")]
            tags: Vec<String>,
        }
        let current = Request::get(&format!("/api/users/{}", segment(username))).send()?;
        expect(&current, "cannot read the admin user", None)?;
        let user: User = current.json()?;
        put_user(username, &password, &user.tags)?;
        Ok(serde_json::json!({ "password": password }))
    }
}

broker_plugin_sdk::register_plugin!(RabbitMq);

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Whatever a role's fields hold, parsing answers or refuses, never
        /// panics; tags from text are trimmed and never empty.
        #[test]
        fn any_role_parses_or_is_refused(tags in ".{0,40}", vhosts in ".{0,60}", topics in ".{0,60}") {
            let role = serde_json::from_value::<Role>(serde_json::json!({
                "tags": tags,
                "vhosts": vhosts,
                "vhost_topics": topics,
            }));
            if let Ok(role) = role {
                for tag in role.tags {
                    proptest::prop_assert!(!tag.is_empty() && tag.trim() == tag);
                }
            }
        }
    }

    #[test]
    fn roles_take_vaults_string_forms_and_plain_json() {
        let role: Role = serde_json::from_value(serde_json::json!({
            "tags": "management, monitoring",
            "vhosts": "{\"/\": {\"configure\": \".*\", \"write\": \".*\", \"read\": \".*\"}}",
            "vhost_topics": {"/": {"amq.topic": {"write": "app.*", "read": ".*"}}},
        }))
        .unwrap();
        assert_eq!(role.tags, ["management", "monitoring"]);
        assert_eq!(role.vhosts["/"].configure, ".*");
        assert_eq!(role.vhost_topics["/"]["amq.topic"].write, "app.*");
        let empty: Role = serde_json::from_value(serde_json::json!({})).unwrap();
        assert!(empty.tags.is_empty() && empty.vhosts.is_empty());
        assert!(
            serde_json::from_value::<Role>(serde_json::json!({"vhosts": "{not json"})).is_err()
        );
    }
}
