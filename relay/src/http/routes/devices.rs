//! Device endpoints: a phone refreshes its push registration, mutes a NAS, or unpairs. Each
//! request carries the pairing's current handle, which proves the phone is paired with that NAS
//! (so a stranger's key cannot write into a NAS's mailbox) and gives the relay `D_sig` to check
//! the signed `mute` / `unpair` messages before forwarding them.

use actix_web::{web, HttpResponse};
use approvd_proto::wire::{
    HandleIssued, Notice, PushHandle, RefreshPushRequest, SignedMute, SignedUnpair,
};
use approvd_proto::{DeviceId, SignedMessage as _};

use crate::handle::HandleContents;
use crate::http::auth::{DeviceCaller, Json, Signed};
use crate::http::openapi::ApiErrors;
use crate::http::problem::ApiError;
use crate::http::{AppState, MAILBOX_TTL};

/// Longest mute, seconds.
pub const MAX_MUTE_SECS: u64 = 7 * 24 * 3600;

/// Open the caller's own handle.
fn own_handle(
    state: &AppState,
    handle: &PushHandle,
    caller: DeviceId,
) -> Result<HandleContents, ApiError> {
    let mismatch = || ApiError::HandleMismatch {
        field: "push_handle".to_owned(),
    };
    let contents = state
        .handles
        .open(handle, state.clock.now())
        .map_err(|_| mismatch())?;
    if contents.device_id != caller {
        return Err(mismatch());
    }
    Ok(contents)
}

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
    let body = request.body.0;
    body.validate()?;
    let current = own_handle(&state, &body.push_handle, request.caller.0)?;
    let now = state.clock.now();
    let push_handle = state.handles.mint(&HandleContents {
        push: body.push,
        minted_at: now,
        ..current
    });
    let notice = Notice::HandleRefreshed {
        device_id: request.caller.0,
        push_handle: push_handle.clone(),
    };
    state
        .store
        .post_notice(&current.nas_id, &notice, now, MAILBOX_TTL)
        .await?;
    Ok(HttpResponse::Ok().json(HandleIssued { push_handle }))
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
    let body = request.body.0;
    let caller = request.caller.0;
    let contents = own_handle(&state, &body.push_handle, caller)?;
    let mute = &body.mute;
    if mute.device_id != caller || mute.nas_id != contents.nas_id {
        return Err(ApiError::field(
            "mute",
            "device_id and nas_id must be those of the handle's pairing",
        ));
    }
    let now = state.clock.now();
    if mute.until <= now || mute.until > now + MAX_MUTE_SECS {
        return Err(ApiError::field(
            "mute.until",
            "must be in the future and at most 7 days away",
        ));
    }
    mute.verify(&contents.sig_key, &body.sig)
        .map_err(|_| ApiError::InvalidSignature {
            field: "sig".to_owned(),
            detail: "the mute signature does not verify under the device's verdict key (D_sig)"
                .to_owned(),
        })?;
    let ttl = std::time::Duration::from_secs(mute.until - now);
    state
        .store
        .set_mute(&mute.nas_id, &caller, mute.until, ttl)
        .await?;
    let notice = Notice::Muted {
        mute: body.mute.clone(),
        sig: body.sig,
    };
    state
        .store
        .post_notice(&contents.nas_id, &notice, now, MAILBOX_TTL)
        .await?;
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
    let body = request.body.0;
    let caller = request.caller.0;
    let contents = own_handle(&state, &body.push_handle, caller)?;
    let unpair = &body.unpair;
    if unpair.device_id != caller || unpair.nas_id != contents.nas_id {
        return Err(ApiError::field(
            "unpair",
            "device_id and nas_id must be those of the handle's pairing",
        ));
    }
    unpair
        .verify(&contents.sig_key, &body.sig)
        .map_err(|_| ApiError::InvalidSignature {
            field: "sig".to_owned(),
            detail: "the unpair signature does not verify under the device's verdict key (D_sig)"
                .to_owned(),
        })?;
    state
        .store
        .drop_inbox_from(&caller, &contents.nas_id)
        .await?;
    let notice = Notice::Unpaired {
        unpair: body.unpair.clone(),
        sig: body.sig,
    };
    state
        .store
        .post_notice(&contents.nas_id, &notice, state.clock.now(), MAILBOX_TTL)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
