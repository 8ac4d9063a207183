//! Host bindings generated from the frozen WIT contract `wit/since_v0.1.0`.
//!
//! One module per released contract version; a plugin is linked with the
//! bindings of the version it was built against.

/// Bindings for `broker:plugin@0.1.0`.
pub mod v0_1_0 {
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
}
