//! What a handler answers. The API wraps it in Vault's envelope with the
//! request's id; the audit log records it first.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::Error;

/// A handler's answer. `Debug` shows no data: it may be a credential.
pub enum Reply {
    /// A 200 with `data` (and a lease, for a leased secret).
    Envelope {
        /// The lease, or empty.
        lease_id: String,
        /// Seconds the lease lasts.
        lease_duration: i64,
        /// Whether the lease can be renewed.
        renewable: bool,
        /// The data.
        data: Value,
        /// `data` hands out a credential or a key: its audit entry must be
        /// on disk before it leaves, and it counts as an issuance.
        credential: bool,
    },
    /// A 200 handing out a token: Vault's envelope with `auth` set (and
    /// `data`, which token paths leave null).
    Auth {
        /// The `auth` block: the token, its accessor, its policies.
        auth: Value,
    },
    /// A response put behind a wrapping token: only `wrap_info` is shown.
    Wrapped {
        /// The `wrap_info` block: the wrapping token and its life.
        wrap_info: Value,
    },
    /// A body outside the envelope (`sys/health`), with its status:
    /// `sys/health` answers its state in the status code.
    Bare(StatusCode, Value),
    /// A 404 in Vault's envelope whose `data` says why there is nothing
    /// to read: a KV version that was deleted or destroyed answers with its
    /// metadata (clients read its `deletion_time`).
    Missing {
        /// What is known of the missing object.
        data: Value,
    },
    /// A 204, as Vault answers writes that return nothing.
    NoContent,
    /// A 200 with a body that is not JSON (a PEM or DER certificate or CRL).
    Raw {
        /// Its media type.
        content_type: &'static str,
        /// The bytes.
        body: Vec<u8>,
    },
}

impl Reply {
    /// The lease this reply hands out, if any.
    pub fn lease_id(&self) -> Option<&str> {
        match self {
            Self::Envelope { lease_id, .. } if !lease_id.is_empty() => Some(lease_id),
            _ => None,
        }
    }

    /// What the audit log records of this reply.
    pub fn audit_response(&self) -> crate::audit::AuditResponse {
        let mut response = crate::audit::AuditResponse {
            status: self.status().as_u16(),
            ..Default::default()
        };
        if let Self::Envelope {
            lease_id,
            lease_duration,
            data,
            credential,
            ..
        } = self
        {
            response.data = (!data.is_null()).then(|| data.clone());
            response.lease_id = (!lease_id.is_empty()).then(|| lease_id.clone());
            response.lease_duration = *lease_duration;
            response.credential = *credential;
        }
        if let Self::Missing { data } = self {
            response.data = Some(data.clone());
        }
        if let Self::Auth { auth } = self {
            response.auth = Some(auth.clone());
            response.credential = true;
        }
        if let Self::Wrapped { wrap_info } = self {
            response.wrap_info = Some(wrap_info.clone());
            response.credential = true;
        }
        response
    }

    /// The status the reply is sent with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoContent => StatusCode::NO_CONTENT,
            Self::Missing { .. } => StatusCode::NOT_FOUND,
            Self::Bare(status, _) => *status,
            _ => StatusCode::OK,
        }
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status())
            .field("lease_id", &self.lease_id())
            .finish_non_exhaustive()
    }
}

/// A 200 with `data` in Vault's envelope.
pub fn data(data: Value) -> Reply {
    Reply::Envelope {
        lease_id: String::new(),
        lease_duration: 0,
        renewable: false,
        data,
        credential: false,
    }
}

/// A list of names, as Vault answers a LIST: `{"keys": [...]}`, or an
/// empty 404 when there are none.
pub fn list(keys: Vec<String>) -> Result<Reply, Error> {
    if keys.is_empty() {
        return Err(Error::NotFound(String::new()));
    }
    Ok(data(json!({ "keys": keys })))
}

/// A 200 handing out a credential or a key without a lease (a certificate
/// of a role without `generate_lease`, an exported CA key).
pub fn credential(data: Value) -> Reply {
    Reply::Envelope {
        lease_id: String::new(),
        lease_duration: 0,
        renewable: false,
        data,
        credential: true,
    }
}

/// A 200 for a lease: a new credential when `data` holds one, or a renewal.
pub fn secret(lease_id: String, lease_duration: i64, renewable: bool, data: Value) -> Reply {
    Reply::Envelope {
        lease_id,
        lease_duration,
        renewable,
        credential: !data.is_null(),
        data,
    }
}

/// A 204.
pub fn no_content() -> Reply {
    Reply::NoContent
}
