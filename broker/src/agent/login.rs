//! Auto-auth: the agent's logins, and renewing the token they give.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Map, Value};
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::config::AutoAuth;
use super::{AgentError, two_thirds};
use crate::client::Client;

/// The token the agent holds.
pub(super) struct Login {
    pub(super) token: Zeroizing<String>,
    /// Its TTL as given at login (or last renewal), seconds; 0: none.
    ttl: u64,
    renewable: bool,
    /// When to renew next; `None` for a token that does not expire.
    pub(super) due: Option<Instant>,
    /// Whether the agent made it by logging in (revoked at a clean stop),
    /// rather than being given it (`token_file`: someone else's to end).
    pub(super) own: bool,
}

fn read_file(path: &std::path::Path, what: &str) -> Result<Zeroizing<String>, AgentError> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        AgentError::Login(format!(
            "cannot read the {what} file {}: {e}",
            path.display()
        ))
    })?);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(AgentError::Login(format!(
            "the {what} file {} is empty",
            path.display()
        )));
    }
    Ok(Zeroizing::new(trimmed.to_owned()))
}

/// Logs in as `auth` says. An AppRole secret id is read from its file
/// (then removed, unless told otherwise) and kept in `secret_id` for later
/// logins, since the file is gone; a new file replaces it.
pub(super) async fn login(
    client: &Client,
    auth: &AutoAuth,
    secret_id: &mut Option<Zeroizing<String>>,
) -> Result<Login, AgentError> {
    let (mount, fields) = match auth {
        AutoAuth::TokenFile { path } => {
            let token = read_file(path, "token")?;
            let answer = client
                .with_token(token.clone())
                .request(Method::GET, "auth/token/lookup-self", None)
                .await?
                .unwrap_or(Value::Null);
            let ttl = answer["data"]["ttl"].as_u64().unwrap_or(0);
            return Ok(Login {
                token,
                ttl,
                renewable: answer["data"]["renewable"] == true,
                due: (ttl > 0).then(|| two_thirds(ttl)),
                own: false,
            });
        }
        AutoAuth::Approle {
            mount_path,
            role_id_file,
            secret_id_file,
            remove_secret_id_file_after_reading,
        } => {
            let role_id = read_file(role_id_file, "role id")?;
            if secret_id_file.exists() {
                *secret_id = Some(read_file(secret_id_file, "secret id")?);
                if *remove_secret_id_file_after_reading {
                    std::fs::remove_file(secret_id_file).map_err(|e| {
                        AgentError::Login(format!(
                            "cannot remove the secret id file {}: {e}",
                            secret_id_file.display()
                        ))
                    })?;
                }
            }
            let secret = secret_id.clone().ok_or_else(|| {
                AgentError::Login(format!(
                    "no secret id: {} is gone (it is removed once read) and none is held",
                    secret_id_file.display()
                ))
            })?;
            let mut fields = Map::new();
            fields.insert("role_id".into(), Value::String(role_id.to_string()));
            fields.insert("secret_id".into(), Value::String(secret.to_string()));
            (
                mount_path.clone().unwrap_or_else(|| "approle".into()),
                fields,
            )
        }
        AutoAuth::Cert {
            mount_path, name, ..
        } => {
            // The certificate goes in the TLS handshake (the base client
            // presents it); the body names the entry, if any.
            let mut fields = Map::new();
            if let Some(name) = name {
                fields.insert("name".into(), Value::String(name.clone()));
            }
            (mount_path.clone().unwrap_or_else(|| "cert".into()), fields)
        }
        AutoAuth::Jwt {
            mount_path,
            role,
            path,
        } => {
            // Read at every login: the platform rotates the file.
            let jwt = read_file(path, "JWT")?;
            let mut fields = Map::new();
            fields.insert("role".into(), Value::String(role.clone()));
            fields.insert("jwt".into(), Value::String(jwt.to_string()));
            (mount_path.clone().unwrap_or_else(|| "jwt".into()), fields)
        }
    };
    let answer = client
        .request(
            Method::POST,
            &format!("auth/{}/login", mount.trim_matches('/')),
            Some(&fields),
        )
        .await?
        .unwrap_or(Value::Null);
    let auth = &answer["auth"];
    let token = auth["client_token"]
        .as_str()
        .map(|t| Zeroizing::new(t.to_owned()))
        .ok_or_else(|| AgentError::Login("the login answered no token".into()))?;
    let ttl = auth["lease_duration"].as_u64().unwrap_or(0);
    tracing::info!(mount = %mount, ttl, "the agent logged in");
    Ok(Login {
        token,
        ttl,
        renewable: auth["renewable"] == true,
        due: (ttl > 0).then(|| two_thirds(ttl)),
        own: true,
    })
}

impl Login {
    /// Renews the token for its whole TTL again; when the next renewal is
    /// due, or `None` when it cannot be renewed far enough (its max TTL is
    /// near: time to log in again).
    pub(super) async fn renew(&mut self, base: &Client) -> Option<Instant> {
        if !self.renewable || self.ttl == 0 {
            return None;
        }
        let mut body = Map::new();
        body.insert("increment".into(), Value::from(self.ttl));
        let answer = base
            .with_token(self.token.clone())
            .request(Method::POST, "auth/token/renew-self", Some(&body))
            .await
            .ok()
            .flatten()?;
        let got = answer["auth"]["lease_duration"].as_u64().unwrap_or(0);
        // Less than a third of its TTL left after renewing: its max TTL is
        // near; a new login now leaves time to read everything again.
        if got * 3 < self.ttl {
            return None;
        }
        tracing::info!(renewed_for = got, "renewed the agent's token");
        Some(Instant::now() + Duration::from_secs((got * 2 / 3).max(1)))
    }
}
