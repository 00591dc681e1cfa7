//! The phone's inbox (`GET /v1/inbox`): pending challenges for the calling device, long-polled.
//! Push only wakes the phone; this is where it fetches the challenge (and where phones without
//! push look).

use actix_web::{web, HttpResponse};
use approvd_proto::wire::Inbox;

use crate::http::auth::{DeviceCaller, NoBody, Signed, Wait};
use crate::http::problem::{ApiError, ApiErrors};
use crate::http::{poll_response, AppState};
use crate::service::challenges;

#[utoipa::path(
    get,
    path = "/v1/inbox",
    tag = "phone",
    params(("wait" = Option<u64>, Query, description = "Seconds to hold the request open for an answer (long-poll; capped by the relay, default cap 30)")),
    responses(
        (status = 200, description = "Pending challenges, oldest first", body = Inbox),
        (status = 204, description = "Nothing pending"),
        ApiErrors,
    ),
    security(("httpsig" = []))
)]
/// Handle `GET /v1/inbox` (phone): pending challenges, oldest first; 204 when none.
pub async fn get_inbox(
    state: web::Data<AppState>,
    request: Signed<DeviceCaller, NoBody, Wait>,
) -> Result<HttpResponse, ApiError> {
    let Wait(wait) = request.query;
    let inbox = challenges::await_inbox(&state.deps, request.caller.0, wait).await?;
    Ok(poll_response(inbox, wait))
}
