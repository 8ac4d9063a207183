//! [`MountCa`]: a mount's CA behind the `signer` capability.

use std::sync::Arc;

use rcgen::{DnType, SanType};

use super::{Ca, PkiError, crl, keys, parse_serial};
use crate::barrier::SealedStorage;
use crate::plugin::{CaSigner, CsrInfo, GeneratedKey, IssuerInfo, KeyType, SignerError};

/// The CA of one mount, as a plugin call may use it.
#[derive(Clone)]
pub struct MountCa {
    mount: String,
    store: SealedStorage,
    ca: Arc<Ca>,
}

impl std::fmt::Debug for MountCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MountCa")
            .field("mount", &self.mount)
            .finish_non_exhaustive()
    }
}

impl MountCa {
    /// The CA `ca` of `mount`.
    pub fn new(mount: &str, store: SealedStorage, ca: Arc<Ca>) -> Self {
        Self {
            mount: mount.to_owned(),
            store,
            ca,
        }
    }
}

fn refused(e: PkiError) -> SignerError {
    match e {
        PkiError::Invalid(m) => SignerError::Invalid(m),
        other => SignerError::Denied(other.to_string()),
    }
}

/// Parses a PEM CSR, checking its signature.
pub fn parse_csr(pem: &str) -> Result<CsrInfo, PkiError> {
    let csr = rcgen::CertificateSigningRequestParams::from_pem(pem).map_err(|e| {
        PkiError::Invalid(match e {
            rcgen::Error::InvalidCertificationRequestSignature => {
                "the CSR's signature does not verify".to_owned()
            }
            other => format!("the CSR does not parse: {other}"),
        })
    })?;
    let public_key_raw = rcgen::PublicKeyData::der_bytes(&csr.public_key).to_vec();
    let key_type = keys::key_type_of(csr.public_key.algorithm(), &public_key_raw)?;
    let common_name = match csr.params.distinguished_name.get(&DnType::CommonName) {
        Some(rcgen::DnValue::Utf8String(s)) => Some(s.clone()),
        Some(rcgen::DnValue::PrintableString(s)) => Some(s.as_str().to_owned()),
        Some(rcgen::DnValue::Ia5String(s)) => Some(s.as_str().to_owned()),
        Some(_) => {
            return Err(PkiError::Invalid(
                "the CSR's common name is not a UTF-8 or printable string".into(),
            ));
        }
        None => None,
    };
    let (mut dns_names, mut ip_addresses, mut uris) = (Vec::new(), Vec::new(), Vec::new());
    for san in &csr.params.subject_alt_names {
        match san {
            SanType::DnsName(n) => dns_names.push(n.as_str().to_owned()),
            SanType::IpAddress(ip) => ip_addresses.push(ip.to_string()),
            SanType::URI(u) => uris.push(u.as_str().to_owned()),
            _ => {
                return Err(PkiError::Invalid(
                    "the CSR asks for a kind of subject alternative name this CA does not issue"
                        .into(),
                ));
            }
        }
    }
    Ok(CsrInfo {
        key_type,
        key_id: keys::key_id(&csr.public_key),
        public_key_raw,
        common_name,
        dns_names,
        ip_addresses,
        uris,
    })
}

#[async_trait::async_trait]
impl CaSigner for MountCa {
    async fn generate_key(&self, key_type: KeyType) -> Result<GeneratedKey, SignerError> {
        // RSA generation takes long enough to keep it off the async threads.
        tokio::task::spawn_blocking(move || keys::generate_leaf(key_type))
            .await
            .map_err(|e| SignerError::Denied(format!("key generation failed: {e}")))?
            .map_err(refused)
    }

    fn issuer(&self) -> Result<IssuerInfo, SignerError> {
        Ok(self.ca.info())
    }

    fn sign_tbs(&self, tbs: &[u8]) -> Result<Vec<u8>, SignerError> {
        self.ca.sign_tbs(tbs).map_err(refused)
    }

    fn parse_csr(&self, pem: &str) -> Result<CsrInfo, SignerError> {
        parse_csr(pem).map_err(refused)
    }

    async fn revoke(&self, serial: &str) -> Result<(), SignerError> {
        let serial = parse_serial(serial).map_err(refused)?;
        // The stored copy says when it expires, so tidy can drop the entry.
        let stored: Option<serde_json::Value> = self
            .store
            .get(&format!(
                "mounts/{}/certs/{}",
                self.mount,
                hex::encode(&serial)
            ))
            .await
            .map_err(|e| SignerError::Denied(e.to_string()))?;
        let not_after = stored.and_then(|c| c.get("not_after").and_then(serde_json::Value::as_u64));
        crl::revoke(&self.store, &self.mount, &self.ca, &serial, not_after)
            .await
            .map(|_| ())
            .map_err(refused)
    }
}
