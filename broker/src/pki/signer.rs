//! [`MountCa`]: a mount's CA behind the `signer` capability.

use std::sync::Arc;

use rcgen::{DnType, SanType};

use super::{Ca, PkiError, crl, keys, parse_serial};
use crate::framework::StorageView;
use crate::plugin::{CaSigner, CsrInfo, GeneratedKey, IssuerInfo, KeyType, SignerError};

/// The CA of one mount, as a plugin call may use it.
#[derive(Clone)]
pub struct MountCa {
    /// The mount's storage.
    store: StorageView,
    ca: Arc<Ca>,
}

impl std::fmt::Debug for MountCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MountCa")
            .field("storage", &self.store.root())
            .finish_non_exhaustive()
    }
}

impl MountCa {
    /// The CA `ca` of the mount whose storage is `store`.
    pub fn new(store: StorageView, ca: Arc<Ca>) -> Self {
        Self { store, ca }
    }
}

/// The record of a serial this CA signed, kept until tidy drops it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Issued {
    /// When the certificate expires, Unix seconds.
    pub(crate) not_after: u64,
}

/// Where the record of `serial` lives in its mount's storage.
pub(crate) fn issued_key(serial: &[u8]) -> String {
    format!("serials/{}", hex::encode(serial))
}

/// Where a certificate's stored copy lives in its mount's storage.
pub(crate) fn stored_key(serial: &[u8]) -> String {
    format!("certs/{}", hex::encode(serial))
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

    async fn sign_tbs(&self, tbs: &[u8]) -> Result<Vec<u8>, SignerError> {
        let facts = self.ca.check_tbs(tbs).map_err(refused)?;
        // Serials are unique per CA (RFC 5280 §4.1.2.2): a plugin that
        // reused one would overwrite another certificate's stored copy and
        // make revoking one revoke both. The record is made before the
        // signature, atomically, and says when the certificate expires.
        // Certificates stored before serials were recorded count too.
        let stored_copy = self.store.key(&stored_key(&facts.serial));
        let already_stored = self
            .store
            .sealed()
            .storage()
            .get(&stored_copy)
            .await
            .map_err(|e| SignerError::Denied(format!("cannot check the serial: {e}")))?
            .is_some();
        let record = Issued {
            not_after: facts.not_after,
        };
        let fresh = !already_stored
            && self
                .store
                .create(&issued_key(&facts.serial), &record)
                .await
                .map_err(|e| SignerError::Denied(format!("cannot record the serial: {e}")))?;
        if !fresh {
            return Err(SignerError::Invalid(format!(
                "serial {} was already issued by this CA",
                super::serial_text(&facts.serial)
            )));
        }
        self.ca.sign_checked_async(tbs).await.map_err(refused)
    }

    fn parse_csr(&self, pem: &str) -> Result<CsrInfo, SignerError> {
        parse_csr(pem).map_err(refused)
    }

    async fn revoke(&self, serial: &str) -> Result<(), SignerError> {
        let serial = parse_serial(serial).map_err(refused)?;
        // The serial's record says when it expires, so tidy can drop the
        // entry; so does a stored copy made before serials were recorded.
        let issued: Option<Issued> = self
            .store
            .get(&issued_key(&serial))
            .await
            .map_err(|e| SignerError::Denied(e.to_string()))?;
        let not_after = match issued {
            Some(i) => Some(i.not_after),
            None => {
                let stored: Option<serde_json::Value> = self
                    .store
                    .get(&stored_key(&serial))
                    .await
                    .map_err(|e| SignerError::Denied(e.to_string()))?;
                stored.and_then(|c| c.get("not_after").and_then(serde_json::Value::as_u64))
            }
        };
        crl::revoke(&self.store, &self.ca, &serial, not_after)
            .await
            .map(|_| ())
            .map_err(refused)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::barrier::{Barrier, Keyring};
    use crate::pki::ca::tests::tbs;

    #[tokio::test]
    async fn a_serial_is_signed_once_and_its_expiry_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let storage: crate::storage::Storage = Arc::new(
            crate::storage::SqliteBackend::open(&dir.path().join("db"))
                .await
                .unwrap(),
        );
        let store = StorageView::for_mount(
            crate::barrier::SealedStorage::new(
                storage,
                Arc::new(Barrier::new(Keyring::generate().unwrap())),
            ),
            "0000",
        );
        let ca = Arc::new(crate::pki::ca::generate_root("Root", 86400, KeyType::EcP256).unwrap());
        let signer = MountCa::new(store.clone(), ca.clone());
        let serial = vec![0x0a, 0x0b, 0x0c];
        let same_serial = |p: &mut rcgen::CertificateParams| {
            p.serial_number = Some(rcgen::SerialNumber::from(vec![0x0a, 0x0b, 0x0c]));
        };
        assert!(
            signer
                .sign_tbs(&tbs(&ca, "Root", same_serial))
                .await
                .is_ok()
        );
        let again = signer
            .sign_tbs(&tbs(&ca, "Root", same_serial))
            .await
            .unwrap_err()
            .to_string();
        assert!(again.contains("already issued"), "{again}");
        let record: Issued = store.get(&issued_key(&serial)).await.unwrap().unwrap();
        assert!(record.not_after > crate::clock::unix_now(), "{record:?}");
        // A CA refusal records nothing.
        let other = |p: &mut rcgen::CertificateParams| {
            p.serial_number = Some(rcgen::SerialNumber::from(vec![0x01]));
            p.not_after = crate::pki::datetime(crate::clock::unix_now() + 2 * 86400);
        };
        assert!(signer.sign_tbs(&tbs(&ca, "Root", other)).await.is_err());
        assert!(
            store
                .get::<Issued>(&issued_key(&[0x01]))
                .await
                .unwrap()
                .is_none()
        );
    }
}
