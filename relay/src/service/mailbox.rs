//! The NAS mailbox: notices the relay or a phone leaves for a NAS (refreshed handles, dead push
//! tokens, signed unpair and mute notices), long-polled and acknowledged by id; and how long a
//! notice lives.

use std::time::Duration;

use approvd_proto::wire::{Mailbox, MailboxAck, Notice, MAILBOX_PAGE};
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

/// The caller's oldest notices (a page of at most `MAILBOX_PAGE`, `more` when others wait),
/// waiting up to `wait` for one; `None` when empty.
pub async fn await_mailbox(
    deps: &Deps,
    nas_id: NasId,
    wait: Duration,
) -> Result<Option<Mailbox>, Error> {
    deps.long_poll(Topic::Mailbox(nas_id), wait, || async {
        let mut entries = deps.store.mailbox(&nas_id, MAILBOX_PAGE + 1).await?;
        let more = entries.len() > MAILBOX_PAGE;
        entries.truncate(MAILBOX_PAGE);
        Ok((!entries.is_empty()).then_some(Mailbox { entries, more }))
    })
    .await
}

/// Remove the caller's notices by id (unknown ids are ignored).
pub async fn ack(deps: &Deps, nas_id: NasId, request: &MailboxAck) -> Result<(), Error> {
    deps.store.ack_mailbox(&nas_id, &request.ids).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::testing::deps;
    use approvd_proto::ids::PublicKey;
    use approvd_proto::DeviceId;

    #[tokio::test]
    async fn the_mailbox_is_answered_a_page_at_a_time() {
        let (deps, _) = deps(1_800_000_000);
        let nas_id = NasId(PublicKey::from(&approvd_proto::generate_signing_key()));
        for _ in 0..MAILBOX_PAGE + 50 {
            let device_id = DeviceId(PublicKey::from(&approvd_proto::generate_signing_key()));
            post(&deps, &nas_id, &Notice::PushGone { device_id })
                .await
                .expect("posted");
        }
        let first = await_mailbox(&deps, nas_id, Duration::ZERO)
            .await
            .expect("read")
            .expect("entries");
        assert_eq!((first.entries.len(), first.more), (MAILBOX_PAGE, true));
        let ids = first.entries.iter().map(|entry| entry.id.clone()).collect();
        ack(&deps, nas_id, &MailboxAck { ids })
            .await
            .expect("acked");
        let second = await_mailbox(&deps, nas_id, Duration::ZERO)
            .await
            .expect("read")
            .expect("entries");
        assert_eq!((second.entries.len(), second.more), (50, false));
        let json = serde_json::to_value(&second).expect("json");
        assert!(json.get("more").is_none(), "`more` is left out when false");
    }
}
