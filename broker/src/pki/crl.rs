//! Revocation: revoked serials kept per mount, and the signed CRL rebuilt
//! on every revocation (and on `tidy`), and before it expires: by the
//! periodic pass when `config/crl` asks for `auto_rebuild` (so once, on
//! the node holding the periodic job), else when it is read after half its
//! lifetime.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use serde::{Deserialize, Serialize};

use super::{Ca, PkiError, datetime, serial_text};
use crate::clock::unix_now;
use crate::framework::StorageView;

/// How long a CRL is valid by default: clients fetch a new one before then.
pub const CRL_LIFETIME_SECS: u64 = 72 * 3600;

/// How long before its expiry the periodic pass rebuilds a CRL, by default.
pub const GRACE_SECS: u64 = 12 * 3600;

/// `config/crl`, as Vault's fields: how long a CRL lasts (`expiry`), and
/// whether the periodic pass rebuilds it `auto_rebuild_grace_period` before
/// then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrlConfig {
    /// A CRL's lifetime (its nextUpdate), seconds.
    pub expiry: u64,
    /// Whether the periodic pass keeps the CRL fresh.
    pub auto_rebuild: bool,
    /// How long before expiry it rebuilds, seconds (less than `expiry`).
    pub auto_rebuild_grace_period: u64,
}

impl Default for CrlConfig {
    fn default() -> Self {
        Self {
            expiry: CRL_LIFETIME_SECS,
            auto_rebuild: false,
            auto_rebuild_grace_period: GRACE_SECS,
        }
    }
}

impl CrlConfig {
    /// Checks the fields together.
    pub fn check(&self) -> Result<(), String> {
        if self.expiry == 0 {
            return Err("expiry must be more than zero".into());
        }
        if self.auto_rebuild_grace_period >= self.expiry {
            return Err(format!(
                "auto_rebuild_grace_period ({}s) must be less than expiry ({}s)",
                self.auto_rebuild_grace_period, self.expiry
            ));
        }
        Ok(())
    }
}

/// Where `config/crl` is kept, in the mount's storage.
const CONFIG: &str = "config/crl";

/// The mount's CRL settings (the defaults until written).
pub async fn config(store: &StorageView) -> Result<CrlConfig, PkiError> {
    Ok(store.get::<CrlConfig>(CONFIG).await?.unwrap_or_default())
}

/// Stores the mount's CRL settings, checked.
pub async fn set_config(store: &StorageView, config: &CrlConfig) -> Result<(), PkiError> {
    config.check().map_err(PkiError::Invalid)?;
    store.put(CONFIG, config).await?;
    Ok(())
}

/// A revoked serial.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revoked {
    /// When it was revoked.
    pub revoked_at: u64,
    /// When the certificate expires (after which tidy may drop it), if known.
    pub not_after: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CrlState {
    number: u64,
    der: Vec<u8>,
    /// When it was signed (0 for CRLs stored before this was kept).
    #[serde(default)]
    built_at: u64,
}

fn revoked_key(serial: &[u8]) -> String {
    format!("{REVOKED}/{}", hex::encode(serial))
}

/// The folder of revoked serials, in the mount's storage.
const REVOKED: &str = "revoked";
/// The signed CRL, in the mount's storage.
const CRL: &str = "crl";

/// One lock per mount around CRL rebuilds. Without it two revocations can
/// each list the revoked serials, then write their CRLs in the other order:
/// the CRL that lands last may lack the other's serial until the next
/// rebuild. (Nodes sharing PostgreSQL storage are not serialized by this;
/// every rebuild lists all revoked serials, so the next one repairs it.)
fn rebuild_lock(root: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Default::default);
    let mut locks = LOCKS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    locks.entry(root.to_owned()).or_default().clone()
}

/// Puts `serial` on the CRL (idempotent); returns when it was revoked.
pub async fn revoke(
    store: &StorageView,
    ca: &Arc<Ca>,
    serial: &[u8],
    not_after: Option<u64>,
) -> Result<u64, PkiError> {
    let key = revoked_key(serial);
    if let Some(existing) = store.get::<Revoked>(&key).await? {
        return Ok(existing.revoked_at);
    }
    let revoked_at = unix_now();
    store
        .put(
            &key,
            &Revoked {
                revoked_at,
                not_after,
            },
        )
        .await?;
    rebuild(store, ca).await?;
    tracing::info!(storage = store.root(), serial = %serial_text(serial), "certificate revoked");
    Ok(revoked_at)
}

/// When `serial` was revoked, if it was.
pub async fn revoked_at(store: &StorageView, serial: &[u8]) -> Result<Option<u64>, PkiError> {
    Ok(store
        .get::<Revoked>(&revoked_key(serial))
        .await?
        .map(|r| r.revoked_at))
}

/// Drops revoked entries of certificates expired before `before`; returns
/// how many.
pub async fn tidy(store: &StorageView, before: u64) -> Result<usize, PkiError> {
    let mut n = 0;
    for name in store.list(REVOKED).await? {
        let key = format!("{REVOKED}/{name}");
        if let Some(r) = store.get::<Revoked>(&key).await?
            && r.not_after.is_some_and(|t| t < before)
        {
            store.delete(&key).await?;
            n += 1;
        }
    }
    Ok(n)
}

/// Signs a new CRL with every revoked serial and stores it.
pub async fn rebuild(store: &StorageView, ca: &Arc<Ca>) -> Result<Vec<u8>, PkiError> {
    let lock = rebuild_lock(store.root());
    let _serialized = lock.lock().await;
    let mut revoked = Vec::new();
    for name in store.list(REVOKED).await? {
        let Some(r) = store.get::<Revoked>(&format!("{REVOKED}/{name}")).await? else {
            continue;
        };
        let Ok(serial) = hex::decode(&name) else {
            continue;
        };
        revoked.push(rcgen::RevokedCertParams {
            serial_number: serial.into(),
            revocation_time: datetime(r.revoked_at),
            reason_code: None,
            invalidity_date: None,
        });
    }
    let number = store
        .get::<CrlState>(CRL)
        .await?
        .map_or(1, |s| s.number + 1);
    let now = unix_now();
    let expiry = config(store).await?.expiry;
    let params = rcgen::CertificateRevocationListParams {
        this_update: datetime(now),
        next_update: datetime(now.saturating_add(expiry)),
        crl_number: number.to_be_bytes().to_vec().into(),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: rcgen::KeyIdMethod::PreSpecified(ca.info().key_id),
    };
    // A key in an HSM signs on a blocking thread (the token's API blocks).
    let der = if ca.signs_in_hsm() {
        let ca = ca.clone();
        tokio::task::spawn_blocking(move || sign(&params, &ca))
            .await
            .map_err(|e| PkiError::Hsm(format!("signing the CRL stopped: {e}")))??
    } else {
        sign(&params, ca)?
    };
    store
        .put(
            CRL,
            &CrlState {
                number,
                der: der.clone(),
                built_at: now,
            },
        )
        .await?;
    Ok(der)
}

fn sign(params: &rcgen::CertificateRevocationListParams, ca: &Ca) -> Result<Vec<u8>, PkiError> {
    params
        .signed_by(&ca.issuer()?)
        .map(|crl| crl.der().to_vec())
        .map_err(|e| ca.rcgen_error(e))
}

/// The current CRL, DER: built on first use. Without `auto_rebuild`, also
/// rebuilt once half its lifetime has passed, so clients never fetch one
/// past its nextUpdate; with it, the periodic pass keeps it fresh
/// ([`rebuild_if_due`]) and a read never signs.
pub async fn current(store: &StorageView, ca: &Arc<Ca>) -> Result<Vec<u8>, PkiError> {
    let config = config(store).await?;
    match store.get::<CrlState>(CRL).await? {
        Some(state) if config.auto_rebuild => Ok(state.der),
        Some(state) if unix_now() < state.built_at.saturating_add(config.expiry / 2) => {
            Ok(state.der)
        }
        _ => rebuild(store, ca).await,
    }
}

/// The periodic pass: with `auto_rebuild`, rebuilds the CRL once it is
/// within `auto_rebuild_grace_period` of its expiry at `now`; whether it did.
pub async fn rebuild_if_due(store: &StorageView, ca: &Arc<Ca>, now: u64) -> Result<bool, PkiError> {
    let config = config(store).await?;
    if !config.auto_rebuild {
        return Ok(false);
    }
    let due = match store.get::<CrlState>(CRL).await? {
        Some(state) => {
            now >= state
                .built_at
                .saturating_add(config.expiry)
                .saturating_sub(config.auto_rebuild_grace_period)
        }
        None => true,
    };
    if due {
        rebuild(store, ca).await?;
        tracing::info!(storage = store.root(), "CRL rebuilt before its expiry");
    }
    Ok(due)
}
