//! What the broker reaches on a plugin's behalf besides SQL databases
//! ([`crate::sql`]): a mount's Redis server and a mount's HTTP service.
//!
//! Each target is built by the host from the mount's stored configuration,
//! holds the admin credential, and is handed to the sandbox only as a
//! capability bound to one call. This module owns the connections and the
//! rules a plugin's traffic must follow (Redis's deny-list, HTTP's single
//! origin and size bounds); it must never let a plugin choose where to
//! connect or see the credential it connects with.

pub mod http;
pub mod redis;

pub use self::http::{HttpClients, HttpError, HttpRequest, HttpResponse, HttpTarget};
pub use self::redis::{RedisError, RedisPools, RedisReply, RedisTarget};
