//! Command-line parsing and dispatch. The only place that uses `anyhow`:
//! errors from the library's typed enums end here, printed for a person.
//!
//! The client commands (`read`, `write`, `login`, `token`, `secrets`, …)
//! speak to a running broker as Vault's CLI does: single-dash flags
//! (`-format=json`), `BROKER_ADDR`/`BROKER_TOKEN` (else `VAULT_ADDR`/
//! `VAULT_TOKEN`), and Vault's exit codes: 0 done, 1 a problem on this side
//! (a bad flag, a file that cannot be read), 2 an answer from the server
//! (refused, nothing there, sealed) or none.

mod admin;
mod api;
mod args;
mod audit;
mod exec;
mod kv;
mod login;
mod operator;
mod output;
mod pki;
mod plugin;
pub mod plugin_new;
mod server;

use clap::{Parser, Subcommand, ValueEnum};

/// A dynamic credential broker: short-lived database users and
/// certificates, made by sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "broker", version, propagate_version = true)]
struct Cli {
    /// Log format on standard error (the level is set by `BROKER_LOG`,
    /// e.g. `BROKER_LOG=debug`; default `info`).
    #[arg(long, global = true, value_enum, env = "BROKER_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// One line per event, for a person.
    Text,
    /// One JSON object per event, for a log pipeline.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read a path (`broker read -field=password database/creds/app`).
    Read(api::ReadArgs),
    /// Write data to a path (`broker write sys/policies/acl/app policy=@app.hcl`).
    Write(api::WriteArgs),
    /// Patch a path's data (JSON merge patch).
    Patch(api::WriteArgs),
    /// List the keys under a path (`broker list database/roles`).
    List(api::ListArgs),
    /// Delete a path.
    Delete(api::DeleteArgs),
    /// Log in and keep the token for the next commands (`-method=approle
    /// role_id=… secret_id=…`).
    Login(login::LoginArgs),
    /// Create, look up, renew and revoke tokens; what a token may do.
    #[command(subcommand)]
    Token(login::TokenCommand),
    /// Renew, revoke or look up leases.
    #[command(subcommand)]
    Lease(admin::LeaseCommand),
    /// Enable, disable, list and tune secrets engines.
    #[command(subcommand)]
    Secrets(admin::SecretsCommand),
    /// Enable, disable and list auth methods.
    #[command(subcommand)]
    Auth(admin::AuthCommand),
    /// Write, read, list and delete ACL policies.
    #[command(subcommand)]
    Policy(admin::PolicyCommand),
    /// Read and write KV secrets by path (version 1 or 2).
    #[command(subcommand)]
    Kv(kv::KvCommand),
    /// Issue certificates from a PKI role.
    #[command(subcommand)]
    Pki(pki::PkiCommand),
    /// The broker's seal state (no token needed). Exit 0 unsealed, 2 sealed.
    Status(output::Output),
    /// Keep an application supplied with secrets: log in by itself, write
    /// its token to sinks, render templates to files, renew what it read
    /// (`broker agent --config agent.toml`).
    Agent {
        /// The agent's configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: std::path::PathBuf,
        /// Log in, write the sinks and render the templates once, then exit
        /// (an init container, a job's first step).
        #[arg(long)]
        exit_after_auth: bool,
    },
    /// Run a command with secrets in its environment, renewed while it
    /// runs and revoked when it ends (`broker exec --secret
    /// DB=database/creds/app -- ./deploy.sh`).
    Exec(exec::ExecArgs),
    /// List and describe credential plugins (built-in or a `.wasm` file).
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Run the API server (`broker server --dev` for a throwaway one).
    ///
    /// For a real deployment, write a configuration file (README, "Running
    /// it for real"), run `broker operator init --config FILE` once, then
    /// `broker server --config FILE`. To try things, `broker server --dev`
    /// starts a throwaway broker in one command.
    Server(server::ServerArgs),
    /// Audit devices (`enable`, `disable`, `list` on a running broker) and
    /// `verify FILE...` (offline, on the files).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Operator tasks: `init` (offline, on the storage), `unseal`, `seal`,
    /// `rotate` (on a running broker).
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
}

/// Runs the `broker` command with the process's arguments.
pub fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse_from(args::vault_style(std::env::args_os())) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and version are not errors; a usage error is this
            // side's (exit 1, as Vault's CLI).
            return std::process::ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BROKER_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, never into a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Read(a) => api::read(a).await,
            Command::Write(a) => api::write(a, reqwest::Method::POST).await,
            Command::Patch(a) => api::write(a, reqwest::Method::PATCH).await,
            Command::List(a) => api::list(a).await,
            Command::Delete(a) => api::delete(a).await,
            Command::Login(a) => login::login(a).await,
            Command::Token(cmd) => login::token(cmd).await,
            Command::Lease(cmd) => admin::lease(cmd).await,
            Command::Secrets(cmd) => admin::secrets(cmd).await,
            Command::Auth(cmd) => admin::auth(cmd).await,
            Command::Policy(cmd) => admin::policy(cmd).await,
            Command::Kv(cmd) => kv::run(cmd).await,
            Command::Pki(cmd) => pki::run(cmd).await,
            Command::Status(output) => api::status(output).await,
            Command::Exec(a) => exec::run(a).await,
            Command::Agent {
                config,
                exit_after_auth,
            } => {
                let config = crate::agent::AgentConfig::load(&config)?;
                match crate::agent::run(config, exit_after_auth).await? {
                    // The child's code, as `broker exec` gives it.
                    Some(code) if code != 0 => {
                        Err(Exit::silent(u8::try_from(code & 0xff).unwrap_or(1)))
                    }
                    _ => Ok(()),
                }
            }
            Command::Plugin(cmd) => plugin::run(cmd).await,
            Command::Server(args) => server::run(args).await,
            Command::Operator(cmd) => operator::run(cmd).await,
            Command::Audit(cmd) => audit::run(cmd).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if let Some(exit) = e.downcast_ref::<Exit>() {
                if let Some(message) = &exit.message {
                    eprintln!("{message}");
                }
                return std::process::ExitCode::from(exit.code);
            }
            eprintln!("error: {e:#}");
            let code = e
                .downcast_ref::<crate::client::ClientError>()
                .map_or(1, crate::client::ClientError::exit_code);
            std::process::ExitCode::from(code)
        }
    }
}

/// An end with a chosen exit code (and maybe a message), not an error
/// report: `broker status` of a sealed broker, a read of nothing.
#[derive(Debug)]
struct Exit {
    code: u8,
    message: Option<String>,
}

impl Exit {
    fn with(code: u8, message: String) -> anyhow::Error {
        anyhow::Error::new(Self {
            code,
            message: Some(message),
        })
    }

    fn silent(code: u8) -> anyhow::Error {
        anyhow::Error::new(Self {
            code,
            message: None,
        })
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.code)
    }
}

impl std::error::Error for Exit {}

/// The client the environment describes.
fn client() -> anyhow::Result<crate::client::Client> {
    Ok(crate::client::Client::from_env()?)
}

/// A secret typed at the terminal without echo; a line of standard input
/// when it is not a terminal (a pipe in a script).
fn secret_from_terminal(prompt: &str) -> anyhow::Result<zeroize::Zeroizing<String>> {
    use std::io::IsTerminal;
    let text = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt)
            .map_err(|e| anyhow::anyhow!("cannot read from the terminal: {e}"))?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| anyhow::anyhow!("cannot read standard input: {e}"))?;
        line
    };
    let text = zeroize::Zeroizing::new(text.trim().to_owned());
    if text.is_empty() {
        anyhow::bail!("nothing was given");
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
