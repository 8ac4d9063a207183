//! `broker agent`: keeps an application supplied with secrets it never
//! asks for itself. It logs in by itself (`[auto_auth]`), writes its token
//! where the application can use it (`[[sink]]`, mode 0600), renders
//! templates that read secrets into files (`[[template]]`, mode 0600,
//! rewritten only when their text changes, with an optional command run
//! after a change), renews the leases of what it read at two thirds of
//! their lifetimes, reads a fresh credential before a lease reaches its
//! max TTL, and renews its own token the same way, logging in again (and
//! reading every secret again under the new token) before the old one
//! reaches its max TTL, so no credential a file holds dies with it.
//!
//! With `[exec]` it runs the application itself, its environment rendered
//! from templates, and restarts it only when a value changed. When it
//! stops (SIGINT, SIGTERM, or its child's exit) it revokes every lease it
//! read and the token it logged in for: nothing it held outlives it.
//!
//! It must never write a secret to its log: lines name paths and lease
//! ids, never values.

pub mod config;
mod login;
pub mod template;

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::client::{Client, ClientError};
pub use config::{AgentConfig, AgentConfigError};
use login::Login;
use template::TemplateError;

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] AgentConfigError),
    /// The broker refused or did not answer.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A template did not render or write.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A login's material cannot be read.
    #[error("{0}")]
    Login(String),
}

/// How long to wait before trying again after a failure.
const RETRY: Duration = Duration::from_secs(5);

/// A secret the agent holds, and when to act on it next.
struct Held {
    answer: Value,
    /// Renew (or, past its max TTL, read again) at this time.
    due: Option<Instant>,
    /// The next action is a fresh read, not a renewal.
    refetch: bool,
}

/// The agent's state.
struct Agent {
    config: AgentConfig,
    base: Client,
    login: Login,
    templates: Vec<String>,
    secrets: BTreeMap<String, Held>,
    secret_id: Option<zeroize::Zeroizing<String>>,
    /// The `[exec]` child and the environment it was started with.
    child: Option<(
        tokio::process::Child,
        BTreeMap<String, zeroize::Zeroizing<String>>,
    )>,
}

/// How long a child has to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The child's exit, or never without one.
async fn child_exit(
    child: &mut Option<(
        tokio::process::Child,
        BTreeMap<String, zeroize::Zeroizing<String>>,
    )>,
) -> std::io::Result<std::process::ExitStatus> {
    match child {
        Some((process, _)) => process.wait().await,
        None => std::future::pending().await,
    }
}

/// When two thirds of `secs` from now have passed.
fn two_thirds(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs((secs * 2 / 3).max(1))
}

/// Runs the agent with `config` until SIGINT or SIGTERM, its `[exec]`
/// child's exit, or (with `exit_after_auth`) once its token is written and
/// its templates rendered. The child's exit code, if it had one to give.
pub async fn run(config: AgentConfig, exit_after_auth: bool) -> Result<Option<i32>, AgentError> {
    let address = config
        .broker
        .address
        .clone()
        .unwrap_or_else(crate::client::env_addr);
    let ca = config
        .broker
        .ca_cert
        .clone()
        .or_else(crate::client::env_ca_cert);
    // The cert method logs in with the certificate the TLS handshake shows.
    let identity = match &config.auto_auth {
        config::AutoAuth::Cert {
            client_cert,
            client_key,
            ..
        } => Some((client_cert.clone(), client_key.clone())),
        _ => None,
    };
    let base = Client::with_identity(&address, None, ca, identity)?;
    let templates = config
        .templates
        .iter()
        .map(config::TemplateConfig::text)
        .collect::<Result<Vec<_>, _>>()?;
    let mut secret_id = None;
    // A broker not up yet (or sealed) is waited for: the agent often starts
    // beside it. Anything else (a missing file, a refused login) stops it.
    let mut wait = Duration::from_secs(1);
    let login = loop {
        match login::login(&base, &config.auto_auth, &mut secret_id).await {
            Ok(login) => break login,
            Err(AgentError::Client(
                e @ (ClientError::Unreachable { .. } | ClientError::Sealed { .. }),
            )) => {
                tracing::warn!(error = %e, retry_in_secs = wait.as_secs(), "cannot log in yet");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e),
        }
    };
    let mut agent = Agent {
        config,
        base,
        login,
        templates,
        secrets: BTreeMap::new(),
        secret_id,
        child: None,
    };
    agent.write_sinks().await?;
    agent.read_all().await?;
    agent.render().await?;
    if exit_after_auth {
        return Ok(None);
    }
    let mut stop = std::pin::pin!(shutdown());
    loop {
        let next = agent.next_due();
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = &mut stop => {
                tracing::info!("the agent stops");
                agent.stop_child().await;
                agent.revoke_all().await;
                return Ok(None);
            }
            status = child_exit(&mut agent.child) => {
                agent.child = None;
                let code = status.ok().and_then(|s| s.code()).unwrap_or(1);
                tracing::info!(code, "the child exited; the agent stops");
                agent.revoke_all().await;
                return Ok(Some(code));
            }
        }
        if let Err(e) = agent.step().await {
            tracing::warn!(error = %e, "agent step failed; trying again");
        }
    }
}

async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

impl Agent {
    fn client(&self) -> Client {
        self.base.with_token(self.login.token.clone())
    }

    /// Writes the token to every sink (wrapped, for a sink that asks).
    async fn write_sinks(&self) -> Result<(), AgentError> {
        for sink in &self.config.sinks {
            let Some(ttl) = &sink.wrap_ttl else {
                template::write_if_changed(&sink.path, &self.login.token, 0o600)?;
                continue;
            };
            let mut body = Map::new();
            body.insert("token".into(), json!(self.login.token.as_str()));
            let answer = self
                .client()
                .send(
                    Method::POST,
                    "sys/wrapping/wrap",
                    Some(&body),
                    false,
                    &[("X-Vault-Wrap-TTL", ttl)],
                )
                .await?
                .unwrap_or(Value::Null);
            let wrapped = answer["wrap_info"]["token"].as_str().ok_or_else(|| {
                AgentError::Login("sys/wrapping/wrap answered no wrapping token".into())
            })?;
            template::write_if_changed(&sink.path, wrapped, 0o600)?;
        }
        Ok(())
    }

    /// The earliest moment something is due.
    fn next_due(&self) -> Instant {
        self.secrets
            .values()
            .filter_map(|h| h.due)
            .chain(self.login.due)
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    /// Reads every path the templates (and `[exec]`'s environment) read,
    /// under the current token.
    async fn read_all(&mut self) -> Result<(), AgentError> {
        let mut paths = std::collections::BTreeSet::new();
        let env_templates = self.config.exec.iter().flat_map(|e| e.env.values());
        for text in self.templates.iter().chain(env_templates) {
            paths.extend(template::wanted(text)?);
        }
        for path in paths {
            self.read(&path).await?;
        }
        Ok(())
    }

    async fn read(&mut self, path: &str) -> Result<(), AgentError> {
        let answer = self
            .client()
            .read(path)
            .await?
            .ok_or_else(|| AgentError::Login(format!("nothing at {path}")))?;
        let due = match (
            answer["lease_id"].as_str(),
            answer["lease_duration"].as_u64(),
        ) {
            (Some(id), Some(secs)) if !id.is_empty() && secs > 0 => Some(two_thirds(secs)),
            _ => None,
        };
        let refetch = answer["renewable"] != true;
        tracing::info!(
            path,
            lease = answer["lease_id"].as_str().unwrap_or(""),
            "read a secret"
        );
        self.secrets.insert(
            path.to_owned(),
            Held {
                answer,
                due,
                refetch,
            },
        );
        Ok(())
    }

    /// Renders every template, running the command of each that changed,
    /// and (re)starts the `[exec]` child if its environment changed.
    async fn render(&mut self) -> Result<(), AgentError> {
        self.render_files().await?;
        self.exec().await
    }

    /// Starts the `[exec]` child, or restarts it when a variable's value
    /// changed (and `restart_on_secret_changes` allows).
    async fn exec(&mut self) -> Result<(), AgentError> {
        let Some(exec) = &self.config.exec else {
            return Ok(());
        };
        let answers: BTreeMap<String, Value> = self
            .secrets
            .iter()
            .map(|(p, h)| (p.clone(), h.answer.clone()))
            .collect();
        let mut env = BTreeMap::new();
        for (name, text) in &exec.env {
            env.insert(
                name.clone(),
                zeroize::Zeroizing::new(template::render(text, &answers)?),
            );
        }
        let (program, args) = (exec.command[0].clone(), exec.command[1..].to_vec());
        let restart = exec.restart_on_secret_changes;
        match &self.child {
            Some((_, current)) if *current == env || !restart => return Ok(()),
            Some(_) => {
                tracing::info!("a secret in the child's environment changed; restarting it");
                self.stop_child().await;
            }
            None => {}
        }
        let mut command = tokio::process::Command::new(&program);
        command.args(&args);
        for (name, value) in &env {
            command.env(name, value.as_str());
        }
        let child = command
            .spawn()
            .map_err(|e| AgentError::Login(format!("cannot run {program}: {e}")))?;
        tracing::info!(pid = child.id(), "started the child");
        self.child = Some((child, env));
        Ok(())
    }

    /// Stops the child: SIGTERM, then SIGKILL after [`STOP_GRACE`].
    async fn stop_child(&mut self) {
        let Some((mut child, _)) = self.child.take() else {
            return;
        };
        if let Some(pid) = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        if tokio::time::timeout(STOP_GRACE, child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }

    /// Revokes every lease read, and the agent's token if it logged in for
    /// it (a clean stop).
    async fn revoke_all(&mut self) {
        let client = self.client();
        for (path, held) in std::mem::take(&mut self.secrets) {
            let Some(lease) = held.answer["lease_id"].as_str().filter(|l| !l.is_empty()) else {
                continue;
            };
            let mut body = Map::new();
            body.insert("lease_id".into(), json!(lease));
            if let Err(e) = client
                .request(Method::PUT, "sys/leases/revoke", Some(&body))
                .await
            {
                tracing::warn!(path, error = %e, "cannot revoke a lease at stop; it ends with its TTL");
            }
        }
        if !self.login.own {
            return;
        }
        if let Err(e) = client
            .request(Method::POST, "auth/token/revoke-self", Some(&Map::new()))
            .await
        {
            tracing::warn!(error = %e, "cannot revoke the agent's token at stop; it ends with its TTL");
        }
    }

    async fn render_files(&self) -> Result<(), AgentError> {
        let answers: BTreeMap<String, Value> = self
            .secrets
            .iter()
            .map(|(p, h)| (p.clone(), h.answer.clone()))
            .collect();
        for (config, text) in self.config.templates.iter().zip(&self.templates) {
            let rendered = zeroize::Zeroizing::new(template::render(text, &answers)?);
            if template::write_if_changed(&config.destination, &rendered, config.mode()?)? {
                tracing::info!(destination = %config.destination.display(), "rendered a template");
                if let Some(command) = &config.command {
                    let status = tokio::process::Command::new("sh")
                        .args(["-c", command])
                        .status()
                        .await;
                    match status {
                        Ok(s) if s.success() => {}
                        Ok(s) => tracing::warn!(status = %s, "a template's command failed"),
                        Err(e) => tracing::warn!(error = %e, "a template's command did not run"),
                    }
                }
            }
        }
        Ok(())
    }

    /// Does what is due now: the token first, then the leases.
    async fn step(&mut self) -> Result<(), AgentError> {
        let now = Instant::now();
        if self.login.due.is_some_and(|d| d <= now) {
            self.token_due().await?;
        }
        let due: Vec<String> = self
            .secrets
            .iter()
            .filter(|(_, h)| h.due.is_some_and(|d| d <= now))
            .map(|(p, _)| p.clone())
            .collect();
        let mut changed = false;
        for path in due {
            changed |= self.secret_due(&path).await;
        }
        if changed {
            self.render().await?;
        }
        Ok(())
    }

    /// Renews the token; near its max TTL, logs in again and reads every
    /// secret again under the new token, before the old one expires.
    async fn token_due(&mut self) -> Result<(), AgentError> {
        if let Some(next) = self.login.renew(&self.base).await {
            self.login.due = Some(next);
            return Ok(());
        }
        tracing::info!("the agent's token nears its max TTL; logging in again");
        let login =
            match login::login(&self.base, &self.config.auto_auth, &mut self.secret_id).await {
                Ok(login) => login,
                Err(e) => {
                    self.login.due = Some(Instant::now() + RETRY);
                    return Err(e);
                }
            };
        self.login = login;
        self.write_sinks().await?;
        self.read_all().await?;
        self.render().await
    }

    /// Renews `path`'s lease, or reads it again when it cannot go further;
    /// whether what the templates see changed.
    async fn secret_due(&mut self, path: &str) -> bool {
        let Some(held) = self.secrets.get(path) else {
            return false;
        };
        let requested = held.answer["lease_duration"].as_u64().unwrap_or(0);
        if !held.refetch {
            let mut body = Map::new();
            body.insert("lease_id".into(), held.answer["lease_id"].clone());
            body.insert("increment".into(), json!(requested));
            match self
                .client()
                .request(Method::PUT, "sys/leases/renew", Some(&body))
                .await
            {
                Ok(Some(answer)) => {
                    let got = answer["lease_duration"].as_u64().unwrap_or(0);
                    if let Some(held) = self.secrets.get_mut(path) {
                        held.due = Some(two_thirds(got));
                        // Short of what was asked: the max TTL is near, so
                        // a fresh credential is read before then.
                        held.refetch = got < requested;
                    }
                    tracing::info!(path, renewed_for = got, "renewed a lease");
                    return false;
                }
                Ok(None) | Err(_) => {
                    tracing::warn!(path, "cannot renew a lease; reading a fresh secret");
                }
            }
        }
        match self.read(path).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(path, error = %e, "cannot read a fresh secret; trying again");
                if let Some(held) = self.secrets.get_mut(path) {
                    held.due = Some(Instant::now() + RETRY);
                }
                false
            }
        }
    }
}
