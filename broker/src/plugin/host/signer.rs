//! The `signer` capability: signing with the mount's CA key, which never
//! enters the sandbox. Mounts without a CA (every database mount) refuse.

use crate::plugin::bindings::v0_1_0::broker::plugin::signer as wit;
use crate::plugin::state::CallState;

const NO_CA: &str = "this mount has no CA to sign with";

impl wit::Host for CallState {
    fn generate_key(
        &mut self,
        _key_type: wit::KeyType,
    ) -> wasmtime::Result<Result<wit::KeyPair, wit::SignerError>> {
        Ok(Err(wit::SignerError::Denied(NO_CA.into())))
    }

    fn issuer_certificate(&mut self) -> wasmtime::Result<Result<Vec<u8>, wit::SignerError>> {
        Ok(Err(wit::SignerError::Denied(NO_CA.into())))
    }

    fn sign_certificate(
        &mut self,
        _tbs: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, wit::SignerError>> {
        Ok(Err(wit::SignerError::Denied(NO_CA.into())))
    }
}
