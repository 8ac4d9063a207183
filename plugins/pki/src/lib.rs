//! The built-in certificate plugin.
//!
//! Written with the SDK as a third party would write one. It decides what a
//! certificate may say — the role's policy on names, IP and URI SANs, key
//! type, flags — and builds it with `rcgen`. It never holds the CA's key:
//! the host signs the TBSCertificate through the `signer` capability, after
//! its own checks, and generates the leaf key pair. Revoking a lease puts
//! the serial on the mount's CRL.

mod policy;

use broker_plugin_sdk::prelude::*;
use broker_plugin_sdk::signer::{self, KeyType};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyIdMethod,
    KeyUsagePurpose, PublicKeyData, SanType, SignatureAlgorithm, SigningKey,
};
use serde::{Deserialize, Deserializer};

use policy::{MAX_CN_LEN, NamePolicy, check_ip, check_uri};

/// A comma-separated string or a list, as Vault takes lists.
fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<Raw>::deserialize(d)? {
        None => Vec::new(),
        Some(Raw::One(s)) => s
            .split(',')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect(),
        Some(Raw::Many(v)) => v,
    })
}

fn yes() -> bool {
    true
}

/// A role (`roles/:name`), with Vault's field names and defaults. TTLs are
/// the host's business.
#[derive(Debug, Deserialize)]
pub struct Role {
    #[serde(default, deserialize_with = "list")]
    allowed_domains: Vec<String>,
    #[serde(default)]
    allow_subdomains: bool,
    #[serde(default)]
    allow_bare_domains: bool,
    #[serde(default)]
    allow_glob_domains: bool,
    #[serde(default = "yes")]
    allow_localhost: bool,
    #[serde(default = "yes")]
    allow_ip_sans: bool,
    #[serde(default, deserialize_with = "list")]
    allowed_uri_sans: Vec<String>,
    #[serde(default)]
    allow_any_name: bool,
    #[serde(default = "yes")]
    enforce_hostnames: bool,
    #[serde(default = "yes")]
    allow_wildcard_certificates: bool,
    #[serde(default)]
    key_type: Option<String>,
    #[serde(default)]
    key_bits: u64,
    #[serde(default = "yes")]
    server_flag: bool,
    #[serde(default = "yes")]
    client_flag: bool,
    /// Seconds (the host turns durations into seconds).
    #[serde(default)]
    not_before_duration: Option<u64>,
    #[serde(default = "yes")]
    require_cn: bool,
}

/// What a request may ask for.
#[derive(Debug, Deserialize)]
struct Parameters {
    #[serde(default)]
    common_name: Option<String>,
    #[serde(default, deserialize_with = "list")]
    alt_names: Vec<String>,
    #[serde(default, deserialize_with = "list")]
    ip_sans: Vec<String>,
    #[serde(default, deserialize_with = "list")]
    uri_sans: Vec<String>,
    #[serde(default)]
    exclude_cn_from_sans: bool,
    #[serde(default)]
    csr: Option<String>,
    /// `issue` or `sign`, set by the host.
    operation: String,
}

fn key_type(role: &Role) -> Result<KeyType> {
    Ok(
        match (role.key_type.as_deref().unwrap_or("ec"), role.key_bits) {
            ("ec", 0 | 256) => KeyType::EcP256,
            ("ec", 384) => KeyType::EcP384,
            ("rsa", 0 | 2048) => KeyType::Rsa2048,
            ("rsa", 3072) => KeyType::Rsa3072,
            ("rsa", 4096) => KeyType::Rsa4096,
            ("ed25519", _) => KeyType::Ed25519,
            ("any", _) => return Err(Error::config("key_type any is only for sign")),
            (t, b) => {
                return Err(Error::config(format!(
                    "unsupported key_type {t:?} / key_bits {b}"
                )));
            }
        },
    )
}

fn algorithm(key_type: KeyType) -> &'static SignatureAlgorithm {
    match key_type {
        KeyType::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyType::Ed25519 => &rcgen::PKCS_ED25519,
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
    }
}

fn kind(key_type: KeyType) -> &'static str {
    match key_type {
        KeyType::EcP256 | KeyType::EcP384 => "ec",
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => "rsa",
        KeyType::Ed25519 => "ed25519",
    }
}

/// A public key rcgen encodes into the certificate.
struct LeafKey {
    raw: Vec<u8>,
    alg: &'static SignatureAlgorithm,
}

impl PublicKeyData for LeafKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

/// The CA's key, which stays in the host: signing asks the host, and keeps
/// the host's reason when it refuses (rcgen's error cannot carry it).
struct HostCa {
    alg: &'static SignatureAlgorithm,
    refused: std::cell::RefCell<Option<Error>>,
}

impl PublicKeyData for HostCa {
    fn der_bytes(&self) -> &[u8] {
        // Only used to derive key ids, which are given (PreSpecified).
        &[]
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

impl SigningKey for HostCa {
    fn sign(&self, tbs: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        signer::sign_tbs(tbs).map_err(|e| {
            *self.refused.borrow_mut() = Some(e);
            rcgen::Error::RemoteKeyError
        })
    }
}

fn time(unix: u64) -> Result<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(unix).map_err(Error::internal)?)
        .map_err(Error::internal)
}

struct Pki;

impl Plugin for Pki {
    type Config = serde_json::Value;
    type Role = Role;
    /// The serial, `aa:bb:…`.
    type Revocation = String;

    fn info() -> Info {
        Info::new("pki", env!("CARGO_PKG_VERSION"))
            .alias("pki-plugin")
            .capability(Capability::Signer)
    }

    /// Decides and signs the certificate. Nothing outside the broker
    /// changes until the credential is returned, so signing here is safe:
    /// a crash leaves a certificate nobody ever received.
    fn prepare(
        _connection: &Connection<Self::Config>,
        request: &IssueRequest<Role>,
    ) -> Result<Prepared<String>> {
        let role = &request.role;
        let params: Parameters =
            serde_json::from_value(serde_json::Value::Object(request.parameters.clone()))
                .map_err(|e| Error::request(format!("invalid request: {e}")))?;
        let policy = NamePolicy {
            allowed_domains: role.allowed_domains.clone(),
            allow_subdomains: role.allow_subdomains,
            allow_bare_domains: role.allow_bare_domains,
            allow_glob_domains: role.allow_glob_domains,
            allow_localhost: role.allow_localhost,
            allow_any_name: role.allow_any_name,
            enforce_hostnames: role.enforce_hostnames,
            allow_wildcard_certificates: role.allow_wildcard_certificates,
        };

        // The key: made by the host, or the CSR's (whose signature the host checked).
        let (key_type, public_key_raw, key_id, private_key, csr_names) =
            match (params.operation.as_str(), &params.csr) {
                ("sign", Some(csr)) => {
                    let csr = signer::parse_csr(csr)?;
                    let wanted = key_type(role)?;
                    if role.key_type.as_deref() != Some("any") && kind(csr.key_type) != kind(wanted)
                    {
                        return Err(Error::request(format!(
                            "the CSR's key is {} but the role wants {}",
                            kind(csr.key_type),
                            kind(wanted)
                        )));
                    }
                    let names = (csr.common_name, csr.dns_names, csr.ip_addresses, csr.uris);
                    (
                        csr.key_type,
                        csr.public_key_raw,
                        csr.key_id,
                        None,
                        Some(names),
                    )
                }
                ("sign", None) => return Err(Error::request("csr is required")),
                _ => {
                    let key = signer::generate_key(key_type(role)?)?;
                    (
                        key.key_type,
                        key.public_key_raw,
                        key.key_id,
                        Some(key.private_key_pem),
                        None,
                    )
                }
            };

        // Names: the request's, else the CSR's.
        let (csr_cn, csr_dns, csr_ips, csr_uris) = csr_names.unwrap_or_default();
        let common_name = params.common_name.clone().or(csr_cn);
        let dns = if params.alt_names.is_empty() {
            csr_dns
        } else {
            params.alt_names.clone()
        };
        let ips = if params.ip_sans.is_empty() {
            csr_ips
        } else {
            params.ip_sans.clone()
        };
        let uris = if params.uri_sans.is_empty() {
            csr_uris
        } else {
            params.uri_sans.clone()
        };

        let mut dn = DistinguishedName::new();
        let mut sans = Vec::new();
        match &common_name {
            Some(cn) => {
                if cn.chars().count() > MAX_CN_LEN {
                    return Err(Error::request(format!(
                        "common_name is longer than {MAX_CN_LEN} characters"
                    )));
                }
                let cn = policy.check(cn).map_err(Error::request)?;
                if !params.exclude_cn_from_sans {
                    sans.push(cn.clone());
                }
                dn.push(DnType::CommonName, cn);
            }
            None if role.require_cn => return Err(Error::request("common_name is required")),
            None => {}
        }
        for name in &dns {
            let name = policy.check(name).map_err(Error::request)?;
            if !sans.contains(&name) {
                sans.push(name);
            }
        }
        let mut subject_alt_names = Vec::new();
        for name in sans {
            subject_alt_names.push(SanType::DnsName(
                name.try_into()
                    .map_err(|_| Error::request("a DNS name is not IA5"))?,
            ));
        }
        for ip in &ips {
            subject_alt_names.push(SanType::IpAddress(
                check_ip(ip, role.allow_ip_sans).map_err(Error::request)?,
            ));
        }
        for uri in &uris {
            let uri = check_uri(uri, &role.allowed_uri_sans).map_err(Error::request)?;
            subject_alt_names.push(SanType::URI(
                uri.try_into()
                    .map_err(|_| Error::request("a URI is not IA5"))?,
            ));
        }
        if subject_alt_names.is_empty() && common_name.is_none() {
            return Err(Error::request("the certificate would name nothing"));
        }

        // The issuer, as the host describes it.
        let ca = signer::issuer()?;
        let mut issuer_params = CertificateParams::default();
        issuer_params.distinguished_name = DistinguishedName::new();
        for attr in &ca.subject {
            let oid: Vec<u64> = attr
                .oid
                .split('.')
                .map(str::parse)
                .collect::<std::result::Result<_, _>>()
                .map_err(Error::internal)?;
            issuer_params
                .distinguished_name
                .push(DnType::from_oid(&oid), attr.value.clone());
        }
        issuer_params.key_identifier_method = KeyIdMethod::PreSpecified(ca.key_id.clone());
        let issuer = Issuer::new(
            issuer_params,
            HostCa {
                alg: algorithm(ca.key_type),
                refused: std::cell::RefCell::new(None),
            },
        );

        let now = broker_plugin_sdk::host::now();
        let mut serial = [0u8; 20];
        broker_plugin_sdk::host::fill_random(&mut serial);
        serial[0] = (serial[0] & 0x7f) | 0x01;
        let mut leaf = CertificateParams::default();
        leaf.distinguished_name = dn;
        leaf.subject_alt_names = subject_alt_names;
        leaf.not_before = time(now.saturating_sub(role.not_before_duration.unwrap_or(30)))?;
        leaf.not_after = time(request.expires_at.min(ca.not_after))?;
        leaf.serial_number = Some(serial.to_vec().into());
        leaf.is_ca = rcgen::IsCa::ExplicitNoCa;
        leaf.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyAgreement,
        ];
        if role.server_flag {
            leaf.extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if role.client_flag {
            leaf.extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        leaf.use_authority_key_identifier_extension = true;
        leaf.key_identifier_method = KeyIdMethod::PreSpecified(key_id);
        let subject_key = LeafKey {
            raw: public_key_raw,
            alg: algorithm(key_type),
        };
        let certificate = leaf.signed_by(&subject_key, &issuer).map_err(|e| {
            issuer.key().refused.borrow_mut().take().unwrap_or_else(|| {
                Error::internal(format!("the certificate could not be built: {e}"))
            })
        })?;
        let serial_text = serial
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        let mut data = serde_json::json!({
            "certificate": certificate.pem(),
            "serial_number": serial_text,
        });
        if let Some(key) = private_key {
            data["private_key"] = serde_json::json!(key);
            data["private_key_type"] = serde_json::json!(kind(key_type));
        }
        Prepared::new(data, serial_text)
    }

    fn create(
        _connection: &Connection<Self::Config>,
        _request: &IssueRequest<Role>,
        _prepared: &Prepared<String>,
    ) -> Result<()> {
        Ok(())
    }

    fn revoke(_connection: &Connection<Self::Config>, serial: String) -> Result<()> {
        signer::revoke_certificate(&serial)
    }
}

broker_plugin_sdk::register_plugin!(Pki);
