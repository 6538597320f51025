//! `rental-api`: see the library's [`rental_api::cli`] for the commands.

use clap::Parser;
use rental_api::cli::{Cli, run};

/// mimalloc returns freed memory to the system after a short delay, so a burst (a login storm, a big export)
/// does not stay in the process's RSS as glibc's malloc kept it.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
