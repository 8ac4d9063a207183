//! The `lease` capability: the plugin records how to revoke a credential
//! before it creates it, and the broker stores that durably first.

use crate::plugin::bindings::v0_1_0::broker::plugin::lease as wit;
use crate::plugin::state::CallState;

impl wit::Host for CallState {
    async fn record_revocation(
        &mut self,
        revocation: String,
    ) -> wasmtime::Result<Result<(), String>> {
        if self.recorded.is_some() {
            return Ok(Err(
                "revocation data was already recorded for this call".into()
            ));
        }
        if revocation.len() > self.max_output_bytes {
            return Ok(Err(format!(
                "revocation data is larger than {} bytes",
                self.max_output_bytes
            )));
        }
        let value: serde_json::Value = match serde_json::from_str(&revocation) {
            Ok(v) => v,
            Err(e) => return Ok(Err(format!("revocation data is not JSON: {e}"))),
        };
        if let Some(recorder) = self.recorder.clone()
            && let Err(e) = recorder.record(&value).await
        {
            return Ok(Err(e));
        }
        self.recorded = Some(revocation);
        Ok(Ok(()))
    }
}
