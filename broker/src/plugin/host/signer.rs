//! The `signer` capability: signing with the mount's CA key, which never
//! enters the sandbox. Calls without a CA (every database mount), or from
//! a plugin not granted the capability, are refused.
//!
//! Version-free: each contract version's adapter converts its types and
//! calls these.

use std::sync::Arc;

use crate::plugin::HostCapability;
use crate::plugin::signer::{CaSigner, CsrInfo, GeneratedKey, IssuerInfo, KeyType, SignerError};
use crate::plugin::state::CallState;

const NO_CA: &str = "this mount has no CA to sign with";

impl CallState {
    fn ca(&mut self) -> Result<Arc<dyn CaSigner>, SignerError> {
        if !self.capabilities.contains(&HostCapability::Signer) {
            self.refused("signer", "the plugin was not granted signer");
            return Err(SignerError::Denied(
                "the plugin was not granted the signer capability".into(),
            ));
        }
        self.signer
            .clone()
            .ok_or_else(|| SignerError::Denied(NO_CA.into()))
    }

    pub(crate) async fn signer_generate_key(
        &mut self,
        key: KeyType,
    ) -> Result<GeneratedKey, SignerError> {
        let ca = self.ca()?;
        let key = ca.generate_key(key).await?;
        self.log.secret(&key.private_key_pem);
        Ok(key)
    }

    pub(crate) fn signer_issuer(&mut self) -> Result<IssuerInfo, SignerError> {
        self.ca()?.issuer()
    }

    pub(crate) async fn signer_sign_tbs(&mut self, tbs: &[u8]) -> Result<Vec<u8>, SignerError> {
        // One certificate per call: a plugin cannot mint extra ones on the
        // side (nor any during a revocation).
        if self.signatures > 0 {
            return Err(SignerError::Denied(
                "one certificate per call: the CA already signed in this call".into(),
            ));
        }
        let signed = self.ca()?.sign_tbs(tbs).await?;
        self.signatures += 1;
        Ok(signed)
    }

    pub(crate) fn signer_parse_csr(&mut self, pem: &str) -> Result<CsrInfo, SignerError> {
        self.ca()?.parse_csr(pem)
    }

    pub(crate) async fn signer_revoke(&mut self, serial: &str) -> Result<(), SignerError> {
        self.ca()?.revoke(serial).await
    }
}
