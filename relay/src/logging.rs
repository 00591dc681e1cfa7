//! Logging for `approvd serve`: the configured filter and format, with one exception — the HTTP
//! parser's complaint about each malformed request (actix logs "stream error" at ERROR, one line
//! per junk request from anyone) is counted in `approvd_http_malformed_requests_total` and kept
//! out of the log unless the filter names `actix_http` itself.

use tracing::Level;
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer;

use crate::config::{LogConfig, LogFormat};
use crate::metrics::Metrics;

/// Is this the HTTP/1 parser reporting a client's malformed request?
fn is_parser_complaint(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.target().starts_with("actix_http::h1") && *metadata.level() == Level::ERROR
}

/// The configured filter; unless it mentions `actix_http`, the parser's complaints are off.
fn filter(config: &LogConfig) -> EnvFilter {
    let text = if config.filter.contains("actix_http") {
        config.filter.clone()
    } else {
        format!("{},actix_http::h1=off", config.filter)
    };
    EnvFilter::try_new(text).unwrap_or_else(|_| EnvFilter::new("info,actix_http::h1=off"))
}

/// Counts the parser's complaints (and nothing else: its filter is static per call site).
struct MalformedRequests(prometheus::IntCounter);

impl<S: tracing::Subscriber> Layer<S> for MalformedRequests {
    fn on_event(
        &self,
        _event: &tracing::Event<'_>,
        _context: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0.inc();
    }
}

/// Install the global subscriber: logs to stderr as configured, parser complaints counted.
pub fn init(config: &LogConfig, metrics: &Metrics) {
    let counter = MalformedRequests(metrics.malformed_requests.clone())
        .with_filter(filter_fn(is_parser_complaint));
    let registry = tracing_subscriber::registry().with(counter);
    // Colours only on a terminal: log files and collectors get plain text.
    let base = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match config.format {
        LogFormat::Json => registry
            .with(base.json().with_filter(filter(config)))
            .init(),
        LogFormat::Text => registry.with(base.with_filter(filter(config))).init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_complaints_are_off_unless_asked_for() {
        let config = |filter: &str| LogConfig {
            filter: filter.to_owned(),
            format: LogFormat::Text,
            access_log: true,
            client_ip: false,
        };
        assert_eq!(
            filter(&config("info")).to_string(),
            "actix_http::h1=off,info"
        );
        assert!(!filter(&config("info,actix_http=debug"))
            .to_string()
            .contains("off"));
    }
}
