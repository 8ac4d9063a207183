//! Command-line parsing and dispatch. The only place that uses `anyhow`:
//! errors from the library's typed enums end here, printed for a person.

mod plugin;
mod server;

use clap::{Parser, Subcommand};

/// A dynamic credential broker: short-lived database users and
/// certificates, made by sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "broker", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List and describe credential plugins (built-in or a `.wasm` file).
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Run the API server (`broker server --dev` for a throwaway one).
    Server(server::ServerArgs),
}

pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BROKER_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
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
