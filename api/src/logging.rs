//! Logs (SPEC section 10): tracing to stderr, filtered by `BACKCHANNEL_LOG`
//! (default `info`), human-readable text (ANSI colours only when stderr is a
//! terminal) or one JSON object per line (`BACKCHANNEL_LOG_FORMAT=json`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// Installs the process's subscriber (once, from `main`).
pub(crate) fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("BACKCHANNEL_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}
