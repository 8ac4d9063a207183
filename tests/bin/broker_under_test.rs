//! The `broker` command itself, built inside the test package so that the
//! end-to-end tests can start it as a process (`CARGO_BIN_EXE_…` only names
//! a package's own binaries).

fn main() -> std::process::ExitCode {
    broker::cli::main()
}
