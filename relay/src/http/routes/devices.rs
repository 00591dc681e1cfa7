//! Device endpoints (`/v1/devices/…`): a phone refreshes its push registration, mutes a NAS, or
//! unpairs; each handler extracts the verified caller and body, calls `service::devices`,
//! responds.

use actix_web::{web, HttpResponse};
use approvd_proto::wire::{HandleIssued, RefreshPushRequest, SignedMute, SignedUnpair};

use crate::http::auth::{DeviceCaller, Json, Signed};
use crate::http::problem::{ApiError, ApiErrors};
use crate::http::AppState;
use crate::service::devices;

#[utoipa::path(
    post,
    path = "/v1/devices/push",
    tag = "phone",
    request_body = RefreshPushRequest,
    responses(
        (status = 200, description = "The new handle (also sent to the NAS mailbox)", body = HandleIssued),
        ApiErrors,
    ),
    security(("httpsig" = []))
)]
/// Handle `POST /v1/devices/push` (phone): mint a handle with the new push registration and
/// deliver it to the NAS's mailbox.
pub async fn refresh_push(
    state: web::Data<AppState>,
    request: Signed<DeviceCaller, Json<RefreshPushRequest>>,
) -> Result<HttpResponse, ApiError> {
    let issued = devices::refresh_push(&state.deps, request.caller.0, &request.body.0).await?;
    Ok(HttpResponse::Ok().json(issued))
}

#[utoipa::path(
    post,
    path = "/v1/devices/mute",
    tag = "phone",
    request_body = SignedMute,
    responses(
        (status = 204, description = "Muted"),
        ApiErrors,
    ),
    security(("httpsig" = []))
)]
/// Handle `POST /v1/devices/mute` (phone): no pushes from that NAS until `mute.until`.
pub async fn mute_nas(
    state: web::Data<AppState>,
    request: Signed<DeviceCaller, Json<SignedMute>>,
) -> Result<HttpResponse, ApiError> {
    devices::mute(&state.deps, request.caller.0, &request.body.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/v1/devices/unpair",
    tag = "phone",
    request_body = SignedUnpair,
    responses(
        (status = 204, description = "Unpair notice delivered"),
        ApiErrors,
    ),
    security(("httpsig" = []))
)]
/// Handle `POST /v1/devices/unpair` (phone): drop pending challenges from that NAS and tell it.
pub async fn unpair_device(
    state: web::Data<AppState>,
    request: Signed<DeviceCaller, Json<SignedUnpair>>,
) -> Result<HttpResponse, ApiError> {
    devices::unpair(&state.deps, request.caller.0, &request.body.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
