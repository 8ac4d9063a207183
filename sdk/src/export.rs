//! The glue between the generated WIT bindings and [`Plugin`]: parses JSON
//! into the plugin's types and maps errors. Plugin authors never see it.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;

use crate::Error;
use crate::plugin::{Capability, Connection, IssueRequest, Plugin};

#[allow(
    missing_docs,
    unsafe_code,
    missing_debug_implementations,
    clippy::too_many_arguments
)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "credential-plugin",
        path: "../wit/since_v0.2.0",
        pub_export_macro: true,
        default_bindings_module: "broker_plugin_sdk::__private::bindings",
    });
}

use bindings::broker::plugin::types as wit;

/// Implements the generated `Guest` trait for any [`Plugin`].
#[derive(Debug)]
pub struct Export<P>(PhantomData<P>);

fn parse<T: DeserializeOwned>(
    json: &str,
    what: &str,
    err: fn(String) -> Error,
) -> Result<T, Error> {
    serde_json::from_str(json).map_err(|e| err(format!("{what}: {e}")))
}

fn connection<P: Plugin>(c: wit::Connection) -> Result<Connection<P::Config>, Error> {
    let config = parse(&c.config, "connection config", Error::InvalidConfig)?;
    Ok(Connection {
        name: c.name,
        config,
    })
}

/// The role's JSON without the broker's password and its verifier, and
/// those two: they are the host's, not role fields, so the plugin's role
/// type never sees them (and may deny unknown fields).
type HostPassword = (serde_json::Value, Option<String>, Option<String>);

fn role_and_password(json: &str) -> Result<HostPassword, Error> {
    let mut role: serde_json::Value = parse(json, "role", Error::InvalidRequest)?;
    let mut take = |key: &str| match role.as_object_mut().and_then(|f| f.remove(key)) {
        None => Ok(None),
        Some(serde_json::Value::String(value)) => Ok(Some(value)),
        Some(_) => Err(Error::InvalidRequest(format!(
            "the broker's {key} is not a string"
        ))),
    };
    let password = take(crate::password::HOST_PASSWORD_KEY)?;
    let verifier = take(crate::password::HOST_VERIFIER_KEY)?;
    Ok((role, password, verifier))
}

impl From<Error> for wit::PluginError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidConfig(m) => Self::InvalidConfig(m),
            Error::InvalidRequest(m) => Self::InvalidRequest(m),
            Error::Unavailable(m) => Self::Unavailable(m),
            Error::Internal(m) => Self::Internal(m),
        }
    }
}

type WitResult<T> = Result<T, wit::PluginError>;

impl<P: Plugin> bindings::Guest for Export<P> {
    fn describe() -> wit::PluginInfo {
        let info = P::info();
        // Capabilities are granted by what the component imports; the info
        // names only the SQL dialect a database plugin speaks.
        let sql_dialect = info.capabilities.iter().find_map(|c| match c {
            Capability::SqlPostgres => Some(wit::SqlDialect::Postgres),
            Capability::SqlMysql => Some(wit::SqlDialect::Mysql),
            _ => None,
        });
        wit::PluginInfo {
            name: info.name,
            aliases: info.aliases,
            version: info.version,
            sql_dialect,
            connection_schema: info.connection_schema,
            role_schema: info.role_schema,
        }
    }

    fn verify_connection(c: wit::Connection) -> WitResult<()> {
        Ok(P::verify_connection(&connection::<P>(c)?)?)
    }

    fn issue(c: wit::Connection, request: wit::IssueRequest) -> WitResult<wit::Credential> {
        let connection = connection::<P>(c)?;
        let (role, password, password_verifier) = role_and_password(&request.role)?;
        let request = IssueRequest {
            role: serde_json::from_value(role)
                .map_err(|e| Error::InvalidRequest(format!("role: {e}")))?,
            password,
            password_verifier,
            role_name: request.role_name,
            display_name: request.display_name,
            expires_at: request.expires_at,
            parameters: parse(
                &request.parameters,
                "request parameters",
                Error::InvalidRequest,
            )?,
        };
        let prepared = P::prepare(&connection, &request)?;
        let revocation = serde_json::to_string(&prepared.revocation).map_err(Error::internal)?;
        // Durable before anything exists outside the sandbox: a crash from
        // here on leaves the broker what it needs to revoke.
        bindings::broker::plugin::lease::record_revocation(&revocation).map_err(|e| {
            Error::unavailable(format!("the broker could not record the lease: {e}"))
        })?;
        P::create(&connection, &request, &prepared)?;
        Ok(wit::Credential {
            data: serde_json::Value::Object(prepared.data).to_string(),
            revocation,
        })
    }

    fn renew(c: wit::Connection, revocation: String, expires_at: u64) -> WitResult<()> {
        let revocation = parse(&revocation, "revocation data", Error::Internal)?;
        Ok(P::renew(&connection::<P>(c)?, revocation, expires_at)?)
    }

    fn revoke(c: wit::Connection, revocation: String) -> WitResult<()> {
        let revocation = parse(&revocation, "revocation data", Error::Internal)?;
        Ok(P::revoke(&connection::<P>(c)?, revocation)?)
    }

    fn rotate_root(c: wit::Connection) -> WitResult<String> {
        Ok(P::rotate_root(&connection::<P>(c)?)?.to_string())
    }

    fn rotate_static(c: wit::Connection, role: String) -> WitResult<String> {
        let role = parse(&role, "static role", Error::InvalidRequest)?;
        Ok(P::rotate_static(&connection::<P>(c)?, role)?.to_string())
    }
}
