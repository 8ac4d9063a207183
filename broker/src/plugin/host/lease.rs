//! The `lease` capability: the plugin records how to revoke a credential
//! before it creates it, and the broker stores that durably first.

use crate::plugin::state::CallState;

impl CallState {
    pub(crate) async fn lease_record_revocation(
        &mut self,
        revocation: String,
    ) -> Result<(), String> {
        if self.recorded.is_some() {
            return Err("revocation data was already recorded for this call".into());
        }
        if revocation.len() > self.max_output_bytes {
            return Err(format!(
                "revocation data is larger than {} bytes",
                self.max_output_bytes
            ));
        }
        let value: serde_json::Value = serde_json::from_str(&revocation)
            .map_err(|e| format!("revocation data is not JSON: {e}"))?;
        if let Some(recorder) = self.recorder.clone() {
            recorder.record(&value).await?;
        }
        self.recorded = Some(revocation);
        Ok(())
    }
}
