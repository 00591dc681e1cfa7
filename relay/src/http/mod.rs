//! The HTTP server: application state, the route table, the metrics middleware, the long-poll
//! helper, and the server lifecycle (bind, serve, graceful shutdown that answers held polls).
//! Handlers live in `routes/`; authentication in `auth`; error mapping in `problem`.

pub mod auth;
pub mod openapi;
pub mod problem;
pub mod routes;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Config;
use crate::handle::HandleKeys;
use crate::metrics::Metrics;
use crate::push::Dispatcher;
use crate::store::{Store, Topic};
use problem::ApiError;

/// Everything a handler needs, shared by all workers.
#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub handles: HandleKeys,
    pub push: Dispatcher,
    pub metrics: Metrics,
    pub clock: Arc<dyn Clock>,
    /// The operator's admission check, when configured.
    pub admission: Option<auth::Admission>,
    /// Cancelled at shutdown: every long-poll selects on it and answers 503 at once.
    pub shutdown: CancellationToken,
}

/// How long mailbox notices live.
pub const MAILBOX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Marks a response whose request waited on a long-poll (kept out of the latency histogram).
#[derive(Debug, Clone, Copy)]
pub struct LongPolled;

/// Register every route.
pub fn configure(config: &mut web::ServiceConfig) {
    routes::register(config);
}

/// Count requests by route pattern and time those that did not wait.
async fn track(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let state = request.app_data::<web::Data<AppState>>().cloned();
    let method = request.method().as_str().to_owned();
    let response = next.call(request).await?;
    if let Some(state) = state {
        let route = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        let status = response.status().as_u16().to_string();
        state
            .metrics
            .http_requests
            .with_label_values(&[route.as_str(), method.as_str(), status.as_str()])
            .inc();
        if response
            .response()
            .extensions()
            .get::<LongPolled>()
            .is_none()
        {
            state
                .metrics
                .http_duration
                .with_label_values(&[route.as_str()])
                .observe(started.elapsed().as_secs_f64());
        }
    }
    Ok(response)
}

/// Serve on `listener` until `shutdown` resolves; then answer held long-polls with 503 and stop
/// within about a second.
pub async fn run(
    listener: std::net::TcpListener,
    state: web::Data<AppState>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let workers = match state.config.workers {
        0 => std::thread::available_parallelism().map_or(2, usize::from),
        n => n,
    };
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .wrap(from_fn(track))
            .configure(configure)
            .default_service(web::to(no_route))
    })
    .workers(workers)
    // A long-poll whose client went away must be dropped at once (freeing its waiter).
    .h1_allow_half_closed(false)
    .disable_signals()
    .shutdown_timeout(2)
    .listen(listener)?
    .run();
    let handle = server.handle();
    let token = state.shutdown.clone();
    let stopper = async move {
        shutdown.await;
        tracing::info!("shutting down: answering held long-polls");
        token.cancel();
        // Let cancelled polls write their 503 before connections close.
        tokio::time::sleep(Duration::from_millis(100)).await;
        handle.stop(true).await;
    };
    let (served, ()) = tokio::join!(server, stopper);
    served
}

async fn no_route() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute)
}

/// The `?wait=` of a long-poll, capped by the configuration. Any other query parameter is an
/// error (the query is signed, so a typo would otherwise be silently ignored).
pub fn wait_param(request: &HttpRequest, max_wait_secs: u64) -> Result<Duration, ApiError> {
    let mut wait = 0;
    for pair in request
        .query_string()
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        match pair.split_once('=') {
            Some(("wait", value)) => {
                wait = value.parse::<u64>().map_err(|_| {
                    ApiError::field("wait", "`wait` must be a whole number of seconds")
                })?;
            }
            _ => {
                return Err(ApiError::field(
                    "query",
                    format!(
                        "unknown query parameter `{}`; only `wait` is accepted",
                        pair.split('=').next().unwrap_or(pair)
                    ),
                ))
            }
        }
    }
    Ok(Duration::from_secs(wait.min(max_wait_secs)))
}

/// Wait up to `wait` for `read` to produce a value, re-reading whenever `topic` is notified.
///
/// The waiter is registered *before* each read, so a write between the read and the wait is
/// never missed. `read` may end the poll early with an error (e.g. expired). At the deadline it
/// reads once more and returns that (`None`: nothing yet); answers 503 when the relay shuts down. Dropping the future (client gone) drops the
/// waiter at once.
pub async fn long_poll<T, F, Fut>(
    state: &AppState,
    topic: Topic,
    wait: Duration,
    mut read: F,
) -> Result<Option<T>, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, ApiError>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let mut watch = if wait.is_zero() {
            None
        } else {
            Some(state.store.watch(topic.clone()).await?)
        };
        if let Some(value) = read().await? {
            return Ok(Some(value));
        }
        let Some(watch) = watch.as_mut() else {
            return Ok(None);
        };
        tokio::select! {
            () = watch.changed() => {}
            // One last read: state can change with time alone (a challenge expiring).
            () = tokio::time::sleep_until(deadline) => return read().await,
            () = state.shutdown.cancelled() => return Err(ApiError::ShuttingDown),
        }
    }
}

/// 200 with a JSON body, or 204 when there is nothing; marks responses that waited.
pub fn poll_response<T: serde::Serialize>(value: Option<T>, waited: bool) -> HttpResponse {
    let mut response = match value {
        Some(value) => HttpResponse::Ok().json(value),
        None => HttpResponse::NoContent().finish(),
    };
    if waited {
        response.extensions_mut().insert(LongPolled);
    }
    response
}
