//! Static roles (Vault's `static-roles/{name}`): one account that exists in
//! the database already, whose password the broker owns and rotates, on a
//! period or a cron schedule ([`super::schedule`]) or only when asked.
//!
//! Rotation is two-phase, so the password the broker reports always works
//! (docs/architecture.md, "Static roles"):
//!
//! 1. a new password is made, sealed and stored as *pending* beside the
//!    current one, before anything else happens;
//! 2. the plugin sets it in the database (`rotate-static`, which is handed
//!    the password under the role's `password` key);
//! 3. the broker logs in with it; only then does it become current.
//!
//! A crash, a failed statement or a dead database anywhere in between
//! leaves a pending password, and whatever touches the role next (a read
//! of its credentials, the periodic pass, a rotation) settles it by logging
//! in: the pending password works, so the database took it and it becomes
//! current; the current one works, so the database never changed and the
//! pending one is dropped; neither, and both are kept until one does.
//!
//! This module must never report a password it has not seen work (bar an
//! account that cannot log in at all), and never rotate one role twice
//! at once: rotations of a role are serialized in this process.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::rotation::{Claim, Settled, which_works};
use super::schedule::Rotation;
use super::{DatabaseEngine, context, string_list};
use crate::clock;
use crate::duration::Ttl;
use crate::engine::valid_name;
use crate::framework::Error;
use crate::lease::ResolvedConnection;

/// A stored static role (`static-roles/{name}`): how to rotate, not the
/// password (that is the [`Account`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StaticRole {
    db_name: String,
    username: String,
    #[serde(default)]
    rotation_period: u64,
    #[serde(default)]
    rotation_schedule: String,
    #[serde(default)]
    rotation_window: u64,
    #[serde(default)]
    rotation_statements: Vec<String>,
    /// Only `rotate-role` rotates it.
    #[serde(default)]
    disable_automated_rotation: bool,
    #[serde(default)]
    skip_import_rotation: bool,
}

impl StaticRole {
    fn rotation(&self) -> Result<Rotation, Error> {
        let rotation = Rotation::new(
            self.rotation_period,
            &self.rotation_schedule,
            self.rotation_window,
        )
        .map_err(|e| Error::invalid(e.to_string()))?;
        Ok(if self.disable_automated_rotation {
            Rotation::Manual
        } else {
            rotation
        })
    }
}

/// The account's passwords, sealed. No `Debug`: it holds them.
#[derive(Default, Serialize, Deserialize)]
struct Account {
    /// The password that works, once one is known.
    #[serde(default)]
    password: Option<Zeroizing<String>>,
    /// When it was last rotated (Unix seconds); when the role was made, if
    /// it never was.
    #[serde(default)]
    last_rotation: i64,
    /// A rotation begun and not settled.
    #[serde(default)]
    pending: Option<Pending>,
}

#[derive(Serialize, Deserialize)]
struct Pending {
    password: Zeroizing<String>,
    /// When the rotation began: the rotation's time once it is settled.
    since: i64,
}

/// How long a read of a static role's credentials waits for a rotation in
/// flight before answering 503.
const CREDS_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a failed scheduled rotation waits before it is tried again.
const RETRY_SECS: i64 = 30;

/// The queue key of a rotation due at `due`: listing the queue shows what
/// is due without opening any record.
fn due_key(due: i64, name: &str) -> String {
    format!("static-due/{due:012}.{name}")
}

/// The time and role of a queue entry.
fn parse_due(entry: &str) -> Option<(i64, &str)> {
    let (due, name) = entry.split_once('.')?;
    Some((due.parse().ok()?, name))
}

impl DatabaseEngine {
    async fn static_role(&self, name: &str) -> Result<StaticRole, Error> {
        self.store
            .get(&self.key("static-role", name))
            .await?
            .ok_or_else(|| Error::NotFound(format!("no static role named {name:?}")))
    }

    async fn account(&self, name: &str) -> Result<Account, Error> {
        Ok(self
            .store
            .get(&self.key("static-account", name))
            .await?
            .unwrap_or_default())
    }

    async fn put_account(&self, name: &str, account: &Account) -> Result<(), Error> {
        Ok(self
            .store
            .put(&self.key("static-account", name), account)
            .await?)
    }

    /// Whether a static role exists (create or update, for the ACL).
    pub async fn static_role_exists(&self, name: &str) -> Result<bool, Error> {
        Ok(self
            .store
            .get::<StaticRole>(&self.key("static-role", name))
            .await?
            .is_some())
    }

    /// Names of static roles.
    pub async fn list_static_roles(&self) -> Result<Vec<String>, Error> {
        self.list("static-role").await
    }

    /// Writes a static role. A new one's password is rotated at once
    /// (Vault's import rotation) unless `skip_import_rotation`; should that
    /// fail, the role is not kept.
    pub async fn write_static_role(
        &self,
        name: &str,
        body: &Map<String, Value>,
    ) -> Result<(), Error> {
        valid_name(name)?;
        let existing: Option<StaticRole> =
            self.store.get(&self.key("static-role", name)).await?;
        let text = |field: &str| body.get(field).and_then(Value::as_str).map(str::trim);
        let flag = |field: &str| -> Result<Option<bool>, Error> {
            match body.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(Value::String(s)) => s
                    .parse()
                    .map(Some)
                    .map_err(|_| Error::field(field, "must be true or false")),
                Some(_) => Err(Error::field(field, "must be true or false")),
            }
        };
        let duration = |field: &str| -> Result<Option<u64>, Error> {
            Ok(Ttl::field(body, field)
                .map_err(|e| Error::field(field, e))?
                .map(Ttl::secs))
        };
        if let Some(kind) = text("credential_type")
            && kind != "password"
        {
            return Err(Error::field(
                "credential_type",
                "only the password credential type is offered",
            ));
        }
        let mut role = match existing.clone() {
            Some(role) => {
                for (field, now) in [("username", &role.username), ("db_name", &role.db_name)] {
                    if text(field).is_some_and(|v| v != now) {
                        return Err(Error::field(
                            field,
                            format!("{field} cannot be changed; delete the role and write it again"),
                        ));
                    }
                }
                role
            }
            None => StaticRole {
                db_name: text("db_name").unwrap_or_default().to_owned(),
                username: text("username").unwrap_or_default().to_owned(),
                rotation_period: 0,
                rotation_schedule: String::new(),
                rotation_window: 0,
                rotation_statements: Vec::new(),
                disable_automated_rotation: false,
                skip_import_rotation: flag("skip_import_rotation")?.unwrap_or(false),
            },
        };
        if role.db_name.is_empty() {
            return Err(Error::field("db_name", "db_name is required"));
        }
        if role.username.is_empty() || role.username.len() > 256 {
            return Err(Error::field(
                "username",
                "username is required: the database account (at most 256 bytes)",
            ));
        }
        if let Some(p) = duration("rotation_period")? {
            role.rotation_period = p;
        }
        if let Some(s) = body.get("rotation_schedule") {
            role.rotation_schedule = s.as_str().unwrap_or_default().trim().to_owned();
        }
        if let Some(w) = duration("rotation_window")? {
            role.rotation_window = w;
        }
        // One way or the other: setting one clears the other, as Vault does.
        if body.contains_key("rotation_period") && role.rotation_period > 0 {
            role.rotation_schedule.clear();
            role.rotation_window = 0;
        } else if body.contains_key("rotation_schedule") && !role.rotation_schedule.is_empty() {
            role.rotation_period = 0;
        }
        if let Some(s) = body.get("rotation_statements") {
            role.rotation_statements = string_list(Some(s));
        }
        if let Some(d) = flag("disable_automated_rotation")? {
            role.disable_automated_rotation = d;
        }
        let rotation = role.rotation()?;
        if matches!(rotation, Rotation::Manual) && !role.disable_automated_rotation {
            return Err(Error::invalid(
                "rotation_period or rotation_schedule is required (or disable_automated_rotation=true for manual rotation only)",
            ));
        }
        let config = self.config(&role.db_name).await.map_err(|_| {
            Error::field(
                "db_name",
                format!("no connection config named {:?}", role.db_name),
            )
        })?;
        if !config.allowed_roles.iter().any(|r| r == "*" || r == name) {
            return Err(Error::invalid(format!(
                "static role {name:?} is not allowed by connection {:?} (allowed_roles)",
                role.db_name
            )));
        }
        let now = clock::unix_now_signed();
        self.store.put(&self.key("static-role", name), &role).await?;
        if existing.is_some() {
            let account = self.account(name).await?;
            return self.schedule(name, &rotation, account.last_rotation, now).await;
        }
        // A new role: its account's clock starts now.
        self.put_account(
            name,
            &Account {
                last_rotation: now,
                ..Account::default()
            },
        )
        .await?;
        if role.skip_import_rotation {
            return self.schedule(name, &rotation, now, now).await;
        }
        if let Err(e) = self.rotate_static(name, now).await {
            self.forget_static_role(name).await?;
            return Err(e);
        }
        Ok(())
    }

    /// A static role as Vault reads it back.
    pub async fn read_static_role(&self, name: &str) -> Result<Value, Error> {
        let role = self.static_role(name).await?;
        let account = self.account(name).await?;
        let mut out = json!({
            "db_name": role.db_name,
            "username": role.username,
            "rotation_statements": role.rotation_statements,
            "credential_type": "password",
            "skip_import_rotation": role.skip_import_rotation,
            "disable_automated_rotation": role.disable_automated_rotation,
            "last_vault_rotation": rfc3339(account.last_rotation),
        });
        insert_rotation_fields(&mut out, &role);
        Ok(out)
    }

    /// Deletes a static role: the account stays in the database as it is.
    pub async fn delete_static_role(&self, name: &str) -> Result<(), Error> {
        let _claim = self.claim(name)?;
        self.forget_static_role(name).await
    }

    async fn forget_static_role(&self, name: &str) -> Result<(), Error> {
        self.store.delete(&self.key("static-role", name)).await?;
        self.store.delete(&self.key("static-account", name)).await?;
        self.unschedule(name).await
    }

    /// The account's username and current password (`static-creds`),
    /// settling a pending rotation first.
    pub async fn static_creds(&self, name: &str) -> Result<Value, Error> {
        let role = self.static_role(name).await.map_err(|e| match e {
            // Vault answers 400 for credentials of a role that does not exist.
            Error::NotFound(m) => Error::invalid(m),
            e => e,
        })?;
        let mut account = self.account(name).await?;
        if account.pending.is_some() {
            // A rotation in flight may have changed the database already:
            // the current password may no longer work. Wait for it to end
            // (or take over what a crash or a failure left), then settle.
            let _claim = self.wait_for_claim(name).await?;
            account = self.account(name).await?;
            if account.pending.is_some() {
                let target = self.login_target(&role).await?;
                self.settle(name, &mut account, &target, &role).await?;
            }
        }
        let Some(password) = account.password.as_ref() else {
            return Err(Error::invalid(format!(
                "static role {name:?} has no password yet (skip_import_rotation): rotate it with rotate-role/{name}"
            )));
        };
        let now = clock::unix_now_signed();
        let ttl = role
            .rotation()?
            .next_due(account.last_rotation, now)
            .map_or(0, |due| (due - now).max(0));
        let mut out = json!({
            "username": role.username,
            "password": password.as_str(),
            "last_vault_rotation": rfc3339(account.last_rotation),
            "ttl": ttl,
        });
        insert_rotation_fields(&mut out, &role);
        Ok(out)
    }

    fn claim_key(&self, name: &str) -> String {
        format!("{}/{name}", self.store.root())
    }

    /// The role's rotation slot, waiting up to [`CREDS_WAIT`] for a
    /// rotation in flight to end; a 503 after that.
    async fn wait_for_claim(&self, name: &str) -> Result<Claim, Error> {
        let deadline = tokio::time::Instant::now() + CREDS_WAIT;
        loop {
            if let Some(claim) = Claim::take(self.claim_key(name)) {
                return Ok(claim);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Unavailable(format!(
                    "static role {name:?} is being rotated and its new password is not checked yet; try again in a moment"
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    fn claim(&self, name: &str) -> Result<Claim, Error> {
        Claim::take(self.claim_key(name)).ok_or_else(|| {
            Error::Conflict(format!(
                "static role {name:?} is being rotated right now; try again in a moment"
            ))
        })
    }

    /// Rotates a static role's password now (`rotate-role`, the schedule).
    pub async fn rotate_static(&self, name: &str, now: i64) -> Result<(), Error> {
        let _claim = self.claim(name)?;
        let role = self.static_role(name).await?;
        let config = self.config(&role.db_name).await?;
        let resolved = self.resolved(&role.db_name, &config)?;
        let target = login_target(&role, &resolved)?;
        let mut account = self.account(name).await?;
        if account.pending.is_some()
            && let Settled::Neither(why) = self.settle(name, &mut account, &target, &role).await?
        {
            // Which password the database has is unknown: starting
            // another rotation would lose the one that may be it.
            return Err(Error::Unavailable(format!(
                "static role {name:?} has a rotation left pending and neither password logs in ({why}); fix the database's reachability first"
            )));
        }
        // 1. The new password, durable before the database hears of it.
        account.pending = Some(Pending {
            password: self.new_password(&config).await?,
            since: now,
        });
        self.put_account(name, &account).await?;
        let pending = account
            .pending
            .as_ref()
            .map(|p| p.password.clone())
            .unwrap_or_default();
        // 2. The plugin sets it.
        let plugin = self
            .catalog
            .lookup(&config.plugin_name)
            .map_err(Error::invalid)?;
        let mut request = json!({
            "username": role.username,
            "rotation_statements": role.rotation_statements,
            "password": pending.as_str(),
        });
        if let (Some(verifier), Some(fields)) = (
            self.verifier(&config, &pending)?,
            request.as_object_mut(),
        ) {
            fields.insert(super::HOST_VERIFIER_KEY.into(), json!(verifier));
        }
        let outcome = plugin
            .rotate_static(
                &context(&self.mount, &role.db_name, &resolved),
                &resolved.connection,
                &request,
            )
            .await;
        if let Ok(out) = &outcome
            && let Some(set) = out.get("password").and_then(Value::as_str)
            && set != pending.as_str()
        {
            // A plugin that makes its own password (built before the host
            // handed one over): what it set is what is pending now.
            tracing::warn!(role = %name, "the plugin set a password of its own; the broker checks that one");
            if let Some(p) = account.pending.as_mut() {
                p.password = Zeroizing::new(set.to_owned());
            }
            self.put_account(name, &account).await?;
        }
        // 3. Current only once it logs in.
        let settled = self.settle(name, &mut account, &target, &role).await;
        match (outcome, settled) {
            (Ok(_), Ok(Settled::Pending)) => Ok(()),
            (Ok(_), Ok(Settled::Current)) => Err(Error::Unavailable(format!(
                "static role {name:?}: the plugin reported the password set, but the database still takes the old one; nothing changed"
            ))),
            (Ok(_), Ok(Settled::Neither(why))) | (Ok(_), Err(Error::Unavailable(why))) => {
                Err(Error::Unavailable(format!(
                    "static role {name:?}: the new password was set but cannot be checked by logging in ({why}); it stays pending and is checked again"
                )))
            }
            (Err(e), _) => Err(e.into()),
            (Ok(_), Err(e)) => Err(e),
        }
    }

    async fn login_target(&self, role: &StaticRole) -> Result<crate::sql::SqlTarget, Error> {
        let config = self.config(&role.db_name).await?;
        let resolved = self.resolved(&role.db_name, &config)?;
        login_target(role, &resolved)
    }

    /// Settles a pending rotation by logging in (see the module docs), and
    /// stores the outcome.
    async fn settle(
        &self,
        name: &str,
        account: &mut Account,
        target: &crate::sql::SqlTarget,
        role: &StaticRole,
    ) -> Result<Settled, Error> {
        let Some(pending) = account.pending.take() else {
            return Ok(Settled::Current);
        };
        let current = account.password.as_deref().map(String::as_str);
        let settled = which_works(target, &role.username, &pending.password, current).await;
        match &settled {
            Settled::Pending => {
                account.password = Some(pending.password);
                account.last_rotation = pending.since;
                tracing::info!(role = %name, "static role rotated");
            }
            Settled::Current => {}
            Settled::Neither(_) => account.pending = Some(pending),
        }
        self.put_account(name, account).await?;
        if matches!(settled, Settled::Pending) {
            let rotation = role.rotation()?;
            self.schedule(name, &rotation, account.last_rotation, clock::unix_now_signed())
                .await?;
        }
        Ok(settled)
    }

    /// Puts the role's next automatic rotation in the queue, in place of
    /// whatever was there.
    async fn schedule(
        &self,
        name: &str,
        rotation: &Rotation,
        last: i64,
        now: i64,
    ) -> Result<(), Error> {
        let next = rotation.next_due(last, now);
        // The new entry first: a crash between the two leaves an extra
        // entry (dropped when reached), never none.
        if let Some(due) = next {
            self.store.put(&due_key(due, name), &name.to_owned()).await?;
        }
        for entry in self.store.list("static-due").await? {
            if let Some((due, n)) = parse_due(&entry)
                && n == name
                && Some(due) != next
            {
                self.store.delete(&format!("static-due/{entry}")).await?;
            }
        }
        Ok(())
    }

    async fn unschedule(&self, name: &str) -> Result<(), Error> {
        for entry in self.store.list("static-due").await? {
            if parse_due(&entry).is_some_and(|(_, n)| n == name) {
                self.store.delete(&format!("static-due/{entry}")).await?;
            }
        }
        Ok(())
    }

    /// The periodic pass at `now`: rotates every static role whose time
    /// has come, and settles root rotations left pending. Errors are
    /// logged; a role that failed is tried again on a later pass.
    pub async fn periodic(&self, now: i64) {
        if let Err(e) = self.settle_roots().await {
            tracing::warn!(mount = %self.mount, error = %e, "cannot settle a pending root rotation");
        }
        let entries = match self.store.list("static-due").await {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(mount = %self.mount, error = %e, "cannot read the rotation queue");
                return;
            }
        };
        for entry in entries {
            let Some((due, name)) = parse_due(&entry) else {
                continue;
            };
            // The queue is sorted by time: the rest are not due either.
            if due > now {
                break;
            }
            if let Err(e) = self.rotate_if_due(name, now).await {
                tracing::warn!(mount = %self.mount, role = %name, error = %e, retry_in_secs = RETRY_SECS, "scheduled rotation failed; it is tried again");
                // Not on every pass: a database that is down would be
                // tried (and logged) every second.
                let retry = async {
                    self.store
                        .put(&due_key(now + RETRY_SECS, name), &name.to_owned())
                        .await?;
                    self.store.delete(&format!("static-due/{entry}")).await
                };
                if let Err(e) = retry.await {
                    tracing::warn!(mount = %self.mount, role = %name, error = %e, "cannot put off a failed rotation");
                }
            }
        }
    }

    /// Rotates `name` if its own record says it is due: the queue is a
    /// hint, the role and account are the truth.
    async fn rotate_if_due(&self, name: &str, now: i64) -> Result<(), Error> {
        let role = match self.static_role(name).await {
            Ok(role) => role,
            Err(Error::NotFound(_)) => return self.unschedule(name).await,
            Err(e) => return Err(e),
        };
        let rotation = role.rotation()?;
        let account = self.account(name).await?;
        if !rotation.due(account.last_rotation, now) {
            return self
                .schedule(name, &rotation, account.last_rotation, now)
                .await;
        }
        match self.rotate_static(name, now).await {
            // Busy with a manual rotation: that one reschedules.
            Err(Error::Conflict(_)) => Ok(()),
            other => other,
        }
    }
}

/// Where a login check for `role`'s account connects: the role's
/// connection config's database, as the account.
fn login_target(
    role: &StaticRole,
    resolved: &ResolvedConnection,
) -> Result<crate::sql::SqlTarget, Error> {
    resolved
        .target
        .as_deref()
        .cloned()
        .ok_or_else(|| {
            Error::invalid(format!(
                "connection {:?} is not a SQL database: static roles need one",
                role.db_name
            ))
        })
}

fn insert_rotation_fields(out: &mut Value, role: &StaticRole) {
    let Some(out) = out.as_object_mut() else {
        return;
    };
    if role.rotation_schedule.is_empty() {
        out.insert("rotation_period".into(), json!(role.rotation_period));
    } else {
        out.insert("rotation_schedule".into(), json!(role.rotation_schedule));
        if role.rotation_window > 0 {
            out.insert("rotation_window".into(), json!(role.rotation_window));
        }
    }
}

/// Unix seconds as RFC 3339, as Vault writes `last_vault_rotation`.
fn rfc3339(t: i64) -> String {
    use chrono::{SecondsFormat, TimeZone, Utc};
    Utc.timestamp_opt(t, 0)
        .single()
        .map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_sort_by_time_and_parse_back() {
        let a = due_key(99, "b.role");
        let b = due_key(1_795_996_800, "a");
        assert!(a < b);
        let entry = a.trim_start_matches("static-due/");
        assert_eq!(parse_due(entry), Some((99, "b.role")));
        assert_eq!(parse_due("junk"), None);
    }

    #[test]
    fn rotation_settings_follow_the_role() {
        let mut role = StaticRole {
            db_name: "db".into(),
            username: "app".into(),
            rotation_period: 3600,
            rotation_schedule: String::new(),
            rotation_window: 0,
            rotation_statements: Vec::new(),
            disable_automated_rotation: false,
            skip_import_rotation: false,
        };
        assert!(matches!(role.rotation(), Ok(Rotation::Period(3600))));
        role.disable_automated_rotation = true;
        assert!(matches!(role.rotation(), Ok(Rotation::Manual)));
        role.rotation_schedule = "* * * * *".into();
        assert!(role.rotation().is_err(), "both a period and a schedule");
    }
}
