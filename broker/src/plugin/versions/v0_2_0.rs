//! Contract `broker:plugin@0.2.0` (`wit/since_v0.2.0`): adds the `redis`
//! and `http` capabilities, and grants capabilities by the component's
//! imports instead of a declaration (`describe` names only the SQL
//! dialect).

use super::Described;
use crate::egress::redis::RedisItem;
use crate::egress::{HttpError, HttpRequest, RedisError, RedisReply};
use crate::plugin::HostCapability;

wasmtime::component::bindgen!({
    world: "credential-plugin",
    path: "../wit/since_v0.2.0",
    imports: {
        "broker:plugin/sql": async | trappable,
        "broker:plugin/lease": async | trappable,
        "broker:plugin/signer": async | trappable,
        "broker:plugin/redis": async | trappable,
        "broker:plugin/http": async | trappable,
        default: trappable,
    },
    exports: { default: async },
    with: {
        "broker:plugin/sql.connection": crate::plugin::host::sql::SqlHandle,
    },
});

super::shared_imports!();
super::shared_exports!();

pub(crate) async fn describe(
    b: &CredentialPlugin,
    s: &mut Store<CallState>,
) -> wasmtime::Result<Described> {
    let info = b.call_describe(s).await?;
    Ok(Described {
        name: info.name,
        aliases: info.aliases,
        version: info.version,
        declared: match info.sql_dialect {
            Some(wit::SqlDialect::Postgres) => vec![HostCapability::SqlPostgres],
            Some(wit::SqlDialect::Mysql) => vec![HostCapability::SqlMysql],
            None => Vec::new(),
        },
        connection_schema: info.connection_schema,
        role_schema: info.role_schema,
    })
}

/// What a v0.2.0 component is granted: the interfaces it imports, `sql`
/// in the dialect its `describe` names.
pub(crate) fn granted(
    imports: &[String],
    described: &Described,
) -> Result<Vec<HostCapability>, String> {
    let mut granted = Vec::new();
    for import in imports {
        match import.as_str() {
            "sql" => match described.declared.first() {
                Some(dialect) => granted.push(*dialect),
                None => {
                    return Err(
                        "the plugin imports sql but its describe names no sql-dialect".into(),
                    );
                }
            },
            "redis" => granted.push(HostCapability::Redis),
            "http" => granted.push(HostCapability::Http),
            "signer" => granted.push(HostCapability::Signer),
            _ => {}
        }
    }
    Ok(granted)
}

mod redis_adapter {
    use super::broker::plugin::redis as wit;
    use super::{RedisError, RedisItem, RedisReply};
    use crate::plugin::state::CallState;

    fn item(i: RedisItem) -> wit::Item {
        match i {
            RedisItem::Nil => wit::Item::Nil,
            RedisItem::Integer(n) => wit::Item::Integer(n),
            RedisItem::Status(s) => wit::Item::Status(s),
            RedisItem::Bulk(b) => wit::Item::Bulk(b),
            RedisItem::Nested(s) => wit::Item::Nested(s),
        }
    }

    fn reply(r: RedisReply) -> wit::Reply {
        match r {
            RedisReply::Nil => wit::Reply::Nil,
            RedisReply::Integer(n) => wit::Reply::Integer(n),
            RedisReply::Status(s) => wit::Reply::Status(s),
            RedisReply::Bulk(b) => wit::Reply::Bulk(b),
            RedisReply::Array(items) => wit::Reply::Array(items.into_iter().map(item).collect()),
        }
    }

    fn error(e: RedisError) -> wit::RedisError {
        let (kind, message) = match e {
            RedisError::Unavailable(m) => (wit::RedisErrorKind::Unavailable, m),
            RedisError::Command(m) => (wit::RedisErrorKind::Command, m),
            RedisError::Limit(m) => (wit::RedisErrorKind::Limit, m),
            RedisError::Denied(m) => (wit::RedisErrorKind::Denied, m),
        };
        wit::RedisError { kind, message }
    }

    impl wit::Host for CallState {
        async fn command(
            &mut self,
            args: Vec<String>,
        ) -> wasmtime::Result<Result<wit::Reply, wit::RedisError>> {
            Ok(self.redis_command(args).await.map(reply).map_err(error))
        }
    }
}

mod http_adapter {
    use super::broker::plugin::http as wit;
    use super::{HttpError, HttpRequest};
    use crate::plugin::state::CallState;

    fn method(m: wit::Method) -> reqwest::Method {
        match m {
            wit::Method::Get => reqwest::Method::GET,
            wit::Method::Head => reqwest::Method::HEAD,
            wit::Method::Post => reqwest::Method::POST,
            wit::Method::Put => reqwest::Method::PUT,
            wit::Method::Patch => reqwest::Method::PATCH,
            wit::Method::Delete => reqwest::Method::DELETE,
        }
    }

    fn error(e: HttpError) -> wit::HttpError {
        match e {
            HttpError::Denied(m) => wit::HttpError::Denied(m),
            HttpError::Unavailable(m) => wit::HttpError::Unavailable(m),
            HttpError::Limit(m) => wit::HttpError::Limit(m),
            HttpError::Invalid(m) => wit::HttpError::Invalid(m),
        }
    }

    impl wit::Host for CallState {
        async fn send(
            &mut self,
            request: wit::Request,
        ) -> wasmtime::Result<Result<wit::Response, wit::HttpError>> {
            let request = HttpRequest {
                method: method(request.method),
                url: request.url,
                headers: request.headers,
                body: request.body,
            };
            Ok(self
                .http_send(request)
                .await
                .map(|r| wit::Response {
                    status: r.status,
                    headers: r.headers,
                    body: r.body,
                })
                .map_err(error))
        }
    }
}
