//! The built-in PostgreSQL credential plugin.
//!
//! Written with the SDK exactly as a third party would write one. Each lease
//! gets a fresh `LOGIN` role made by the role's creation statements in one
//! transaction; renewal moves its `VALID UNTIL`; revocation runs the role's
//! revocation statements, or by default locks the role, ends its sessions,
//! hands what it owns to the admin and drops it. Everything revocation needs
//! travels in the lease's sealed revocation data, so deleting the role or
//! the connection config never leaves a user behind.

use broker_plugin_sdk::prelude::*;
use broker_plugin_sdk::{password, username};
use serde::{Deserialize, Serialize};

/// Vault's default, so usernames look the same after a migration.
const DEFAULT_USERNAME_TEMPLATE: &str =
    "v-{{display_name | truncate 8}}-{{role_name | truncate 8}}-{{random 20}}-{{unix_time}}";

const DIALECT: Dialect = Dialect::Postgres;

/// The connection config as the plugin sees it (the host keeps the password).
#[derive(Debug, Deserialize)]
pub struct Config {
    /// The admin user the host connects as.
    #[serde(default)]
    pub username: Option<String>,
    /// How usernames are made; see the SDK's `username` module.
    #[serde(default)]
    pub username_template: Option<String>,
    /// Statements that change the admin password on `rotate-root`.
    #[serde(default)]
    pub root_rotation_statements: Statements,
}

/// A role (`roles/:name`), with Vault's field names.
#[derive(Debug, Deserialize)]
pub struct Role {
    /// Make the user: `{{name}}`, `{{password}}`, `{{expiration}}`.
    #[serde(default)]
    pub creation_statements: Statements,
    /// Drop the user; empty means the safe default.
    #[serde(default)]
    pub revocation_statements: Statements,
    /// Extend the user; empty means `ALTER ROLE … VALID UNTIL`.
    #[serde(default)]
    pub renew_statements: Statements,
    /// Undo a failed creation; empty means the default revocation.
    #[serde(default)]
    pub rollback_statements: Statements,
}

/// What the lease keeps to renew and revoke the user.
#[derive(Debug, Serialize, Deserialize)]
pub struct Revocation {
    /// The user's name.
    pub username: String,
    /// The role's revocation statements when the user was made.
    #[serde(default)]
    pub revocation_statements: Statements,
    /// The role's renew statements when the user was made.
    #[serde(default)]
    pub renew_statements: Statements,
}

const CONNECTION_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["connection_url"],
  "properties": {
    "connection_url": {"type": "string", "description": "postgresql://{{username}}:{{password}}@host:5432/db"},
    "username": {"type": "string"},
    "password": {"type": "string", "writeOnly": true},
    "username_template": {"type": "string"},
    "root_rotation_statements": {"type": ["string", "array"], "items": {"type": "string"}},
    "max_open_connections": {"type": "integer", "minimum": 0, "maximum": 1000, "description": "pool size; 0: the default, 4"},
    "max_idle_connections": {"type": "integer", "minimum": 0, "maximum": 1000},
    "max_connection_lifetime": {"type": ["integer", "string"], "description": "seconds or a duration like \"5m\", at most 30 days; 0: no limit"}
  }
}"#;

const ROLE_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["creation_statements"],
  "properties": {
    "creation_statements": {"type": ["string", "array"], "items": {"type": "string"}},
    "revocation_statements": {"type": ["string", "array"], "items": {"type": "string"}},
    "renew_statements": {"type": ["string", "array"], "items": {"type": "string"}},
    "rollback_statements": {"type": ["string", "array"], "items": {"type": "string"}}
  }
}"#;

/// The plugin.
#[derive(Debug)]
pub struct Postgres;

fn user_vars(username: &str) -> Vars {
    Vars::new()
        .identifier("name", username)
        .identifier("username", username)
}

fn creation_statements(
    role: &Role,
    username: &str,
    password: &str,
    expires_at: u64,
) -> Result<Vec<String>> {
    let vars = user_vars(username)
        .literal("password", password)
        .literal("expiration", &DIALECT.timestamp(expires_at));
    Ok(role.creation_statements.render(DIALECT, &vars)?)
}

impl Postgres {
    /// The default revocation: no new logins, end sessions, give away what
    /// the user owns in this database, drop it. A user already gone is fine.
    fn drop_user(db: &Database, username: &str) -> Result<()> {
        let exists = db.query(
            "SELECT 1 FROM pg_roles WHERE rolname = $1",
            &[Value::Text(username.into())],
        )?;
        if exists.rows.is_empty() {
            return Ok(());
        }
        let vars = user_vars(username);
        db.batch(&[Template::new("ALTER ROLE {{name}} NOLOGIN").render(DIALECT, &vars)?])?;
        db.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()",
            &[Value::Text(username.into())],
        )?;
        let statements = Statements(vec![
            "REASSIGN OWNED BY {{name}} TO CURRENT_USER".into(),
            "DROP OWNED BY {{name}}".into(),
            "DROP ROLE IF EXISTS {{name}}".into(),
        ]);
        db.batch(&statements.render(DIALECT, &vars)?)
    }
}

impl Plugin for Postgres {
    type Config = Config;
    type Role = Role;
    type Revocation = Revocation;

    fn info() -> Info {
        Info::new("postgres", env!("CARGO_PKG_VERSION"))
            .alias("postgresql-database-plugin")
            .capability(Capability::SqlPostgres)
            .connection_schema(CONNECTION_SCHEMA)
            .role_schema(ROLE_SCHEMA)
    }

    fn verify_connection(_: &Connection<Config>) -> Result<()> {
        Database::open()?.query("SELECT 1", &[])?;
        Ok(())
    }

    fn prepare(
        connection: &Connection<Config>,
        request: &IssueRequest<Role>,
    ) -> Result<Prepared<Revocation>> {
        let role = &request.role;
        if role.creation_statements.is_empty() {
            return Err(Error::request("the role has no creation_statements"));
        }
        let template = connection
            .config
            .username_template
            .as_deref()
            .unwrap_or(DEFAULT_USERNAME_TEMPLATE);
        let username = UsernameTemplate::parse(template)?.render(
            &username::Inputs {
                display_name: &request.display_name,
                role_name: &request.role_name,
                unix_time: broker_plugin_sdk::host::now(),
            },
            DIALECT.username_limit(),
        );
        let password = password::generate(password::DEFAULT_LENGTH);
        // Render now, so a bad template fails before the lease is recorded.
        creation_statements(role, &username, &password, request.expires_at)?;
        // Revocation will drop this name: it must not belong to someone else.
        let taken = Database::open()?.query(
            "SELECT 1 FROM pg_roles WHERE rolname = $1",
            &[Value::Text(username.clone())],
        )?;
        if !taken.rows.is_empty() {
            return Err(Error::request(format!(
                "a role named {username:?} already exists; give the username template a {{{{random N}}}} part"
            )));
        }
        Prepared::new(
            serde_json::json!({ "username": username, "password": password }),
            Revocation {
                username,
                revocation_statements: role.revocation_statements.clone(),
                renew_statements: role.renew_statements.clone(),
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
        // One transaction: a failure leaves nothing behind.
        Database::open()?
            .batch(&statements)
            .map_err(|e| e.redact(password))
    }

    fn renew(_: &Connection<Config>, revocation: Revocation, expires_at: u64) -> Result<()> {
        let vars =
            user_vars(&revocation.username).literal("expiration", &DIALECT.timestamp(expires_at));
        let statements = if revocation.renew_statements.is_empty() {
            Statements(vec![
                "ALTER ROLE {{name}} VALID UNTIL {{expiration}}".into(),
            ])
        } else {
            revocation.renew_statements
        };
        Database::open()?.batch(&statements.render(DIALECT, &vars)?)
    }

    fn revoke(_: &Connection<Config>, revocation: Revocation) -> Result<()> {
        let db = Database::open()?;
        if revocation.revocation_statements.is_empty() {
            return Self::drop_user(&db, &revocation.username);
        }
        db.batch(
            &revocation
                .revocation_statements
                .render(DIALECT, &user_vars(&revocation.username))?,
        )
    }

    fn rotate_root(connection: &Connection<Config>) -> Result<serde_json::Value> {
        let username = connection
            .config
            .username
            .as_deref()
            .ok_or_else(|| Error::config("rotate-root needs the connection's username"))?;
        let password = password::generate(password::DEFAULT_LENGTH);
        let statements = if connection.config.root_rotation_statements.is_empty() {
            Statements(vec![
                "ALTER ROLE {{username}} WITH PASSWORD {{password}}".into(),
            ])
        } else {
            connection.config.root_rotation_statements.clone()
        };
        let vars = user_vars(username).literal("password", &password);
        Database::open()?
            .batch(&statements.render(DIALECT, &vars)?)
            .map_err(|e| e.redact(&password))?;
        Ok(serde_json::json!({ "password": password }))
    }

    fn rotate_static(_: &Connection<Config>, role: serde_json::Value) -> Result<serde_json::Value> {
        #[derive(Deserialize)]
        struct StaticRole {
            username: String,
            #[serde(default)]
            rotation_statements: Statements,
        }
        let role: StaticRole = serde_json::from_value(role).map_err(Error::request)?;
        let password = password::generate(password::DEFAULT_LENGTH);
        let statements = if role.rotation_statements.is_empty() {
            Statements(vec![
                "ALTER ROLE {{name}} WITH PASSWORD {{password}}".into(),
            ])
        } else {
            role.rotation_statements
        };
        let vars = user_vars(&role.username).literal("password", &password);
        Database::open()?
            .batch(&statements.render(DIALECT, &vars)?)
            .map_err(|e| e.redact(&password))?;
        Ok(serde_json::json!({ "username": role.username, "password": password }))
    }
}

broker_plugin_sdk::register_plugin!(Postgres);
