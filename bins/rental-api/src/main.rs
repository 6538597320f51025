//! `rental-api`: see the library's [`rental_api::cli`] for the commands.

use clap::Parser;
use rental_api::cli::{Cli, run};

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
