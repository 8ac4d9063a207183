//! Requests to the mount's HTTP service through the host's `http`
//! capability.
//!
//! The plugin names a path under the service's base URL (or an absolute
//! URL on its origin); the host sends the request only to that origin,
//! follows redirects only within it, verifies TLS against the mount's CA,
//! bounds bodies and time, and adds the admin credential itself: the
//! plugin never sees it and may not set `Authorization`.
//!
//! ```no_run
//! use broker_plugin_sdk::http;
//! # fn f() -> broker_plugin_sdk::Result<()> {
//! let user = serde_json::json!({ "password": "s3cret", "tags": "" });
//! let response = http::Request::put("/api/users/v-app").json(&user)?.send()?;
//! if !response.is_success() {
//!     return Err(broker_plugin_sdk::Error::request(response.error_text()));
//! }
//! # Ok(()) }
//! ```

use crate::export::bindings::broker::plugin::http as wit;
use crate::{Error, Result};

pub use wit::{HttpError, Method};

/// A request to the mount's service, built then [`sent`](Request::send).
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    /// A request with `method` to `url`: a path under the base URL
    /// (`/api/users/x`), or an absolute URL on its origin.
    pub fn new(method: Method, url: &str) -> Self {
        Self {
            method,
            url: url.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A GET request.
    pub fn get(url: &str) -> Self {
        Self::new(Method::Get, url)
    }

    /// A PUT request.
    pub fn put(url: &str) -> Self {
        Self::new(Method::Put, url)
    }

    /// A POST request.
    pub fn post(url: &str) -> Self {
        Self::new(Method::Post, url)
    }

    /// A DELETE request.
    pub fn delete(url: &str) -> Self {
        Self::new(Method::Delete, url)
    }

    /// Adds a header (not `Authorization`: the host refuses it).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets a JSON body, and its content type.
    pub fn json(mut self, body: &impl serde::Serialize) -> Result<Self> {
        self.body = serde_json::to_vec(body).map_err(Error::internal)?;
        Ok(self.header("content-type", "application/json"))
    }

    /// Sets a raw body.
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// Sends it and returns the response, whatever its status. Fails with
    /// [`Error::Unavailable`] when the service cannot be reached, and
    /// [`Error::InvalidConfig`] when the host refuses the request.
    pub fn send(self) -> Result<Response> {
        let response = wit::send(&wit::Request {
            method: self.method,
            url: self.url,
            headers: self.headers,
            body: self.body,
        })?;
        Ok(Response {
            status: response.status,
            headers: response.headers,
            body: response.body,
        })
    }
}

/// A response from the service.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::internal(format!(
                "the service's answer is not the JSON expected: {e}"
            ))
        })
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A short description of a failed response for an error message: its
    /// status and at most 200 characters of its body.
    pub fn error_text(&self) -> String {
        let text: String = self.text().chars().take(200).collect();
        format!("the service answered {}: {}", self.status, text.trim())
    }
}

impl From<HttpError> for Error {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Unavailable(m) => Self::Unavailable(m),
            HttpError::Denied(m) => Self::InvalidConfig(m),
            HttpError::Limit(m) | HttpError::Invalid(m) => Self::InvalidRequest(m),
        }
    }
}

/// `s` as one URL path segment: everything but letters, digits and
/// `-._~` percent-encoded, so a name holding `/` (RabbitMQ's default vhost
/// is `/`) or `?` stays one segment.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::segment;
    use proptest::prelude::*;

    fn decode(s: &str) -> Vec<u8> {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(0));
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    proptest! {
        /// Any text is one segment (no '/', '?', '#') that decodes back to it.
        #[test]
        fn a_segment_is_one_segment_and_decodes_back(s in ".{0,40}") {
            let encoded = segment(&s);
            prop_assert!(!encoded.contains(['/', '?', '#', ' ']));
            prop_assert_eq!(decode(&encoded), s.as_bytes());
        }
    }

    #[test]
    fn segments_are_encoded_whole() {
        assert_eq!(segment("/"), "%2F");
        assert_eq!(segment("v-app_1.x~"), "v-app_1.x~");
        assert_eq!(segment("a b/../c?d"), "a%20b%2F..%2Fc%3Fd");
        assert_eq!(segment("é"), "%C3%A9");
    }
}
