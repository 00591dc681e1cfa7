//! The NAS mailbox endpoints (`/v1/mailbox…`): extract the verified caller, call
//! `service::mailbox`, respond.

use actix_web::{web, HttpResponse};
use approvd_proto::wire::{Mailbox, MailboxAck};

use crate::http::auth::{Json, NasCaller, NoBody, Signed, Wait};
use crate::http::problem::{ApiError, ApiErrors};
use crate::http::{poll_response, AppState};
use crate::service::mailbox;

#[utoipa::path(
    get,
    path = "/v1/mailbox",
    tag = "nas",
    params(("wait" = Option<u64>, Query, description = "Seconds to hold the request open for an answer (long-poll; capped by the relay, default cap 30)")),
    responses(
        (status = 200, description = "Notices, oldest first", body = Mailbox),
        (status = 204, description = "Empty"),
        ApiErrors,
    ),
    security(("httpsig" = []))
)]
/// Handle `GET /v1/mailbox` (NAS): entries, oldest first; 204 when empty.
pub async fn get_mailbox(
    state: web::Data<AppState>,
    request: Signed<NasCaller, NoBody, Wait>,
) -> Result<HttpResponse, ApiError> {
    let Wait(wait) = request.query;
    let entries = mailbox::await_mailbox(&state.deps, request.caller.0, wait).await?;
    Ok(poll_response(entries, wait))
}

#[utoipa::path(
    post,
    path = "/v1/mailbox/ack",
    tag = "nas",
    request_body = MailboxAck,
    responses(
        (status = 204, description = "Removed"),
        ApiErrors,
    ),
    security(("httpsig" = []))
)]
/// Handle `POST /v1/mailbox/ack` (NAS): remove entries by id.
pub async fn ack_mailbox(
    state: web::Data<AppState>,
    request: Signed<NasCaller, Json<MailboxAck>>,
) -> Result<HttpResponse, ApiError> {
    mailbox::ack(&state.deps, request.caller.0, &request.body.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
