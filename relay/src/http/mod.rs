//! The HTTP server: application state, the request middleware (ids, metrics, access log), the long-poll response helper,
//! and the server lifecycle (serve, graceful shutdown that answers held polls). Handlers live in
//! `routes/` (extract, call a `service` use case, respond); authentication and body/query
//! parsing in `auth`; error mapping in `problem`.

pub mod auth;
pub mod connections;
pub mod openapi;
pub mod parse_errors;
pub mod problem;
pub mod routes;
pub mod tokens;

use std::future::Future;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpResponse};

use crate::config::HttpConfig;
use crate::metrics;
use crate::service::Deps;
use problem::ApiError;

/// Everything a handler needs, shared by all workers.
#[derive(Debug)]
pub struct AppState {
    /// The use cases' dependencies (store, handle keys, push, metrics, clock, limits, shutdown).
    pub deps: Deps,
    /// Take the client IP for per-IP limits from `X-Forwarded-For`.
    pub trust_forwarded_for: bool,
    /// How long a request's body may take to arrive (then 408).
    pub body_timeout: Duration,
    /// The operator's admission check, when configured.
    pub admission: Option<tokens::BearerJwt>,
    /// The check of downstream relays' forwarding tokens; `None`: push forwarding is off.
    pub forwarding: Option<tokens::BearerJwt>,
    /// Write an access-log line per request.
    pub access_log: bool,
    /// Name the client IP in access-log lines.
    pub log_client_ip: bool,
}

/// Marks a response whose request waited on a long-poll (kept out of the latency histogram).
#[derive(Debug, Clone, Copy)]
pub struct LongPolled;

/// Register every route.
pub fn configure(config: &mut web::ServiceConfig) {
    routes::register(config);
}

/// Longest `X-Request-Id` taken from a client; a longer or odd one is replaced.
pub const MAX_REQUEST_ID: usize = 64;

/// The request's id: the client's `X-Request-Id` when it is 1–64 characters of
/// `[A-Za-z0-9._:-]`, else a fresh random one (so logs never carry arbitrary client text).
fn request_id(request: &ServiceRequest) -> String {
    request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MAX_REQUEST_ID
                && id
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"._:-".contains(&byte))
        })
        .map_or_else(
            || approvd_proto::ids::encode_b64(&approvd_proto::random_bytes::<12>()),
            str::to_owned,
        )
}

const REQUEST_ID: &str = "x-request-id";

/// Per request: take or make its id and echo it (also as a problem's `instance`); count it by
/// route pattern, time it unless it waited on a long-poll, and write its access-log line.
async fn track(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let state = request.app_data::<web::Data<AppState>>().cloned();
    let method = metrics::method_label(request.method());
    let id = request_id(&request);
    let client_ip = state
        .as_ref()
        .filter(|state| state.log_client_ip)
        .and_then(|state| auth::client_ip(state, request.request()));
    let response = next.call(request).await?;
    // A failed request's problem document names the request.
    let rebuilt = response
        .response()
        .error()
        .and_then(|error| error.as_error::<ApiError>())
        .map(|error| error.response_for(&id));
    let mut response = match rebuilt {
        Some(problem) => response.into_response(problem).map_into_right_body(),
        None => response.map_into_left_body(),
    };
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&id) {
        response.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static(REQUEST_ID),
            value,
        );
    }
    let Some(state) = state else {
        return Ok(response);
    };
    if state.deps.shutdown.is_cancelled() {
        // Draining: this connection will not be reused; the client reconnects elsewhere.
        response
            .response_mut()
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    state
        .deps
        .metrics
        .http_requests
        .with_label_values(&[route.as_str(), method, status.to_string().as_str()])
        .inc();
    let waited = response
        .response()
        .extensions()
        .get::<LongPolled>()
        .is_some();
    if !waited {
        state
            .deps
            .metrics
            .http_duration
            .with_label_values(&[route.as_str()])
            .observe(elapsed.as_secs_f64());
    }
    if state.access_log {
        let duration_ms = elapsed.as_secs_f64() * 1e3;
        match client_ip {
            Some(client_ip) => tracing::info!(
                target: "approvd::access", method, route, status, duration_ms, waited,
                request_id = id, %client_ip, "request"
            ),
            None => tracing::info!(
                target: "approvd::access", method, route, status, duration_ms, waited,
                request_id = id, "request"
            ),
        }
    }
    Ok(response)
}

/// Serve on `listener` as `http` says (workers, deadlines, connection caps) until `shutdown`
/// resolves; then answer held long-polls with 503 and stop within about a second.
pub async fn run(
    listener: std::net::TcpListener,
    state: web::Data<AppState>,
    http: &HttpConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let workers = match http.workers {
        0 => std::thread::available_parallelism().map_or(2, usize::from),
        n => n,
    };
    let limiter = connections::ConnectionLimiter::new(
        http.max_connections_per_ip,
        state.deps.metrics.clone(),
    );
    let budget = connections::connection_budget();
    let per_worker = budget.map_or(25_000, |total| {
        usize::try_from(total / workers as u64)
            .unwrap_or(25_000)
            .max(1)
    });
    tracing::info!(
        workers,
        connections_per_worker = per_worker,
        connections_per_ip = http.max_connections_per_ip,
        "accepting connections"
    );
    let app_state = state.clone();
    let request_timeout = http.request_timeout;
    let local_addr = listener.local_addr()?;
    // Cancelled when the listener stops (after the drain): idle connections close then.
    let stopping = tokio_util::sync::CancellationToken::new();
    let stopping_connections = stopping.clone();
    // What `actix_web::HttpServer` builds, by hand, so that each connection is wrapped in
    // `ProblemIo` (the parser's own error answers become problem+json).
    let server = actix_server::Server::build()
        .workers(workers)
        .max_concurrent_connections(per_worker)
        .disable_signals()
        .shutdown_timeout(finish_window(request_timeout).as_secs())
        .listen("approvd", listener, move || {
            let app = App::new()
                .app_data(app_state.clone())
                .wrap(from_fn(track))
                .configure(configure)
                .default_service(web::to(no_route));
            let limiter = limiter.clone();
            let stopping = stopping_connections.clone();
            let h1 = actix_http::HttpService::build()
                .client_request_timeout(request_timeout)
                .keep_alive(KEEP_ALIVE)
                // A long-poll whose client went away must be dropped at once (freeing its waiter).
                .h1_allow_half_closed(false)
                .local_addr(local_addr)
                // No `graceful_shutdown_signal`: actix then closes a connection it thinks idle
                // even when a request has just arrived on it, unanswered. `ProblemIo` closes
                // idle connections instead, only once their socket has nothing to read; every
                // answer in the drain says `Connection: close`.
                .on_connect_ext(move |io: &parse_errors::ProblemIo, extensions| {
                    limiter.on_connect(io.get_ref(), extensions)
                })
                .h1(actix_service::map_config(app, move |()| {
                    actix_web::dev::AppConfig::default()
                }));
            use actix_service::ServiceFactoryExt as _;
            actix_service::fn_service(move |stream: actix_web::rt::net::TcpStream| {
                let peer = stream.peer_addr().ok();
                std::future::ready(Ok::<_, actix_http::error::DispatchError>((
                    parse_errors::ProblemIo::closing_when_idle(stream, stopping.clone()),
                    peer,
                )))
            })
            .and_then(h1)
        })?
        .run();
    let handle = server.handle();
    let token = state.deps.shutdown.clone();
    let drain = http.shutdown_drain;
    let stopper = async move {
        shutdown.await;
        tracing::info!(
            drain_secs = drain.as_secs_f64(),
            "shutting down: held long-polls answered 503, /readyz 503, draining"
        );
        token.cancel();
        // Keep accepting for the drain window, so connections the kernel already queued and
        // requests on keep-alive connections are answered (each with `Connection: close`)
        // while load balancers move away; then stop accepting and let every request already
        // begun finish (see `finish_window`). At least a moment, so cancelled polls write
        // their 503 first.
        tokio::time::sleep(drain.max(Duration::from_millis(100))).await;
        stopping.cancel();
        handle.stop(true).await;
    };
    let (served, ()) = tokio::join!(server, stopper);
    served
}

/// How long an idle keep-alive connection stays open.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Time a handler may take once its request is read (long-polls end at once when draining;
/// a challenge's pushes are bounded by the push timeout).
const HANDLER_TIME: Duration = Duration::from_secs(5);

/// After the listener stops, how long connections get to finish: a request may begin on a
/// keep-alive connection until its idle deadline, its head and body may take the request
/// timeout each, and then its handler runs. Past this, connections are dropped.
fn finish_window(request_timeout: Duration) -> Duration {
    KEEP_ALIVE + request_timeout * 2 + HANDLER_TIME
}

async fn no_route() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute)
}

/// 200 with a JSON body, or 204 when there is nothing; marks responses whose request asked to
/// wait (`wait`), so the latency histogram leaves them out.
pub fn poll_response<T: serde::Serialize>(value: Option<T>, wait: Duration) -> HttpResponse {
    let waited = !wait.is_zero();
    let mut response = match value {
        Some(value) => HttpResponse::Ok().json(value),
        None => HttpResponse::NoContent().finish(),
    };
    if waited {
        response.extensions_mut().insert(LongPolled);
    }
    response
}
