//! `broker login` and `broker token …`: getting a token, keeping it in the
//! token helper file for the next commands, and the token store's
//! operations on it.

use anyhow::Context;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::args::body;
use super::output::Output;
use super::{client, secret_from_terminal};
use crate::client::TokenHelper;

/// `broker login [-method=M] [-path=P] [TOKEN | KEY=VALUE…]`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// How to log in: `token` (default), `approle` (role_id=…
    /// secret_id=…), `jwt` (role=… jwt=@file), `cert` (name=…, with
    /// BROKER_CLIENT_CERT and BROKER_CLIENT_KEY).
    #[arg(long, default_value = "token")]
    pub method: String,
    /// Where the auth method is mounted (default: its type).
    #[arg(long)]
    pub path: Option<String>,
    /// Print the token and do not keep it in the token helper file.
    #[arg(long)]
    pub no_store: bool,
    /// For `token`: the token (read without echo when absent, or `-` for
    /// standard input). For the others: the login's `key=value` fields.
    pub data: Vec<String>,
    #[command(flatten)]
    pub output: Output,
}

/// Logs in and keeps the token for the next commands.
pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let base = client()?;
    let (token, answer) = if args.method == "token" {
        let token = match args.data.as_slice() {
            [] => secret_from_terminal("Token (will be hidden): ")?,
            [one] if one == "-" => {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .context("cannot read the token from standard input")?;
                Zeroizing::new(text.trim().to_owned())
            }
            [one] if !one.contains('=') => Zeroizing::new(one.clone()),
            _ => anyhow::bail!("-method=token takes the token alone (or nothing, to be asked)"),
        };
        let client = base.with_token(token.clone());
        let answer = client
            .request(Method::GET, "auth/token/lookup-self", None)
            .await?
            .unwrap_or(Value::Null);
        // As Vault shows it: the token's facts under `auth`.
        let data = &answer["data"];
        let shown = json!({"auth": {
            "client_token": token.as_str(),
            "accessor": data["accessor"],
            "lease_duration": data["ttl"],
            "renewable": data["renewable"],
            "policies": data["policies"],
        }});
        (token, shown)
    } else {
        let path = args.path.clone().unwrap_or_else(|| args.method.clone());
        let fields: Map<String, Value> = body(&args.data)?;
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
            .map(|t| Zeroizing::new(t.to_owned()))
            .context("the login answered no token")?;
        (token, answer)
    };
    if !args.no_store {
        let helper = TokenHelper::default_location().context(
            "no home directory to keep the token in: set BROKER_TOKEN_FILE, or use -no-store",
        )?;
        helper.store(&token)?;
        if args.output.field.is_none() {
            eprintln!(
                "Success! You are now logged in. The token is kept in {} (mode 0600) and used by later commands.\n",
                helper.path().display()
            );
        }
    }
    args.output.print(&answer)
}

/// `broker token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token (a child of the one in use).
    Create {
        /// A policy to attach (repeatable).
        #[arg(long = "policy")]
        policies: Vec<String>,
        /// Its TTL (`1h`).
        #[arg(long)]
        ttl: Option<String>,
        /// A periodic token's period.
        #[arg(long)]
        period: Option<String>,
        /// Its display name.
        #[arg(long)]
        display_name: Option<String>,
        /// Made without a parent (needs sudo on auth/token/create-orphan).
        #[arg(long)]
        orphan: bool,
        /// A batch token instead of a service token.
        #[arg(long = "type", default_value = "service")]
        kind: String,
        #[command(flatten)]
        output: Output,
    },
    /// Show a token's facts (the one in use when none is given).
    Lookup {
        /// The token (or, with -accessor, its accessor).
        token: Option<String>,
        /// The argument is an accessor.
        #[arg(long)]
        accessor: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Renew a token (the one in use when none is given).
    Renew {
        /// The token.
        token: Option<String>,
        /// How much longer (`1h`).
        #[arg(long)]
        increment: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Revoke a token and its children (and their leases).
    Revoke {
        /// The token (or accessor with -accessor).
        token: Option<String>,
        /// Revoke the token in use.
        #[arg(long = "self")]
        own: bool,
        /// The argument is an accessor.
        #[arg(long)]
        accessor: bool,
    },
    /// What a token may do on a path (the one in use when only a path is given).
    Capabilities {
        /// `[TOKEN] PATH`.
        #[arg(num_args = 1..=2, required = true)]
        args: Vec<String>,
        #[command(flatten)]
        output: Output,
    },
}

/// Runs a token command.
pub async fn token(cmd: TokenCommand) -> anyhow::Result<()> {
    let client = client()?;
    let post = |path: &'static str, body: Map<String, Value>| {
        let client = &client;
        async move { client.request(Method::POST, path, Some(&body)).await }
    };
    match cmd {
        TokenCommand::Create {
            policies,
            ttl,
            period,
            display_name,
            orphan,
            kind,
            output,
        } => {
            let mut body = Map::new();
            if !policies.is_empty() {
                body.insert("policies".into(), json!(policies));
            }
            for (key, value) in [
                ("ttl", ttl),
                ("period", period),
                ("display_name", display_name),
            ] {
                if let Some(v) = value {
                    body.insert(key.into(), json!(v));
                }
            }
            body.insert("type".into(), json!(kind));
            let path = if orphan {
                "auth/token/create-orphan"
            } else {
                "auth/token/create"
            };
            let answer = post(path, body).await?.unwrap_or(Value::Null);
            output.print(&answer)
        }
        TokenCommand::Lookup {
            token,
            accessor,
            output,
        } => {
            let answer = match (token, accessor) {
                (None, _) => {
                    client
                        .request(Method::GET, "auth/token/lookup-self", None)
                        .await?
                }
                (Some(a), true) => post("auth/token/lookup-accessor", map("accessor", a)).await?,
                (Some(t), false) => post("auth/token/lookup", map("token", t)).await?,
            };
            output.print(&answer.unwrap_or(Value::Null))
        }
        TokenCommand::Renew {
            token,
            increment,
            output,
        } => {
            let mut body = Map::new();
            if let Some(i) = increment {
                body.insert("increment".into(), json!(i));
            }
            let answer = match token {
                None => post("auth/token/renew-self", body).await?,
                Some(t) => {
                    body.insert("token".into(), json!(t));
                    post("auth/token/renew", body).await?
                }
            };
            output.print(&answer.unwrap_or(Value::Null))
        }
        TokenCommand::Revoke {
            token,
            own,
            accessor,
        } => {
            match (token, own, accessor) {
                (None, true, _) => post("auth/token/revoke-self", Map::new()).await?,
                (Some(a), false, true) => {
                    post("auth/token/revoke-accessor", map("accessor", a)).await?
                }
                (Some(t), false, false) => post("auth/token/revoke", map("token", t)).await?,
                _ => anyhow::bail!("give a token (or an accessor with -accessor), or -self"),
            };
            println!("Success! Revoked token (if it existed)");
            Ok(())
        }
        TokenCommand::Capabilities { args, output } => {
            let answer = match args.as_slice() {
                [path] => post("sys/capabilities-self", map("paths", path.clone())).await?,
                [token, path] => {
                    let mut body = map("paths", path.clone());
                    body.insert("token".into(), json!(token));
                    post("sys/capabilities", body).await?
                }
                _ => anyhow::bail!("give [TOKEN] PATH"),
            }
            .unwrap_or(Value::Null);
            if output.field.is_some() || output.format.is_some() {
                return output.print(&answer);
            }
            let caps = answer
                .get("capabilities")
                .or_else(|| answer["data"].get("capabilities"))
                .and_then(Value::as_array)
                .map(|c| {
                    c.iter()
                        .map(super::output::plain)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            println!("{caps}");
            Ok(())
        }
    }
}

fn map(key: &str, value: String) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(key.into(), Value::String(value));
    m
}
