//! The `pki` secrets engine, Vault-compatible: a CA per mount (generated,
//! imported, or an intermediate signed elsewhere), roles, certificates
//! built by the sandboxed `pki` plugin and signed here, revocation and the
//! CRL.
//!
//! The CA key is sealed in storage and never leaves [`crate::pki`] (or,
//! generated with type `kms`, lives in the HSM and never leaves it); the
//! plugin only ever gets signatures over leaves the CA agreed to sign.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::valid_name;
use crate::duration::Ttl;
use crate::framework::{Error, Mount, StorageView};
use crate::hsm::{Hsm, HsmConnection};
use crate::lease::{IssueParams, LeaseKind, Leases, ResolvedConnection};
use crate::pki::managed::{self, ManagedKey, ManagedKeyRef};
use crate::pki::{Ca, CaBundle, MountCa, PkiError, ca, crl, keys, parse_serial};
use crate::plugin::{CallContext, Catalog, ConnectionView, IssueRequest, RevocationRecorder};
use crate::storage::LeaseRow;

/// The media type of PEM certificates and chains.
const PEM: &str = "application/pem-certificate-chain";

/// The plugin that builds certificates.
pub const PLUGIN: &str = "pki";

/// Where an intermediate's HSM-held key waits for its certificate.
const PENDING_MANAGED_KEY: &str = "pending-managed-key";
/// Where an intermediate's held key waits for its certificate.
const PENDING_KEY: &str = "pending-key";

/// How `root/generate/:type` and `intermediate/generate/:type` keep the
/// key (Vault's types, but `existing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMode {
    /// Sealed in storage; never returned.
    Internal,
    /// Sealed in storage, and returned once.
    Exported,
    /// Generated in the HSM, where it stays (`managed_key_name`).
    Kms,
}

/// The "connection" a certificate lease names: the mount's CA. Not a valid
/// database config name, so the two can never be confused.
pub const CA_CONNECTION: &str = "@ca";

impl From<PkiError> for Error {
    fn from(e: PkiError) -> Self {
        match e {
            PkiError::Invalid(m) => Self::invalid(m),
            PkiError::NoCa => Self::invalid(e.to_string()),
            PkiError::Crypto(m) => Self::Internal(m),
            PkiError::Sealed(e) => e.into(),
            PkiError::Hsm(m) => Self::Unavailable(m),
        }
    }
}

/// A stored certificate (unless its role says `no_store`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct StoredCert {
    certificate: String,
    not_after: u64,
}

/// One mount of the PKI engine.
#[derive(Debug, Clone)]
pub struct PkiEngine {
    /// The mount's path without its `/`, as lease ids name it.
    mount: String,
    store: StorageView,
    catalog: Arc<Catalog>,
    default_ttl: Duration,
    max_ttl: Duration,
    /// The token CA keys of type `kms` live in, when one is configured.
    hsm: Option<Arc<HsmConnection>>,
}

/// A certificate made for a request. `Debug` shows no data: it holds the
/// private key.
pub struct Issued {
    /// The lease, when the role asks for one.
    pub lease: Option<LeaseRow>,
    /// What the client receives.
    pub data: Map<String, Value>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("lease", &self.lease.as_ref().map(|l| &l.id))
            .finish_non_exhaustive()
    }
}

/// Needed by the SDK's issue flow; a certificate without a lease has
/// nothing to record (it is revoked by serial).
struct NoLease;

impl RevocationRecorder for NoLease {
    fn record<'a>(
        &'a self,
        _revocation: &'a Value,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async { Ok(()) })
    }
}

fn field_str<'a>(body: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, Error> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::invalid(format!("{name} must be a string"))),
    }
}

/// A TTL field; zero counts as unset, as in Vault.
fn field_ttl(body: &Map<String, Value>, name: &str) -> Result<Option<Duration>, Error> {
    Ok(Ttl::field(body, name)
        .map_err(Error::invalid)?
        .map(|t| t.0)
        .filter(|d| !d.is_zero()))
}

/// `key_bits`: absent or 0 for the key type's default, else a whole
/// number (Vault also takes it as a string of digits).
fn key_bits_field(body: &Map<String, Value>) -> Result<u64, Error> {
    let refused = || {
        Error::invalid(
            "key_bits must be 0 (the key type's default), 256 or 384 (ec), or 2048, 3072 or 4096 (rsa)",
        )
    };
    match body.get("key_bits") {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(refused),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| refused()),
        Some(_) => Err(refused()),
    }
}

fn key_type_field(body: &Map<String, Value>) -> Result<crate::plugin::KeyType, Error> {
    let key_type = field_str(body, "key_type")?.unwrap_or("ec");
    Ok(keys::from_vault(key_type, key_bits_field(body)?)?)
}

/// The label of a `kms` key: `managed_key_name`, or `managed_key_id`
/// (which, here, is the same label: keys are named by label in the token).
fn managed_key_label(body: &Map<String, Value>) -> Result<String, Error> {
    let name = field_str(body, "managed_key_name")?;
    let id = field_str(body, "managed_key_id")?;
    let label = match (name, id) {
        (Some(name), Some(id)) if name != id => {
            return Err(Error::invalid(
                "managed_key_name and managed_key_id name different keys: give one",
            ));
        }
        (Some(label), _) | (None, Some(label)) => label,
        (None, None) => {
            return Err(Error::invalid(
                "managed_key_name is required with type kms: the label of the key pair to \
                 generate in the HSM",
            ));
        }
    };
    managed::check_label(label)?;
    Ok(label.to_owned())
}

/// A CA's `common_name`, required and within X.509's bound.
fn common_name_field<'a>(
    body: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, Error> {
    let cn = field_str(body, name)?;
    if let Some(cn) = cn {
        ca::check_common_name(cn)?;
    }
    Ok(cn)
}

impl PkiEngine {
    /// The engine at `mount`.
    pub fn new(mount: &Mount, catalog: Arc<Catalog>) -> Self {
        Self {
            mount: mount.name().to_owned(),
            store: mount.storage.clone(),
            catalog,
            default_ttl: mount.default_ttl,
            max_ttl: mount.max_ttl,
            hsm: None,
        }
    }

    /// With `hsm` holding the CA keys of type `kms`.
    pub fn with_hsm(mut self, hsm: Option<Arc<HsmConnection>>) -> Self {
        self.hsm = hsm;
        self
    }

    /// The HSM for `kms` keys, connected; a 400 without one, a 503 when
    /// it cannot be reached.
    async fn hsm(&self) -> Result<Arc<Hsm>, Error> {
        let connection = self.hsm.as_ref().ok_or_else(|| {
            Error::invalid(
                "type kms needs an HSM, and none is configured: add an [hsm] section (lib, \
                 token_label, pin) to the server's configuration, or use a pkcs11 seal",
            )
        })?;
        Ok(connection.get().await.map_err(PkiError::from)?)
    }

    /// The mount's CA.
    pub async fn ca(&self) -> Result<Arc<Ca>, Error> {
        let bundle: CaBundle = self.store.get("ca").await?.ok_or(PkiError::NoCa)?;
        let hsm = match (&bundle.managed_key, &self.hsm) {
            (Some(_), Some(connection)) => Some(connection.get().await.map_err(PkiError::from)?),
            _ => None,
        };
        Ok(Arc::new(Ca::load_with(bundle, hsm.as_ref())?))
    }

    async fn install(&self, ca: &Arc<Ca>) -> Result<(), Error> {
        self.store.put("ca", ca.bundle()).await?;
        crl::rebuild(&self.store, ca).await?;
        Ok(())
    }

    async fn refuse_if_ca(&self) -> Result<(), Error> {
        if self.store.get::<CaBundle>("ca").await?.is_some() {
            return Err(Error::invalid(
                "this mount already has a CA; delete it first (DELETE root)",
            ));
        }
        Ok(())
    }

    fn ca_data(ca: &Ca) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert("certificate".into(), json!(ca.certificate_pem()));
        data.insert("issuing_ca".into(), json!(ca.certificate_pem()));
        data.insert("serial_number".into(), json!(ca.serial()));
        data.insert("expiration".into(), json!(ca.not_after()));
        data
    }

    /// `root/generate/:type`: a new self-signed root. `exported` returns
    /// the key once (Vault's `exported`); `internal` never does; `kms`
    /// generates it in the HSM, labelled `managed_key_name`.
    pub async fn generate_root(
        &self,
        body: &Map<String, Value>,
        mode: KeyMode,
    ) -> Result<Value, Error> {
        self.refuse_if_ca().await?;
        let cn = common_name_field(body, "common_name")?
            .ok_or_else(|| Error::invalid("common_name is required"))?;
        let ttl = field_ttl(body, "ttl")?.unwrap_or(Duration::from_secs(10 * 365 * 86400));
        let key_type = key_type_field(body)?;
        let cn = cn.to_owned();
        if mode == KeyMode::Kms {
            return self.generate_root_kms(body, cn, ttl, key_type).await;
        }
        let ca =
            tokio::task::spawn_blocking(move || ca::generate_root(&cn, ttl.as_secs(), key_type))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
        let ca = Arc::new(ca);
        self.install(&ca).await?;
        let mut data = Self::ca_data(&ca);
        if mode == KeyMode::Exported {
            data.insert("private_key".into(), json!(*ca.bundle().key_pem));
            data.insert("private_key_type".into(), json!(key_kind(key_type)));
        }
        Ok(Value::Object(data))
    }

    /// `root/generate/kms`: the key pair is generated in the HSM, the root
    /// certificate signed there; the record keeps the label and public key.
    async fn generate_root_kms(
        &self,
        body: &Map<String, Value>,
        cn: String,
        ttl: Duration,
        key_type: crate::plugin::KeyType,
    ) -> Result<Value, Error> {
        let hsm = self.hsm().await?;
        managed::supported(key_type)?;
        let label = managed_key_label(body)?;
        // Checked before the key is made, so a refused ttl leaves no key.
        if crate::clock::unix_now().saturating_add(ttl.as_secs()) > crate::pki::MAX_NOT_AFTER {
            return Err(Error::invalid(
                "ttl: a certificate cannot end after the year 9999",
            ));
        }
        let key_label = label.clone();
        let ca = tokio::task::spawn_blocking(move || {
            let key = ManagedKey::generate(hsm, &key_label, key_type)?;
            ca::generate_root_managed(&cn, ttl.as_secs(), &key)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        let ca = Arc::new(ca);
        self.install(&ca).await?;
        let mut data = Self::ca_data(&ca);
        data.insert("managed_key_name".into(), json!(label));
        data.insert("key_type".into(), json!(key_kind(key_type)));
        Ok(Value::Object(data))
    }

    /// `config/ca`: imports a PEM bundle (the CA certificate, its key, and
    /// optionally the certificates above it).
    pub async fn import(&self, body: &Map<String, Value>) -> Result<(), Error> {
        self.refuse_if_ca().await?;
        let text = field_str(body, "pem_bundle")?
            .ok_or_else(|| Error::invalid("pem_bundle is required"))?;
        let (certs, key) = ca::split_bundle(text)?;
        let key =
            key.ok_or_else(|| Error::invalid("pem_bundle holds no private key for the CA"))?;
        self.install(&Arc::new(Ca::from_chain(&certs, key)?)).await
    }

    /// `intermediate/generate/:type`: a key and a CSR; the key waits for
    /// `intermediate/set-signed`.
    pub async fn generate_intermediate(
        &self,
        body: &Map<String, Value>,
        mode: KeyMode,
    ) -> Result<Value, Error> {
        self.refuse_if_ca().await?;
        let cn = common_name_field(body, "common_name")?
            .ok_or_else(|| Error::invalid("common_name is required"))?
            .to_owned();
        let key_type = key_type_field(body)?;
        if mode == KeyMode::Kms {
            let hsm = self.hsm().await?;
            managed::supported(key_type)?;
            let label = managed_key_label(body)?;
            let key_label = label.clone();
            let (csr, reference) = tokio::task::spawn_blocking(move || {
                let key = ManagedKey::generate(hsm, &key_label, key_type)?;
                let csr = ca::generate_intermediate_csr_managed(&cn, &key)?;
                Ok::<_, PkiError>((csr, key.reference().clone()))
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
            self.store.put(PENDING_MANAGED_KEY, &reference).await?;
            self.store.delete(PENDING_KEY).await?;
            return Ok(json!({
                "csr": csr,
                "managed_key_name": label,
                "key_type": key_kind(key_type),
            }));
        }
        let (csr, key) =
            tokio::task::spawn_blocking(move || ca::generate_intermediate_csr(&cn, key_type))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
        self.store.put(PENDING_KEY, &key).await?;
        self.store.delete(PENDING_MANAGED_KEY).await?;
        let mut data = json!({ "csr": csr });
        if mode == KeyMode::Exported {
            data["private_key"] = json!(*key);
            data["private_key_type"] = json!(key_kind(key_type));
        }
        Ok(data)
    }

    /// `intermediate/set-signed`: installs the signed certificate for the
    /// pending key.
    pub async fn set_signed(&self, body: &Map<String, Value>) -> Result<(), Error> {
        self.refuse_if_ca().await?;
        let text = field_str(body, "certificate")?
            .ok_or_else(|| Error::invalid("certificate is required"))?;
        let (certs, _) = ca::split_bundle(text)?;
        if let Some(reference) = self.store.get::<ManagedKeyRef>(PENDING_MANAGED_KEY).await? {
            let ca = Ca::from_chain_managed(&certs, &reference, &self.hsm().await?)?;
            self.install(&Arc::new(ca)).await?;
            self.store.delete(PENDING_MANAGED_KEY).await?;
            return Ok(());
        }
        let key: Zeroizing<String> = self.store.get(PENDING_KEY).await?.ok_or_else(|| {
            Error::invalid("no pending intermediate key: call intermediate/generate/internal first")
        })?;
        self.install(&Arc::new(Ca::from_chain(&certs, key)?))
            .await?;
        self.store.delete(PENDING_KEY).await?;
        Ok(())
    }

    /// `root/sign-intermediate`: signs another mount's intermediate CSR.
    pub async fn sign_intermediate(&self, body: &Map<String, Value>) -> Result<Value, Error> {
        let ca = self.ca().await?;
        let csr = field_str(body, "csr")?.ok_or_else(|| Error::invalid("csr is required"))?;
        let ttl = field_ttl(body, "ttl")?.unwrap_or(Duration::from_secs(5 * 365 * 86400));
        let common_name = field_str(body, "common_name")?.map(str::to_owned);
        let (pem, serial) = if ca.signs_in_hsm() {
            let (signer, csr) = (ca.clone(), csr.to_owned());
            tokio::task::spawn_blocking(move || {
                signer.sign_intermediate(&csr, common_name.as_deref(), ttl.as_secs())
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))??
        } else {
            ca.sign_intermediate(csr, common_name.as_deref(), ttl.as_secs())?
        };
        let mut chain = vec![pem.clone()];
        chain.extend(ca.chain_pem());
        Ok(json!({
            "certificate": pem,
            "issuing_ca": ca.certificate_pem(),
            "ca_chain": chain,
            "serial_number": serial,
        }))
    }

    /// `config/crl`, read: Vault's fields, durations as strings.
    pub async fn crl_config(&self) -> Result<Value, Error> {
        let config = crl::config(&self.store).await?;
        Ok(json!({
            "expiry": duration_text(config.expiry),
            "auto_rebuild": config.auto_rebuild,
            "auto_rebuild_grace_period": duration_text(config.auto_rebuild_grace_period),
            "disable": false,
        }))
    }

    /// `config/crl`, written: fields not given keep their values.
    pub async fn set_crl_config(&self, body: &Map<String, Value>) -> Result<(), Error> {
        let mut config = crl::config(&self.store).await?;
        if let Some(t) = Ttl::field(body, "expiry").map_err(Error::invalid)? {
            config.expiry = t.0.as_secs();
        }
        if let Some(t) = Ttl::field(body, "auto_rebuild_grace_period").map_err(Error::invalid)? {
            config.auto_rebuild_grace_period = t.0.as_secs();
        }
        if let Some(v) = body.get("auto_rebuild") {
            config.auto_rebuild = v
                .as_bool()
                .ok_or_else(|| Error::field("auto_rebuild", "auto_rebuild must be true or false"))?;
        }
        if body.get("disable").and_then(Value::as_bool) == Some(true) {
            return Err(Error::field(
                "disable",
                "disable=true is not supported: this mount always publishes a CRL",
            ));
        }
        crl::set_config(&self.store, &config)
            .await
            .map_err(|e| match e {
                PkiError::Invalid(m) => Error::invalid(m),
                e => e.into(),
            })
    }

    /// The periodic pass at `now`: keeps an `auto_rebuild` CRL fresh.
    pub async fn periodic(&self, now: i64) {
        let Ok(Some(_)) = self.store.get::<CaBundle>("ca").await else {
            return;
        };
        let now = u64::try_from(now).unwrap_or(0);
        let rebuilt = match self.ca().await {
            Ok(ca) => crl::rebuild_if_due(&self.store, &ca, now)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = rebuilt {
            tracing::warn!(mount = %self.mount, error = %e, "cannot rebuild the CRL; tried again next pass");
        }
    }

    /// `DELETE root`: removes the CA (certificates it issued stay stored).
    pub async fn delete_ca(&self) -> Result<(), Error> {
        self.store.delete("ca").await?;
        self.store.delete("crl").await?;
        Ok(())
    }

    /// A certificate by serial (`cert/:serial`); `ca`, `ca_chain` and `crl`
    /// name the CA's own.
    pub async fn cert(&self, serial: &str) -> Result<Value, Error> {
        let ca = self.ca().await?;
        match serial {
            "ca" => return Ok(json!({ "certificate": ca.certificate_pem() })),
            "ca_chain" => return Ok(json!({ "certificate": ca.chain_pem().concat() })),
            "crl" => {
                let der = crl::current(&self.store, &ca).await?;
                return Ok(json!({ "certificate": crl_pem(&der) }));
            }
            _ => {}
        }
        let bytes = parse_serial(serial)?;
        let stored: StoredCert = self
            .store
            .get(&crate::pki::signer::stored_key(&bytes))
            .await?
            .ok_or_else(|| Error::NotFound(String::new()))?;
        let revoked = crl::revoked_at(&self.store, &bytes).await?;
        Ok(json!({
            "certificate": stored.certificate,
            "revocation_time": revoked.unwrap_or(0),
        }))
    }

    /// The CRL, DER.
    pub async fn crl_der(&self) -> Result<Vec<u8>, Error> {
        let ca = self.ca().await?;
        Ok(crl::current(&self.store, &ca).await?)
    }

    /// `revoke`: puts a stored certificate's serial on the CRL.
    pub async fn revoke(&self, body: &Map<String, Value>) -> Result<Value, Error> {
        let ca = self.ca().await?;
        let serial = field_str(body, "serial_number")?
            .ok_or_else(|| Error::invalid("serial_number is required"))?;
        let bytes = parse_serial(serial)?;
        if bytes == parse_serial(ca.serial())? {
            return Err(Error::invalid("a CA cannot revoke its own certificate"));
        }
        let stored: Option<StoredCert> = self
            .store
            .get(&crate::pki::signer::stored_key(&bytes))
            .await?;
        let Some(stored) = stored else {
            return Err(Error::invalid(format!(
                "certificate with serial {serial} not found (certificates of no_store roles are revoked through their lease)"
            )));
        };
        let at = crl::revoke(&self.store, &ca, &bytes, Some(stored.not_after)).await?;
        Ok(json!({ "revocation_time": at }))
    }

    /// `tidy`: drops stored certificates and CRL entries of certificates
    /// expired more than `safety_buffer` ago (default 72 h), and rebuilds
    /// the CRL.
    pub async fn tidy(&self, body: &Map<String, Value>) -> Result<Value, Error> {
        // Zero is a real choice here ("everything expired"), not "unset".
        let buffer = Ttl::field(body, "safety_buffer")
            .map_err(Error::invalid)?
            .map_or(Duration::from_secs(72 * 3600), |t| t.0);
        let before = crate::clock::unix_now().saturating_sub(buffer.as_secs());
        let mut certs = 0;
        if body.get("tidy_cert_store").and_then(Value::as_bool) != Some(false) {
            for name in self.store.list("certs").await? {
                let key = format!("certs/{name}");
                if let Some(c) = self.store.get::<StoredCert>(&key).await?
                    && c.not_after < before
                {
                    self.store.delete(&key).await?;
                    certs += 1;
                }
            }
        }
        let mut revoked = 0;
        if body.get("tidy_revoked_certs").and_then(Value::as_bool) != Some(false) {
            revoked = crl::tidy(&self.store, before).await?;
        }
        // Serial records outlive neither their certificate nor its CRL entry.
        if body.get("tidy_cert_store").and_then(Value::as_bool) != Some(false)
            && body.get("tidy_revoked_certs").and_then(Value::as_bool) != Some(false)
        {
            for name in self.store.list("serials").await? {
                let key = format!("serials/{name}");
                if let Some(i) = self.store.get::<crate::pki::signer::Issued>(&key).await?
                    && i.not_after < before
                {
                    self.store.delete(&key).await?;
                }
            }
        }
        if let Ok(ca) = self.ca().await {
            crl::rebuild(&self.store, &ca).await?;
        }
        Ok(json!({ "certs_removed": certs, "revoked_removed": revoked }))
    }

    /// Writes a role, checking its TTLs and key type.
    pub async fn write_role(&self, name: &str, mut body: Map<String, Value>) -> Result<(), Error> {
        valid_name(name)?;
        for ttl in ["ttl", "max_ttl", "not_before_duration"] {
            if let Some(d) = field_ttl(&body, ttl)? {
                body.insert(ttl.into(), json!(d.as_secs()));
            }
        }
        key_type_field(&body)?;
        // The plugin reads key_bits as a number.
        let bits = key_bits_field(&body)?;
        if body.contains_key("key_bits") {
            body.insert("key_bits".into(), json!(bits));
        }
        self.store.put(&format!("role/{name}"), &body).await?;
        Ok(())
    }

    /// A role.
    pub async fn read_role(&self, name: &str) -> Result<Map<String, Value>, Error> {
        self.store
            .get(&format!("role/{name}"))
            .await?
            .ok_or_else(|| Error::NotFound(format!("unknown role: {name}")))
    }

    /// Deletes a role.
    pub async fn delete_role(&self, name: &str) -> Result<(), Error> {
        self.store.delete(&format!("role/{name}")).await?;
        Ok(())
    }

    /// Names of roles.
    pub async fn list_roles(&self) -> Result<Vec<String>, Error> {
        Ok(self.store.list("role").await?)
    }

    /// What a certificate lease's revocation calls the plugin with: the
    /// mount's CA as it is now.
    pub async fn connection_now(&self) -> Option<ResolvedConnection> {
        let ca = self.ca().await.ok()?;
        Some(self.connection(ca))
    }

    fn connection(&self, ca: Arc<Ca>) -> ResolvedConnection {
        ResolvedConnection {
            signer: Some(Arc::new(MountCa::new(self.store.clone(), ca))),
            ..ResolvedConnection::view_only(ConnectionView {
                name: CA_CONNECTION.into(),
                config: json!({}),
            })
        }
    }

    /// `issue/:role` and `sign/:role` (`endpoint`): a certificate built by
    /// the plugin within the role's policy, signed by the CA, under a lease
    /// when the role says `generate_lease`.
    pub async fn issue(
        &self,
        leases: &Leases,
        endpoint: &'static str,
        role_name: &str,
        body: Map<String, Value>,
        owner: &crate::lease::LeaseOwner,
    ) -> Result<Issued, Error> {
        // Vault answers a 400 for a role that does not exist.
        let role = self.read_role(role_name).await.map_err(|e| match e {
            Error::NotFound(m) => Error::invalid(m),
            e => e,
        })?;
        let ca = self.ca().await?;
        let max = role
            .get("max_ttl")
            .and_then(Value::as_u64)
            .filter(|s| *s > 0)
            .map_or(self.max_ttl, Duration::from_secs)
            .min(self.max_ttl);
        let ttl = match field_ttl(&body, "ttl")? {
            Some(t) if t > max => {
                return Err(Error::invalid(format!(
                    "ttl {}s is more than the role's max_ttl {}s",
                    t.as_secs(),
                    max.as_secs()
                )));
            }
            Some(t) => t,
            None => role
                .get("ttl")
                .and_then(Value::as_u64)
                .filter(|s| *s > 0)
                .map_or(self.default_ttl, Duration::from_secs)
                .min(max),
        };
        let expires_at = crate::clock::unix_now().saturating_add(ttl.as_secs());
        if expires_at > ca.not_after() {
            return Err(Error::invalid(format!(
                "the certificate would outlive its CA (which expires at {}); ask for a shorter ttl",
                ca.not_after()
            )));
        }
        let plugin = self
            .catalog
            .get(PLUGIN)
            .ok_or_else(|| Error::Internal("the pki plugin is not in the catalog".into()))?;
        let mut parameters = body;
        parameters.insert("operation".into(), json!(endpoint));
        let connection = self.connection(ca.clone());
        let generate_lease = role.get("generate_lease").and_then(Value::as_bool) == Some(true);
        let no_store = role.get("no_store").and_then(Value::as_bool) == Some(true);
        let (lease, mut data) = if generate_lease {
            let (row, credential) = leases
                .issue(IssueParams {
                    kind: LeaseKind::Certificate,
                    mount: self.mount.clone(),
                    endpoint,
                    role_name: role_name.to_owned(),
                    parameters: Value::Object(parameters),
                    role: Value::Object(role),
                    config_name: CA_CONNECTION.into(),
                    plugin: PLUGIN.into(),
                    connection,
                    display_name: owner.display_name.clone(),
                    token_accessor: owner.token_accessor.clone(),
                    deadline: owner.deadline,
                    ttl,
                    max_ttl: ttl,
                })
                .await?;
            (Some(row), credential.data)
        } else {
            let mut ctx = CallContext::new().with_recorder(Arc::new(NoLease));
            if let Some(signer) = &connection.signer {
                ctx = ctx.with_signer(signer.clone());
            }
            let request = IssueRequest {
                role_name: role_name.to_owned(),
                role: Value::Object(role),
                display_name: owner.display_name.clone(),
                expires_at,
                parameters: Value::Object(parameters),
            };
            let credential = plugin.issue(&ctx, &connection.connection, &request).await?;
            (None, credential.data)
        };
        let certificate = data
            .get("certificate")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Internal("the pki plugin returned no certificate".into()))?
            .to_owned();
        let (serial, not_after) = ca::certificate_facts(&certificate)?;
        if !no_store {
            let bytes = parse_serial(&serial)?;
            self.store
                .put(
                    &crate::pki::signer::stored_key(&bytes),
                    &StoredCert {
                        certificate,
                        not_after,
                    },
                )
                .await?;
        }
        data.insert("serial_number".into(), json!(serial));
        data.insert("expiration".into(), json!(not_after));
        data.insert("issuing_ca".into(), json!(ca.certificate_pem()));
        data.insert("ca_chain".into(), json!(ca.chain_pem()));
        Ok(Issued { lease, data })
    }
}

fn key_kind(key_type: crate::plugin::KeyType) -> &'static str {
    use crate::plugin::KeyType as K;
    match key_type {
        K::EcP256 | K::EcP384 => "ec",
        K::Rsa2048 | K::Rsa3072 | K::Rsa4096 => "rsa",
        K::Ed25519 => "ed25519",
    }
}

mod paths;
pub use paths::{PkiBackend, factory};

/// Seconds as Vault writes a duration back: `72h`, `30m`, `45s`.
fn duration_text(secs: u64) -> String {
    match secs {
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A CRL's DER as PEM.
pub fn crl_pem(der: &[u8]) -> String {
    crate::pki::pem_encode("X509 CRL", der)
}
