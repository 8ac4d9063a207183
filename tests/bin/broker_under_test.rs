//! The broker as a process of its own, for tests that kill it: a dev-mode
//! core over DIR, serving on ADDR with root token TOKEN, holding pending
//! leases for HOLD seconds.
//!
//! Usage: `broker-under-test DIR ADDR TOKEN HOLD`

use std::process::ExitCode;
use std::time::Duration;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, addr, token, hold] = args.as_slice() else {
        eprintln!("usage: broker-under-test DIR ADDR TOKEN HOLD_SECS");
        return ExitCode::from(2);
    };
    let hold = Duration::from_secs(hold.parse().unwrap_or(60));
    let core = match broker::server::open_dev_core(std::path::Path::new(dir), token, hold).await {
        Ok(core) => core,
        Err(e) => {
            eprintln!("cannot open the core: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match broker::server::serve(listener, core).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server failed: {e}");
            ExitCode::FAILURE
        }
    }
}
