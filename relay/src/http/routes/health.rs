//! Unauthenticated operational endpoints: liveness, readiness (the store answers), Prometheus
//! metrics, and the OpenAPI document.

use actix_web::{web, HttpResponse};

use crate::http::problem::ApiError;
use crate::http::AppState;
#[allow(unused_imports)]
use approvd_proto::wire::Problem;

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses(
        (status = 200, description = "Alive", body = String, content_type = "text/plain"),
    ),
    security(())
)]
/// Handle `GET /healthz`: the process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = String, content_type = "text/plain"),
        (status = 503, description = "Store unavailable or shutting down (see Retry-After)", body = Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
/// Handle `GET /readyz`: the store answers and the relay is not shutting down.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.shutdown.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    state.store.ping().await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain")
        .body("ready\n"))
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"),
    ),
    security(())
)]
/// Handle `GET /metrics`: the Prometheus text exposition.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let waiters = i64::try_from(state.store.notifier().waiters()).unwrap_or(i64::MAX);
    state.metrics.longpoll_waiters.set(waiters);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses(
        (status = 200, description = "This document", body = Object),
    ),
    security(())
)]
/// Handle `GET /openapi.json`: this API as OpenAPI 3.1.
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::http::openapi::document_json())
}
