//! The released contract versions the broker links, Zed-style: the host
//! implements each capability once, in its own types ([`super::host`]);
//! each version here is a thin adapter between that version's generated
//! bindings and those types, for imports and exports alike. A released
//! version's WIT (`wit/since_vX.Y.Z`) never changes, so a plugin built
//! against it keeps loading and working unchanged.
//!
//! Adding a version: copy the newest WIT folder, change it, add a module
//! here with its `bindgen!`, reuse the shared adapters for the interfaces
//! it did not change ([`shared_imports!`], [`shared_exports!`]) and write
//! the rest by hand; then add it to [`Pre`] and [`SUPPORTED`].

use wasmtime::Store;
use wasmtime::component::{Component, InstancePre, Linker};

use super::state::CallState;
use super::{FailureKind, HostCapability, PluginError};

pub(crate) mod v0_1_0;
pub(crate) mod v0_2_0;

/// The contract versions this broker links, oldest first.
pub const SUPPORTED: &[&str] = &["0.1.0", "0.2.0"];

/// A plugin's own verdict, in the host's types.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) kind: FailureKind,
    pub(crate) message: String,
}

impl From<Failure> for PluginError {
    fn from(f: Failure) -> Self {
        PluginError::Failed {
            kind: f.kind,
            message: super::error::bounded(f.message),
        }
    }
}

/// What `describe` answered, in the host's types.
#[derive(Debug, Clone)]
pub(crate) struct Described {
    pub(crate) name: String,
    pub(crate) aliases: Vec<String>,
    pub(crate) version: String,
    /// v0.1.0 declares its capabilities; from v0.2.0 on they follow from
    /// the component's imports and this is only the SQL dialect, if any.
    pub(crate) declared: Vec<HostCapability>,
    pub(crate) connection_schema: String,
    pub(crate) role_schema: String,
}

/// A connection config as it crosses into the guest.
#[derive(Debug, Clone)]
pub(crate) struct WireConnection {
    pub(crate) name: String,
    pub(crate) config: String,
}

/// An issue request as it crosses into the guest.
#[derive(Debug, Clone)]
pub(crate) struct WireIssueRequest {
    pub(crate) role_name: String,
    pub(crate) role: String,
    pub(crate) display_name: String,
    pub(crate) expires_at: u64,
    pub(crate) parameters: String,
}

/// A credential as it comes back, JSON still unparsed.
#[derive(Debug, Clone)]
pub(crate) struct WireCredential {
    pub(crate) data: String,
    pub(crate) revocation: String,
}

pub(crate) type CallResult<T> = wasmtime::Result<Result<T, Failure>>;

/// Links every supported version's imports (and WASI) into `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    type Data = wasmtime::component::HasSelf<CallState>;
    v0_1_0::CredentialPlugin::add_to_linker::<CallState, Data>(linker, |s| s)?;
    v0_2_0::CredentialPlugin::add_to_linker::<CallState, Data>(linker, |s| s)?;
    Ok(())
}

/// The contract version a component was built against, from its imports.
pub(crate) fn version_of(
    engine: &wasmtime::Engine,
    component: &Component,
) -> Result<&'static str, PluginError> {
    let mut versions: Vec<String> = component
        .component_type()
        .imports(engine)
        .filter_map(|(name, _)| name.strip_prefix("broker:plugin/"))
        .filter_map(|rest| rest.split_once('@').map(|(_, v)| v.to_owned()))
        .collect();
    versions.sort();
    versions.dedup();
    match versions.as_slice() {
        // A plugin that imports nothing of the contract (not even its
        // types): its exports decide, newest first (see `Pre::matching`).
        [] => Ok(""),
        [v] => SUPPORTED.iter().copied().find(|s| s == v).ok_or_else(|| {
            PluginError::Load(format!(
                "plugin was built against contract broker:plugin@{v}; this broker speaks {}",
                SUPPORTED.join(", ")
            ))
        }),
        many => Err(PluginError::Load(format!(
            "plugin imports several contract versions: {}",
            many.join(", ")
        ))),
    }
}

/// The capability interfaces a component imports (v0.2.0 on, where
/// imports are the grant).
pub(crate) fn imported(engine: &wasmtime::Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .filter_map(|(name, _)| name.strip_prefix("broker:plugin/"))
        .filter_map(|rest| rest.split_once('@').map(|(i, _)| i.to_owned()))
        .collect()
}

/// A linked component of one version, ready to instantiate.
pub(crate) enum Pre {
    V0_1_0(v0_1_0::CredentialPluginPre<CallState>),
    V0_2_0(v0_2_0::CredentialPluginPre<CallState>),
}

/// One call's instance.
pub(crate) enum Instance {
    V0_1_0(v0_1_0::CredentialPlugin),
    V0_2_0(v0_2_0::CredentialPlugin),
}

impl Pre {
    pub(crate) fn new(version: &str, pre: InstancePre<CallState>) -> Result<Self, PluginError> {
        let not_world = |e: wasmtime::Error| {
            PluginError::Load(format!(
                "plugin does not export the credential-plugin world: {e:#}"
            ))
        };
        Ok(match version {
            "0.1.0" => Self::V0_1_0(v0_1_0::CredentialPluginPre::new(pre).map_err(not_world)?),
            _ => Self::V0_2_0(v0_2_0::CredentialPluginPre::new(pre).map_err(not_world)?),
        })
    }

    /// The newest version whose world `pre`'s exports match, with that
    /// version: for a component whose imports name none.
    pub(crate) fn matching(
        pre: InstancePre<CallState>,
    ) -> Result<(&'static str, Self), PluginError> {
        for version in SUPPORTED.iter().rev() {
            if let Ok(linked) = Self::new(version, pre.clone()) {
                return Ok((version, linked));
            }
        }
        Err(PluginError::Load(
            "plugin does not export the credential-plugin world of any contract this broker speaks"
                .into(),
        ))
    }

    pub(crate) async fn instantiate(
        &self,
        store: &mut Store<CallState>,
    ) -> wasmtime::Result<Instance> {
        Ok(match self {
            Self::V0_1_0(p) => Instance::V0_1_0(p.instantiate_async(store).await?),
            Self::V0_2_0(p) => Instance::V0_2_0(p.instantiate_async(store).await?),
        })
    }
}

/// Dispatches an export to the instance's version.
macro_rules! dispatch {
    ($self:ident, $f:ident ( $($arg:expr),* )) => {
        match $self {
            Instance::V0_1_0(b) => v0_1_0::$f(b, $($arg),*).await,
            Instance::V0_2_0(b) => v0_2_0::$f(b, $($arg),*).await,
        }
    };
}

impl Instance {
    pub(crate) async fn describe(&self, s: &mut Store<CallState>) -> wasmtime::Result<Described> {
        dispatch!(self, describe(s))
    }

    pub(crate) async fn verify_connection(
        &self,
        s: &mut Store<CallState>,
        c: &WireConnection,
    ) -> CallResult<()> {
        dispatch!(self, verify_connection(s, c))
    }

    pub(crate) async fn issue(
        &self,
        s: &mut Store<CallState>,
        c: &WireConnection,
        r: &WireIssueRequest,
    ) -> CallResult<WireCredential> {
        dispatch!(self, issue(s, c, r))
    }

    pub(crate) async fn renew(
        &self,
        s: &mut Store<CallState>,
        c: &WireConnection,
        revocation: &str,
        expires_at: u64,
    ) -> CallResult<()> {
        dispatch!(self, renew(s, c, revocation, expires_at))
    }

    pub(crate) async fn revoke(
        &self,
        s: &mut Store<CallState>,
        c: &WireConnection,
        revocation: &str,
    ) -> CallResult<()> {
        dispatch!(self, revoke(s, c, revocation))
    }

    pub(crate) async fn rotate_root(
        &self,
        s: &mut Store<CallState>,
        c: &WireConnection,
    ) -> CallResult<String> {
        dispatch!(self, rotate_root(s, c))
    }

    pub(crate) async fn rotate_static(
        &self,
        s: &mut Store<CallState>,
        c: &WireConnection,
        role: &str,
    ) -> CallResult<String> {
        dispatch!(self, rotate_static(s, c, role))
    }
}

/// The adapters for the interfaces v0.1.0 and v0.2.0 share unchanged
/// (`sql`, `signer`, `lease`, `random`, `clock`, `log`): expanded inside a
/// version's module, next to its `bindgen!`, they implement its generated
/// host traits by converting to and from the host's types.
macro_rules! shared_imports {
    () => {
        mod shared_imports {
            use wasmtime::component::Resource;

            use super::broker::plugin::{clock, lease, log, random, signer, sql, types};
            use crate::plugin::host::sql::SqlHandle;
            use crate::plugin::signer::{KeyType, SignerError};
            use crate::plugin::state::CallState;
            use crate::sql::{SqlError, SqlErrorKind, SqlValue};

            impl types::Host for CallState {}

            impl random::Host for CallState {
                fn bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
                    self.random_bytes(len)
                }
            }

            impl clock::Host for CallState {
                fn now(&mut self) -> wasmtime::Result<u64> {
                    Ok(self.clock_now())
                }
            }

            impl log::Host for CallState {
                fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
                    let level = match level {
                        log::Level::Trace => tracing::Level::TRACE,
                        log::Level::Debug => tracing::Level::DEBUG,
                        log::Level::Info => tracing::Level::INFO,
                        log::Level::Warn => tracing::Level::WARN,
                        log::Level::Error => tracing::Level::ERROR,
                    };
                    self.log_line(level, message);
                    Ok(())
                }
            }

            impl lease::Host for CallState {
                async fn record_revocation(
                    &mut self,
                    revocation: String,
                ) -> wasmtime::Result<Result<(), String>> {
                    Ok(self.lease_record_revocation(revocation).await)
                }
            }

            fn sql_error(e: SqlError) -> sql::SqlError {
                sql::SqlError {
                    kind: match e.kind {
                        SqlErrorKind::Unavailable | SqlErrorKind::Deadline => {
                            sql::SqlErrorKind::Unavailable
                        }
                        SqlErrorKind::Statement => sql::SqlErrorKind::Statement,
                        SqlErrorKind::Limit => sql::SqlErrorKind::Limit,
                        SqlErrorKind::Denied => sql::SqlErrorKind::Denied,
                    },
                    message: e.message,
                    code: e.code,
                }
            }

            fn sql_in(v: sql::Value) -> SqlValue {
                match v {
                    sql::Value::Null => SqlValue::Null,
                    sql::Value::Boolean(b) => SqlValue::Bool(b),
                    sql::Value::Int(i) => SqlValue::Int(i),
                    sql::Value::Float(f) => SqlValue::Float(f),
                    sql::Value::Text(s) => SqlValue::Text(s),
                    sql::Value::Bytes(b) => SqlValue::Bytes(b),
                }
            }

            fn sql_out(v: SqlValue) -> sql::Value {
                match v {
                    SqlValue::Null => sql::Value::Null,
                    SqlValue::Bool(b) => sql::Value::Boolean(b),
                    SqlValue::Int(i) => sql::Value::Int(i),
                    SqlValue::Float(f) => sql::Value::Float(f),
                    SqlValue::Text(s) => sql::Value::Text(s),
                    SqlValue::Bytes(b) => sql::Value::Bytes(b),
                }
            }

            impl sql::Host for CallState {
                async fn open(
                    &mut self,
                ) -> wasmtime::Result<Result<Resource<SqlHandle>, sql::SqlError>> {
                    Ok(self.sql_open().await?.map_err(sql_error))
                }
            }

            impl sql::HostConnection for CallState {
                async fn execute(
                    &mut self,
                    h: Resource<SqlHandle>,
                    statement: String,
                    params: Vec<sql::Value>,
                ) -> wasmtime::Result<Result<u64, sql::SqlError>> {
                    let params: Vec<SqlValue> = params.into_iter().map(sql_in).collect();
                    Ok(self
                        .sql_execute(&h, &statement, &params)
                        .await?
                        .map_err(sql_error))
                }

                async fn query(
                    &mut self,
                    h: Resource<SqlHandle>,
                    statement: String,
                    params: Vec<sql::Value>,
                ) -> wasmtime::Result<Result<sql::Rows, sql::SqlError>> {
                    let params: Vec<SqlValue> = params.into_iter().map(sql_in).collect();
                    Ok(self
                        .sql_query(&h, &statement, &params)
                        .await?
                        .map_err(sql_error)
                        .map(|rows| sql::Rows {
                            columns: rows.columns,
                            rows: rows
                                .rows
                                .into_iter()
                                .map(|r| r.into_iter().map(sql_out).collect())
                                .collect(),
                        }))
                }

                async fn batch(
                    &mut self,
                    h: Resource<SqlHandle>,
                    statements: Vec<String>,
                ) -> wasmtime::Result<Result<(), sql::SqlError>> {
                    Ok(self.sql_batch(&h, &statements).await?.map_err(sql_error))
                }

                async fn drop(&mut self, h: Resource<SqlHandle>) -> wasmtime::Result<()> {
                    self.sql_drop(h)
                }
            }

            fn key_in(k: signer::KeyType) -> KeyType {
                match k {
                    signer::KeyType::EcP256 => KeyType::EcP256,
                    signer::KeyType::EcP384 => KeyType::EcP384,
                    signer::KeyType::Rsa2048 => KeyType::Rsa2048,
                    signer::KeyType::Rsa3072 => KeyType::Rsa3072,
                    signer::KeyType::Rsa4096 => KeyType::Rsa4096,
                    signer::KeyType::Ed25519 => KeyType::Ed25519,
                }
            }

            fn key_out(k: KeyType) -> signer::KeyType {
                match k {
                    KeyType::EcP256 => signer::KeyType::EcP256,
                    KeyType::EcP384 => signer::KeyType::EcP384,
                    KeyType::Rsa2048 => signer::KeyType::Rsa2048,
                    KeyType::Rsa3072 => signer::KeyType::Rsa3072,
                    KeyType::Rsa4096 => signer::KeyType::Rsa4096,
                    KeyType::Ed25519 => signer::KeyType::Ed25519,
                }
            }

            fn signer_error(e: SignerError) -> signer::SignerError {
                match e {
                    SignerError::Denied(m) => signer::SignerError::Denied(m),
                    SignerError::Invalid(m) => signer::SignerError::Invalid(m),
                }
            }

            impl signer::Host for CallState {
                async fn generate_key(
                    &mut self,
                    key: signer::KeyType,
                ) -> wasmtime::Result<Result<signer::KeyPair, signer::SignerError>> {
                    Ok(self
                        .signer_generate_key(key_in(key))
                        .await
                        .map(|k| signer::KeyPair {
                            key_type: key_out(k.key_type),
                            private_key_pem: k.private_key_pem.to_string(),
                            public_key_raw: k.public_key_raw,
                            key_id: k.key_id,
                        })
                        .map_err(signer_error))
                }

                async fn issuer(
                    &mut self,
                ) -> wasmtime::Result<Result<signer::IssuerInfo, signer::SignerError>> {
                    Ok(self
                        .signer_issuer()
                        .map(|i| signer::IssuerInfo {
                            certificate_der: i.certificate_der,
                            subject: i
                                .subject
                                .into_iter()
                                .map(|(oid, value)| signer::NameAttribute { oid, value })
                                .collect(),
                            key_id: i.key_id,
                            key_type: key_out(i.key_type),
                            not_after: i.not_after,
                        })
                        .map_err(signer_error))
                }

                async fn sign_tbs_certificate(
                    &mut self,
                    tbs: Vec<u8>,
                ) -> wasmtime::Result<Result<Vec<u8>, signer::SignerError>> {
                    Ok(self.signer_sign_tbs(&tbs).await.map_err(signer_error))
                }

                async fn parse_csr(
                    &mut self,
                    pem: String,
                ) -> wasmtime::Result<Result<signer::CsrInfo, signer::SignerError>> {
                    Ok(self
                        .signer_parse_csr(&pem)
                        .map(|c| signer::CsrInfo {
                            key_type: key_out(c.key_type),
                            public_key_raw: c.public_key_raw,
                            key_id: c.key_id,
                            common_name: c.common_name,
                            dns_names: c.dns_names,
                            ip_addresses: c.ip_addresses,
                            uris: c.uris,
                        })
                        .map_err(signer_error))
                }

                async fn revoke_certificate(
                    &mut self,
                    serial: String,
                ) -> wasmtime::Result<Result<(), signer::SignerError>> {
                    Ok(self.signer_revoke(&serial).await.map_err(signer_error))
                }
            }
        }
    };
}
pub(crate) use shared_imports;

/// The export adapters both versions share (every export but `describe`,
/// whose record changed): expanded inside a version's module.
macro_rules! shared_exports {
    () => {
        use wasmtime::Store;

        use super::{CallResult, Failure, WireConnection, WireCredential, WireIssueRequest};
        use crate::plugin::FailureKind;
        use crate::plugin::state::CallState;

        use self::broker::plugin::types as wit;

        fn failure(e: wit::PluginError) -> Failure {
            let (kind, message) = match e {
                wit::PluginError::InvalidConfig(m) => (FailureKind::InvalidConfig, m),
                wit::PluginError::InvalidRequest(m) => (FailureKind::InvalidRequest, m),
                wit::PluginError::Unavailable(m) => (FailureKind::Unavailable, m),
                wit::PluginError::Internal(m) => (FailureKind::Internal, m),
            };
            Failure { kind, message }
        }

        fn connection(c: &WireConnection) -> wit::Connection {
            wit::Connection {
                name: c.name.clone(),
                config: c.config.clone(),
            }
        }

        pub(crate) async fn verify_connection(
            b: &CredentialPlugin,
            s: &mut Store<CallState>,
            c: &WireConnection,
        ) -> CallResult<()> {
            Ok(b.call_verify_connection(s, &connection(c))
                .await?
                .map_err(failure))
        }

        pub(crate) async fn issue(
            b: &CredentialPlugin,
            s: &mut Store<CallState>,
            c: &WireConnection,
            r: &WireIssueRequest,
        ) -> CallResult<WireCredential> {
            let request = wit::IssueRequest {
                role_name: r.role_name.clone(),
                role: r.role.clone(),
                display_name: r.display_name.clone(),
                expires_at: r.expires_at,
                parameters: r.parameters.clone(),
            };
            Ok(b.call_issue(s, &connection(c), &request)
                .await?
                .map(|c| WireCredential {
                    data: c.data,
                    revocation: c.revocation,
                })
                .map_err(failure))
        }

        pub(crate) async fn renew(
            b: &CredentialPlugin,
            s: &mut Store<CallState>,
            c: &WireConnection,
            revocation: &str,
            expires_at: u64,
        ) -> CallResult<()> {
            Ok(
                b.call_renew(s, &connection(c), &revocation.to_owned(), expires_at)
                    .await?
                    .map_err(failure),
            )
        }

        pub(crate) async fn revoke(
            b: &CredentialPlugin,
            s: &mut Store<CallState>,
            c: &WireConnection,
            revocation: &str,
        ) -> CallResult<()> {
            Ok(b.call_revoke(s, &connection(c), &revocation.to_owned())
                .await?
                .map_err(failure))
        }

        pub(crate) async fn rotate_root(
            b: &CredentialPlugin,
            s: &mut Store<CallState>,
            c: &WireConnection,
        ) -> CallResult<String> {
            Ok(b.call_rotate_root(s, &connection(c))
                .await?
                .map_err(failure))
        }

        pub(crate) async fn rotate_static(
            b: &CredentialPlugin,
            s: &mut Store<CallState>,
            c: &WireConnection,
            role: &str,
        ) -> CallResult<String> {
            Ok(b.call_rotate_static(s, &connection(c), &role.to_owned())
                .await?
                .map_err(failure))
        }
    };
}
pub(crate) use shared_exports;
