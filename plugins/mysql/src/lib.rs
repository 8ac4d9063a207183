//! The built-in MySQL and MariaDB credential plugin.
//!
//! Written with the SDK exactly as a third party would write one. Each lease
//! gets a fresh account made by the role's creation statements. MySQL
//! commits DDL implicitly, so a creation that fails half-way is undone by
//! the role's rollback statements or the default revocation. Revocation ends
//! the account's sessions and drops it at every host it exists for; it
//! succeeds when the account is already gone.
//!
//! Two calls never make the same account: `prepare` claims the new name
//! with a named lock (`GET_LOCK`) on the connection `create` then uses,
//! and only the holder checks that no account has the name, records it for
//! revocation and creates it. A call refused the name has recorded nothing
//! and drops nothing, so its clean-up never touches another call's account.
//!
//! Vault's plugin names are accepted: `mysql-database-plugin`,
//! `mysql-aurora-database-plugin`, `mysql-rds-database-plugin` (32-character
//! usernames) and `mysql-legacy-database-plugin` (16, for MySQL before 5.7).

use std::cell::RefCell;

use broker_plugin_sdk::prelude::*;
use broker_plugin_sdk::username::Limit;
use broker_plugin_sdk::{password, username};
use serde::{Deserialize, Serialize};

const DIALECT: Dialect = Dialect::MySql;
const DEFAULT_USERNAME_TEMPLATE: &str =
    "v-{{display_name | truncate 4}}-{{role_name | truncate 4}}-{{random 20}}";
const LEGACY_USERNAME_TEMPLATE: &str = "v-{{role_name | truncate 4}}-{{random 9}}";
const LEGACY_PLUGIN: &str = "mysql-legacy-database-plugin";

/// The connection config as the plugin sees it (the host keeps the password).
#[derive(Debug, Deserialize)]
pub struct Config {
    /// Which of Vault's names the mount was configured with.
    #[serde(default)]
    pub plugin_name: Option<String>,
    /// The admin user the host connects as.
    #[serde(default)]
    pub username: Option<String>,
    /// How usernames are made; see the SDK's `username` module.
    #[serde(default)]
    pub username_template: Option<String>,
    /// Statements that change the admin password on `rotate-root`.
    #[serde(default)]
    pub root_rotation_statements: Statements,
    /// The admin password `rotate-root` sets, made by the host (which
    /// stores it as pending first); absent from older hosts.
    #[serde(default)]
    pub new_password: Option<String>,
}

impl Config {
    fn legacy(&self) -> bool {
        self.plugin_name.as_deref() == Some(LEGACY_PLUGIN)
    }

    fn username_limit(&self) -> Limit {
        if self.legacy() {
            Limit {
                max_chars: 16,
                max_bytes: 64,
            }
        } else {
            DIALECT.username_limit()
        }
    }
}

/// A role (`roles/:name`), with Vault's field names.
#[derive(Debug, Deserialize)]
pub struct Role {
    /// Make the account: `{{name}}`, `{{password}}`, `{{expiration}}`.
    #[serde(default)]
    pub creation_statements: Statements,
    /// Drop the account; empty means the safe default.
    #[serde(default)]
    pub revocation_statements: Statements,
    /// Undo a failed creation; empty means the default revocation.
    #[serde(default)]
    pub rollback_statements: Statements,
}

/// What the lease keeps to revoke the account.
#[derive(Debug, Serialize, Deserialize)]
pub struct Revocation {
    /// The account's user name.
    pub username: String,
    /// The role's revocation statements when the account was made.
    #[serde(default)]
    pub revocation_statements: Statements,
}

const CONNECTION_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["connection_url"],
  "properties": {
    "connection_url": {"type": "string", "description": "{{username}}:{{password}}@tcp(host:3306)/ or mysql://{{username}}:{{password}}@host:3306/"},
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
    "rollback_statements": {"type": ["string", "array"], "items": {"type": "string"}}
  }
}"#;

/// The plugin.
#[derive(Debug)]
pub struct MySql;

fn user_vars(username: &str) -> Vars {
    // MySQL account names are strings: `'{{name}}'@'%'` in Vault's examples.
    Vars::new()
        .identifier("name", username)
        .identifier("username", username)
}

/// The queries about one account. The name goes in as a quoted literal
/// (the template's quoting), not as a parameter: a parameter needs a
/// prepared statement, and the host resets the session between calls,
/// which drops prepared statements, so every call would pay a prepare
/// round trip (and MariaDB's view `mysql.user` is slow to prepare).
const TAKEN_QUERY: &str = "SELECT 1 FROM mysql.user WHERE User = {{user}}";
const HOSTS_QUERY: &str = "SELECT Host FROM mysql.user WHERE User = {{user}}";
const SESSIONS_QUERY: &str =
    "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = {{user}} AND ID <> CONNECTION_ID()";

fn account_query(template: &str, username: &str) -> Result<String> {
    Ok(Template::new(template).render(DIALECT, &Vars::new().literal("user", username))?)
}

/// How long a call waits for another one making an account of the same
/// name, in seconds: well inside the call's deadline, so a refused call
/// ends with a clear error, not by being stopped.
const CLAIM_WAIT_SECS: u32 = 3;
const RELEASE_QUERY: &str = "SELECT RELEASE_LOCK({{user}})";

/// The named lock for `username`: a MySQL lock name is at most 64
/// characters, and a username at most 32.
fn lock_name(username: &str) -> String {
    format!("broker-account:{username}")
}

thread_local! {
    /// The connection holding this call's claim, from `prepare` to
    /// `create` (each call runs in a fresh instance: nothing outlives it).
    static CLAIMED: RefCell<Option<Database>> = const { RefCell::new(None) };
}

/// Takes the name for this call, waiting for a call that holds it.
fn claim(db: &Database, username: &str) -> Result<()> {
    let query = format!("SELECT GET_LOCK({{{{user}}}}, {CLAIM_WAIT_SECS})");
    let got = db.query(&account_query(&query, &lock_name(username))?, &[])?;
    let held = got.rows.first().and_then(|r| r.first()).and_then(text);
    if held.as_deref() == Some("1") {
        return Ok(());
    }
    Err(Error::unavailable(format!(
        "another request has been making an account named {username:?} for {CLAIM_WAIT_SECS} s; \
         try again, or give the username template a {{{{random N}}}} part"
    )))
}

/// Gives the name up. The host resets or closes the connection after the
/// call in any case, which ends the lock as well.
fn release(db: &Database, username: &str) {
    let released = account_query(RELEASE_QUERY, &lock_name(username))
        .and_then(|q| db.query(&q, &[]).map(|_| ()));
    if let Err(e) = released {
        broker_plugin_sdk::host::log(
            broker_plugin_sdk::host::Level::Warn,
            &format!("cannot release the claim on a new account's name: {e}"),
        );
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Text(s) => Some(s.clone()),
        Value::Bytes(b) => String::from_utf8(b.clone()).ok(),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
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

impl MySql {
    /// The default revocation: end the account's sessions, then drop it at
    /// every host it exists for. An account already gone is fine.
    fn drop_user(db: &Database, username: &str) -> Result<()> {
        let hosts = db.query(&account_query(HOSTS_QUERY, username)?, &[])?;
        let sessions = db.query(&account_query(SESSIONS_QUERY, username)?, &[])?;
        let mut statements = Vec::new();
        for host in hosts.rows.iter().filter_map(|r| r.first().and_then(text)) {
            let vars = user_vars(username).literal("host", &host);
            statements.push(
                Template::new("DROP USER IF EXISTS '{{name}}'@'{{host}}'")
                    .render(DIALECT, &vars)?,
            );
        }
        // Lock out new logins first (DROP USER does), then end live sessions:
        // MySQL lets a session outlive its dropped account.
        for statement in &statements {
            db.execute(statement, &[])?;
        }
        for id in sessions
            .rows
            .iter()
            .filter_map(|r| r.first().and_then(text))
        {
            let Ok(id) = id.parse::<u64>() else { continue };
            // The session may have ended by itself in the meantime.
            let _ = db.execute(&format!("KILL CONNECTION {id}"), &[]);
        }
        Ok(())
    }

    /// Runs the creation statements for a name this call holds the claim
    /// on and found free: whatever account has the name after a failure is
    /// this call's own, so undoing it touches nothing of anyone else's.
    fn create_claimed(
        db: &Database,
        role: &Role,
        username: &str,
        password: &str,
        statements: &[String],
    ) -> Result<()> {
        if let Err(e) = db.batch(statements) {
            // DDL committed implicitly: undo whatever ran.
            let undo = if role.rollback_statements.is_empty() {
                Self::drop_user(db, username)
            } else {
                role.rollback_statements
                    .render(DIALECT, &user_vars(username))
                    .map_err(Error::from)
                    .and_then(|s| db.batch(&s))
            };
            if let Err(undo) = undo {
                broker_plugin_sdk::host::log(
                    broker_plugin_sdk::host::Level::Error,
                    &format!("rollback after a failed creation failed: {undo}"),
                );
            }
            return Err(e.redact(password));
        }
        Ok(())
    }
}

impl Plugin for MySql {
    type Config = Config;
    type Role = Role;
    type Revocation = Revocation;

    fn info() -> Info {
        Info::new("mysql", env!("CARGO_PKG_VERSION"))
            .alias("mysql-database-plugin")
            .alias("mysql-aurora-database-plugin")
            .alias("mysql-rds-database-plugin")
            .alias(LEGACY_PLUGIN)
            .capability(Capability::SqlMysql)
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
        let config = &connection.config;
        let default_template = if config.legacy() {
            LEGACY_USERNAME_TEMPLATE
        } else {
            DEFAULT_USERNAME_TEMPLATE
        };
        let template = config
            .username_template
            .as_deref()
            .unwrap_or(default_template);
        let username = UsernameTemplate::parse(template)?.render(
            &username::Inputs {
                display_name: &request.display_name,
                role_name: &request.role_name,
                unix_time: broker_plugin_sdk::host::now(),
            },
            config.username_limit(),
        );
        let password = password::provided_or_generate(request.password.as_deref());
        // Render now, so a bad template fails before the lease is recorded.
        creation_statements(role, &username, &password, request.expires_at)?;
        // Revocation will drop this name: it must not belong to someone
        // else, now or by the time `create` runs. The claim makes this call
        // the only one checking and creating it until it is done.
        let db = Database::open()?;
        claim(&db, &username)?;
        let taken = db.query(&account_query(TAKEN_QUERY, &username)?, &[]);
        match taken {
            Ok(taken) if taken.rows.is_empty() => {}
            Ok(_) => {
                release(&db, &username);
                return Err(Error::request(format!(
                    "an account named {username:?} already exists; give the username template a {{{{random N}}}} part"
                )));
            }
            Err(e) => {
                release(&db, &username);
                return Err(e);
            }
        }
        CLAIMED.with(|held| *held.borrow_mut() = Some(db));
        Prepared::new(
            serde_json::json!({ "username": username, "password": password }),
            Revocation {
                username,
                revocation_statements: role.revocation_statements.clone(),
            },
        )
    }

    fn create(
        _: &Connection<Config>,
        request: &IssueRequest<Role>,
        prepared: &Prepared<Revocation>,
    ) -> Result<()> {
        let role = &request.role;
        let username = &prepared.revocation.username;
        let password = prepared.field("password")?;
        let statements = creation_statements(role, username, password, request.expires_at)?;
        let db = match CLAIMED.with(|held| held.borrow_mut().take()) {
            Some(db) => db,
            None => Database::open()?,
        };
        let created = Self::create_claimed(&db, role, username, password, &statements);
        release(&db, username);
        created
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
        let db = Database::open()?;
        // The account the host connected as, host part included: MariaDB
        // ignores `ALTER USER CURRENT_USER()` on some connections.
        let current = db.query("SELECT CURRENT_USER()", &[])?;
        let account = current
            .rows
            .first()
            .and_then(|r| r.first())
            .and_then(text)
            .unwrap_or_default();
        let host = account.rsplit_once('@').map_or("%", |(_, h)| h).to_owned();
        let password = connection
            .config
            .new_password
            .clone()
            .unwrap_or_else(|| password::generate(password::DEFAULT_LENGTH));
        let statements = if connection.config.root_rotation_statements.is_empty() {
            Statements(vec![
                "ALTER USER '{{username}}'@'{{host}}' IDENTIFIED BY {{password}}".into(),
            ])
        } else {
            connection.config.root_rotation_statements.clone()
        };
        let vars = user_vars(username)
            .literal("password", &password)
            .literal("host", &host);
        db.batch(&statements.render(DIALECT, &vars)?)
            .map_err(|e| e.redact(&password))?;
        Ok(serde_json::json!({ "password": password }))
    }

    fn rotate_static(_: &Connection<Config>, role: serde_json::Value) -> Result<serde_json::Value> {
        #[derive(Deserialize)]
        struct StaticRole {
            username: String,
            #[serde(default)]
            rotation_statements: Statements,
            /// Made by the host, which stores it as pending first.
            #[serde(default)]
            password: Option<String>,
        }
        let role: StaticRole = serde_json::from_value(role).map_err(Error::request)?;
        if role.rotation_statements.is_empty() {
            return Err(Error::request(
                "a MySQL static role needs rotation_statements (the account's host is not known)",
            ));
        }
        let password = role
            .password
            .clone()
            .unwrap_or_else(|| password::generate(password::DEFAULT_LENGTH));
        let vars = user_vars(&role.username).literal("password", &password);
        Database::open()?
            .batch(&role.rotation_statements.render(DIALECT, &vars)?)
            .map_err(|e| e.redact(&password))?;
        Ok(serde_json::json!({ "username": role.username, "password": password }))
    }
}

broker_plugin_sdk::register_plugin!(MySql);
