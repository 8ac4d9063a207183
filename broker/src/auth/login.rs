//! What every auth method does once a login is proven: a token of the
//! store, an orphan bound to the role's `token_*` fields and to the mount,
//! in Vault's `auth` block.

use std::collections::BTreeMap;

use super::token_fields::TokenParams;
use crate::framework::{Error, Reply, Request, Services};

/// Issues the token a proven login on `req`'s mount gets.
pub async fn issue(
    services: &Services,
    req: &Request,
    params: &TokenParams,
    display_name: String,
    meta: BTreeMap<String, String>,
) -> Result<Reply, Error> {
    let now = crate::clock::unix_now_signed();
    let entry = params.entry(&req.mount, &req.path, display_name, meta, now);
    let (token, entry) = services.tokens.create(entry, None).await?;
    crate::metrics::metrics().login(req.mount.name());
    Ok(Reply::Auth {
        auth: entry.auth_block(&token, now),
    })
}
