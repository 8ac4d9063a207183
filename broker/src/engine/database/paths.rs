//! The database engine's paths, as Vault's database secrets engine has
//! them: `config/{name}`, `roles/{name}`, `creds/{role}`,
//! `rotate-root/{name}`, `static-roles/{name}`, `static-creds/{name}`,
//! `rotate-role/{name}`.

use std::sync::Arc;

use serde_json::Value;

use super::DatabaseEngine;
use crate::framework::{
    Backend, Error, Field, Mount, Path, PatternError, Reply, Request, Services, Table,
    TableBackend, data, list, no_content, secret,
};

/// Paths of this backend's table.
type P = Path<DatabaseBackend>;
use crate::lease::ResolvedConnection;

/// The `database` mount type, and the `rabbitmq` one built on it.
#[derive(Debug)]
pub struct DatabaseBackend {
    services: Services,
    table: Table<Self>,
    flavor: Flavor,
}

/// Which of Vault's engines a mount answers as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Vault's database engine: configs name their plugin.
    Database,
    /// Vault's `rabbitmq` engine: one connection, `config/connection`,
    /// always the RabbitMQ plugin, and roles that need no `db_name`.
    RabbitMq,
}

/// Whether a read found its object: not found is `false`, not an error.
fn found<T>(read: Result<T, Error>) -> Result<bool, Error> {
    match read {
        Ok(_) => Ok(true),
        Err(Error::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Builds the backend: the registry's constructor for this mount type.
pub fn factory(services: &Services) -> Result<Arc<dyn Backend>, PatternError> {
    flavored(services, Flavor::Database)
}

/// Builds a backend answering as `flavor`.
pub fn flavored(services: &Services, flavor: Flavor) -> Result<Arc<dyn Backend>, PatternError> {
    Ok(Arc::new(DatabaseBackend {
        services: services.clone(),
        table: Table::new(paths(flavor))?,
        flavor,
    }))
}

impl DatabaseBackend {
    fn engine(&self, mount: &Mount) -> DatabaseEngine {
        DatabaseEngine::new(
            mount,
            self.services.catalog.clone(),
            self.services.password_policies.clone(),
        )
        .flavored(self.flavor)
    }

    /// Whether a write to `config/{name}` creates it (policies grant
    /// `create` and `update` apart).
    async fn config_exists(&self, req: &Request) -> Result<bool, Error> {
        found(self.engine(&req.mount).read_config(req.param("name")?).await)
    }

    /// Whether a write to `roles/{name}` creates it.
    async fn role_exists(&self, req: &Request) -> Result<bool, Error> {
        found(self.engine(&req.mount).read_role(req.param("name")?).await)
    }

    async fn list_configs(&self, req: &Request) -> Result<Reply, Error> {
        list(self.engine(&req.mount).list_configs().await?)
    }

    async fn read_config(&self, req: &Request) -> Result<Reply, Error> {
        Ok(data(
            self.engine(&req.mount)
                .read_config(req.param("name")?)
                .await?,
        ))
    }

    async fn write_config(&self, req: &Request) -> Result<Reply, Error> {
        self.engine(&req.mount)
            .write_config(req.param("name")?, req.data.clone())
            .await?;
        Ok(no_content())
    }

    async fn delete_config(&self, req: &Request) -> Result<Reply, Error> {
        self.engine(&req.mount)
            .delete_config(req.param("name")?)
            .await?;
        Ok(no_content())
    }

    async fn list_roles(&self, req: &Request) -> Result<Reply, Error> {
        list(self.engine(&req.mount).list_roles().await?)
    }

    async fn read_role(&self, req: &Request) -> Result<Reply, Error> {
        Ok(data(
            self.engine(&req.mount)
                .read_role(req.param("name")?)
                .await?,
        ))
    }

    async fn write_role(&self, req: &Request) -> Result<Reply, Error> {
        self.engine(&req.mount)
            .write_role(req.param("name")?, req.data.clone())
            .await?;
        Ok(no_content())
    }

    async fn delete_role(&self, req: &Request) -> Result<Reply, Error> {
        self.engine(&req.mount)
            .delete_role(req.param("name")?)
            .await?;
        Ok(no_content())
    }

    async fn creds(&self, req: &Request) -> Result<Reply, Error> {
        let (row, creds) = self
            .engine(&req.mount)
            .creds(
                &self.services.leases,
                req.param("role")?,
                &req.caller.lease_owner(),
            )
            .await?;
        Ok(secret(
            row.id.clone(),
            // The TTL granted, as Vault reports it (not what is left of it
            // a moment later).
            row.expires_at - row.issued_at,
            row.expires_at < row.max_expires_at,
            Value::Object(creds),
        ))
    }

    async fn static_role_exists(&self, req: &Request) -> Result<bool, Error> {
        self.engine(&req.mount)
            .static_role_exists(req.param("name")?)
            .await
    }

    async fn list_static_roles(&self, req: &Request) -> Result<Reply, Error> {
        list(self.engine(&req.mount).list_static_roles().await?)
    }

    async fn read_static_role(&self, req: &Request) -> Result<Reply, Error> {
        Ok(data(
            self.engine(&req.mount)
                .read_static_role(req.param("name")?)
                .await?,
        ))
    }

    async fn write_static_role(&self, req: &Request) -> Result<Reply, Error> {
        self.engine(&req.mount)
            .write_static_role(req.param("name")?, &req.data)
            .await?;
        Ok(no_content())
    }

    async fn delete_static_role(&self, req: &Request) -> Result<Reply, Error> {
        self.engine(&req.mount)
            .delete_static_role(req.param("name")?)
            .await?;
        Ok(no_content())
    }

    async fn static_creds(&self, req: &Request) -> Result<Reply, Error> {
        Ok(Reply::Envelope {
            lease_id: String::new(),
            lease_duration: 0,
            renewable: false,
            data: self
                .engine(&req.mount)
                .static_creds(req.param("name")?)
                .await?,
            credential: true,
        })
    }

    async fn rotate_role(&self, req: &Request) -> Result<Reply, Error> {
        self.engine(&req.mount)
            .rotate_static(req.param("name")?, crate::clock::unix_now_signed())
            .await?;
        Ok(no_content())
    }

    async fn read_lease_config(&self, req: &Request) -> Result<Reply, Error> {
        let config = self.engine(&req.mount).lease_config().await?;
        Ok(data(serde_json::json!({ "ttl": config.ttl, "max_ttl": config.max_ttl })))
    }

    async fn write_lease_config(&self, req: &Request) -> Result<Reply, Error> {
        self.engine(&req.mount).write_lease_config(&req.data).await?;
        Ok(no_content())
    }

    async fn rotate_root(&self, req: &Request) -> Result<Reply, Error> {
        self.engine(&req.mount)
            .rotate_root(req.param("name")?)
            .await?;
        Ok(no_content())
    }
}

fn paths(flavor: Flavor) -> Vec<Path<DatabaseBackend>> {
    let mut paths = Vec::new();
    if flavor == Flavor::RabbitMq {
        // Before `config/{name}`: on a rabbitmq mount it is not a connection.
        paths.push(
            P::new("config/lease")
                .summary("The TTLs of credentials whose role sets none (Vault's rabbitmq engine).")
                .field(Field::duration("ttl", "lease TTL (0: the mount's)").clear())
                .field(Field::duration("max_ttl", "max lease TTL (0: the mount's)").clear())
                .read(|b, r| Box::pin(b.read_lease_config(r)))
                .update(|b, r| Box::pin(b.write_lease_config(r))),
        );
    }
    paths.extend(common_paths());
    paths
}

fn common_paths() -> Vec<Path<DatabaseBackend>> {
    vec![
        P::new("config")
            .summary("List connection configs.")
            .list(|b, r| Box::pin(b.list_configs(r))),
        P::new("config/{name}")
            .summary("A connection config; its password is sealed and never returned.")
            .field(
                Field::string(
                    "plugin_name",
                    "postgresql-database-plugin, mysql-database-plugin, or an alias",
                )
                .clear(),
            )
            .field(
                Field::string(
                    "connection_url",
                    "with {{username}} and {{password}} placeholders",
                )
                .sensitive(),
            )
            .field(Field::string("username", "the admin user"))
            .field(Field::string("password", "the admin password (write only)").sensitive())
            .field(
                Field::comma_list(
                    "allowed_roles",
                    "roles that may use this connection; \"*\" for all",
                )
                .clear(),
            )
            .field(
                Field::bool("verify_connection", "connect before saving")
                    .default(true)
                    .clear(),
            )
            .field(Field::string(
                "username_template",
                "how generated usernames look",
            ))
            .field(
                Field::string(
                    "password_policy",
                    "the password policy new users' passwords are made from (sys/policies/password); empty: 24 letters and digits",
                )
                .clear(),
            )
            .field(
                Field::string(
                    "password_authentication",
                    "PostgreSQL: scram-sha-256 (the default for new configs) sends the server a SCRAM verifier, never the password; password sends the password",
                )
                .clear(),
            )
            .field(Field::string("host", "Redis: the server's host").clear())
            .field(Field::int("port", "Redis: the server's port (default 6379)").clear())
            .field(Field::bool("tls", "Redis: TLS (not supported yet: refused)").clear())
            .field(
                Field::string(
                    "ca_cert",
                    "HTTP services: PEM CA certificates that verify an https:// connection_url",
                )
                .clear(),
            )
            .field(
                Field::string(
                    "connection_uri",
                    "RabbitMQ: the management API's base URL (Vault's name for connection_url)",
                )
                .sensitive(),
            )
            .field(
                Field::int(
                    "max_open_connections",
                    "pool size, 0 to 1000 (0: the default, 4)",
                )
                .default(4)
                .clear(),
            )
            .field(Field::int("max_idle_connections", "accepted as Vault does, 0 to 1000").clear())
            .field(
                Field::duration(
                    "max_connection_lifetime",
                    "pooled connections older than this are closed (0: never; at most 30 days)",
                )
                .clear(),
            )
            .read(|b, r| Box::pin(b.read_config(r)))
            .exists(|b, r| Box::pin(b.config_exists(r)))
            .create(|b, r| Box::pin(b.write_config(r)))
            .update(|b, r| Box::pin(b.write_config(r)))
            .delete(|b, r| Box::pin(b.delete_config(r))),
        P::new("roles")
            .summary("List roles.")
            .list(|b, r| Box::pin(b.list_roles(r))),
        P::new("roles/{name}")
            .summary("A role: the statements that create and revoke its users, and its TTLs.")
            .field(
                Field::string(
                    "db_name",
                    "the connection config to use (rabbitmq mounts: connection)",
                )
                .clear(),
            )
            .field(Field::string("tags", "RabbitMQ: comma-separated user tags").clear())
            .field(
                Field::string(
                    "vhosts",
                    "RabbitMQ: JSON, {\"/\": {\"configure\": \".*\", \"write\": \".*\", \"read\": \".*\"}}",
                )
                .clear(),
            )
            .field(
                Field::string(
                    "vhost_topics",
                    "RabbitMQ: JSON, {\"/\": {\"amq.topic\": {\"write\": \".*\", \"read\": \".*\"}}}",
                )
                .clear(),
            )
            .field(Field::string_list(
                "creation_statements",
                "with {{name}}, {{password}}, {{expiration}}",
            ))
            .field(Field::string_list(
                "revocation_statements",
                "default: the plugin's safe revoke",
            ))
            .field(Field::string_list("renew_statements", "run on renew"))
            .field(Field::string_list(
                "rollback_statements",
                "run when creation fails half-way",
            ))
            .field(Field::duration("default_ttl", "lease TTL (0: the mount's)").clear())
            .field(Field::duration("max_ttl", "max lease TTL (0: the mount's)").clear())
            .read(|b, r| Box::pin(b.read_role(r)))
            .exists(|b, r| Box::pin(b.role_exists(r)))
            .create(|b, r| Box::pin(b.write_role(r)))
            .update(|b, r| Box::pin(b.write_role(r)))
            .delete(|b, r| Box::pin(b.delete_role(r))),
        P::new("creds/{role}")
            .summary("New credentials for a role, under a lease.")
            .read(|b, r| Box::pin(b.creds(r))),
        P::new("static-roles")
            .summary("List static roles.")
            .list(|b, r| Box::pin(b.list_static_roles(r))),
        P::new("static-roles/{name}")
            .summary("A static role: an existing database account whose password the broker owns and rotates.")
            .field(Field::string("db_name", "the connection config (fixed once written)").clear())
            .field(Field::string("username", "the database account (fixed once written)").clear())
            .field(Field::duration("rotation_period", "rotate this long after the last rotation (at least 5s)").clear())
            .field(Field::string("rotation_schedule", "or: a cron expression, minute hour day-of-month month day-of-week").clear())
            .field(Field::duration("rotation_window", "how long after a scheduled time it may still run (at least 1h; default: until the next)").clear())
            .field(Field::string_list("rotation_statements", "with {{name}} and {{password}}; default: the plugin's ALTER"))
            .field(Field::string("credential_type", "password (the only one)").clear())
            .field(Field::bool("skip_import_rotation", "do not rotate when the role is made").clear())
            .field(Field::bool("disable_automated_rotation", "rotate only through rotate-role").clear())
            .read(|b, r| Box::pin(b.read_static_role(r)))
            .exists(|b, r| Box::pin(b.static_role_exists(r)))
            .create(|b, r| Box::pin(b.write_static_role(r)))
            .update(|b, r| Box::pin(b.write_static_role(r)))
            .delete(|b, r| Box::pin(b.delete_static_role(r))),
        P::new("static-creds/{name}")
            .summary("A static role's username and current password, and the seconds until its next rotation.")
            .read(|b, r| Box::pin(b.static_creds(r))),
        P::new("rotate-role/{name}")
            .summary("Rotate a static role's password now.")
            .update(|b, r| Box::pin(b.rotate_role(r))),
        P::new("rotate-root/{name}")
            .summary(
                "Replace the admin password of a connection; only the broker knows the new one.",
            )
            .update(|b, r| Box::pin(b.rotate_root(r))),
    ]
}

#[async_trait::async_trait]
impl TableBackend for DatabaseBackend {
    fn description(&self) -> &'static str {
        "database users made and dropped by plugins, under leases"
    }

    fn table(&self) -> &Table<Self> {
        &self.table
    }

    async fn connection(&self, mount: &Mount, name: &str) -> Option<ResolvedConnection> {
        self.engine(mount).connection(name).await
    }

    async fn unmounted(&self, mount: &Mount) {
        self.engine(mount).forget_pools().await;
    }

    async fn periodic(&self, mount: &Mount, now: i64) {
        self.engine(mount).periodic(now).await;
    }
}
