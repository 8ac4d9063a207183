//! The `broker` command; see [`broker::cli`].

fn main() -> std::process::ExitCode {
    broker::cli::main()
}
