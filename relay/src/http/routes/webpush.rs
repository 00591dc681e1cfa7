//! `GET /v1/push/webpush` (no authentication): the relay's VAPID public key, which a web
//! phone subscribes with and registers as its push `topic` (PROTOCOL.md §6a). `404 no-route`
//! on a relay without Web Push.

use actix_web::{web, HttpResponse};
use approvd_proto::wire::WebPushKey;

use crate::http::problem::{ApiError, ApiErrors};
use crate::http::AppState;

#[utoipa::path(
    get,
    path = "/v1/push/webpush",
    tag = "relay",
    responses(
        (status = 200, description = "The VAPID public key (cacheable for an hour)", body = WebPushKey),
        ApiErrors,
    ),
    security(())
)]
/// Handle `GET /v1/push/webpush`.
pub async fn webpush_key(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let identity = state.deps.webpush.as_ref().ok_or(ApiError::NoRoute)?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "public, max-age=3600"))
        .json(WebPushKey {
            vapid_public_key: identity.public_key.clone(),
        }))
}
