//! Challenge endpoints (`/v1/challenges…`): extract the verified caller, path and body, call
//! `service::challenges`, respond.

use actix_web::{web, HttpResponse};
use approvd_proto::wire::{ChallengeCreated, CreateChallengeRequest, SignedVerdict};

use crate::http::auth::{DeviceCaller, Json, NasCaller, NoBody, Signed, Wait};
use crate::http::problem::{ApiError, ApiErrors};
use crate::http::{poll_response, AppState};
use crate::service::{access, challenges};

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
    access::take_creation(&state.deps, request.ip).await?;
    let created = challenges::create(
        &state.deps,
        request.caller.0,
        &request.body.0,
        request.body_digest,
    )
    .await?;
    let mut response = if created.new {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(response.json(created.report))
}

#[utoipa::path(
    delete,
    path = "/v1/challenges/{cid}",
    tag = "challenge",
    params(("cid" = approvd_proto::Cid, Path, description = "base64url challenge id (16 bytes)")),
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
    challenges::cancel(&state.deps, request.caller.0, cid).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/v1/challenges/{cid}/verdict",
    tag = "challenge",
    params(("cid" = approvd_proto::Cid, Path, description = "base64url challenge id (16 bytes)"), ("wait" = Option<u64>, Query, description = "Seconds to hold the request open for an answer (long-poll; capped by the relay, default cap 30)")),
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
    path: web::Path<String>,
    request: Signed<NasCaller, NoBody, Wait>,
) -> Result<HttpResponse, ApiError> {
    let cid = super::cid(&path)?;
    let Wait(wait) = request.query;
    let verdict = challenges::await_verdict(&state.deps, request.caller.0, cid, wait).await?;
    Ok(poll_response(verdict, wait))
}

#[utoipa::path(
    post,
    path = "/v1/challenges/{cid}/verdict",
    tag = "challenge",
    request_body = SignedVerdict,
    params(("cid" = approvd_proto::Cid, Path, description = "base64url challenge id (16 bytes)")),
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
    challenges::submit_verdict(&state.deps, request.caller.0, cid, &request.body.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
