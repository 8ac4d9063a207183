//! Contract `broker:plugin@0.1.0` (`wit/since_v0.1.0`): the first release.
//! A plugin declares its capabilities in `describe`.

use super::Described;
use crate::plugin::HostCapability;

wasmtime::component::bindgen!({
    world: "credential-plugin",
    path: "../wit/since_v0.1.0",
    imports: {
        "broker:plugin/sql": async | trappable,
        "broker:plugin/lease": async | trappable,
        "broker:plugin/signer": async | trappable,
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
        declared: info
            .capabilities
            .iter()
            .map(|c| match c {
                wit::Capability::SqlPostgres => HostCapability::SqlPostgres,
                wit::Capability::SqlMysql => HostCapability::SqlMysql,
                wit::Capability::Signer => HostCapability::Signer,
            })
            .collect(),
        connection_schema: info.connection_schema,
        role_schema: info.role_schema,
    })
}
