//! The built-in PostgreSQL credential plugin.
//!
//! Written with the SDK exactly as a third party would write one. Each lease
//! gets a fresh `LOGIN` role made by the role's creation statements in one
//! transaction; renewal moves its `VALID UNTIL`; revocation runs the role's
//! revocation statements, or by default locks the role, ends its sessions,
//! hands what it owns to the admin and drops it. Everything revocation needs
//! travels in the lease's sealed revocation data, so deleting the role or
//! the connection config never leaves a user behind.
//!
//! Two calls never make the same role: `prepare` claims the new name with
//! an advisory lock on the connection `create` then uses, and only the
//! holder checks that no role has the name, records it for revocation and
//! creates it. A call refused the name has recorded nothing, so no
//! revocation of it (after its deadline, say) can drop another call's role.

use std::cell::RefCell;

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
    /// The admin password `rotate-root` sets, made by the host (which
    /// stores it as pending first); absent from older hosts.
    #[serde(default)]
    pub new_password: Option<String>,
    /// Its SCRAM verifier, when `password_authentication` asks for one.
    #[serde(default)]
    pub new_password_verifier: Option<String>,
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
    "password_authentication": {"enum": ["password", "scram-sha-256"]},
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

/// `username`'s variables with `{{password}}`: the SCRAM verifier the
/// broker computed when there is one (PostgreSQL stores it as is, and the
/// password never reaches the server or its logs), else the password.
fn password_vars(username: &str, password: &str, verifier: Option<&str>) -> Vars {
    match verifier {
        Some(v) => user_vars(username).scram_verifier("password", v),
        None => user_vars(username).literal("password", password),
    }
}

fn creation_statements(
    request: &IssueRequest<Role>,
    username: &str,
    password: &str,
) -> Result<Vec<String>> {
    let vars = password_vars(username, password, request.password_verifier.as_deref())
        .literal("expiration", &DIALECT.timestamp(request.expires_at));
    Ok(request.role.creation_statements.render(DIALECT, &vars)?)
}

/// This plugin's advisory locks take the two-key form under this class,
/// apart from the single-key locks other software takes.
const LOCK_CLASS: i64 = 0x6272_6B72;
/// How many times, 50 ms apart, a call tries to claim a name another call
/// holds: well inside the call's deadline, so a refused call ends with a
/// clear error, not by being stopped.
const CLAIM_TRIES: u32 = 60;

thread_local! {
    /// The connection holding this call's claim, from `prepare` to
    /// `create` (each call runs in a fresh instance: nothing outlives it).
    static CLAIMED: RefCell<Option<Database>> = const { RefCell::new(None) };
}

fn lock_params(username: &str) -> [Value; 2] {
    [
        Value::Int(LOCK_CLASS),
        Value::Text(format!("broker-role:{username}")),
    ]
}

/// Takes the name for this call, waiting a while for a call that holds it.
fn claim(db: &Database, username: &str) -> Result<()> {
    for _ in 0..CLAIM_TRIES {
        let got = db.query(
            "SELECT pg_try_advisory_lock($1::int4, hashtext($2))",
            &lock_params(username),
        )?;
        if matches!(
            got.rows.first().and_then(|r| r.first()),
            Some(Value::Boolean(true))
        ) {
            return Ok(());
        }
        db.query("SELECT pg_sleep(0.05)", &[])?;
    }
    Err(Error::unavailable(format!(
        "another request has been making a role named {username:?} for 3 s; \
         try again, or give the username template a {{{{random N}}}} part"
    )))
}

/// Gives the name up. The host discards or closes the session after the
/// call in any case (`DISCARD ALL` ends advisory locks), which ends it too.
fn release(db: &Database, username: &str) {
    if let Err(e) = db.query(
        "SELECT pg_advisory_unlock($1::int4, hashtext($2))",
        &lock_params(username),
    ) {
        broker_plugin_sdk::host::log(
            broker_plugin_sdk::host::Level::Warn,
            &format!("cannot release the claim on a new role's name: {e}"),
        );
    }
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
        let password = password::provided_or_generate(request.password.as_deref());
        // Render now, so a bad template fails before the lease is recorded.
        creation_statements(request, &username, &password)?;
        // Revocation will drop this name: it must not belong to someone
        // else, now or by the time `create` runs. The claim makes this call
        // the only one checking and creating it until it is done.
        let db = Database::open()?;
        claim(&db, &username)?;
        let taken = db.query(
            "SELECT 1 FROM pg_roles WHERE rolname = $1",
            &[Value::Text(username.clone())],
        );
        match taken {
            Ok(taken) if taken.rows.is_empty() => {}
            Ok(_) => {
                release(&db, &username);
                return Err(Error::request(format!(
                    "a role named {username:?} already exists; give the username template a {{{{random N}}}} part"
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
        let statements = creation_statements(request, &prepared.revocation.username, password)?;
        let db = match CLAIMED.with(|held| held.borrow_mut().take()) {
            Some(db) => db,
            None => Database::open()?,
        };
        // One transaction: a failure leaves nothing behind.
        let created = db.batch(&statements).map_err(|e| e.redact(password));
        release(&db, &prepared.revocation.username);
        created
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
        let password = connection
            .config
            .new_password
            .clone()
            .unwrap_or_else(|| password::generate(password::DEFAULT_LENGTH));
        let statements = if connection.config.root_rotation_statements.is_empty() {
            Statements(vec![
                "ALTER ROLE {{username}} WITH PASSWORD {{password}}".into(),
            ])
        } else {
            connection.config.root_rotation_statements.clone()
        };
        let vars = password_vars(
            username,
            &password,
            connection.config.new_password_verifier.as_deref(),
        );
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
            /// Made by the host, which stores it as pending first.
            #[serde(default)]
            password: Option<String>,
            /// Its SCRAM verifier, when the connection asks for one.
            #[serde(default)]
            password_verifier: Option<String>,
        }
        let role: StaticRole = serde_json::from_value(role).map_err(Error::request)?;
        let password = role
            .password
            .clone()
            .unwrap_or_else(|| password::generate(password::DEFAULT_LENGTH));
        let statements = if role.rotation_statements.is_empty() {
            Statements(vec![
                "ALTER ROLE {{name}} WITH PASSWORD {{password}}".into(),
            ])
        } else {
            role.rotation_statements
        };
        let vars = password_vars(&role.username, &password, role.password_verifier.as_deref());
        Database::open()?
            .batch(&statements.render(DIALECT, &vars)?)
            .map_err(|e| e.redact(&password))?;
        Ok(serde_json::json!({ "username": role.username, "password": password }))
    }
}

broker_plugin_sdk::register_plugin!(Postgres);
