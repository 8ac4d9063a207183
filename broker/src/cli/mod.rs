//! Command-line parsing and dispatch. The only place that uses `anyhow`:
//! errors from the library's typed enums end here, printed for a person.

mod audit;
mod operator;
mod plugin;
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
    /// Audit log tools: `broker audit verify FILE...`.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Operator tasks: `broker operator init`.
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
}

/// Runs the `broker` command with the process's arguments.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
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
            Command::Plugin(cmd) => plugin::run(cmd).await,
            Command::Server(args) => server::run(args).await,
            Command::Operator(cmd) => operator::run(cmd).await,
            Command::Audit(cmd) => audit::run(cmd),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
