//! Log output: readable lines on a terminal, JSON when configured or when writing to a file or pipe.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::settings::{LogConfig, LogFormat};

/// Installs the global subscriber. `RUST_LOG` overrides the configured level.
///
/// # Errors
/// When the filter does not parse or a subscriber is already installed.
pub fn init(config: &LogConfig) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.is_empty() => EnvFilter::try_new(value)?,
        _ => EnvFilter::try_new(&config.level)?,
    };
    let json = match config.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true);
    let result = if json { builder.json().flatten_event(true).try_init() } else { builder.compact().try_init() };
    result.map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}
