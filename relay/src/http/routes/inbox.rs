//! The phone's inbox: pending challenges for the calling device, long-polled. Push only wakes
//! the phone; this is where it fetches the challenge (and where phones without push look).

use actix_web::{web, HttpRequest, HttpResponse};
use approvd_proto::wire::Inbox;

use crate::http::auth::{DeviceCaller, NoBody, Signed};
use crate::http::openapi::ApiErrors;
use crate::http::problem::ApiError;
use crate::http::{long_poll, poll_response, wait_param, AppState};
use crate::store::Topic;

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
    http: HttpRequest,
    request: Signed<DeviceCaller, NoBody>,
) -> Result<HttpResponse, ApiError> {
    let device_id = request.caller.0;
    let wait = wait_param(&http, state.config.max_wait_secs)?;
    let inbox = long_poll(&state, Topic::Inbox(device_id), wait, || async {
        let entries = state.store.inbox(&device_id, state.clock.now()).await?;
        Ok((!entries.is_empty()).then_some(Inbox { entries }))
    })
    .await?;
    Ok(poll_response(inbox, !wait.is_zero()))
}
