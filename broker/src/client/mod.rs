//! A client of the broker's HTTP API (Vault's), for the `broker` command's
//! client side: where the server is (`BROKER_ADDR`, else `VAULT_ADDR`),
//! which token to send (`BROKER_TOKEN`, else `VAULT_TOKEN`, else the token
//! helper file), which CA to trust (`BROKER_CACERT`) and which client
//! certificate to present (`BROKER_CLIENT_CERT` and `BROKER_CLIENT_KEY`),
//! requests, and errors a person can act on.
//!
//! ```no_run
//! # async fn f() -> Result<(), broker::client::ClientError> {
//! let client = broker::client::Client::from_env()?;
//! let creds = client.read("database/creds/app").await?;
//! # Ok(()) }
//! ```
//!
//! It must never print, log or put in an error a token or a response's
//! data: errors name the address, the path and what was refused.

mod token_helper;

use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

pub use token_helper::TokenHelper;

/// Where a client goes when nothing says otherwise (Vault's default).
pub const DEFAULT_ADDR: &str = "https://127.0.0.1:8200";

/// Why a request did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered at the address.
    #[error(
        "cannot reach the broker at {addr} ({cause}); is it running? Set BROKER_ADDR (or VAULT_ADDR) to its address, e.g. http://127.0.0.1:8200"
    )]
    Unreachable {
        /// The address tried.
        addr: String,
        /// What the connection said.
        cause: String,
    },
    /// The broker is sealed.
    #[error("the broker at {addr} is sealed: {message}")]
    Sealed {
        /// The address.
        addr: String,
        /// What it says about unsealing.
        message: String,
    },
    /// No token was given anywhere.
    #[error("no token: log in with `broker login`, or set BROKER_TOKEN (or VAULT_TOKEN)")]
    NoToken,
    /// The token is not (or no longer) valid.
    #[error(
        "the token was refused: it is unknown, expired or revoked; log in again with `broker login`"
    )]
    BadToken,
    /// The token's policies do not grant the operation.
    #[error(
        "permission denied: the token's policies do not grant \"{capability}\" on {path} (see `broker token capabilities {path}`)"
    )]
    PermissionDenied {
        /// The path asked for.
        path: String,
        /// The capability the operation needs.
        capability: &'static str,
    },
    /// No mount or handler serves the path, or nothing is there.
    #[error("nothing at {path}: {message}")]
    NotFound {
        /// The path asked for.
        path: String,
        /// What the broker said.
        message: String,
    },
    /// The broker refused or failed the request otherwise.
    #[error("{method} {path}: {status}: {message}")]
    Api {
        /// The HTTP method.
        method: String,
        /// The path.
        path: String,
        /// The status.
        status: StatusCode,
        /// The broker's errors, joined.
        message: String,
    },
    /// Something on this side: a bad address, an unreadable file.
    #[error("{0}")]
    Local(String),
}

impl ClientError {
    /// The exit code Vault's CLI gives: 1 for what went wrong on this side,
    /// 2 for what the server answered (or did not).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Local(_) | Self::NoToken => 1,
            _ => 2,
        }
    }
}

/// The capability an HTTP method needs, for error messages.
fn capability(method: &Method, list: bool) -> &'static str {
    match *method {
        _ if list => "list",
        Method::GET => "read",
        Method::DELETE => "delete",
        Method::PATCH => "patch",
        _ => "update",
    }
}

/// A client for one broker, with one token (or none). Cloning is cheap
/// (the HTTP client's connections are shared).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    addr: String,
    token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// The broker's address the environment names (`BROKER_ADDR`, else
/// `VAULT_ADDR`), else [`DEFAULT_ADDR`].
pub fn env_addr() -> String {
    env_first(&["BROKER_ADDR", "VAULT_ADDR"]).unwrap_or_else(|| DEFAULT_ADDR.into())
}

/// The CA file the environment names (`BROKER_CACERT`, else `VAULT_CACERT`).
pub fn env_ca_cert() -> Option<PathBuf> {
    env_first(&["BROKER_CACERT", "VAULT_CACERT"]).map(PathBuf::from)
}

/// The first of these environment variables that is set and not empty.
fn env_first(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

impl Client {
    /// A client for `addr` with `token`, trusting the system's roots and,
    /// if given, the PEM CA file `ca_cert`.
    pub fn new(
        addr: &str,
        token: Option<Zeroizing<String>>,
        ca_cert: Option<PathBuf>,
    ) -> Result<Self, ClientError> {
        Self::with_identity(addr, token, ca_cert, None)
    }

    /// As [`Self::new`], presenting the client certificate `identity`
    /// (certificate file, key file; PEM) in the TLS handshake, for the
    /// `cert` auth method.
    pub fn with_identity(
        addr: &str,
        token: Option<Zeroizing<String>>,
        ca_cert: Option<PathBuf>,
        identity: Option<(PathBuf, PathBuf)>,
    ) -> Result<Self, ClientError> {
        let addr = addr.trim_end_matches('/').to_owned();
        let url = reqwest::Url::parse(&addr).map_err(|e| {
            ClientError::Local(format!("the broker's address {addr:?} is not a URL: {e}"))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ClientError::Local(format!(
                "the broker's address {addr:?} must start with http:// or https://"
            )));
        }
        let mut http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60));
        if let Some(path) = ca_cert {
            let pem = std::fs::read(&path).map_err(|e| {
                ClientError::Local(format!(
                    "cannot read the CA certificate {}: {e}",
                    path.display()
                ))
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                ClientError::Local(format!("{} is not a PEM certificate: {e}", path.display()))
            })?;
            http = http.add_root_certificate(cert);
        }
        if let Some((cert, key)) = identity {
            let read = |path: &PathBuf| {
                std::fs::read(path)
                    .map_err(|e| ClientError::Local(format!("cannot read {}: {e}", path.display())))
            };
            let mut pem = read(&cert)?;
            pem.push(b'\n');
            pem.extend_from_slice(&Zeroizing::new(read(&key)?));
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                ClientError::Local(format!(
                    "{} and {} are not a PEM certificate and key: {e}",
                    cert.display(),
                    key.display()
                ))
            });
            zeroize::Zeroize::zeroize(&mut pem);
            http = http.identity(identity?);
        }
        let http = http
            .build()
            .map_err(|e| ClientError::Local(format!("cannot make an HTTP client: {e}")))?;
        Ok(Self { http, addr, token })
    }

    /// A client as the environment says: `BROKER_ADDR` (else `VAULT_ADDR`,
    /// else [`DEFAULT_ADDR`]), `BROKER_TOKEN` (else `VAULT_TOKEN`, else the
    /// token helper file), `BROKER_CACERT` (else `VAULT_CACERT`).
    pub fn from_env() -> Result<Self, ClientError> {
        let addr = env_addr();
        let token = match env_first(&["BROKER_TOKEN", "VAULT_TOKEN"]) {
            Some(token) => Some(Zeroizing::new(token)),
            None => TokenHelper::default_location()
                .and_then(|helper| helper.get().transpose())
                .transpose()?,
        };
        let ca = env_ca_cert();
        let identity = match (
            env_first(&["BROKER_CLIENT_CERT", "VAULT_CLIENT_CERT"]),
            env_first(&["BROKER_CLIENT_KEY", "VAULT_CLIENT_KEY"]),
        ) {
            (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (None, None) => None,
            _ => {
                return Err(ClientError::Local(
                    "set both BROKER_CLIENT_CERT and BROKER_CLIENT_KEY (a client certificate and its key), or neither".into(),
                ));
            }
        };
        Self::with_identity(&addr, token, ca, identity)
    }

    /// The broker's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The same client with another token.
    pub fn with_token(&self, token: Zeroizing<String>) -> Self {
        Self {
            http: self.http.clone(),
            addr: self.addr.clone(),
            token: Some(token),
        }
    }

    /// Whether a token is set.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// `GET path`: the response, or `None` when nothing is there (404 with
    /// no errors, as Vault answers a read of nothing).
    pub async fn read(&self, path: &str) -> Result<Option<Value>, ClientError> {
        match self.request(Method::GET, path, None).await {
            Err(ClientError::NotFound { message, .. }) if message.is_empty() => Ok(None),
            other => other,
        }
    }

    /// `LIST path` (as `GET path?list=true`): the keys, or none.
    pub async fn list(&self, path: &str) -> Result<Option<Value>, ClientError> {
        match self.send(Method::GET, path, None, true, &[]).await {
            Err(ClientError::NotFound { message, .. }) if message.is_empty() => Ok(None),
            other => other,
        }
    }

    /// `method path` with a JSON `body`: the response body, `None` for 204.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Map<String, Value>>,
    ) -> Result<Option<Value>, ClientError> {
        self.send(method, path, body, false, &[]).await
    }

    /// As [`Self::request`], with extra headers (`X-Vault-Wrap-TTL`, …).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Map<String, Value>>,
        list: bool,
        headers: &[(&str, &str)],
    ) -> Result<Option<Value>, ClientError> {
        let path = path.trim_matches('/');
        let mut url = format!("{}/v1/{path}", self.addr);
        if list {
            url.push_str("?list=true");
        }
        let mut request = self.http.request(method.clone(), &url);
        if let Some(token) = &self.token {
            request = request.header("X-Vault-Token", token.as_str());
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        // A PATCH is a JSON merge patch (RFC 7396), as Vault takes it.
        if method == Method::PATCH {
            request = request.header(
                reqwest::header::CONTENT_TYPE,
                "application/merge-patch+json",
            );
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            addr: self.addr.clone(),
            cause: cause_of(&e),
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| ClientError::Unreachable {
                addr: self.addr.clone(),
                cause: cause_of(&e),
            })?;
        if status == StatusCode::NO_CONTENT || (status.is_success() && text.trim().is_empty()) {
            return Ok(None);
        }
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return parsed.map(Some).ok_or_else(|| ClientError::Api {
                method: method.to_string(),
                path: path.to_owned(),
                status,
                message: "the answer is not JSON".into(),
            });
        }
        let message = parsed
            .as_ref()
            .and_then(|v| v.get("errors"))
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        Err(match status {
            StatusCode::SERVICE_UNAVAILABLE if message.contains("sealed") => ClientError::Sealed {
                addr: self.addr.clone(),
                message,
            },
            StatusCode::FORBIDDEN if self.token.is_none() => ClientError::NoToken,
            StatusCode::FORBIDDEN => {
                if self.token_is_valid().await {
                    ClientError::PermissionDenied {
                        path: path.to_owned(),
                        capability: capability(&method, list),
                    }
                } else {
                    ClientError::BadToken
                }
            }
            StatusCode::NOT_FOUND => ClientError::NotFound {
                path: path.to_owned(),
                message,
            },
            _ => ClientError::Api {
                method: if list {
                    "LIST".into()
                } else {
                    method.to_string()
                },
                path: path.to_owned(),
                status,
                message,
            },
        })
    }

    /// Whether the broker knows this client's token (`auth/token/lookup-self`,
    /// which every valid token may call).
    async fn token_is_valid(&self) -> bool {
        let Some(token) = &self.token else {
            return false;
        };
        self.http
            .get(format!("{}/v1/auth/token/lookup-self", self.addr))
            .header("X-Vault-Token", token.as_str())
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }
}

/// The innermost cause of a connection failure, without the URL (which
/// the error names already).
fn cause_of(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    let mut last = e.to_string();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    if e.is_timeout() {
        return "no answer within 60 s".into();
    }
    last
}
