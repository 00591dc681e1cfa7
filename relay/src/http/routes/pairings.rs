//! Pairing endpoints (`/v1/pairings…`): extract the verified caller, path and body, call
//! `service::pairings`, respond.

use actix_web::{web, HttpResponse};
use approvd_proto::wire::{
    ClaimRequest, CreatePairingRequest, HandleIssued, PairingAcceptance, PairingClaimed,
    PairingConfirmation, PairingCreated,
};

use crate::http::auth::{DeviceCaller, Json, NasCaller, NoBody, Signed, Wait};
use crate::http::problem::{ApiError, ApiErrors};
use crate::http::{poll_response, AppState};
use crate::service::{access, pairings};

#[utoipa::path(
    post,
    path = "/v1/pairings",
    tag = "pairing",
    request_body = CreatePairingRequest,
    responses(
        (status = 201, description = "Slot registered", body = PairingCreated),
        ApiErrors,
    ),
    security(("httpsig" = []))
)]
/// Handle `POST /v1/pairings` (NAS): register a pairing slot.
pub async fn create_pairing(
    state: web::Data<AppState>,
    request: Signed<NasCaller, Json<CreatePairingRequest>>,
) -> Result<HttpResponse, ApiError> {
    access::take_creation(&state.deps, request.ip).await?;
    let created = pairings::create(&state.deps, request.caller.0, &request.body.0).await?;
    Ok(HttpResponse::Created().json(created))
}

#[utoipa::path(
    post,
    path = "/v1/pairings/{pairing_id}/claim",
    tag = "pairing",
    request_body = ClaimRequest,
    params(("pairing_id" = approvd_proto::PairingId, Path, description = "base64url pairing slot id (16 bytes)")),
    responses(
        (status = 200, description = "Claim stored; the phone's handle for this pairing", body = HandleIssued),
        ApiErrors,
    ),
    security(("httpsig" = []))
)]
/// Handle `POST /v1/pairings/{pairing_id}/claim` (phone): claim a slot with the phone's keys.
pub async fn claim_pairing(
    state: web::Data<AppState>,
    path: web::Path<String>,
    request: Signed<DeviceCaller, Json<ClaimRequest>>,
) -> Result<HttpResponse, ApiError> {
    let id = super::pairing_id(&path)?;
    let issued = pairings::claim(&state.deps, request.caller.0, id, &request.body.0).await?;
    Ok(HttpResponse::Ok().json(issued))
}

#[utoipa::path(
    get,
    path = "/v1/pairings/{pairing_id}/claim",
    tag = "pairing",
    params(("pairing_id" = approvd_proto::PairingId, Path, description = "base64url pairing slot id (16 bytes)"), ("wait" = Option<u64>, Query, description = "Seconds to hold the request open for an answer (long-poll; capped by the relay, default cap 30)")),
    responses(
        (status = 200, description = "The phone's claim", body = PairingClaimed),
        (status = 204, description = "No claim yet"),
        ApiErrors,
    ),
    security(("httpsig" = []))
)]
/// Handle `GET /v1/pairings/{pairing_id}/claim` (NAS): long-poll for the phone's claim.
pub async fn get_claim(
    state: web::Data<AppState>,
    path: web::Path<String>,
    request: Signed<NasCaller, NoBody, Wait>,
) -> Result<HttpResponse, ApiError> {
    let id = super::pairing_id(&path)?;
    let Wait(wait) = request.query;
    let claimed = pairings::await_claim(&state.deps, request.caller.0, id, wait).await?;
    Ok(poll_response(claimed, wait))
}

#[utoipa::path(
    post,
    path = "/v1/pairings/{pairing_id}/accept",
    tag = "pairing",
    request_body = PairingAcceptance,
    params(("pairing_id" = approvd_proto::PairingId, Path, description = "base64url pairing slot id (16 bytes)")),
    responses(
        (status = 204, description = "Acceptance stored: the phone may now show its code"),
        ApiErrors,
    ),
    security(("httpsig" = []))
)]
/// Handle `POST /v1/pairings/{pairing_id}/accept` (NAS): commit to the claim it will confirm.
pub async fn accept_pairing(
    state: web::Data<AppState>,
    path: web::Path<String>,
    request: Signed<NasCaller, Json<PairingAcceptance>>,
) -> Result<HttpResponse, ApiError> {
    let id = super::pairing_id(&path)?;
    pairings::accept(&state.deps, request.caller.0, id, &request.body.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/v1/pairings/{pairing_id}/acceptance",
    tag = "pairing",
    params(("pairing_id" = approvd_proto::PairingId, Path, description = "base64url pairing slot id (16 bytes)"), ("wait" = Option<u64>, Query, description = "Seconds to hold the request open for an answer (long-poll; capped by the relay, default cap 30)")),
    responses(
        (status = 200, description = "The NAS's acceptance of a claim", body = PairingAcceptance),
        (status = 204, description = "Not accepted yet"),
        ApiErrors,
    ),
    security(("httpsig" = []))
)]
/// Handle `GET /v1/pairings/{pairing_id}/acceptance` (phone): long-poll for the NAS's
/// acceptance.
pub async fn get_acceptance(
    state: web::Data<AppState>,
    path: web::Path<String>,
    request: Signed<DeviceCaller, NoBody, Wait>,
) -> Result<HttpResponse, ApiError> {
    let id = super::pairing_id(&path)?;
    let Wait(wait) = request.query;
    let acceptance = pairings::await_acceptance(&state.deps, request.caller.0, id, wait).await?;
    Ok(poll_response(acceptance, wait))
}

#[utoipa::path(
    post,
    path = "/v1/pairings/{pairing_id}/confirm",
    tag = "pairing",
    request_body = PairingConfirmation,
    params(("pairing_id" = approvd_proto::PairingId, Path, description = "base64url pairing slot id (16 bytes)")),
    responses(
        (status = 204, description = "Confirmation stored"),
        ApiErrors,
    ),
    security(("httpsig" = []))
)]
/// Handle `POST /v1/pairings/{pairing_id}/confirm` (NAS): confirm the claimed device.
pub async fn confirm_pairing(
    state: web::Data<AppState>,
    path: web::Path<String>,
    request: Signed<NasCaller, Json<PairingConfirmation>>,
) -> Result<HttpResponse, ApiError> {
    let id = super::pairing_id(&path)?;
    pairings::confirm(&state.deps, request.caller.0, id, &request.body.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/v1/pairings/{pairing_id}/confirmation",
    tag = "pairing",
    params(("pairing_id" = approvd_proto::PairingId, Path, description = "base64url pairing slot id (16 bytes)"), ("wait" = Option<u64>, Query, description = "Seconds to hold the request open for an answer (long-poll; capped by the relay, default cap 30)")),
    responses(
        (status = 200, description = "The NAS's confirmation", body = PairingConfirmation),
        (status = 204, description = "Not confirmed yet"),
        ApiErrors,
    ),
    security(("httpsig" = []))
)]
/// Handle `GET /v1/pairings/{pairing_id}/confirmation` (phone): long-poll for the NAS's
/// confirmation.
pub async fn get_confirmation(
    state: web::Data<AppState>,
    path: web::Path<String>,
    request: Signed<DeviceCaller, NoBody, Wait>,
) -> Result<HttpResponse, ApiError> {
    let id = super::pairing_id(&path)?;
    let Wait(wait) = request.query;
    let confirmation =
        pairings::await_confirmation(&state.deps, request.caller.0, id, wait).await?;
    Ok(poll_response(confirmation, wait))
}
