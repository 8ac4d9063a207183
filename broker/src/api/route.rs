//! Where a request path lands: the system's table for `sys/…`, the token
//! store's for `auth/token/…`, an auth method's for `auth/<mount>/…`, else
//! the
//! table of the engine of the longest mount that prefixes the path, and the
//! entry in that table. Nothing here looks at the caller.

use std::sync::Arc;

use super::{ApiError, system, token};
use crate::core::Core;
use crate::framework::{Access, Backend, Mount, PathInfo, Reply, Request, Route, Table};

/// The backend serving a request: the system's table, or a mount's engine.
pub(super) enum Target {
    System(&'static Table<Core>),
    Engine(Arc<dyn Backend>),
}

impl Target {
    /// The table serving `mount` (an engine's may depend on its options).
    pub(super) fn paths(&self, mount: &Mount) -> &[PathInfo] {
        match self {
            Self::System(table) => table.paths(),
            Self::Engine(backend) => backend.paths_for(&mount.options),
        }
    }

    pub(super) async fn exists(
        &self,
        core: &Core,
        index: usize,
        req: &Request,
    ) -> Result<Option<bool>, ApiError> {
        Ok(match self {
            Self::System(table) => table.exists(core, index, req).await?,
            Self::Engine(backend) => backend.exists(index, req).await?,
        })
    }

    pub(super) async fn call(
        &self,
        core: &Core,
        index: usize,
        req: &Request,
    ) -> Result<Reply, ApiError> {
        Ok(match self {
            Self::System(table) => table.call(core, index, req).await?,
            Self::Engine(backend) => backend.handle(index, req).await?,
        })
    }
}

/// Where a path landed: its mount, its backend, and its entry in the
/// backend's table (`None`: no path there, a 404 once authenticated).
pub(super) struct Found {
    pub(super) mount: Arc<Mount>,
    pub(super) target: Target,
    pub(super) route: Option<Route>,
}

impl Found {
    pub(super) fn info(&self) -> Option<&PathInfo> {
        self.route
            .as_ref()
            .and_then(|r| self.target.paths(&self.mount).get(r.index))
    }

    pub(super) fn access(&self) -> Access {
        self.info().map_or(Access::Token, |i| i.access)
    }
}

/// Finds the backend and path serving `path`; `None` when no mount does.
pub(super) async fn find(core: &Core, path: &str) -> Result<Option<Found>, ApiError> {
    if let Some(rest) = path
        .strip_prefix(system::MOUNT)
        .or((path == "sys").then_some(""))
    {
        let table = system::table()?;
        return Ok(Some(Found {
            mount: core.system_mount(),
            target: Target::System(table),
            route: table.find(rest),
        }));
    }
    if let Some(rest) = path
        .strip_prefix(token::MOUNT)
        .or((path == "auth/token").then_some(""))
    {
        let table = token::table()?;
        return Ok(Some(Found {
            mount: core.token_mount(),
            target: Target::System(table),
            route: table.find(rest),
        }));
    }
    if let Some(rest) = path.strip_prefix("auth/") {
        let Some(mount) = core.route_auth(rest).await else {
            return Ok(None);
        };
        let Some(backend) = core.auth_backends().get(&mount.kind).cloned() else {
            return Ok(None);
        };
        let rest = path.get(mount.path.len()..).unwrap_or_default();
        let route = crate::framework::find(backend.paths_for(&mount.options), rest);
        return Ok(Some(Found {
            mount,
            target: Target::Engine(backend),
            route,
        }));
    }
    let Some(mount) = core.route_mount(path).await else {
        return Ok(None);
    };
    let rest = path.get(mount.path.len()..).unwrap_or_default();
    // A mount whose type this broker no longer offers serves nothing.
    let Some(backend) = core.backends().get(&mount.kind).cloned() else {
        return Ok(None);
    };
    let route = crate::framework::find(backend.paths_for(&mount.options), rest);
    Ok(Some(Found {
        mount,
        target: Target::Engine(backend),
        route,
    }))
}
