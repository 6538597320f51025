//! The Stripe stand-in as a process, for runs of the server that must not reach Stripe (the contract test,
//! `.ci/contract`): prints its base URL (`http://127.0.0.1:<port>/`) on the first line of stdout and serves
//! until it is stopped (SIGINT or SIGTERM).
//!
//! `cargo run -p rental-testkit --example stripe_stand_in`

use std::io::Write;

use rental_testkit::StripeStandIn;

#[tokio::main]
async fn main() {
    let stand_in = StripeStandIn::start().await;
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{}", stand_in.base_url());
    let _ = stdout.flush();
    // Serve until SIGINT; SIGTERM ends the process as it is.
    let _ = tokio::signal::ctrl_c().await;
    drop(stand_in);
}
