//! `rental-api`: see the library's [`rental_api::cli`] for the commands.

use clap::Parser;
use rental_api::cli::{Cli, run};

/// jemalloc, built with its background threads on: they give freed memory back to the system after its decay
/// time (1 s, set for this workspace's builds in `.cargo/config.toml`) even while every request thread is idle,
/// so a burst (a thousand connections, a login storm) does not stay in the process's RSS as glibc's malloc kept
/// it.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
