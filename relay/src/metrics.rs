//! Prometheus metrics: every metric name in one place, the registry in the app state (no
//! globals), and rendering of the text exposition. Every label takes values from a fixed set:
//! HTTP metrics are labelled by route pattern (never the raw path) and by a known method or
//! `other`; long-polls that actually waited are kept out of the latency histogram. Metric names
//! are listed (with what each answers) in docs/operations.md.

use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

#[cfg(target_os = "linux")]
impl Maker<'_> {
    /// CPU, memory, open and maximum file descriptors, threads, start time (`process_*`).
    fn add_process_metrics(&self) {
        self.0
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("unique metric");
    }
}

/// Metric names.
pub mod name {
    pub const BUILD_INFO: &str = "approvd_build_info";
    pub const HTTP_REQUESTS: &str = "approvd_http_requests_total";
    pub const HTTP_DURATION: &str = "approvd_http_request_duration_seconds";
    pub const LONGPOLL_WAITERS: &str = "approvd_longpoll_waiters";
    pub const LONGPOLL_WAKEUPS: &str = "approvd_longpoll_wakeups_total";
    pub const WAKE_LATENCY: &str = "approvd_longpoll_wake_latency_seconds";
    pub const AUTH_FAILURES: &str = "approvd_auth_failures_total";
    pub const RATE_LIMITED: &str = "approvd_rate_limited_total";
    pub const CHALLENGES: &str = "approvd_challenges_created_total";
    pub const CHALLENGES_ENDED: &str = "approvd_challenges_ended_total";
    pub const APPROVAL_LATENCY: &str = "approvd_approval_latency_seconds";
    pub const VERDICTS: &str = "approvd_verdicts_total";
    pub const PUSHES: &str = "approvd_push_total";
    pub const PUSH_DURATION: &str = "approvd_push_duration_seconds";
    pub const PUSH_RETRIES: &str = "approvd_push_retries_total";
    pub const STORE_ERRORS: &str = "approvd_store_errors_total";
    pub const STORE_DURATION: &str = "approvd_store_operation_duration_seconds";
    pub const STORE_UP: &str = "approvd_store_up";
    pub const STORE_ROUND_TRIPS: &str = "approvd_store_round_trips_total";
    pub const CONNECTIONS_REFUSED: &str = "approvd_connections_refused_total";
    pub const REQUEST_TIMEOUTS: &str = "approvd_request_timeouts_total";
    pub const MALFORMED_REQUESTS: &str = "approvd_http_malformed_requests_total";
}

/// The relay's version, as `approvd_build_info` reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit it was built from (`APPROVD_GIT_SHA` at build time, else `git`, else `unknown`).
pub const GIT_SHA: &str = env!("APPROVD_GIT_SHA");

/// The `method` label: one of a fixed set, so a client cannot mint label values (an arbitrary
/// method token would otherwise become a new time series, and a long one a huge line).
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"];
    KNOWN
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or("other")
}

/// How a challenge ended (the `outcome` label of `approvd_challenges_ended_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Approved,
    Denied,
    Fraud,
    Expired,
    Cancelled,
}

impl Ended {
    fn label(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Fraud => "fraud",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }
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
    /// Long-polls woken by a write, by where the wakeup came from (`local`, `redis`).
    pub longpoll_wakeups: IntCounterVec,
    /// From the write to the waiter running again, by source.
    pub wake_latency: HistogramVec,
    /// Failed request authentications by reason.
    pub auth_failures: IntCounterVec,
    /// Requests or targets refused by a rate limit, by limit.
    pub rate_limited: IntCounterVec,
    pub challenges: IntCounter,
    /// Challenges that ended, by outcome.
    challenges_ended: IntCounterVec,
    /// From a challenge's creation to its verdict, by decision.
    approval_latency: HistogramVec,
    /// Verdicts stored, by decision.
    pub verdicts: IntCounterVec,
    /// Push attempts by provider and result.
    pub pushes: IntCounterVec,
    /// One push from start to its result (retries included), by provider.
    pub push_duration: HistogramVec,
    /// Pushes tried again after a throttled or unavailable answer, by provider.
    pub push_retries: IntCounterVec,
    /// Store operations that failed, by operation.
    pub store_errors: IntCounterVec,
    /// Store operation latency, by operation.
    pub store_duration: HistogramVec,
    /// 1 when the last store operation succeeded, 0 when it failed.
    pub store_up: IntGauge,
    /// Requests sent to Redis (brought up to date at scrape time).
    pub store_round_trips: IntCounter,
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

/// Registers each metric as it is made.
struct Maker<'a>(&'a Registry);

impl Maker<'_> {
    fn add<M: prometheus::core::Collector + Clone + 'static>(&self, metric: M) -> M {
        self.0
            .register(Box::new(metric.clone()))
            .expect("unique metric");
        metric
    }

    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::new(name, help).expect("valid metric"))
    }

    fn counters(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::new(name, help).expect("valid metric"))
    }

    fn histograms(&self, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.add(HistogramVec::new(opts, labels).expect("valid metric"))
    }
}

/// Buckets for in-process work and store round trips (seconds).
const FAST: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Buckets for calls to APNs/FCM, retries included (seconds).
const PUSH: [f64; 11] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Buckets for a person answering a prompt (seconds; challenges live 2 minutes by default).
const HUMAN: [f64; 11] = [
    1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let make = Maker(&registry);
        let build_info = make.add(
            prometheus::IntGaugeVec::new(
                Opts::new(
                    name::BUILD_INFO,
                    "The running relay's version and commit (always 1).",
                ),
                &["version", "git_sha"],
            )
            .expect("valid metric"),
        );
        build_info.with_label_values(&[VERSION, GIT_SHA]).set(1);
        #[cfg(target_os = "linux")]
        make.add_process_metrics();
        let store_up = make.gauge(
            name::STORE_UP,
            "1 when the last store operation succeeded, 0 when it failed.",
        );
        store_up.set(1);
        let metrics = Self {
            http_requests: make.counters(
                name::HTTP_REQUESTS,
                "HTTP requests by route pattern, method and status.",
                &["route", "method", "status"],
            ),
            http_duration: make.histograms(
                name::HTTP_DURATION,
                "HTTP request latency by route pattern, excluding long-poll waits.",
                &["route"],
                &FAST,
            ),
            longpoll_waiters: make.gauge(
                name::LONGPOLL_WAITERS,
                "Long-poll requests currently waiting.",
            ),
            longpoll_wakeups: make.counters(
                name::LONGPOLL_WAKEUPS,
                "Long-polls woken by a write, by source (local: this process; redis: pub/sub).",
                &["source"],
            ),
            wake_latency: make.histograms(
                name::WAKE_LATENCY,
                "From the write that woke a long-poll to the poll running again, by source.",
                &["source"],
                &FAST,
            ),
            auth_failures: make.counters(
                name::AUTH_FAILURES,
                "Requests refused by authentication, by reason.",
                &["reason"],
            ),
            rate_limited: make.counters(
                name::RATE_LIMITED,
                "Requests or challenge targets refused by a rate limit.",
                &["limit"],
            ),
            challenges: make.counter(name::CHALLENGES, "Challenges created."),
            challenges_ended: make.counters(
                name::CHALLENGES_ENDED,
                "Challenges that ended, by outcome (approved, denied, fraud, cancelled; expired \
                 when the NAS's poll learns it).",
                &["outcome"],
            ),
            approval_latency: make.histograms(
                name::APPROVAL_LATENCY,
                "From a challenge's creation to its verdict, by decision (whole seconds).",
                &["decision"],
                &HUMAN,
            ),
            verdicts: make.counters(
                name::VERDICTS,
                "Verdicts stored, by decision.",
                &["decision"],
            ),
            pushes: make.counters(
                name::PUSHES,
                "Push attempts by provider, credential (its configured label) and result.",
                &["provider", "credential", "result"],
            ),
            push_duration: make.histograms(
                name::PUSH_DURATION,
                "One push from start to result, retries included, by provider.",
                &["provider"],
                &PUSH,
            ),
            push_retries: make.counters(
                name::PUSH_RETRIES,
                "Pushes tried again after a throttled or unavailable answer, by provider.",
                &["provider"],
            ),
            store_errors: make.counters(
                name::STORE_ERRORS,
                "Store operations that failed, by operation.",
                &["operation"],
            ),
            store_duration: make.histograms(
                name::STORE_DURATION,
                "Store operation latency (one Redis command or script), by operation.",
                &["operation"],
                &FAST,
            ),
            store_up,
            store_round_trips: make.counter(
                name::STORE_ROUND_TRIPS,
                "Requests sent to Redis: each command, script or pipeline is one round trip (0 on the memory store).",
            ),
            connections_refused: make.counter(
                name::CONNECTIONS_REFUSED,
                "Connections closed on accept because their IP had too many open.",
            ),
            request_timeouts: make.counter(
                name::REQUEST_TIMEOUTS,
                "Requests whose body did not arrive within the deadline (408).",
            ),
            malformed_requests: make.counter(
                name::MALFORMED_REQUESTS,
                "Requests the HTTP parser refused as malformed.",
            ),
            registry,
        };
        for ended in [
            Ended::Approved,
            Ended::Denied,
            Ended::Fraud,
            Ended::Expired,
            Ended::Cancelled,
        ] {
            metrics.challenges_ended.with_label_values(&[ended.label()]);
        }
        for decision in ["approved", "denied", "fraud"] {
            metrics.approval_latency.with_label_values(&[decision]);
        }
        for decision in ["approve", "deny", "fraud"] {
            metrics.verdicts.with_label_values(&[decision]);
        }
        for source in ["local", "redis", "reconnect"] {
            metrics.longpoll_wakeups.with_label_values(&[source]);
            metrics.wake_latency.with_label_values(&[source]);
        }
        metrics
    }

    /// Create at zero the series of every known label value that is not fixed here (auth
    /// failure reasons, limits), so dashboards and alert rules see 0 rather than no data.
    pub fn create_series(&self, auth_reasons: &[&str], limits: &[&str]) {
        for reason in auth_reasons {
            self.auth_failures.with_label_values(&[reason]);
        }
        for limit in limits {
            self.rate_limited.with_label_values(&[limit]);
        }
    }

    /// Create at zero the series of a push credential the relay sends through.
    pub fn create_push_series(&self, provider: &str, credential: &str, results: &[&str]) {
        for result in results {
            self.pushes
                .with_label_values(&[provider, credential, result]);
        }
        self.push_duration.with_label_values(&[provider]);
        self.push_retries.with_label_values(&[provider]);
    }

    /// A challenge ended; `latency` is creation to verdict, for decided ones.
    pub fn challenge_ended(&self, ended: Ended, latency: Option<std::time::Duration>) {
        self.challenges_ended
            .with_label_values(&[ended.label()])
            .inc();
        if let Some(latency) = latency {
            self.approval_latency
                .with_label_values(&[ended.label()])
                .observe(latency.as_secs_f64());
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
