//! The OpenAPI document served at `sys/internal/specs/openapi`, written
//! from the path tables ([`crate::framework::openapi`]): the system's
//! paths, then each mount's under the mount. The end-to-end tests call
//! every operation it lists and every one it does not, so it cannot drift
//! from the routes.

use std::sync::{Arc, Mutex};

use crate::core::Core;
use crate::framework::MountOptions;
use crate::framework::openapi::Writer;

/// What the document depends on: each mount's path, type and options (a
/// `kv` mount's version chooses its table), secrets engines' first, then
/// auth methods' (their paths begin `auth/`).
type Shape = Vec<(String, String, MountOptions)>;

/// The last document served, with the mount table shape it was made for:
/// clients fetch it often and mount tables change rarely.
static LAST: Mutex<Option<(Shape, Arc<Vec<u8>>)>> = Mutex::new(None);

/// The document for the current mount table, as JSON text, made again only
/// when the mount table's shape has changed.
pub(crate) async fn cached_document(core: &Core) -> Result<Arc<Vec<u8>>, String> {
    let mounts = core.mounts().await;
    let auth = core.auth_mounts().await;
    let shape: Shape = mounts
        .iter()
        .map(|(path, entry)| (path.clone(), entry.kind.clone(), entry.options.clone()))
        .chain(auth.iter().map(|(path, entry)| {
            (
                format!("auth/{path}"),
                entry.kind.clone(),
                entry.options.clone(),
            )
        }))
        .collect();
    if let Ok(last) = LAST.lock()
        && let Some((made_for, doc)) = &*last
        && *made_for == shape
    {
        return Ok(doc.clone());
    }
    let doc = Arc::new(document(core, &shape)?);
    if let Ok(mut last) = LAST.lock() {
        *last = Some((shape, doc.clone()));
    }
    Ok(doc)
}

/// The document for mounts of `shape`, as JSON text.
fn document(core: &Core, shape: &Shape) -> Result<Vec<u8>, String> {
    let mut writer = Writer::new();
    let system = super::system::table().map_err(|e| e.to_string())?;
    writer
        .add(super::system::MOUNT, "system", "system", system.paths())
        .map_err(|e| e.to_string())?;
    let token = super::token::table().map_err(|e| e.to_string())?;
    writer
        .add(super::token::MOUNT, "token", "auth", token.paths())
        .map_err(|e| e.to_string())?;
    for (path, kind, options) in shape {
        let (backend, tag) = if path.starts_with("auth/") {
            (core.auth_backends().get(kind), "auth")
        } else {
            (core.backends().get(kind), "secrets")
        };
        // A mount whose type this broker no longer offers serves nothing.
        let Some(backend) = backend else {
            continue;
        };
        writer
            .add(path, kind, tag, backend.paths_for(options))
            .map_err(|e| e.to_string())?;
    }
    writer.finish().map_err(|e| e.to_string())
}
