//! The `rabbitmq` secrets engine, Vault-compatible: the database engine
//! answering as Vault's rabbitmq engine (`config/connection` with
//! `connection_uri`, roles with `tags`, `vhosts` and `vhost_topics`,
//! `creds/{role}`), its users made by the built-in RabbitMQ plugin through
//! the management API. Nothing here but the mount type: the engine's
//! paths, leases and root rotation are the database engine's.

use std::sync::Arc;

use crate::engine::database::{Flavor, flavored};
use crate::framework::{Backend, PatternError, Services};

/// Builds the backend: the registry's constructor for this mount type.
pub fn factory(services: &Services) -> Result<Arc<dyn Backend>, PatternError> {
    flavored(services, Flavor::RabbitMq)
}
