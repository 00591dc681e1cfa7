//! The NAS mailbox: handle refreshes, dead tokens, unpair and mute notices, long-polled and
//! acknowledged by id.

use actix_web::{web, HttpRequest, HttpResponse};
use approvd_proto::wire::{Mailbox, MailboxAck};

use crate::http::auth::{Json, NasCaller, NoBody, Signed};
use crate::http::openapi::ApiErrors;
use crate::http::problem::ApiError;
use crate::http::{long_poll, poll_response, wait_param, AppState};
use crate::store::Topic;

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
    http: HttpRequest,
    request: Signed<NasCaller, NoBody>,
) -> Result<HttpResponse, ApiError> {
    let nas_id = request.caller.0;
    let wait = wait_param(&http, state.config.max_wait_secs)?;
    let mailbox = long_poll(&state, Topic::Mailbox(nas_id), wait, || async {
        let entries = state.store.mailbox(&nas_id).await?;
        Ok((!entries.is_empty()).then_some(Mailbox { entries }))
    })
    .await?;
    Ok(poll_response(mailbox, !wait.is_zero()))
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
    let body = request.body.0;
    body.validate()?;
    state
        .store
        .ack_mailbox(&request.caller.0, &body.ids)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
