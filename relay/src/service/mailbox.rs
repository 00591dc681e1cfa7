//! The NAS mailbox: notices the relay or a phone leaves for a NAS (refreshed handles, dead push
//! tokens, signed unpair and mute notices), long-polled and acknowledged by id; and how long a
//! notice lives.

use std::time::Duration;

use approvd_proto::wire::{Mailbox, MailboxAck, Notice};
use approvd_proto::NasId;

use super::{Deps, Error};
use crate::store::Topic;

/// How long mailbox notices live.
pub const MAILBOX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Leave `notice` in `nas_id`'s mailbox, dated now.
pub(super) async fn post(deps: &Deps, nas_id: &NasId, notice: &Notice) -> Result<(), Error> {
    deps.store
        .post_notice(nas_id, notice, deps.clock.now(), MAILBOX_TTL)
        .await?;
    Ok(())
}

/// The caller's notices, oldest first, waiting up to `wait` for one; `None` when empty.
pub async fn await_mailbox(
    deps: &Deps,
    nas_id: NasId,
    wait: Duration,
) -> Result<Option<Mailbox>, Error> {
    deps.long_poll(Topic::Mailbox(nas_id), wait, || async {
        let entries = deps.store.mailbox(&nas_id).await?;
        Ok((!entries.is_empty()).then_some(Mailbox { entries }))
    })
    .await
}

/// Remove the caller's notices by id (unknown ids are ignored).
pub async fn ack(deps: &Deps, nas_id: NasId, request: &MailboxAck) -> Result<(), Error> {
    deps.store.ack_mailbox(&nas_id, &request.ids).await?;
    Ok(())
}
