//! `sys/rekey` and `sys/rekey-recovery-key`: new key shares for the same
//! root key. Operators give enough of the current shares (each with the
//! nonce of the rekey they join); the broker checks them, makes a new key,
//! splits it, and only then replaces what storage holds.
//!
//! The keyring and every sealed value stay as they are: a rekey rewraps
//! the root key (unseal shares) or replaces the recovery key. Shares given
//! to a rekey are dropped when it completes, fails or is cancelled.

use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{UnsealError, Unsealer, same_key};
use crate::core::Core;
use crate::core::keys::{self, SealConfig};
use crate::seal::shamir::{self, ShareError};
use crate::seal::{SealKind, ShamirSeal};

/// Which shares a rekey replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The unseal key shares (`shamir`).
    Barrier,
    /// The recovery key shares (auto-unseal seals).
    Recovery,
}

/// A rekey in progress.
pub(super) struct Rekey {
    target: Target,
    nonce: String,
    shares: u32,
    threshold: u32,
    given: Vec<Zeroizing<Vec<u8>>>,
}

impl Unsealer {
    fn check_target(&self, stored: &SealConfig, target: Target) -> Result<(), UnsealError> {
        match (target, stored.kind) {
            (Target::Barrier, SealKind::Shamir) => Ok(()),
            (Target::Recovery, kind) if kind.auto_unseals() => {
                if stored.recovery_shares == 0 {
                    return Err(UnsealError::Invalid(
                        "this broker was initialized without recovery keys".into(),
                    ));
                }
                Ok(())
            }
            (Target::Barrier, kind) => Err(UnsealError::Invalid(format!(
                "the {kind} seal has no unseal key shares: rekey its recovery keys \
                 (sys/rekey-recovery-key)"
            ))),
            (Target::Recovery, _) => Err(UnsealError::Invalid(
                "the shamir seal has no recovery keys: rekey its unseal keys (sys/rekey)".into(),
            )),
        }
    }

    async fn stored_config(&self) -> Result<SealConfig, UnsealError> {
        keys::seal_config(&self.storage)
            .await?
            .ok_or_else(|| UnsealError::Invalid("the broker is not initialized".into()))
    }

    /// `GET sys/rekey/init` (or the recovery form): the rekey in progress.
    pub async fn rekey_status(&self, target: Target) -> Result<Value, UnsealError> {
        let stored = self.stored_config().await?;
        let (_, required) = stored.operator_split();
        let rekey = self.rekey.lock().await;
        Ok(match rekey.as_ref().filter(|r| r.target == target) {
            Some(r) => json!({
                "started": true,
                "nonce": r.nonce,
                "t": r.threshold,
                "n": r.shares,
                "progress": r.given.len(),
                "required": required,
                "pgp_fingerprints": null,
                "backup": false,
                "verification_required": false,
            }),
            None => json!({
                "started": false,
                "nonce": "",
                "t": 0,
                "n": 0,
                "progress": 0,
                "required": required,
                "pgp_fingerprints": null,
                "backup": false,
                "verification_required": false,
            }),
        })
    }

    /// `PUT sys/rekey/init`: starts a rekey to `shares` new shares, any
    /// `threshold` of which will do. One rekey at a time.
    pub async fn rekey_start(
        &self,
        target: Target,
        shares: u32,
        threshold: u32,
    ) -> Result<Value, UnsealError> {
        let stored = self.stored_config().await?;
        self.check_target(&stored, target)?;
        shamir::check_split(shares, threshold)?;
        {
            let mut rekey = self.rekey.lock().await;
            if rekey.is_some() {
                return Err(UnsealError::Invalid(
                    "a rekey is already in progress: cancel it first (DELETE sys/rekey/init)"
                        .into(),
                ));
            }
            *rekey = Some(Rekey {
                target,
                nonce: crate::core::random_uuid(),
                shares,
                threshold,
                given: Vec::new(),
            });
        }
        self.rekey_status(target).await
    }

    /// `DELETE sys/rekey/init`: forgets the rekey and the shares given.
    pub async fn rekey_cancel(&self, target: Target) {
        let mut rekey = self.rekey.lock().await;
        if rekey.as_ref().is_some_and(|r| r.target == target) {
            *rekey = None;
        }
    }

    /// `PUT sys/rekey/update`: one current share; at the threshold, the
    /// new shares (shown once).
    pub async fn rekey_update(
        &self,
        core: &Core,
        target: Target,
        key: &str,
        nonce: &str,
    ) -> Result<Value, UnsealError> {
        let stored = self.stored_config().await?;
        self.check_target(&stored, target)?;
        let share = shamir::parse_share(key)?;
        let (_, required) = stored.operator_split();
        let rekey = {
            let mut slot = self.rekey.lock().await;
            let Some(rekey) = slot.as_mut().filter(|r| r.target == target) else {
                return Err(UnsealError::Invalid(
                    "no rekey is in progress: start one (PUT sys/rekey/init)".into(),
                ));
            };
            if rekey.nonce != nonce {
                return Err(UnsealError::Invalid(
                    "the nonce does not match the rekey in progress".into(),
                ));
            }
            if !rekey.given.iter().any(|s| **s == *share) {
                rekey.given.push(share);
            }
            if (rekey.given.len() as u32) < required {
                drop(slot);
                return self.rekey_status(target).await;
            }
            match slot.take() {
                Some(rekey) => rekey,
                None => return Err(UnsealError::Invalid("the rekey was cancelled".into())),
            }
        };
        let threshold = u8::try_from(required).unwrap_or(u8::MAX);
        let current = shamir::combine(&rekey.given, threshold)?;
        let new_key = shamir::random_key().map_err(crate::core::CoreError::Keyring)?;
        let made = shamir::split(&new_key, rekey.shares, rekey.threshold)?;
        match target {
            Target::Barrier => {
                // The shares are right if they open the stored root key.
                keys::unseal(&self.storage, &ShamirSeal::new(current))
                    .await
                    .map_err(|_| UnsealError::Share(ShareError::Wrong))?;
                let config = SealConfig {
                    secret_shares: rekey.shares,
                    secret_threshold: rekey.threshold,
                    ..stored
                };
                keys::rewrap_root(
                    &self.storage,
                    core.root_key(),
                    &ShamirSeal::new(new_key),
                    &config,
                )
                .await?;
            }
            Target::Recovery => {
                let seal = core.seal_provider().clone();
                let expected = keys::recovery_key(&self.storage, seal.as_ref())
                    .await?
                    .ok_or_else(|| {
                        UnsealError::Invalid("this broker has no recovery key".into())
                    })?;
                if !same_key(&expected, &current) {
                    return Err(UnsealError::Share(ShareError::Wrong));
                }
                keys::store_recovery_key(&self.storage, seal.as_ref(), &new_key).await?;
                let config = SealConfig {
                    recovery_shares: rekey.shares,
                    recovery_threshold: rekey.threshold,
                    ..stored
                };
                keys::store_seal_config(&self.storage, &config).await?;
            }
        }
        tracing::warn!(
            ?target,
            shares = rekey.shares,
            threshold = rekey.threshold,
            "rekeyed: the old key shares no longer work"
        );
        let hex: Vec<String> = made.iter().map(|s| shamir::to_hex(s).to_string()).collect();
        let b64: Vec<String> = made
            .iter()
            .map(|s| shamir::to_base64(s).to_string())
            .collect();
        Ok(json!({
            "complete": true,
            "nonce": rekey.nonce,
            "keys": hex,
            "keys_base64": b64,
            "pgp_fingerprints": null,
            "backup": false,
            "verification_required": false,
        }))
    }
}
