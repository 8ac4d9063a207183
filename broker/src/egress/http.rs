//! A mount's HTTP service: requests only to its base URL's origin, with the
//! admin credential added here, TLS verified against the mount's CA, and
//! bounded bodies.
//!
//! The origin check is made on the URL after it is resolved, and again on
//! every redirect: a plugin cannot reach another host, port or scheme by
//! an absolute URL, by `//host/…`, by userinfo, or by getting the service
//! to redirect it. The plugin may not set `Authorization`: the host's
//! credential is the only one sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use url::Url;
use zeroize::Zeroizing;

/// Where a mount's service is and how the host authenticates to it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpTarget {
    /// The base URL; its origin is the only one requests go to.
    pub base_url: String,
    /// HTTP basic authentication's user, if any.
    #[serde(default)]
    pub username: Option<String>,
    /// Its password: never shown, never given to the plugin.
    #[serde(default)]
    pub password: Option<Zeroizing<String>>,
    /// PEM CA certificates to verify the service's TLS certificate with,
    /// instead of the system's roots.
    #[serde(default)]
    pub ca_cert: Option<String>,
}

impl std::fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTarget")
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_cert", &self.ca_cert.is_some())
            .finish()
    }
}

impl HttpTarget {
    /// The same service, authenticated with `password` instead.
    pub fn with_password(&self, password: &str) -> Self {
        Self {
            password: Some(Zeroizing::new(password.to_owned())),
            ..self.clone()
        }
    }

    /// The base URL, checked: http or https, a host, no userinfo.
    pub fn base(&self) -> Result<Url, HttpError> {
        let url = Url::parse(&self.base_url)
            .map_err(|e| HttpError::Invalid(format!("the base URL does not parse: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(HttpError::Invalid(
                "the base URL must be an http:// or https:// URL with a host".into(),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(HttpError::Invalid(
                "the base URL must not carry credentials; set username and password".into(),
            ));
        }
        Ok(url)
    }
}

/// A request from a plugin.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// GET, HEAD, POST, PUT, PATCH or DELETE.
    pub method: reqwest::Method,
    /// A path (and query) under the base URL, or an absolute URL on its origin.
    pub url: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// A response, as the host hands it to a plugin.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Its status code.
    pub status: u16,
    /// Its headers (values that are not text are left out).
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Vec<u8>,
}

/// Why a request was not sent or did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The host refused it.
    #[error("{0}")]
    Denied(String),
    /// The service could not be reached or did not answer in time.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A body was too large.
    #[error("{0}")]
    Limit(String),
    /// The request was malformed.
    #[error("{0}")]
    Invalid(String),
}

/// The largest request body a plugin may send, and response body it gets.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Redirects followed (within the origin) before giving up.
const MAX_REDIRECTS: usize = 5;
/// Headers a plugin may not set: the host's credential, and what the
/// client itself must decide.
const FORBIDDEN_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
];

/// Whether `url` is on `base`'s origin (scheme, host and port).
pub fn same_origin(base: &Url, url: &Url) -> bool {
    base.scheme() == url.scheme()
        && base.host_str() == url.host_str()
        && base.port_or_known_default() == url.port_or_known_default()
}

/// Resolves a plugin's URL against the base and checks it stays on the
/// base's origin. A path is put under the base URL's own path.
pub fn resolve(base: &Url, url: &str) -> Result<Url, HttpError> {
    let resolved = if url.starts_with('/') && !url.starts_with("//") {
        let joined = format!("{}{}", base.as_str().trim_end_matches('/'), url);
        Url::parse(&joined).map_err(|e| HttpError::Invalid(format!("bad URL path: {e}")))?
    } else {
        Url::parse(url).map_err(|_| {
            HttpError::Denied(
                "a request URL must be a path under the base URL or an absolute URL on its origin"
                    .into(),
            )
        })?
    };
    if !resolved.username().is_empty() || resolved.password().is_some() {
        return Err(HttpError::Denied(
            "a request URL may not carry credentials".into(),
        ));
    }
    if !same_origin(base, &resolved) {
        return Err(HttpError::Denied(format!(
            "requests may go only to {}; refused {}",
            base.origin().ascii_serialization(),
            resolved.origin().ascii_serialization()
        )));
    }
    Ok(resolved)
}

/// One client per mount config (it pools connections), rebuilt when the
/// config changes.
#[derive(Default)]
pub struct HttpClients {
    clients: Mutex<HashMap<String, (Arc<HttpTarget>, reqwest::Client)>>,
}

impl std::fmt::Debug for HttpClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("HttpClients").field("clients", &n).finish()
    }
}

fn client(target: &HttpTarget, base: &Url) -> Result<reqwest::Client, HttpError> {
    let origin = base.clone();
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if !same_origin(&origin, attempt.url()) {
            let refused = format!(
                "redirect to another origin refused: {}",
                attempt.url().origin().ascii_serialization()
            );
            attempt.error(refused)
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    });
    let mut builder = reqwest::Client::builder()
        .redirect(policy)
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(8);
    if let Some(pem) = &target.ca_cert {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| HttpError::Invalid(format!("ca_cert is not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(HttpError::Invalid("ca_cert holds no certificate".into()));
        }
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| HttpError::Invalid(format!("cannot build the HTTP client: {e}")))
}

impl HttpClients {
    /// No clients yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops the client kept for `key`.
    pub fn remove(&self, key: &str) {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    fn client(
        &self,
        key: &str,
        target: &Arc<HttpTarget>,
        base: &Url,
    ) -> Result<reqwest::Client, HttpError> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((t, c)) = clients.get(key)
            && t == target
        {
            return Ok(c.clone());
        }
        let c = client(target, base)?;
        clients.insert(key.to_owned(), (target.clone(), c.clone()));
        Ok(c)
    }

    /// Sends `request` to `target` by `deadline`, within the rules above.
    pub async fn send(
        &self,
        key: &str,
        target: &Arc<HttpTarget>,
        request: HttpRequest,
        deadline: Instant,
    ) -> Result<HttpResponse, HttpError> {
        let base = target.base()?;
        let url = resolve(&base, &request.url)?;
        if request.body.len() > MAX_BODY_BYTES {
            return Err(HttpError::Limit(format!(
                "a request body may be at most {MAX_BODY_BYTES} bytes"
            )));
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &request.headers {
            if FORBIDDEN_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(HttpError::Denied(format!(
                    "plugins may not set the {name} header"
                )));
            }
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HttpError::Invalid(format!("bad header name {name:?}")))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| HttpError::Invalid(format!("bad value for header {name}")))?;
            headers.append(name, value);
        }
        let client = self.client(key, target, &base)?;
        let mut builder = client.request(request.method, url).headers(headers);
        if let Some(user) = &target.username {
            builder = builder.basic_auth(user, target.password.as_ref().map(|p| p.as_str()));
        }
        if !request.body.is_empty() {
            builder = builder.body(request.body);
        }
        let deadline = tokio::time::Instant::from_std(deadline);
        let exchange = async {
            let mut response = builder.send().await.map_err(sent)?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect();
            if response
                .content_length()
                .is_some_and(|n| n > MAX_BODY_BYTES as u64)
            {
                return Err(too_large());
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(sent)? {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(HttpResponse {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout_at(deadline, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(HttpError::Unavailable(
                    "the call's deadline passed before the service answered".into(),
                ))
            })
    }
}

fn too_large() -> HttpError {
    HttpError::Limit(format!(
        "the response body is larger than {MAX_BODY_BYTES} bytes"
    ))
}

/// A failed exchange: a refused redirect is the host's refusal; the rest
/// means the service is not reachable.
fn sent(e: reqwest::Error) -> HttpError {
    if e.is_redirect() {
        let mut cause: Option<&dyn std::error::Error> = Some(&e);
        while let Some(c) = cause {
            let text = c.to_string();
            if text.starts_with("redirect to another origin refused")
                || text.starts_with("more than")
            {
                return HttpError::Denied(text);
            }
            cause = c.source();
        }
        return HttpError::Denied("a redirect was refused".into());
    }
    // reqwest's message names the URL, never the credential.
    HttpError::Unavailable(e.without_url().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn base() -> Url {
        Url::parse("http://127.0.0.1:15672/").unwrap()
    }

    #[test]
    fn paths_stay_on_the_origin_and_other_origins_are_refused() {
        let b = base();
        assert_eq!(
            resolve(&b, "/api/users/x?y=1").unwrap().as_str(),
            "http://127.0.0.1:15672/api/users/x?y=1"
        );
        resolve(&b, "http://127.0.0.1:15672/api/whoami").unwrap();
        for hostile in [
            "http://127.0.0.1:6379/",
            "http://localhost:15672/",
            "https://127.0.0.1:15672/",
            "http://evil.example/",
            "//evil.example/api",
            "http://guest:guest@127.0.0.1:15672/",
            "file:///etc/passwd",
            "api/users",
        ] {
            assert!(
                matches!(resolve(&b, hostile), Err(HttpError::Denied(_))),
                "{hostile}"
            );
        }
        // A path under a base with a prefix keeps the prefix.
        let prefixed = Url::parse("https://svc.internal/rabbit/").unwrap();
        assert_eq!(
            resolve(&prefixed, "/api/x").unwrap().as_str(),
            "https://svc.internal/rabbit/api/x"
        );
    }

    #[test]
    fn a_target_shows_no_password() {
        let t = HttpTarget {
            base_url: "http://h/".into(),
            username: Some("admin".into()),
            password: Some(Zeroizing::new("Zq9-secret".into())),
            ca_cert: None,
        };
        assert!(!format!("{t:?}").contains("Zq9-secret"));
    }

    proptest! {
        #[test]
        fn whatever_a_plugin_asks_for_it_stays_on_the_origin(url in ".{0,64}") {
            let b = base();
            if let Ok(u) = resolve(&b, &url) {
                prop_assert!(same_origin(&b, &u), "{url} -> {u}");
                prop_assert!(u.username().is_empty() && u.password().is_none());
            }
        }

        #[test]
        fn absolute_urls_elsewhere_are_refused(host in "[a-z]{1,10}", port in 1u16..) {
            let url = format!("http://{host}.test:{port}/api");
            prop_assert!(resolve(&base(), &url).is_err());
        }
    }
}
