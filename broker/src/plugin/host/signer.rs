//! The `signer` capability: signing with the mount's CA key, which never
//! enters the sandbox. Calls without a CA (every database mount), or from
//! a plugin that did not declare the capability, are refused.

use crate::plugin::bindings::v0_1_0::broker::plugin::signer as wit;
use crate::plugin::bindings::v0_1_0::broker::plugin::types::Capability;
use crate::plugin::signer::{CaSigner, KeyType, SignerError};
use crate::plugin::state::CallState;

const NO_CA: &str = "this mount has no CA to sign with";

fn key_type(k: wit::KeyType) -> KeyType {
    match k {
        wit::KeyType::EcP256 => KeyType::EcP256,
        wit::KeyType::EcP384 => KeyType::EcP384,
        wit::KeyType::Rsa2048 => KeyType::Rsa2048,
        wit::KeyType::Rsa3072 => KeyType::Rsa3072,
        wit::KeyType::Rsa4096 => KeyType::Rsa4096,
        wit::KeyType::Ed25519 => KeyType::Ed25519,
    }
}

fn wit_key_type(k: KeyType) -> wit::KeyType {
    match k {
        KeyType::EcP256 => wit::KeyType::EcP256,
        KeyType::EcP384 => wit::KeyType::EcP384,
        KeyType::Rsa2048 => wit::KeyType::Rsa2048,
        KeyType::Rsa3072 => wit::KeyType::Rsa3072,
        KeyType::Rsa4096 => wit::KeyType::Rsa4096,
        KeyType::Ed25519 => wit::KeyType::Ed25519,
    }
}

fn wit_error(e: SignerError) -> wit::SignerError {
    match e {
        SignerError::Denied(m) => wit::SignerError::Denied(m),
        SignerError::Invalid(m) => wit::SignerError::Invalid(m),
    }
}

impl CallState {
    fn ca(&self) -> Result<std::sync::Arc<dyn CaSigner>, wit::SignerError> {
        if !self.capabilities.contains(&Capability::Signer) {
            return Err(wit::SignerError::Denied(
                "the plugin did not declare the signer capability".into(),
            ));
        }
        self.signer
            .clone()
            .ok_or_else(|| wit::SignerError::Denied(NO_CA.into()))
    }
}

impl wit::Host for CallState {
    async fn generate_key(
        &mut self,
        key: wit::KeyType,
    ) -> wasmtime::Result<Result<wit::KeyPair, wit::SignerError>> {
        let ca = match self.ca() {
            Ok(ca) => ca,
            Err(e) => return Ok(Err(e)),
        };
        Ok(ca
            .generate_key(key_type(key))
            .await
            .inspect(|k| self.log.secret(&k.private_key_pem))
            .map(|k| wit::KeyPair {
                key_type: wit_key_type(k.key_type),
                private_key_pem: k.private_key_pem.to_string(),
                public_key_raw: k.public_key_raw,
                key_id: k.key_id,
            })
            .map_err(wit_error))
    }

    async fn issuer(&mut self) -> wasmtime::Result<Result<wit::IssuerInfo, wit::SignerError>> {
        Ok(self.ca().and_then(|ca| {
            ca.issuer()
                .map(|i| wit::IssuerInfo {
                    certificate_der: i.certificate_der,
                    subject: i
                        .subject
                        .into_iter()
                        .map(|(oid, value)| wit::NameAttribute { oid, value })
                        .collect(),
                    key_id: i.key_id,
                    key_type: wit_key_type(i.key_type),
                    not_after: i.not_after,
                })
                .map_err(wit_error)
        }))
    }

    async fn sign_tbs_certificate(
        &mut self,
        tbs: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, wit::SignerError>> {
        // One certificate per call: a plugin cannot mint extra ones on the
        // side (nor any during a revocation).
        if self.signatures > 0 {
            return Ok(Err(wit::SignerError::Denied(
                "one certificate per call: the CA already signed in this call".into(),
            )));
        }
        let signed = match self.ca() {
            Ok(ca) => ca.sign_tbs(&tbs).await.map_err(wit_error),
            Err(e) => Err(e),
        };
        if signed.is_ok() {
            self.signatures += 1;
        }
        Ok(signed)
    }

    async fn parse_csr(
        &mut self,
        pem: String,
    ) -> wasmtime::Result<Result<wit::CsrInfo, wit::SignerError>> {
        Ok(self.ca().and_then(|ca| {
            ca.parse_csr(&pem)
                .map(|c| wit::CsrInfo {
                    key_type: wit_key_type(c.key_type),
                    public_key_raw: c.public_key_raw,
                    key_id: c.key_id,
                    common_name: c.common_name,
                    dns_names: c.dns_names,
                    ip_addresses: c.ip_addresses,
                    uris: c.uris,
                })
                .map_err(wit_error)
        }))
    }

    async fn revoke_certificate(
        &mut self,
        serial: String,
    ) -> wasmtime::Result<Result<(), wit::SignerError>> {
        let ca = match self.ca() {
            Ok(ca) => ca,
            Err(e) => return Ok(Err(e)),
        };
        Ok(ca.revoke(&serial).await.map_err(wit_error))
    }
}
