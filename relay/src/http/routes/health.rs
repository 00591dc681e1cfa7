//! Unauthenticated operational endpoints: liveness, readiness (the store answers), Prometheus
//! metrics. (The OpenAPI document's handler lives with the document, in `http::openapi`.)

use actix_web::{web, HttpResponse};
#[allow(unused_imports)]
use approvd_proto::wire::Problem;

use crate::http::problem::ApiError;
use crate::http::AppState;

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
    state.deps.ready().await?;
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
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.deps.metrics_text().await)
}
