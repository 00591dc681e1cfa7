//! Push forwarding (`POST /v1/push/forward`, off unless `--push-forward-key-file`): a downstream
//! relay, admitted by its forwarding token, hands one push to this relay's credentials; the
//! handler calls `service::forward` and returns the classified outcome.

use actix_web::{web, HttpResponse};
use approvd_proto::wire::{ForwardPushRequest, ForwardPushResponse};

use crate::http::auth::{Forwarded, Json};
use crate::http::problem::{ApiError, ApiErrors};
use crate::http::AppState;
use crate::service::forward;

#[utoipa::path(
    post,
    path = "/v1/push/forward",
    tag = "relay",
    request_body = ForwardPushRequest,
    responses(
        (status = 200, description = "The push was attempted; how it ended", body = ForwardPushResponse),
        ApiErrors,
    ),
    security(("forwarding" = []))
)]
/// Handle `POST /v1/push/forward` (downstream relay): push to one token with this relay's own
/// credentials (never on to another upstream) and answer how it ended.
pub async fn forward_push(
    state: web::Data<AppState>,
    request: Forwarded<Json<ForwardPushRequest>>,
) -> Result<HttpResponse, ApiError> {
    let answer = forward::forward(&state.deps, &request.downstream, &request.body.0).await?;
    Ok(HttpResponse::Ok().json(answer))
}
