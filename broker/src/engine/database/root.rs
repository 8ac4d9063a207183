//! Root rotation (`rotate-root/{name}`): the connection's admin password
//! replaced by one only the broker knows, in the same two phases as a
//! static role (see [`super::static_role`]): the new password is sealed
//! into the config as pending before the plugin sets it (handed over
//! under the connection's `new_password` key), and becomes the one the
//! broker connects with only once it logs in. A rotation whose statements
//! failed half-way (MySQL runs them one by one) or whose broker died can
//! therefore never lock the broker out: the next rotation, or the periodic
//! pass, keeps whichever password the database takes.
//!
//! A pending rotation is also marked by an entry `root-pending/{name}`, so
//! the periodic pass finds one without opening every config.

use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::rotation::{Claim, Settled, which_works};
use super::{DatabaseEngine, DbConfig, context};
use crate::framework::Error;

impl DatabaseEngine {
    fn root_claim(&self, name: &str) -> Result<Claim, Error> {
        Claim::take(format!("{}/root/{name}", self.store.root())).ok_or_else(|| {
            Error::Conflict(format!(
                "the root of connection {name:?} is being rotated right now; try again in a moment"
            ))
        })
    }

    async fn put_config_pending(&self, name: &str, config: &DbConfig) -> Result<(), Error> {
        // The marker first: one without a pending password is dropped
        // when reached, a pending password without one would wait for the
        // next rotation.
        if config.pending_password.is_some() {
            self.store
                .put(&self.key("root-pending", name), &true)
                .await?;
        }
        self.store.put(&self.key("config", name), config).await?;
        if config.pending_password.is_none() {
            self.store.delete(&self.key("root-pending", name)).await?;
        }
        Ok(())
    }

    /// Rotates the admin password of a connection config.
    pub async fn rotate_root(&self, name: &str) -> Result<(), Error> {
        let _claim = self.root_claim(name)?;
        let mut config = self.config(name).await?;
        let username = config.username.clone().ok_or_else(|| {
            Error::invalid("rotate-root needs the connection config's username field")
        })?;
        let plugin = self
            .catalog
            .lookup(&config.plugin_name)
            .map_err(Error::invalid)?;
        if config.pending_password.is_some()
            && let Settled::Neither(why) = self.settle_root(name, &mut config, &username).await?
        {
            // Which password the database has is unknown: starting
            // another rotation would lose the one that may be it.
            return Err(Error::Unavailable(format!(
                "connection {name:?} has a root rotation left pending and neither password logs in ({why}); fix the database's reachability first"
            )));
        }
        // 1. Durable before the database hears of it.
        let pending = self.new_password(&config).await?;
        config.pending_password = Some(pending.clone());
        self.put_config_pending(name, &config).await?;
        // 2. The plugin sets it, connected with the current password.
        let resolved = self.resolved(name, &config)?;
        let mut connection = resolved.connection.clone();
        if let Value::Object(view) = &mut connection.config {
            view.insert("new_password".into(), json!(pending.as_str()));
            if let Some(verifier) = self.verifier(&config, &pending)? {
                view.insert("new_password_verifier".into(), json!(verifier));
            }
        }
        let outcome = plugin
            .rotate_root(&context(&self.mount, name, &resolved), &connection)
            .await;
        if let Ok(update) = &outcome
            && let Some(set) = update.get("password").and_then(Value::as_str)
            && set != pending.as_str()
        {
            // A plugin that makes its own password: that one is pending.
            config.pending_password = Some(Zeroizing::new(set.to_owned()));
            self.put_config_pending(name, &config).await?;
        }
        // 3. The broker connects with it only once it logs in.
        let settled = self.settle_root(name, &mut config, &username).await;
        match (outcome, settled) {
            (Ok(_), Ok(Settled::Pending)) => Ok(()),
            (Ok(_), Ok(Settled::Current)) => Err(Error::Unavailable(format!(
                "connection {name:?}: the plugin reported the root password changed, but the database still takes the old one; nothing changed"
            ))),
            (Ok(_), Ok(Settled::Neither(why))) => Err(Error::Unavailable(format!(
                "connection {name:?}: neither the new nor the old root password logs in ({why}); both are kept and checked again"
            ))),
            (Err(e), _) => Err(e.into()),
            (Ok(_), Err(e)) => Err(e),
        }
    }

    /// Settles a pending root rotation by logging in as the admin, and
    /// stores the outcome.
    async fn settle_root(
        &self,
        name: &str,
        config: &mut DbConfig,
        username: &str,
    ) -> Result<Settled, Error> {
        let Some(pending) = config.pending_password.take() else {
            return Ok(Settled::Current);
        };
        let resolved = self.resolved(name, config)?;
        let current = config.password.as_deref().map(String::as_str);
        let settled = match resolved.target.as_deref() {
            Some(target) => which_works(target, username, &pending, current).await,
            None => self.which_works_through_plugin(name, config, &resolved, &pending).await?,
        };
        match &settled {
            Settled::Pending => {
                config.password = Some(pending);
                tracing::info!(connection = %name, "root password rotated");
            }
            Settled::Current => {}
            Settled::Neither(_) => config.pending_password = Some(pending),
        }
        self.put_config_pending(name, config).await?;
        // A pool made with the old password is no longer this config's.
        self.forget_pool(name);
        Ok(settled)
    }

    /// [`which_works`] for a service the host reaches through `redis` or
    /// `http`: the plugin's `verify-connection`, run with each password.
    async fn which_works_through_plugin(
        &self,
        name: &str,
        config: &DbConfig,
        resolved: &crate::lease::ResolvedConnection,
        pending: &str,
    ) -> Result<Settled, Error> {
        if resolved.redis.is_none() && resolved.http.is_none() {
            // Nothing to log in to: nothing was rotated.
            return Ok(Settled::Current);
        }
        let plugin = self
            .catalog
            .lookup(&config.plugin_name)
            .map_err(Error::invalid)?;
        // Its own connections: the mount's are logged in with the old password.
        let key = format!("{}/config/{name}#login-check", self.mount);
        let works = async |password: &str| {
            let mut r = resolved.clone();
            r.redis = r.redis.map(|t| std::sync::Arc::new(t.with_password(password)));
            r.http = r.http.map(|t| std::sync::Arc::new(t.with_password(password)));
            let outcome = plugin.verify_connection(&r.context(&key), &r.connection).await;
            self.catalog.forget_connections(&key);
            outcome
        };
        Ok(match works(pending).await {
            Ok(()) => Settled::Pending,
            Err(new_err) => match config.password.as_deref() {
                Some(current) if works(current).await.is_ok() => Settled::Current,
                _ => Settled::Neither(new_err.to_string()),
            },
        })
    }

    /// Settles every root rotation left pending (by a crash or a failure)
    /// that is not running in this process now.
    pub(super) async fn settle_roots(&self) -> Result<(), Error> {
        for name in self.store.list("root-pending").await? {
            let Ok(_claim) = self.root_claim(&name) else {
                continue;
            };
            let mut config = match self.store.get::<DbConfig>(&self.key("config", &name)).await? {
                Some(config) if config.pending_password.is_some() => config,
                // Gone, or written since with a password of the operator's.
                _ => {
                    self.store.delete(&self.key("root-pending", &name)).await?;
                    continue;
                }
            };
            let Some(username) = config.username.clone() else {
                continue;
            };
            if let Settled::Neither(why) = self.settle_root(&name, &mut config, &username).await? {
                tracing::warn!(connection = %name, error = %why, "a pending root rotation cannot be settled yet: neither password logs in");
            }
        }
        Ok(())
    }
}
