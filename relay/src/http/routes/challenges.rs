//! Challenge endpoints: the NAS creates a challenge (handles checked, per-device push-bombing
//! limit, mutes honoured, inbox entries stored, pushes sent within a budget), cancels it, and
//! long-polls for the verdict; a phone submits its verdict (first answer wins).

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use approvd_proto::wire::{
    ChallengeCreated, CreateChallengeRequest, Delivery, SignedVerdict, TargetDelivery,
};
use approvd_proto::SignedMessage as _;

use crate::handle::HandleError;
use crate::http::auth::{DeviceCaller, Json, NasCaller, NoBody, Signed};
use crate::http::openapi::ApiErrors;
use crate::http::problem::ApiError;
use crate::http::{long_poll, poll_response, wait_param, AppState};
use crate::push::{PushJob, PushKind, PushMessage};
use crate::store::{
    CancelOutcome, ChallengeState, CreateOutcome, DecideOutcome, Rate, StoredChallenge,
    StoredTarget, Topic,
};

/// The answer to a re-post of an existing `cid`: the same report if the body is identical.
fn replay(
    existing: &StoredChallenge,
    request: &Signed<NasCaller, Json<CreateChallengeRequest>>,
) -> Result<HttpResponse, ApiError> {
    if existing.nas_id == request.caller.0 && existing.body_hash == request.body_digest {
        Ok(HttpResponse::Ok().json(ChallengeCreated {
            cid: existing.cid,
            expires: existing.expires,
            deliveries: existing.deliveries.clone(),
        }))
    } else {
        Err(ApiError::Conflict(
            "a challenge with this cid exists with a different body; use a fresh random cid",
        ))
    }
}

#[utoipa::path(
    post,
    path = "/v1/challenges",
    tag = "challenge",
    request_body = CreateChallengeRequest,
    responses(
        (status = 201, description = "Challenge stored; per-target delivery report", body = ChallengeCreated),
        (status = 200, description = "Identical re-post: the same report", body = ChallengeCreated),
        ApiErrors,
    ),
    security(("httpsig" = []))
)]
/// Handle `POST /v1/challenges` (NAS): store a challenge for its targets and push to them.
pub async fn create_challenge(
    state: web::Data<AppState>,
    request: Signed<NasCaller, Json<CreateChallengeRequest>>,
) -> Result<HttpResponse, ApiError> {
    let body = &request.body.0;
    let nas_id = request.caller.0;
    body.validate()?;
    let now = state.clock.now();
    if body.created.abs_diff(now) > state.config.clock_skew_secs {
        return Err(ApiError::field(
            "created",
            "is too far from the relay's clock; check the NAS clock",
        ));
    }
    if body.expires <= now {
        return Err(ApiError::field("expires", "is in the past"));
    }
    if let Some(existing) = state.store.challenge(&body.cid).await? {
        return replay(&existing, &request);
    }

    // Every target must come with a handle this relay minted for this NAS and that device, and
    // with a valid `challenge` signature by this NAS.
    let mut targets = Vec::with_capacity(body.targets.len());
    let mut registrations = Vec::with_capacity(body.targets.len());
    for (index, target) in body.targets.iter().enumerate() {
        let field = format!("targets[{index}].push_handle");
        let contents = state
            .handles
            .open(&target.push_handle, now)
            .map_err(|_: HandleError| ApiError::HandleMismatch {
                field: field.clone(),
            })?;
        if contents.nas_id != nas_id || contents.device_id != target.device_id {
            return Err(ApiError::HandleMismatch { field });
        }
        let challenge = body.challenge_for(nas_id, target);
        challenge
            .verify(&nas_id.0, &target.sig)
            .map_err(|_| ApiError::InvalidSignature {
                field: format!("targets[{index}].sig"),
                detail: "the challenge signature does not verify under the caller's key".to_owned(),
            })?;
        targets.push(StoredTarget {
            device_id: target.device_id,
            sig_key: contents.sig_key,
            challenge_hash: challenge.hash(),
            sealed: target.sealed.clone(),
            sig: target.sig,
            in_inbox: true,
            push_handle: contents.push.as_ref().map(|_| target.push_handle.clone()),
        });
        registrations.push(contents.push);
    }

    // Push-bombing defence: a per-device budget of challenges; muted devices get no push.
    let device_rate = Rate {
        per_minute: state.config.rate_challenges_per_device,
    };
    let mut deliveries = Vec::with_capacity(targets.len());
    let mut jobs = Vec::new();
    let mut retry_after_ms = u64::MAX;
    for (target, registration) in targets.iter_mut().zip(registrations) {
        let decision = state
            .store
            .rate_limit(
                &format!("challenges:{}", target.device_id),
                device_rate,
                state.clock.now_ms(),
                true,
            )
            .await?;
        let delivery = if !decision.allowed {
            state
                .metrics
                .rate_limited
                .with_label_values(&["challenges_per_device"])
                .inc();
            retry_after_ms = retry_after_ms.min(decision.retry_after_ms);
            target.in_inbox = false;
            Delivery::RateLimited
        } else if state
            .store
            .muted_until(&nas_id, &target.device_id)
            .await?
            .is_some_and(|until| until > now)
        {
            Delivery::Muted
        } else if let Some(registration) = registration {
            jobs.push(PushJob {
                device_id: target.device_id,
                registration,
            });
            Delivery::Pending
        } else {
            Delivery::InboxOnly
        };
        deliveries.push(TargetDelivery {
            device_id: target.device_id,
            delivery,
        });
    }
    if deliveries
        .iter()
        .all(|entry| entry.delivery == Delivery::RateLimited)
    {
        return Err(ApiError::RateLimited {
            limit: "challenges per device",
            retry_after_secs: retry_after_ms.div_ceil(1000),
        });
    }

    let stored = StoredChallenge {
        cid: body.cid,
        nas_id,
        created: body.created,
        expires: body.expires,
        number_matching: body.number_matching,
        body_hash: request.body_digest,
        targets,
        deliveries: deliveries.clone(),
        state: ChallengeState::Pending,
    };
    let ttl = Duration::from_secs(body.expires - now + state.config.challenge_grace_secs);
    if let CreateOutcome::Exists(existing) = state.store.create_challenge(&stored, ttl).await? {
        return replay(&existing, &request);
    }
    state.metrics.challenges.inc();

    if !jobs.is_empty() {
        let message = PushMessage {
            cid: body.cid,
            expires: body.expires,
            kind: PushKind::Alert,
        };
        let outcomes = state.push.dispatch(jobs, message, nas_id).await;
        for (device_id, delivery) in outcomes {
            if let Some(entry) = deliveries
                .iter_mut()
                .find(|entry| entry.device_id == device_id)
            {
                entry.delivery = delivery;
            }
        }
        state
            .store
            .record_deliveries(&body.cid, &deliveries)
            .await?;
    }
    Ok(HttpResponse::Created().json(ChallengeCreated {
        cid: body.cid,
        expires: body.expires,
        deliveries,
    }))
}

/// Tell the targets' apps (all but `answered_by`) that the challenge is over, in the background.
fn dismiss_others(
    state: &AppState,
    challenge: &StoredChallenge,
    answered_by: Option<approvd_proto::DeviceId>,
) {
    let now = state.clock.now();
    let jobs: Vec<PushJob> = challenge
        .targets
        .iter()
        .filter(|target| Some(target.device_id) != answered_by)
        .filter_map(|target| {
            let handle = target.push_handle.as_ref()?;
            let registration = state.handles.open(handle, now).ok()?.push?;
            Some(PushJob {
                device_id: target.device_id,
                registration,
            })
        })
        .collect();
    if jobs.is_empty() {
        return;
    }
    let message = PushMessage {
        cid: challenge.cid,
        expires: challenge.expires.max(now + 1),
        kind: PushKind::Dismiss,
    };
    state.push.dismiss(jobs, message, challenge.nas_id);
}

async fn owned_challenge(
    state: &AppState,
    cid: &approvd_proto::Cid,
    nas_id: approvd_proto::NasId,
) -> Result<StoredChallenge, ApiError> {
    let challenge = state
        .store
        .challenge(cid)
        .await?
        .ok_or(ApiError::NotFound("challenge"))?;
    if challenge.nas_id != nas_id {
        return Err(ApiError::NotOwner("this challenge belongs to another NAS"));
    }
    Ok(challenge)
}

#[utoipa::path(
    delete,
    path = "/v1/challenges/{cid}",
    tag = "challenge",
    params(("cid" = String, Path, description = "base64url challenge id (16 bytes)")),
    responses(
        (status = 204, description = "Cancelled"),
        ApiErrors,
    ),
    security(("httpsig" = []))
)]
/// Handle `DELETE /v1/challenges/{cid}` (NAS): cancel a pending challenge.
pub async fn cancel_challenge(
    state: web::Data<AppState>,
    path: web::Path<String>,
    request: Signed<NasCaller, NoBody>,
) -> Result<HttpResponse, ApiError> {
    let cid = super::cid(&path)?;
    let challenge = owned_challenge(&state, &cid, request.caller.0).await?;
    match state.store.cancel(&cid).await? {
        CancelOutcome::Cancelled => {
            dismiss_others(&state, &challenge, None);
            Ok(HttpResponse::NoContent().finish())
        }
        CancelOutcome::AlreadyCancelled => Ok(HttpResponse::NoContent().finish()),
        CancelOutcome::AlreadyDecided => Err(ApiError::AlreadyDecided),
        CancelOutcome::Missing => Err(ApiError::NotFound("challenge")),
    }
}

#[utoipa::path(
    get,
    path = "/v1/challenges/{cid}/verdict",
    tag = "challenge",
    params(("cid" = String, Path, description = "base64url challenge id (16 bytes)"), ("wait" = Option<u64>, Query, description = "Seconds to hold the request open for an answer (long-poll; capped by the relay, default cap 30)")),
    responses(
        (status = 200, description = "The first verdict", body = SignedVerdict),
        (status = 204, description = "Still pending"),
        ApiErrors,
    ),
    security(("httpsig" = []))
)]
/// Handle `GET /v1/challenges/{cid}/verdict` (NAS): long-poll for the verdict.
pub async fn get_verdict(
    state: web::Data<AppState>,
    http: HttpRequest,
    path: web::Path<String>,
    request: Signed<NasCaller, NoBody>,
) -> Result<HttpResponse, ApiError> {
    let cid = super::cid(&path)?;
    let wait = wait_param(&http, state.config.max_wait_secs)?;
    let first = owned_challenge(&state, &cid, request.caller.0).await?;
    // Wake up (at the latest) just after expiry to answer 410 rather than 204.
    let until_expiry = Duration::from_secs(first.expires.saturating_sub(state.clock.now()) + 1);
    let wait = wait.min(until_expiry);
    let verdict = long_poll(&state, Topic::Challenge(cid), wait, || async {
        let challenge = state
            .store
            .challenge(&cid)
            .await?
            .ok_or(ApiError::ChallengeExpired)?;
        match challenge.state {
            ChallengeState::Decided { verdict } => Ok(Some(*verdict)),
            ChallengeState::Cancelled => Err(ApiError::ChallengeCancelled),
            ChallengeState::Pending if challenge.expires <= state.clock.now() => {
                Err(ApiError::ChallengeExpired)
            }
            ChallengeState::Pending => Ok(None),
        }
    })
    .await?;
    Ok(poll_response(verdict, !wait.is_zero()))
}

#[utoipa::path(
    post,
    path = "/v1/challenges/{cid}/verdict",
    tag = "challenge",
    request_body = SignedVerdict,
    params(("cid" = String, Path, description = "base64url challenge id (16 bytes)")),
    responses(
        (status = 204, description = "Stored: this was the first answer"),
        ApiErrors,
    ),
    security(("httpsig" = []))
)]
/// Handle `POST /v1/challenges/{cid}/verdict` (phone): the phone's signed decision.
pub async fn submit_verdict(
    state: web::Data<AppState>,
    path: web::Path<String>,
    request: Signed<DeviceCaller, Json<SignedVerdict>>,
) -> Result<HttpResponse, ApiError> {
    let cid = super::cid(&path)?;
    let body = request.body.0;
    body.validate()?;
    let verdict = &body.verdict;
    if verdict.cid != cid {
        return Err(ApiError::field(
            "verdict.cid",
            "must equal the cid in the path",
        ));
    }
    if verdict.device_id != request.caller.0 {
        return Err(ApiError::NotOwner(
            "verdict.device_id must be the key that signs the request (D_api)",
        ));
    }
    let challenge = state
        .store
        .challenge(&cid)
        .await?
        .ok_or(ApiError::NotFound("challenge"))?;
    match &challenge.state {
        ChallengeState::Decided { .. } => return Err(ApiError::AlreadyDecided),
        ChallengeState::Cancelled => return Err(ApiError::ChallengeCancelled),
        ChallengeState::Pending => {}
    }
    let target = challenge
        .targets
        .iter()
        .find(|target| target.device_id == request.caller.0)
        .ok_or(ApiError::NotTargeted)?;
    if verdict.nas_id != challenge.nas_id {
        return Err(ApiError::field(
            "verdict.nas_id",
            "is not the NAS that sent this challenge",
        ));
    }
    if verdict.challenge_hash != target.challenge_hash {
        return Err(ApiError::field(
            "verdict.challenge_hash",
            "is not the hash of the challenge message for this device",
        ));
    }
    verdict
        .verify(&target.sig_key, &body.sig)
        .map_err(|_| ApiError::InvalidSignature {
            field: "sig".to_owned(),
            detail: "the verdict signature does not verify under the device's verdict key (D_sig)"
                .to_owned(),
        })?;
    if challenge.expires <= state.clock.now() {
        return Err(ApiError::ChallengeExpired);
    }
    match state.store.decide(&cid, &body).await? {
        DecideOutcome::Accepted => {
            state
                .metrics
                .verdicts
                .with_label_values(&[verdict.decision.as_str()])
                .inc();
            dismiss_others(&state, &challenge, Some(request.caller.0));
            Ok(HttpResponse::NoContent().finish())
        }
        DecideOutcome::AlreadyDecided => Err(ApiError::AlreadyDecided),
        DecideOutcome::Cancelled => Err(ApiError::ChallengeCancelled),
        DecideOutcome::Missing => Err(ApiError::ChallengeExpired),
    }
}
