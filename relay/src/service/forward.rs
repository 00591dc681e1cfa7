//! Push forwarding, upstream side: a downstream relay, already admitted by its forwarding token,
//! asks this relay to push `{v, cid}` to one token with this relay's own credentials; the use
//! case charges the downstream's budget, checks the push is still worth sending, pushes, and
//! answers the classified outcome.

use approvd_proto::wire::{ForwardPushRequest, ForwardPushResponse, ForwardResult};

use super::{Deps, Error};
use crate::push::{PushMessage, PushResult};
use crate::store::Bucket;

/// Longest a forwarded push may still matter: a challenge lives at most this long (an
/// `expires` further out is not a challenge's).
const MAX_AHEAD_SECS: u64 = approvd_proto::wire::MAX_CHALLENGE_LIFETIME + 60;

/// Push what `downstream` (its token's `sub`) forwarded.
pub async fn forward(
    deps: &Deps,
    downstream: &str,
    request: &ForwardPushRequest,
) -> Result<ForwardPushResponse, Error> {
    deps.take(&Bucket::Forwards(downstream.to_owned())).await?;
    let now = deps.clock.now();
    let skew = deps.limits.clock_skew_secs;
    if request.expires + skew < now {
        return Err(Error::field(
            "expires",
            "`expires` has passed: the challenge this push announced is over",
        ));
    }
    if request.expires > now + MAX_AHEAD_SECS + skew {
        return Err(Error::field(
            "expires",
            format!("`expires` is more than {MAX_AHEAD_SECS} s away: no challenge lives that long"),
        ));
    }
    let message = PushMessage {
        cid: request.cid,
        expires: request.expires,
        kind: request.kind,
    };
    let result = deps.push.send_forwarded(&request.push, &message).await;
    tracing::debug!(downstream, result = result.label(), "forwarded push");
    Ok(match result {
        PushResult::Delivered => answer(ForwardResult::Delivered, None),
        PushResult::Logged => answer(ForwardResult::Logged, None),
        PushResult::Gone => answer(ForwardResult::Gone, None),
        PushResult::Failed {
            reason,
            alarm: false,
        } => answer(ForwardResult::Failed, Some(reason)),
        PushResult::Failed {
            reason,
            alarm: true,
        } => answer(ForwardResult::FailedConfig, Some(reason)),
    })
}

fn answer(result: ForwardResult, reason: Option<String>) -> ForwardPushResponse {
    ForwardPushResponse { result, reason }
}
