//! A mount's CA: its certificate and key, sealed in storage as a
//! [`CaBundle`], loaded as a [`Ca`] that signs what it agrees to sign.
//! The key is either held (PKCS#8 in the sealed record) or in an HSM, the
//! record naming it ([`super::managed`]).

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde::{Deserialize, Serialize};
use x509_parser::prelude::*;
use zeroize::Zeroizing;

use super::managed::{ManagedKey, ManagedKeyRef};
use super::{PkiError, datetime, keys, random_serial, serial_text};
use crate::clock::unix_now;
use crate::hsm::Hsm;
use crate::plugin::{IssuerInfo, KeyType};

/// What storage keeps of a CA (sealed).
#[derive(Clone, Serialize, Deserialize)]
pub struct CaBundle {
    /// The CA certificate, PEM.
    pub certificate_pem: String,
    /// Its key, PKCS#8 PEM; empty when the key is in an HSM.
    #[serde(default)]
    pub key_pem: Zeroizing<String>,
    /// The certificates above it, nearest first (empty for a root).
    #[serde(default)]
    pub chain_pem: Vec<String>,
    /// The key in an HSM that signs for this CA, instead of `key_pem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_key: Option<ManagedKeyRef>,
}

impl std::fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaBundle").finish_non_exhaustive()
    }
}

/// A CA's key: held in memory while the CA is loaded, or in an HSM.
enum CaKey {
    Held(KeyPair),
    Managed(ManagedKey),
}

impl rcgen::PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        match self {
            Self::Held(k) => k.der_bytes(),
            Self::Managed(k) => k.der_bytes(),
        }
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            Self::Held(k) => rcgen::PublicKeyData::algorithm(k),
            Self::Managed(k) => k.algorithm(),
        }
    }
}

impl rcgen::SigningKey for CaKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match self {
            Self::Held(k) => k.sign(msg),
            Self::Managed(k) => k.sign(msg),
        }
    }
}

/// A CA ready to sign.
pub struct Ca {
    bundle: CaBundle,
    cert_der: Vec<u8>,
    key: CaKey,
    key_type: KeyType,
    subject: Vec<(String, String)>,
    key_id: Vec<u8>,
    not_after: u64,
    serial: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

fn pem_to_der(pem_text: &str, what: &str) -> Result<Vec<u8>, PkiError> {
    ::pem::parse(pem_text)
        .map(::pem::Pem::into_contents)
        .map_err(|_| PkiError::Invalid(format!("{what} is not PEM")))
}

/// The signature AlgorithmIdentifier OID a CA key of `key_type` signs with
/// (as rcgen writes it).
fn signature_oid(key_type: KeyType) -> &'static str {
    match key_type {
        KeyType::EcP256 => "1.2.840.10045.4.3.2",
        KeyType::EcP384 => "1.2.840.10045.4.3.3",
        KeyType::Ed25519 => "1.3.101.112",
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => "1.2.840.113549.1.1.11",
    }
}

fn parse_serial_bytes(text: &str) -> Vec<u8> {
    super::parse_serial(text).unwrap_or_default()
}

fn name_attributes(name: &X509Name<'_>) -> Vec<(String, String)> {
    name.iter_attributes()
        .map(|a| {
            (
                a.attr_type().to_id_string(),
                a.as_str().map(str::to_owned).unwrap_or_default(),
            )
        })
        .collect()
}

impl Ca {
    /// Loads a stored bundle, checking that the key matches the certificate.
    /// A bundle whose key is in an HSM needs [`Self::load_with`].
    pub fn load(bundle: CaBundle) -> Result<Self, PkiError> {
        Self::load_with(bundle, None)
    }

    /// Loads a stored bundle whose key may be in `hsm`'s token.
    pub fn load_with(bundle: CaBundle, hsm: Option<&Arc<Hsm>>) -> Result<Self, PkiError> {
        use rcgen::PublicKeyData;
        let cert_der = pem_to_der(&bundle.certificate_pem, "the CA certificate")?;
        let key = match &bundle.managed_key {
            None => CaKey::Held(keys::load(&bundle.key_pem)?),
            Some(reference) => {
                let hsm = hsm.ok_or_else(|| {
                    PkiError::Hsm(format!(
                        "this CA's key is in an HSM (key '{}'), and the broker has no HSM \
                         configured ([hsm], or a pkcs11 seal)",
                        reference.label
                    ))
                })?;
                CaKey::Managed(ManagedKey::new(hsm.clone(), reference.clone())?)
            }
        };
        let (_, cert) = X509Certificate::from_der(&cert_der)
            .map_err(|e| PkiError::Invalid(format!("the CA certificate does not parse: {e}")))?;
        if cert.public_key().subject_public_key.data.as_ref() != key.der_bytes() {
            return Err(PkiError::Invalid(
                "the private key does not belong to the CA certificate".into(),
            ));
        }
        if !cert.is_ca() {
            return Err(PkiError::Invalid(
                "the certificate is not a CA (basicConstraints cA is not set)".into(),
            ));
        }
        let key_type = keys::key_type_of(key.algorithm(), key.der_bytes())?;
        let key_id = cert
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            })
            .unwrap_or_else(|| keys::key_id(&key));
        let not_after = u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0);
        let subject = name_attributes(cert.subject());
        let serial = serial_text(cert.raw_serial());
        Ok(Self {
            bundle,
            cert_der,
            key,
            key_type,
            subject,
            key_id,
            not_after,
            serial,
        })
    }

    /// A CA from PEM certificates (its own first, then those above it) and
    /// its key.
    pub fn from_chain(certs: &[String], key_pem: Zeroizing<String>) -> Result<Self, PkiError> {
        let Some((first, chain)) = certs.split_first() else {
            return Err(PkiError::Invalid("no PEM certificate given".into()));
        };
        Self::load(CaBundle {
            certificate_pem: first.clone(),
            key_pem,
            chain_pem: chain.to_vec(),
            managed_key: None,
        })
    }

    /// A CA from PEM certificates (its own first, then those above it)
    /// whose key is `key`, in an HSM.
    pub fn from_chain_managed(
        certs: &[String],
        key: &ManagedKeyRef,
        hsm: &Arc<Hsm>,
    ) -> Result<Self, PkiError> {
        let Some((first, chain)) = certs.split_first() else {
            return Err(PkiError::Invalid("no PEM certificate given".into()));
        };
        Self::load_with(
            CaBundle {
                certificate_pem: first.clone(),
                key_pem: Zeroizing::default(),
                chain_pem: chain.to_vec(),
                managed_key: Some(key.clone()),
            },
            Some(hsm),
        )
    }

    /// Whether the key is in an HSM: signing then blocks on the token, so
    /// async callers sign on a blocking thread.
    pub fn signs_in_hsm(&self) -> bool {
        matches!(self.key, CaKey::Managed(_))
    }

    /// rcgen's error, with the HSM's reason when the HSM failed (rcgen's
    /// error for a remote key says nothing of why).
    pub(crate) fn rcgen_error(&self, e: rcgen::Error) -> PkiError {
        if let (rcgen::Error::RemoteKeyError, CaKey::Managed(key)) = (&e, &self.key)
            && let Some(why) = key.take_error()
        {
            return PkiError::Hsm(why);
        }
        e.into()
    }

    /// The bundle to store.
    pub fn bundle(&self) -> &CaBundle {
        &self.bundle
    }

    /// The CA certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA certificate, PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.bundle.certificate_pem
    }

    /// The CA's serial, `aa:bb:…`.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// When the CA expires.
    pub fn not_after(&self) -> u64 {
        self.not_after
    }

    /// The chain above this CA and itself, nearest first.
    pub fn chain_pem(&self) -> Vec<String> {
        let mut chain = vec![self.bundle.certificate_pem.clone()];
        chain.extend(self.bundle.chain_pem.iter().cloned());
        chain
    }

    /// rcgen's view of this CA as an issuer. Signing through it blocks
    /// when [`Self::signs_in_hsm`].
    pub fn issuer(&self) -> Result<Issuer<'_, impl rcgen::SigningKey + '_>, PkiError> {
        Ok(Issuer::from_ca_cert_der(
            &self.cert_der.as_slice().into(),
            &self.key,
        )?)
    }

    /// What a plugin may know of this CA.
    pub fn info(&self) -> IssuerInfo {
        IssuerInfo {
            certificate_der: self.cert_der.clone(),
            subject: self.subject.clone(),
            key_id: self.key_id.clone(),
            key_type: self.key_type,
            not_after: self.not_after,
        }
    }

    /// Checks `tbs` as [`Self::check_tbs`] does, and signs it.
    pub fn sign_tbs(&self, tbs: &[u8]) -> Result<Vec<u8>, PkiError> {
        self.check_tbs(tbs)?;
        self.sign_checked(tbs)
    }

    /// Signs `tbs`, which [`Self::check_tbs`] accepted. Blocks on the
    /// token when [`Self::signs_in_hsm`].
    pub(crate) fn sign_checked(&self, tbs: &[u8]) -> Result<Vec<u8>, PkiError> {
        use rcgen::SigningKey;
        match &self.key {
            CaKey::Held(key) => Ok(key.sign(tbs)?),
            CaKey::Managed(key) => key.sign_message(tbs),
        }
    }

    /// [`Self::sign_checked`], on a blocking thread when the key is in an
    /// HSM.
    pub(crate) async fn sign_checked_async(
        self: &Arc<Self>,
        tbs: &[u8],
    ) -> Result<Vec<u8>, PkiError> {
        if !self.signs_in_hsm() {
            return self.sign_checked(tbs);
        }
        let (ca, tbs) = (self.clone(), tbs.to_vec());
        tokio::task::spawn_blocking(move || ca.sign_checked(&tbs))
            .await
            .map_err(|e| PkiError::Hsm(format!("signing stopped: {e}")))?
    }

    /// Checks that `tbs` is a leaf this CA may sign (not a CA, this issuer's
    /// name, this CA's signature algorithm, within this CA's lifetime);
    /// returns its serial and expiry.
    pub fn check_tbs(&self, tbs: &[u8]) -> Result<TbsFacts, PkiError> {
        let refuse = |why: &str| Err(PkiError::Invalid(format!("the CA refuses to sign: {why}")));
        let (rest, parsed) = TbsCertificate::from_der(tbs)
            .map_err(|e| PkiError::Invalid(format!("not a TBSCertificate: {e}")))?;
        if !rest.is_empty() {
            return refuse("trailing bytes after the TBSCertificate");
        }
        if parsed.version() != X509Version::V3 {
            return refuse("only X.509 v3 certificates are signed");
        }
        if name_attributes(parsed.issuer()) != self.subject {
            return refuse("the issuer name is not this CA's");
        }
        if parsed.signature.algorithm.to_id_string() != signature_oid(self.key_type) {
            return refuse("the signature algorithm is not this CA's");
        }
        if parsed.raw_serial() == parse_serial_bytes(&self.serial).as_slice() {
            return refuse("the serial is the CA's own");
        }
        // An allowlist: every extension must be one a leaf needs, must
        // parse, and must appear once. Anything else is refused, so a
        // malformed or unknown extension cannot smuggle in a CA.
        let mut seen = std::collections::HashSet::new();
        let mut basic_constraints = false;
        for ext in parsed.extensions() {
            if !seen.insert(ext.oid.to_id_string()) {
                return refuse("an extension appears twice");
            }
            match ext.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) => {
                    if bc.ca {
                        return refuse("it is a CA certificate");
                    }
                    basic_constraints = true;
                }
                ParsedExtension::KeyUsage(ku) => {
                    if ku.key_cert_sign() || ku.crl_sign() {
                        return refuse("it asks for certificate or CRL signing");
                    }
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    if eku.any
                        || eku.code_signing
                        || eku.email_protection
                        || eku.time_stamping
                        || eku.ocsp_signing
                        || !eku.other.is_empty()
                    {
                        return refuse(
                            "only serverAuth and clientAuth extended key usages are signed",
                        );
                    }
                }
                ParsedExtension::SubjectAlternativeName(_)
                | ParsedExtension::SubjectKeyIdentifier(_)
                | ParsedExtension::AuthorityKeyIdentifier(_) => {}
                _ => {
                    return refuse(&format!(
                        "extension {} is not one this CA signs, or does not parse",
                        ext.oid.to_id_string()
                    ));
                }
            }
        }
        if !basic_constraints {
            return refuse("a leaf must say basicConstraints cA=FALSE");
        }
        let validity = parsed.validity();
        let not_before = validity.not_before.timestamp();
        let not_after = validity.not_after.timestamp();
        if not_before > not_after {
            return refuse("its validity ends before it starts");
        }
        if u64::try_from(not_after).unwrap_or(u64::MAX) > self.not_after {
            return refuse("it would outlive the CA");
        }
        Ok(TbsFacts {
            serial: parsed.raw_serial().to_vec(),
            not_after: u64::try_from(not_after).unwrap_or(0),
        })
    }

    /// Signs an intermediate CA's CSR (`root/sign-intermediate`): the host
    /// alone makes CA certificates, never a plugin.
    pub fn sign_intermediate(
        &self,
        csr_pem: &str,
        common_name: Option<&str>,
        ttl_secs: u64,
    ) -> Result<(String, String), PkiError> {
        let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::Invalid(format!("the CSR was refused: {e}")))?;
        let not_after = unix_now().saturating_add(ttl_secs);
        if not_after > self.not_after {
            return Err(PkiError::Invalid(
                "ttl: the intermediate would outlive this CA".into(),
            ));
        }
        let serial = random_serial()?;
        let params = &mut csr.params;
        match common_name {
            Some(cn) => {
                check_common_name(cn)?;
                params.distinguished_name = DistinguishedName::new();
                params.distinguished_name.push(DnType::CommonName, cn);
            }
            None => check_subject(&params.distinguished_name)?,
        }
        make_ca(params, not_after, &serial);
        params.use_authority_key_identifier_extension = true;
        let cert = csr
            .signed_by(&self.issuer()?)
            .map_err(|e| self.rcgen_error(e))?;
        Ok((cert.pem(), serial_text(&serial)))
    }
}

/// X.509's upper bound on a common name (RFC 5280, `ub-common-name`).
pub const MAX_COMMON_NAME: usize = 64;

/// A CA's common name: 1 to [`MAX_COMMON_NAME`] characters, no control
/// characters. Clients and other CAs refuse longer ones, and a request must
/// not size what the broker signs and stores.
pub fn check_common_name(cn: &str) -> Result<(), PkiError> {
    if cn.is_empty() || cn.chars().count() > MAX_COMMON_NAME {
        return Err(PkiError::Invalid(format!(
            "common_name must be 1 to {MAX_COMMON_NAME} characters (X.509's bound)"
        )));
    }
    if cn.chars().any(char::is_control) {
        return Err(PkiError::Invalid(
            "common_name must not hold control characters".into(),
        ));
    }
    Ok(())
}

/// A CSR's subject, kept when no common name is given: each attribute
/// within X.509's bound for a common name.
fn check_subject(subject: &DistinguishedName) -> Result<(), PkiError> {
    for (_, value) in subject.iter() {
        let len = match value {
            rcgen::DnValue::Utf8String(s) => s.chars().count(),
            rcgen::DnValue::PrintableString(s) => s.as_str().len(),
            rcgen::DnValue::Ia5String(s) => s.as_str().len(),
            rcgen::DnValue::TeletexString(s) => s.as_str().len(),
            rcgen::DnValue::BmpString(s) => s.as_bytes().len() / 2,
            rcgen::DnValue::UniversalString(s) => s.as_bytes().len() / 4,
            _ => 0,
        };
        if len > MAX_COMMON_NAME {
            return Err(PkiError::Invalid(format!(
                "the CSR's subject has an attribute longer than {MAX_COMMON_NAME} characters; \
                 give common_name to replace it"
            )));
        }
    }
    Ok(())
}

/// What every CA certificate this broker makes says: a CA, signing
/// certificates and CRLs, from a little before now to `not_after`.
fn make_ca(params: &mut CertificateParams, not_after: u64, serial: &[u8]) {
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = datetime(unix_now().saturating_sub(30));
    params.not_after = datetime(not_after);
    params.serial_number = Some(serial.to_vec().into());
}

/// The certificate of a new root CA, before it is signed.
fn root_params(common_name: &str, ttl_secs: u64) -> Result<CertificateParams, PkiError> {
    if unix_now().saturating_add(ttl_secs) > super::MAX_NOT_AFTER {
        return Err(PkiError::Invalid(
            "ttl: a certificate cannot end after the year 9999".into(),
        ));
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    make_ca(
        &mut params,
        unix_now().saturating_add(ttl_secs),
        &random_serial()?,
    );
    Ok(params)
}

/// A new self-signed root CA.
pub fn generate_root(common_name: &str, ttl_secs: u64, key_type: KeyType) -> Result<Ca, PkiError> {
    let params = root_params(common_name, ttl_secs)?;
    let key = keys::generate(key_type)?;
    let cert = params.self_signed(&key)?;
    Ca::load(CaBundle {
        certificate_pem: cert.pem(),
        key_pem: Zeroizing::new(key.serialize_pem()),
        chain_pem: Vec::new(),
        managed_key: None,
    })
}

/// A new self-signed root CA whose key is `key`, in an HSM. Blocking.
pub fn generate_root_managed(
    common_name: &str,
    ttl_secs: u64,
    key: &ManagedKey,
) -> Result<Ca, PkiError> {
    let params = root_params(common_name, ttl_secs)?;
    let cert = params.self_signed(key).map_err(|e| managed_error(key, e))?;
    Ca::load_with(
        CaBundle {
            certificate_pem: cert.pem(),
            key_pem: Zeroizing::default(),
            chain_pem: Vec::new(),
            managed_key: Some(key.reference().clone()),
        },
        Some(key.hsm()),
    )
}

fn managed_error(key: &ManagedKey, e: rcgen::Error) -> PkiError {
    match (&e, key.take_error()) {
        (rcgen::Error::RemoteKeyError, Some(why)) => PkiError::Hsm(why),
        _ => e.into(),
    }
}

/// A key and a CSR for an intermediate CA; the key waits for the signed
/// certificate (`intermediate/set-signed`).
pub fn generate_intermediate_csr(
    common_name: &str,
    key_type: KeyType,
) -> Result<(String, Zeroizing<String>), PkiError> {
    let key = keys::generate(key_type)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let csr = params.serialize_request(&key)?;
    Ok((csr.pem()?, Zeroizing::new(key.serialize_pem())))
}

/// A CSR for an intermediate CA whose key is `key`, in an HSM; the
/// certificate comes back through `intermediate/set-signed`. Blocking.
pub fn generate_intermediate_csr_managed(
    common_name: &str,
    key: &ManagedKey,
) -> Result<String, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let csr = params
        .serialize_request(key)
        .map_err(|e| managed_error(key, e))?;
    Ok(csr.pem()?)
}

/// Splits a PEM bundle into its certificates and its private key.
pub fn split_bundle(text: &str) -> Result<(Vec<String>, Option<Zeroizing<String>>), PkiError> {
    let mut certs = Vec::new();
    let mut key = None;
    for block in text.split("-----BEGIN ").skip(1) {
        let Some((label, _)) = block.split_once("-----") else {
            continue;
        };
        // A label is short uppercase text; anything else may be key
        // material and must not be quoted back.
        let shown = if label.len() <= 40
            && label
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b' ' || b.is_ascii_digit())
        {
            label
        } else {
            "(malformed)"
        };
        let Some(end) = block.find(&format!("-----END {label}-----")) else {
            return Err(PkiError::Invalid(format!(
                "unterminated PEM block {shown:?}"
            )));
        };
        let pem = format!("-----BEGIN {}-----END {label}-----\n", &block[..end]);
        match label {
            "CERTIFICATE" => certs.push(pem),
            l if l.ends_with("PRIVATE KEY") => key = Some(Zeroizing::new(pem)),
            _ => {
                return Err(PkiError::Invalid(format!(
                    "unexpected PEM block {shown:?} in the bundle"
                )));
            }
        }
    }
    Ok((certs, key))
}

/// The public key bits of a PEM certificate, to match a pending key.
pub fn certificate_public_key(pem: &str) -> Result<Vec<u8>, PkiError> {
    let der = pem_to_der(pem, "the certificate")?;
    let (_, cert) = X509Certificate::from_der(&der)
        .map_err(|e| PkiError::Invalid(format!("the certificate does not parse: {e}")))?;
    Ok(cert.public_key().subject_public_key.data.to_vec())
}

/// What the host learns of a leaf it agreed to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TbsFacts {
    /// Its serial, as encoded.
    pub serial: Vec<u8>,
    /// When it expires, Unix seconds.
    pub not_after: u64,
}

/// Serial (`aa:bb:…`) and expiry of a PEM certificate.
pub fn certificate_facts(pem: &str) -> Result<(String, u64), PkiError> {
    let der = pem_to_der(pem, "the certificate")?;
    let (_, cert) = X509Certificate::from_der(&der)
        .map_err(|e| PkiError::Invalid(format!("the certificate does not parse: {e}")))?;
    Ok((
        serial_text(cert.raw_serial()),
        u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0),
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::RefCell;

    use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey};

    use super::*;

    /// Records the TBS rcgen asks it to sign: what a plugin would send.
    struct Capture {
        alg: &'static SignatureAlgorithm,
        tbs: RefCell<Vec<u8>>,
    }

    impl PublicKeyData for Capture {
        fn der_bytes(&self) -> &[u8] {
            &[]
        }
        fn algorithm(&self) -> &'static SignatureAlgorithm {
            self.alg
        }
    }

    impl SigningKey for Capture {
        fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
            *self.tbs.borrow_mut() = msg.to_vec();
            Ok(vec![0; 8])
        }
    }

    /// A leaf's TBSCertificate as a plugin would build it for `ca`.
    pub(crate) fn tbs(
        ca: &Ca,
        issuer_cn: &str,
        edit: impl FnOnce(&mut CertificateParams),
    ) -> Vec<u8> {
        let mut issuer_params = CertificateParams::default();
        issuer_params.distinguished_name = DistinguishedName::new();
        issuer_params
            .distinguished_name
            .push(DnType::CommonName, issuer_cn);
        issuer_params.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(ca.info().key_id);
        let capture = Capture {
            alg: &rcgen::PKCS_ECDSA_P256_SHA256,
            tbs: RefCell::new(Vec::new()),
        };
        let issuer = Issuer::new(issuer_params, capture);
        let leaf_key = keys::generate(KeyType::EcP256).unwrap();
        let mut leaf = CertificateParams::new(vec!["a.example.com".into()]).unwrap();
        leaf.not_before = datetime(unix_now());
        leaf.not_after = datetime(unix_now() + 3600);
        leaf.is_ca = IsCa::ExplicitNoCa;
        edit(&mut leaf);
        leaf.signed_by(&leaf_key, &issuer).unwrap();
        issuer.key().tbs.borrow().clone()
    }

    #[test]
    fn the_ca_signs_leaves_and_nothing_else() {
        let ca = generate_root("Root", 86400, KeyType::EcP256).unwrap();
        assert!(ca.sign_tbs(&tbs(&ca, "Root", |_| {})).is_ok());

        let refuses = |tbs: Vec<u8>, why: &str| {
            let e = ca.sign_tbs(&tbs).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        };
        refuses(
            tbs(&ca, "Root", |p| {
                p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            }),
            "CA certificate",
        );
        refuses(
            tbs(&ca, "Root", |p| {
                p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
            }),
            "certificate or CRL signing",
        );
        refuses(tbs(&ca, "Other Root", |_| {}), "issuer name");
        refuses(
            tbs(&ca, "Root", |p| {
                p.not_after = datetime(unix_now() + 2 * 86400);
            }),
            "outlive",
        );
        refuses(b"not der".to_vec(), "TBSCertificate");
        refuses(
            tbs(&ca, "Root", |p| p.is_ca = IsCa::NoCa),
            "basicConstraints",
        );
        refuses(
            tbs(&ca, "Root", |p| {
                p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning];
            }),
            "extended key usages",
        );
        refuses(
            tbs(&ca, "Root", |p| {
                p.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
                    &[1, 3, 6, 1, 4, 1, 99999, 1],
                    vec![0x05, 0x00],
                )];
            }),
            "not one this CA signs",
        );
        // basicConstraints cA=TRUE with a pathLen x509-parser cannot hold
        // (2^32), next to the cA=FALSE one: refused, never skipped.
        refuses(
            tbs(&ca, "Root", |p| {
                p.is_ca = IsCa::NoCa;
                p.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
                    &[2, 5, 29, 19],
                    vec![
                        0x30, 0x0a, 0x01, 0x01, 0xff, 0x02, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00,
                    ],
                )];
            }),
            "the CA refuses to sign",
        );
    }
}
