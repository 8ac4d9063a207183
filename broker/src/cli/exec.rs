//! `broker exec`: runs a command with secrets in its environment, for CI/CD
//! pipelines and scripts that should not handle the broker themselves.
//!
//! ```text
//! broker exec --secret DB=database/creds/app -- ./deploy.sh
//! ```
//!
//! It logs in from the environment, reads each `--secret NAME=PATH` and
//! gives the child every field of its data as `NAME_FIELD` (`DB_USERNAME`,
//! `DB_PASSWORD`), renews the leases (and its own token) at two thirds of
//! their lifetimes while the child runs, forwards SIGINT, SIGTERM and
//! SIGHUP to the child, revokes every lease (and a token it logged in for)
//! when the child ends, and exits with the child's code. It never prints a
//! secret, and no other process's environment holds one.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use reqwest::Method;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::{Exit, client};
use crate::client::Client;

/// `broker exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// `NAME=PATH`: read PATH; each field F of its data is given to the
    /// command as `NAME_F` (upper case). Repeatable.
    #[arg(long = "secret", value_name = "NAME=PATH", required = true)]
    pub secrets: Vec<String>,
    /// How to log in: `token` (BROKER_TOKEN, else VAULT_TOKEN, else the
    /// token helper file), `approle` (BROKER_ROLE_ID and BROKER_SECRET_ID),
    /// or `jwt` (BROKER_JWT, or the file named by BROKER_JWT_FILE, with the
    /// role BROKER_JWT_ROLE): a CI job's OIDC token.
    #[arg(long, default_value = "token")]
    pub auth: String,
    /// Where the auth method is mounted (default: its type).
    #[arg(long)]
    pub auth_path: Option<String>,
    /// The command to run, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// A secret read for the child.
struct Held {
    name: String,
    lease_id: String,
    duration: u64,
    renewable: bool,
}

/// An environment name: letters, digits and `_`, upper case.
fn env_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Logs in as `--auth` says; the client, and whether the token is this
/// run's own (to be revoked at the end).
async fn logged_in(args: &ExecArgs) -> anyhow::Result<(Client, bool)> {
    let base = client()?;
    let path = args.auth_path.clone().unwrap_or_else(|| args.auth.clone());
    let fields: Map<String, Value> = match args.auth.as_str() {
        "token" => {
            if !base.has_token() {
                bail!("no token: set BROKER_TOKEN, or log in with --auth approle or --auth jwt");
            }
            return Ok((base, false));
        }
        "approle" => {
            let role_id =
                env_var("BROKER_ROLE_ID").context("--auth approle needs BROKER_ROLE_ID")?;
            let secret_id =
                env_var("BROKER_SECRET_ID").context("--auth approle needs BROKER_SECRET_ID")?;
            [("role_id", role_id), ("secret_id", secret_id)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Value::String(v)))
                .collect()
        }
        "jwt" => {
            let jwt = match env_var("BROKER_JWT") {
                Some(jwt) => jwt,
                None => {
                    let file = env_var("BROKER_JWT_FILE")
                        .context("--auth jwt needs BROKER_JWT or BROKER_JWT_FILE")?;
                    std::fs::read_to_string(&file)
                        .with_context(|| format!("cannot read the JWT file {file}"))?
                        .trim()
                        .to_owned()
                }
            };
            let role = env_var("BROKER_JWT_ROLE").context("--auth jwt needs BROKER_JWT_ROLE")?;
            [("jwt", jwt), ("role", role)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Value::String(v)))
                .collect()
        }
        other => bail!("--auth {other:?}: use token, approle or jwt"),
    };
    let answer = base
        .request(
            Method::POST,
            &format!("auth/{}/login", path.trim_matches('/')),
            Some(&fields),
        )
        .await?
        .unwrap_or(Value::Null);
    let token = answer["auth"]["client_token"]
        .as_str()
        .context("the login answered no token")?;
    Ok((base.with_token(Zeroizing::new(token.to_owned())), true))
}

/// Runs the command with the secrets; its exit code.
pub async fn run(args: ExecArgs) -> anyhow::Result<()> {
    let mut wanted = Vec::new();
    for secret in &args.secrets {
        let Some((name, path)) = secret.split_once('=') else {
            bail!("--secret {secret:?}: use NAME=PATH, e.g. DB=database/creds/app");
        };
        if name.is_empty() || path.is_empty() {
            bail!("--secret {secret:?}: use NAME=PATH, e.g. DB=database/creds/app");
        }
        wanted.push((env_name(name), path.to_owned()));
    }
    let (client, own_token) = logged_in(&args).await?;
    let mut env: BTreeMap<String, Zeroizing<String>> = BTreeMap::new();
    let mut held = Vec::new();
    let read = async {
        for (name, path) in &wanted {
            let answer = client
                .read(path)
                .await?
                .with_context(|| format!("nothing at {path} (for {name})"))?;
            let data = answer["data"]
                .as_object()
                .with_context(|| format!("{path} has no data (for {name})"))?;
            for (field, value) in data {
                let text = super::output::plain(value);
                env.insert(format!("{name}_{}", env_name(field)), Zeroizing::new(text));
            }
            if let Some(lease) = answer["lease_id"].as_str().filter(|l| !l.is_empty()) {
                held.push(Held {
                    name: name.clone(),
                    lease_id: lease.to_owned(),
                    duration: answer["lease_duration"].as_u64().unwrap_or(0),
                    renewable: answer["renewable"] == true,
                });
            }
        }
        anyhow::Ok(())
    };
    if let Err(e) = read.await {
        revoke_all(&client, &held, own_token).await;
        return Err(e);
    }

    let mut command = tokio::process::Command::new(&args.command[0]);
    command.args(&args.command[1..]);
    for (key, value) in &env {
        command.env(key, value.as_str());
    }
    drop(env);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            revoke_all(&client, &held, own_token).await;
            bail!("cannot run {}: {e}", args.command[0]);
        }
    };
    let pid = child.id().and_then(|p| i32::try_from(p).ok());
    let renewals = keep_renewed(&client, &held, own_token);
    let status = tokio::select! {
        status = child.wait() => status,
        () = forward_signals(pid) => child.wait().await,
    };
    renewals.abort();
    revoke_all(&client, &held, own_token).await;
    let status = status.context("lost the command")?;
    let code = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    };
    if code == 0 {
        return Ok(());
    }
    Err(Exit::silent(u8::try_from(code & 0xff).unwrap_or(1)))
}

/// Forwards SIGINT, SIGTERM and SIGHUP to the child until it ends; never
/// returns on its own (the caller stops waiting when the child exits).
async fn forward_signals(pid: Option<i32>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    use rustix::process::{Pid, Signal, kill_process};
    loop {
        let sig = tokio::select! {
            _ = int.recv() => Signal::INT,
            _ = term.recv() => Signal::TERM,
            _ = hup.recv() => Signal::HUP,
        };
        if let Some(pid) = pid.and_then(Pid::from_raw) {
            // The child may have just exited: nothing to forward then.
            let _ = kill_process(pid, sig);
        }
    }
}

/// Renews every renewable lease, and the run's own token, at two thirds of
/// its lifetime, while the child runs.
fn keep_renewed(client: &Client, held: &[Held], own_token: bool) -> tokio::task::JoinHandle<()> {
    let client = client.clone();
    let mut leases: Vec<(String, String, u64)> = held
        .iter()
        .filter(|h| h.renewable && h.duration > 0)
        .map(|h| (h.name.clone(), h.lease_id.clone(), h.duration))
        .collect();
    tokio::spawn(async move {
        let mut token_ttl = if own_token {
            client
                .request(Method::GET, "auth/token/lookup-self", None)
                .await
                .ok()
                .flatten()
                .and_then(|v| v["data"]["ttl"].as_u64())
                .unwrap_or(0)
        } else {
            0
        };
        let mut token_due = Duration::from_secs(token_ttl * 2 / 3);
        let mut due: Vec<Duration> = leases
            .iter()
            .map(|(_, _, d)| Duration::from_secs(d * 2 / 3))
            .collect();
        let started = tokio::time::Instant::now();
        loop {
            let next = due
                .iter()
                .copied()
                .chain((token_ttl > 0).then_some(token_due))
                .min();
            let Some(next) = next else {
                return;
            };
            tokio::time::sleep_until(started + next).await;
            let now = started.elapsed();
            for (i, (name, lease, duration)) in leases.iter_mut().enumerate() {
                if due[i] > now {
                    continue;
                }
                let body: Map<String, Value> = [
                    ("lease_id".to_owned(), json!(lease)),
                    ("increment".to_owned(), json!(*duration)),
                ]
                .into_iter()
                .collect();
                match client
                    .request(Method::PUT, "sys/leases/renew", Some(&body))
                    .await
                {
                    Ok(Some(answer)) => {
                        let got = answer["lease_duration"].as_u64().unwrap_or(0);
                        if got < *duration {
                            eprintln!(
                                "broker exec: {name}'s lease reaches its max TTL in {got}s; it is not renewed past that"
                            );
                        }
                        due[i] = now + Duration::from_secs((got * 2 / 3).max(1));
                        if got == 0 {
                            due[i] = Duration::MAX;
                        }
                    }
                    Ok(None) | Err(_) => {
                        eprintln!("broker exec: cannot renew {name}'s lease; trying again shortly");
                        due[i] = now + Duration::from_secs(5);
                    }
                }
            }
            if token_ttl > 0 && token_due <= now {
                match client
                    .request(Method::POST, "auth/token/renew-self", Some(&Map::new()))
                    .await
                {
                    Ok(Some(answer)) => {
                        token_ttl = answer["auth"]["lease_duration"].as_u64().unwrap_or(0);
                        token_due = now + Duration::from_secs((token_ttl * 2 / 3).max(1));
                    }
                    _ => token_due = now + Duration::from_secs(5),
                }
            }
        }
    })
}

/// Revokes what the run made: its leases, then its own token.
async fn revoke_all(client: &Client, held: &[Held], own_token: bool) {
    for h in held {
        let body: Map<String, Value> = [("lease_id".to_owned(), json!(h.lease_id))]
            .into_iter()
            .collect();
        if let Err(e) = client
            .request(Method::PUT, "sys/leases/revoke", Some(&body))
            .await
        {
            eprintln!(
                "broker exec: cannot revoke {}'s lease ({e}); it ends with its TTL",
                h.name
            );
        }
    }
    if own_token
        && let Err(e) = client
            .request(Method::POST, "auth/token/revoke-self", Some(&Map::new()))
            .await
    {
        eprintln!("broker exec: cannot revoke this run's token ({e}); it ends with its TTL");
    }
}
