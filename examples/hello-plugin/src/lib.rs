//! hello-plugin: a credential plugin for the broker, made by `broker plugin new`.
//!
//! Each lease gets a fresh PostgreSQL login made by the role's
//! `creation_statements`; renewal moves its `VALID UNTIL`; revocation
//! drops it. Change it into what you need: the SDK's documentation and
//! guide (`sdk/README.md` in the broker's source) say what each piece does.

use broker_plugin_sdk::prelude::*;
use broker_plugin_sdk::{password, username};
use serde::{Deserialize, Serialize};

/// How usernames look unless the connection config says otherwise.
const DEFAULT_USERNAME_TEMPLATE: &str =
    "v-{{display_name | truncate 8}}-{{role_name | truncate 8}}-{{random 16}}";

const DIALECT: Dialect = Dialect::Postgres;

/// The connection config as the plugin sees it (the host keeps the
/// admin password and opens connections itself).
#[derive(Debug, Deserialize)]
pub struct Config {
    /// How usernames are made (Vault's syntax).
    #[serde(default)]
    pub username_template: Option<String>,
}

/// A role (`roles/:name`).
#[derive(Debug, Deserialize)]
pub struct Role {
    /// Make the user: `{{name}}`, `{{password}}`, `{{expiration}}`.
    pub creation_statements: Statements,
    /// Drop the user; empty: `DROP ROLE IF EXISTS {{name}}`.
    #[serde(default)]
    pub revocation_statements: Statements,
}

/// What the lease keeps to renew and revoke the user: everything, since
/// the role may be gone by then.
#[derive(Debug, Serialize, Deserialize)]
pub struct Revocation {
    /// The user's name.
    pub username: String,
    /// The role's revocation statements when the user was made.
    #[serde(default)]
    pub revocation_statements: Statements,
}

/// The plugin.
#[derive(Debug)]
pub struct HelloPlugin;

/// The role's creation statements for `username`, quoted for PostgreSQL.
pub fn creation_statements(
    role: &Role,
    username: &str,
    password: &str,
    expires_at: u64,
) -> Result<Vec<String>> {
    let vars = Vars::new()
        .identifier("name", username)
        .literal("password", password)
        .literal("expiration", &DIALECT.timestamp(expires_at));
    Ok(role.creation_statements.render(DIALECT, &vars)?)
}

impl Plugin for HelloPlugin {
    type Config = Config;
    type Role = Role;
    type Revocation = Revocation;

    fn info() -> Info {
        Info::new("hello-plugin", env!("CARGO_PKG_VERSION")).capability(Capability::SqlPostgres)
    }

    fn verify_connection(_: &Connection<Config>) -> Result<()> {
        Database::open()?.query("SELECT 1", &[])?;
        Ok(())
    }

    fn prepare(
        connection: &Connection<Config>,
        request: &IssueRequest<Role>,
    ) -> Result<Prepared<Revocation>> {
        let username = username::for_request(
            connection.config.username_template.as_deref(),
            DEFAULT_USERNAME_TEMPLATE,
            request,
            DIALECT.username_limit(),
        )?;
        let password = password::provided_or_generate(request.password.as_deref());
        // Rendered now so a bad role fails before anything is recorded.
        creation_statements(&request.role, &username, &password, request.expires_at)?;
        Prepared::new(
            serde_json::json!({ "username": username, "password": password }),
            Revocation {
                username,
                revocation_statements: request.role.revocation_statements.clone(),
            },
        )
    }

    fn create(
        _: &Connection<Config>,
        request: &IssueRequest<Role>,
        prepared: &Prepared<Revocation>,
    ) -> Result<()> {
        let password = prepared.field("password")?;
        let statements = creation_statements(
            &request.role,
            &prepared.revocation.username,
            password,
            request.expires_at,
        )?;
        Database::open()?
            .batch(&statements)
            .map_err(|e| e.redact(password))
    }

    fn renew(_: &Connection<Config>, revocation: Revocation, expires_at: u64) -> Result<()> {
        let vars = Vars::new()
            .identifier("name", &revocation.username)
            .literal("expiration", &DIALECT.timestamp(expires_at));
        let statement = Template::new("ALTER ROLE {{name}} VALID UNTIL {{expiration}}");
        Database::open()?.batch(&[statement.render(DIALECT, &vars)?])
    }

    fn revoke(_: &Connection<Config>, revocation: Revocation) -> Result<()> {
        let statements = if revocation.revocation_statements.is_empty() {
            Statements(vec!["DROP ROLE IF EXISTS {{name}}".into()])
        } else {
            revocation.revocation_statements
        };
        let vars = Vars::new().identifier("name", &revocation.username);
        Database::open()?.batch(&statements.render(DIALECT, &vars)?)
    }
}

broker_plugin_sdk::register_plugin!(HelloPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn role(statement: &str) -> Role {
        Role {
            creation_statements: Statements(vec![statement.to_owned()]),
            revocation_statements: Statements::default(),
        }
    }

    #[test]
    fn statements_quote_what_they_are_given() {
        let role = role("CREATE ROLE {{name}} LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}");
        let out = creation_statements(&role, "v-app", "pa'ss", 0).unwrap();
        assert_eq!(
            out,
            ["CREATE ROLE \"v-app\" LOGIN PASSWORD 'pa''ss' VALID UNTIL '1970-01-01 00:00:00+00'"]
        );
    }

    #[test]
    fn an_unknown_placeholder_is_an_error_not_an_empty_value() {
        assert!(creation_statements(&role("GRANT {{nope}} TO {{name}}"), "u", "p", 0).is_err());
    }
}
