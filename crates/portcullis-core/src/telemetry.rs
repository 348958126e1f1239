//! Logging set-up: text for people, JSON for machines. Levels come from the
//! configuration; `RUST_LOG`-style directives are accepted there.

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid log level or filter {0:?}")]
pub struct BadFilter(pub String);

/// Installs the global subscriber; a second call is a no-op.
pub fn init(format: LogFormat, filter: &str) -> Result<(), BadFilter> {
    let filter = EnvFilter::try_new(filter).map_err(|_| BadFilter(filter.to_owned()))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    Ok(())
}
