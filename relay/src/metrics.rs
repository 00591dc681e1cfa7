//! Prometheus metrics: every metric name in one place, the registry in the app state (no
//! globals), and rendering of the text exposition. Every label takes values from a fixed set:
//! HTTP metrics are labelled by route pattern (never the raw path) and by a known method or
//! `other`; long-polls that actually waited are kept out of the latency histogram.

use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Metric names.
pub mod name {
    pub const HTTP_REQUESTS: &str = "approvd_http_requests_total";
    pub const HTTP_DURATION: &str = "approvd_http_request_duration_seconds";
    pub const LONGPOLL_WAITERS: &str = "approvd_longpoll_waiters";
    pub const AUTH_FAILURES: &str = "approvd_auth_failures_total";
    pub const RATE_LIMITED: &str = "approvd_rate_limited_total";
    pub const CHALLENGES: &str = "approvd_challenges_created_total";
    pub const VERDICTS: &str = "approvd_verdicts_total";
    pub const PUSHES: &str = "approvd_push_total";
    pub const STORE_ERRORS: &str = "approvd_store_errors_total";
    pub const CONNECTIONS_REFUSED: &str = "approvd_connections_refused_total";
    pub const REQUEST_TIMEOUTS: &str = "approvd_request_timeouts_total";
    pub const MALFORMED_REQUESTS: &str = "approvd_http_malformed_requests_total";
}

/// The `method` label: one of a fixed set, so a client cannot mint label values (an arbitrary
/// method token would otherwise become a new time series, and a long one a huge line).
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"];
    KNOWN
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or("other")
}

/// The relay's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route pattern, method and status.
    pub http_requests: IntCounterVec,
    /// Latency by route pattern (requests that did not wait on a long-poll).
    pub http_duration: HistogramVec,
    /// Long-poll waiters right now (set at scrape time).
    pub longpoll_waiters: IntGauge,
    /// Failed request authentications by reason.
    pub auth_failures: IntCounterVec,
    /// Requests or targets refused by a rate limit, by limit.
    pub rate_limited: IntCounterVec,
    pub challenges: IntCounter,
    /// Verdicts stored, by decision.
    pub verdicts: IntCounterVec,
    /// Push attempts by provider and result.
    pub pushes: IntCounterVec,
    pub store_errors: IntCounter,
    /// Connections closed on accept: their IP had too many open.
    pub connections_refused: IntCounter,
    /// Requests whose body did not arrive within the deadline (408).
    pub request_timeouts: IntCounter,
    /// Requests the HTTP parser refused (bad request line, headers, framing): answered 400/431
    /// by the parser and counted here instead of logged.
    pub malformed_requests: IntCounter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric");
            metric
        };
        let counter = |name: &str, help: &str| {
            let metric = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric");
            metric
        };
        let http_requests = counter_vec(
            name::HTTP_REQUESTS,
            "HTTP requests by route pattern, method and status.",
            &["route", "method", "status"],
        );
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                name::HTTP_DURATION,
                "HTTP request latency by route pattern, excluding long-poll waits.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["route"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(http_duration.clone()))
            .expect("unique metric");
        let longpoll_waiters = IntGauge::new(
            name::LONGPOLL_WAITERS,
            "Long-poll requests currently waiting.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(longpoll_waiters.clone()))
            .expect("unique metric");
        Self {
            http_requests,
            http_duration,
            longpoll_waiters,
            auth_failures: counter_vec(
                name::AUTH_FAILURES,
                "Requests refused by authentication, by reason.",
                &["reason"],
            ),
            rate_limited: counter_vec(
                name::RATE_LIMITED,
                "Requests or challenge targets refused by a rate limit.",
                &["limit"],
            ),
            challenges: counter(name::CHALLENGES, "Challenges created."),
            verdicts: counter_vec(
                name::VERDICTS,
                "Verdicts stored, by decision.",
                &["decision"],
            ),
            pushes: counter_vec(
                name::PUSHES,
                "Push attempts by provider and result.",
                &["provider", "result"],
            ),
            store_errors: counter(name::STORE_ERRORS, "Store operations that failed."),
            connections_refused: counter(
                name::CONNECTIONS_REFUSED,
                "Connections closed on accept because their IP had too many open.",
            ),
            request_timeouts: counter(
                name::REQUEST_TIMEOUTS,
                "Requests whose body did not arrive within the deadline (408).",
            ),
            malformed_requests: counter(
                name::MALFORMED_REQUESTS,
                "Requests the HTTP parser refused as malformed.",
            ),
            registry,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(buffer).expect("the exposition is UTF-8")
    }
}
