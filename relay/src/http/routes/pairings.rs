//! Pairing endpoints: the NAS registers a slot, the phone claims it, the NAS long-polls for the
//! claim and confirms, the phone long-polls for the confirmation. The relay checks what it can
//! (caller keys, the claim's signature, slot ownership, single use, expiry); the MAC under the
//! pairing secret is checked by the NAS, which alone knows the secret.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use approvd_proto::wire::{
    validate_claim, ClaimRequest, CreatePairingRequest, HandleIssued, PairingClaimed,
    PairingConfirmation, PairingCreated,
};
use approvd_proto::SignedMessage as _;

use crate::handle::HandleContents;
use crate::http::auth::{DeviceCaller, Json, NasCaller, NoBody, Signed};
use crate::http::openapi::ApiErrors;
use crate::http::problem::ApiError;
use crate::http::{long_poll, poll_response, wait_param, AppState};
use crate::store::{ClaimOutcome, ConfirmOutcome, PairingSlot, PairingState, Topic};

/// Slots are kept this long past their expiry so late pollers learn "expired", not "unknown".
const PAIRING_GRACE: Duration = Duration::from_secs(60);

async fn live_slot(
    state: &AppState,
    id: &approvd_proto::PairingId,
) -> Result<PairingState, ApiError> {
    let pairing = state
        .store
        .pairing(id)
        .await?
        .ok_or(ApiError::NotFound("pairing"))?;
    if pairing.slot.expires_at <= state.clock.now() {
        return Err(ApiError::PairingExpired);
    }
    Ok(pairing)
}

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
    let body = request.body.0;
    body.validate()?;
    let slot = PairingSlot {
        pairing_id: body.pairing_id,
        nas_id: request.caller.0,
        expires_at: state.clock.now() + body.ttl_secs,
    };
    let ttl = Duration::from_secs(body.ttl_secs) + PAIRING_GRACE;
    if !state.store.create_pairing(&slot, ttl).await? {
        return Err(ApiError::Conflict(
            "a pairing with this pairing_id exists; use a fresh random id",
        ));
    }
    Ok(HttpResponse::Created().json(PairingCreated {
        pairing_id: slot.pairing_id,
        expires_at: slot.expires_at,
    }))
}

#[utoipa::path(
    post,
    path = "/v1/pairings/{pairing_id}/claim",
    tag = "pairing",
    request_body = ClaimRequest,
    params(("pairing_id" = String, Path, description = "base64url pairing slot id (16 bytes)")),
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
    let body = request.body.0;
    body.validate()?;
    validate_claim(&body.claim)?;
    let claim = &body.claim;
    if claim.pairing_id != id {
        return Err(ApiError::field(
            "claim.pairing_id",
            "must equal the pairing_id in the path",
        ));
    }
    if claim.device_id != request.caller.0 {
        return Err(ApiError::NotOwner(
            "claim.device_id must be the key that signs the request (D_api)",
        ));
    }
    let pairing = live_slot(&state, &id).await?;
    if claim.nas_id != pairing.slot.nas_id {
        return Err(ApiError::field(
            "claim.nas_id",
            "is not the NAS that registered this slot",
        ));
    }
    claim
        .verify(&claim.sig_key, &body.sig)
        .map_err(|_| ApiError::InvalidSignature {
            field: "sig".to_owned(),
            detail: "the pair-claim signature does not verify under claim.sig_key".to_owned(),
        })?;
    let push_handle = state.handles.mint(&HandleContents {
        device_id: claim.device_id,
        nas_id: claim.nas_id,
        sig_key: claim.sig_key,
        push: body.push.clone(),
        minted_at: state.clock.now(),
    });
    let claimed = PairingClaimed {
        claim: body.claim.clone(),
        mac: body.mac,
        sig: body.sig,
        push_handle: push_handle.clone(),
    };
    match state.store.claim_pairing(&id, &claimed).await? {
        ClaimOutcome::Stored => Ok(HttpResponse::Ok().json(HandleIssued { push_handle })),
        ClaimOutcome::AlreadyClaimed => Err(ApiError::AlreadyClaimed),
        ClaimOutcome::Missing => Err(ApiError::NotFound("pairing")),
    }
}

#[utoipa::path(
    get,
    path = "/v1/pairings/{pairing_id}/claim",
    tag = "pairing",
    params(("pairing_id" = String, Path, description = "base64url pairing slot id (16 bytes)"), ("wait" = Option<u64>, Query, description = "Seconds to hold the request open for an answer (long-poll; capped by the relay, default cap 30)")),
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
    http: HttpRequest,
    path: web::Path<String>,
    request: Signed<NasCaller, NoBody>,
) -> Result<HttpResponse, ApiError> {
    let id = super::pairing_id(&path)?;
    let wait = wait_param(&http, state.config.max_wait_secs)?;
    let first = live_slot(&state, &id).await?;
    if first.slot.nas_id != request.caller.0 {
        return Err(ApiError::NotOwner(
            "this pairing slot belongs to another NAS",
        ));
    }
    let wait = wait.min(Duration::from_secs(
        first.slot.expires_at.saturating_sub(state.clock.now()),
    ));
    let claimed = long_poll(&state, Topic::Pairing(id), wait, || async {
        Ok(live_slot(&state, &id).await?.claimed)
    })
    .await?;
    Ok(poll_response(claimed, !wait.is_zero()))
}

#[utoipa::path(
    post,
    path = "/v1/pairings/{pairing_id}/confirm",
    tag = "pairing",
    request_body = PairingConfirmation,
    params(("pairing_id" = String, Path, description = "base64url pairing slot id (16 bytes)")),
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
    let body = request.body.0;
    let nas_id = request.caller.0;
    let pairing = live_slot(&state, &id).await?;
    if pairing.slot.nas_id != nas_id {
        return Err(ApiError::NotOwner(
            "this pairing slot belongs to another NAS",
        ));
    }
    let claimed = pairing.claimed.ok_or(ApiError::Conflict(
        "nothing to confirm: the slot has not been claimed yet",
    ))?;
    let confirm = &body.confirm;
    if confirm.pairing_id != id || confirm.nas_id != nas_id {
        return Err(ApiError::field(
            "confirm",
            "pairing_id and nas_id must name this slot and its NAS",
        ));
    }
    if confirm.device_id != claimed.claim.device_id || confirm.claim_hash != claimed.claim.hash() {
        return Err(ApiError::field(
            "confirm.claim_hash",
            "must be the hash of the claim stored for this slot (and device_id its device)",
        ));
    }
    confirm
        .verify(&nas_id.0, &body.sig)
        .map_err(|_| ApiError::InvalidSignature {
            field: "sig".to_owned(),
            detail: "the pair-confirm signature does not verify under the caller's key".to_owned(),
        })?;
    match state.store.confirm_pairing(&id, &body).await? {
        ConfirmOutcome::Stored => Ok(HttpResponse::NoContent().finish()),
        ConfirmOutcome::AlreadyConfirmed => Err(ApiError::AlreadyConfirmed),
        ConfirmOutcome::NotClaimed => Err(ApiError::Conflict(
            "nothing to confirm: the slot has not been claimed yet",
        )),
        ConfirmOutcome::Missing => Err(ApiError::NotFound("pairing")),
    }
}

#[utoipa::path(
    get,
    path = "/v1/pairings/{pairing_id}/confirmation",
    tag = "pairing",
    params(("pairing_id" = String, Path, description = "base64url pairing slot id (16 bytes)"), ("wait" = Option<u64>, Query, description = "Seconds to hold the request open for an answer (long-poll; capped by the relay, default cap 30)")),
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
    http: HttpRequest,
    path: web::Path<String>,
    request: Signed<DeviceCaller, NoBody>,
) -> Result<HttpResponse, ApiError> {
    let id = super::pairing_id(&path)?;
    let wait = wait_param(&http, state.config.max_wait_secs)?;
    let first = live_slot(&state, &id).await?;
    let claimant = first
        .claimed
        .as_ref()
        .map(|claimed| claimed.claim.device_id);
    if claimant != Some(request.caller.0) {
        return Err(ApiError::NotOwner(
            "only the device that claimed this slot may poll it",
        ));
    }
    let wait = wait.min(Duration::from_secs(
        first.slot.expires_at.saturating_sub(state.clock.now()),
    ));
    let confirmation = long_poll(&state, Topic::Pairing(id), wait, || async {
        Ok(live_slot(&state, &id).await?.confirmation)
    })
    .await?;
    Ok(poll_response(confirmation, !wait.is_zero()))
}
