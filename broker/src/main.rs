//! The `broker` command: the server (coming with the broker core) and
//! operator tools.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
