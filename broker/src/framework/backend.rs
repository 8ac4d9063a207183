//! The [`Backend`] trait every mount type implements, and the [`Registry`]
//! from mount type to backend: the core finds engines here, never by name.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Access, Error, Mount, MountOptions, PathInfo, PatternError, Reply, Request, Table};
use crate::lease::{Leases, ResolvedConnection};
use crate::plugin::Catalog;

/// What a backend is built with: the host's shared services.
#[derive(Debug, Clone)]
pub struct Services {
    /// The plugin catalog (and its connection pools).
    pub catalog: Arc<Catalog>,
    /// The lease store, for issuing under a lease.
    pub leases: Arc<Leases>,
    /// The token store, for auth methods' logins.
    pub tokens: Arc<crate::token::TokenStore>,
    /// When auth methods lock an identity out.
    pub lockout: crate::auth::lockout::LockoutSettings,
    /// The password policies, for engines that generate passwords.
    pub password_policies: crate::policy::PasswordPolicies,
    /// The HSM token CA keys may be generated in (`pki/…/generate/kms`).
    pub hsm: Option<Arc<crate::hsm::HsmConnection>>,
}

/// A mount type: its paths, as a table, and what the lease worker asks of
/// it. One value serves every mount of its type; the [`Mount`] in each
/// request says which.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// One line for `sys/mounts` listings and errors.
    fn description(&self) -> &'static str;

    /// The paths, as data (routing, 405s, help, OpenAPI, audit, access),
    /// of a mount enabled without options.
    fn paths(&self) -> &[PathInfo];

    /// The paths a mount enabled with `options` serves. Most backends serve
    /// one table whatever the options; `kv` serves version 1's or version
    /// 2's. [`Self::exists`] and [`Self::handle`] take their `index` in this
    /// table, for the request's mount.
    fn paths_for(&self, options: &MountOptions) -> &[PathInfo] {
        let _ = options;
        self.paths()
    }

    /// Every table [`Self::paths_for`] may answer, for checks made once
    /// when the registry is built.
    fn tables(&self) -> Vec<&[PathInfo]> {
        vec![self.paths()]
    }

    /// Checks the options a new mount of this type is enabled with
    /// (`sys/mounts`'s `options`) and returns them as the mount keeps them.
    /// The default keeps them as given: Vault ignores options an engine does
    /// not read.
    fn mount_options(&self, options: MountOptions) -> Result<MountOptions, Error> {
        Ok(options)
    }

    /// Whether the object a write to path `index` names exists (`None`:
    /// the path does not tell creates from updates).
    async fn exists(&self, index: usize, request: &Request) -> Result<Option<bool>, Error>;

    /// Serves `request` with path `index`'s handler.
    async fn handle(&self, index: usize, request: &Request) -> Result<Reply, Error>;

    /// The connection named `name` as `mount` holds it now, for revoking a
    /// lease made through it (a rotated admin password, a renewed CA).
    /// `None`: gone, or the backend makes no leases.
    async fn connection(&self, mount: &Mount, name: &str) -> Option<ResolvedConnection> {
        let _ = (mount, name);
        None
    }

    /// `mount` is being disabled (its leases are already revoked): drop
    /// what is held in memory for it. Its storage is deleted by the core.
    async fn unmounted(&self, mount: &Mount) {
        let _ = mount;
    }

    /// Work due on `mount` at `now` (Unix seconds), run by the core every
    /// worker interval (Vault's periodic function): scheduled rotations,
    /// settling rotations a crash left half-done. Must not take long for
    /// a mount with nothing due, and reports its own failures.
    async fn periodic(&self, mount: &Mount, now: i64) {
        let _ = (mount, now);
    }
}

/// A backend whose paths are a [`Table`] of its own handlers: what an
/// engine implements; [`Backend`] comes with it.
#[async_trait::async_trait]
pub trait TableBackend: Send + Sync + Sized + 'static {
    /// One line for listings and errors.
    fn description(&self) -> &'static str;

    /// The table, built once with the backend.
    fn table(&self) -> &Table<Self>;

    /// As [`Backend::connection`].
    async fn connection(&self, mount: &Mount, name: &str) -> Option<ResolvedConnection> {
        let _ = (mount, name);
        None
    }

    /// As [`Backend::unmounted`].
    async fn unmounted(&self, mount: &Mount) {
        let _ = mount;
    }

    /// As [`Backend::periodic`].
    async fn periodic(&self, mount: &Mount, now: i64) {
        let _ = (mount, now);
    }
}

#[async_trait::async_trait]
impl<T: TableBackend> Backend for T {
    fn description(&self) -> &'static str {
        TableBackend::description(self)
    }

    fn paths(&self) -> &[PathInfo] {
        self.table().paths()
    }

    async fn exists(&self, index: usize, request: &Request) -> Result<Option<bool>, Error> {
        self.table().exists(self, index, request).await
    }

    async fn handle(&self, index: usize, request: &Request) -> Result<Reply, Error> {
        self.table().call(self, index, request).await
    }

    async fn connection(&self, mount: &Mount, name: &str) -> Option<ResolvedConnection> {
        TableBackend::connection(self, mount, name).await
    }

    async fn unmounted(&self, mount: &Mount) {
        TableBackend::unmounted(self, mount).await;
    }

    async fn periodic(&self, mount: &Mount, now: i64) {
        TableBackend::periodic(self, mount, now).await;
    }
}

/// Builds a backend from the host's services.
pub type BackendFactory = fn(&Services) -> Result<Arc<dyn Backend>, PatternError>;

/// `Open` skips the token, the audit log and the seal check: only the
/// system's health paths may be that, never a mounted engine's.
fn no_open_paths(paths: &[PathInfo]) -> Result<(), PatternError> {
    match paths.iter().find(|p| p.access == Access::Open) {
        Some(open) => Err(PatternError::new(
            open.pattern.as_str(),
            "Access::Open is the system backend's alone; an engine's public path is Access::Public",
        )),
        None => Ok(()),
    }
}

/// The mount types this broker offers, each with its backend.
pub struct Registry {
    backends: BTreeMap<&'static str, Arc<dyn Backend>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.backends.keys()).finish()
    }
}

impl Registry {
    /// Builds each backend of `factories` (mount type, constructor).
    pub fn new(
        services: &Services,
        factories: &[(&'static str, BackendFactory)],
    ) -> Result<Self, PatternError> {
        let mut backends = BTreeMap::new();
        for (kind, factory) in factories {
            let backend = factory(services)?;
            for table in backend.tables() {
                no_open_paths(table)?;
            }
            backends.insert(*kind, backend);
        }
        Ok(Self { backends })
    }

    /// The backend of mount type `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Backend>> {
        self.backends.get(kind)
    }

    /// The mount types, sorted.
    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.backends.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::{Path, data};

    struct Engine;

    impl Engine {
        async fn ping(&self, _req: &Request) -> Result<Reply, Error> {
            Ok(data(serde_json::json!({})))
        }
    }

    fn table(access: Access) -> Table<Engine> {
        Table::new(vec![
            Path::<Engine>::new("ping")
                .access(access)
                .read(|e, r| Box::pin(e.ping(r))),
        ])
        .unwrap()
    }

    #[test]
    fn an_engine_cannot_skip_the_audit_log() {
        assert!(no_open_paths(table(Access::Open).paths()).is_err());
        for access in [Access::Public, Access::Token, Access::Sudo] {
            assert!(no_open_paths(table(access).paths()).is_ok());
        }
    }
}
