//! The built-in plugins, compiled to wasm32-wasip2 by the build script and
//! embedded in the binary, so the broker needs no other file to run.

/// A plugin shipped inside the broker.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinPlugin {
    /// The crate it was built from.
    pub crate_name: &'static str,
    /// The component's bytes.
    pub wasm: &'static [u8],
}

/// Every built-in plugin.
pub const BUILTIN: &[BuiltinPlugin] = &[
    BuiltinPlugin {
        crate_name: "broker-plugin-postgres",
        wasm: include_bytes!(concat!(
            env!("OUT_DIR"),
            "/plugins/broker_plugin_postgres.wasm"
        )),
    },
    BuiltinPlugin {
        crate_name: "broker-plugin-mysql",
        wasm: include_bytes!(concat!(
            env!("OUT_DIR"),
            "/plugins/broker_plugin_mysql.wasm"
        )),
    },
    BuiltinPlugin {
        crate_name: "broker-plugin-pki",
        wasm: include_bytes!(concat!(env!("OUT_DIR"), "/plugins/broker_plugin_pki.wasm")),
    },
    BuiltinPlugin {
        crate_name: "broker-plugin-redis",
        wasm: include_bytes!(concat!(
            env!("OUT_DIR"),
            "/plugins/broker_plugin_redis.wasm"
        )),
    },
    BuiltinPlugin {
        crate_name: "broker-plugin-rabbitmq",
        wasm: include_bytes!(concat!(
            env!("OUT_DIR"),
            "/plugins/broker_plugin_rabbitmq.wasm"
        )),
    },
];
