//! The `redis` capability (contract v0.2.0 on): commands to the calling
//! mount's Redis server only, through the host's deny-list
//! ([`crate::egress::redis`]).

use crate::egress::redis::{RedisError, RedisReply};
use crate::plugin::HostCapability;
use crate::plugin::state::CallState;

/// The most commands one call may send.
const MAX_COMMANDS_PER_CALL: u32 = 64;

impl CallState {
    pub(crate) async fn redis_command(
        &mut self,
        args: Vec<String>,
    ) -> Result<RedisReply, RedisError> {
        if !self.capabilities.contains(&HostCapability::Redis) {
            self.refused("redis", "the plugin does not import redis");
            return Err(RedisError::Denied(
                "the plugin does not import redis".into(),
            ));
        }
        let Some(binding) = self.redis.clone() else {
            return Err(RedisError::Denied(
                "this mount has no Redis server configured".into(),
            ));
        };
        if self.redis_commands >= MAX_COMMANDS_PER_CALL {
            return Err(RedisError::Limit(format!(
                "at most {MAX_COMMANDS_PER_CALL} Redis commands per call"
            )));
        }
        self.redis_commands += 1;
        if let Err(e) = crate::egress::redis::check_command(&args) {
            let name = args
                .first()
                .map(|a| a.to_ascii_uppercase())
                .unwrap_or_default();
            // The name only: arguments may hold a password.
            let shown: String = name
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(32)
                .collect();
            self.refused("redis", &format!("command {shown}"));
            return Err(e);
        }
        let result = binding
            .pools
            .command(&binding.key, &binding.target, &args, self.deadline)
            .await;
        if matches!(&result, Err(RedisError::Unavailable(m)) if m.contains("deadline")) {
            self.deadline_hit = true;
        }
        result
    }
}
