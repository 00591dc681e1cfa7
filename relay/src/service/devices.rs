//! A phone's own pairing maintenance: refresh its push registration, mute a NAS, unpair. Each
//! request carries the pairing's current handle, which proves the phone is paired with that NAS
//! (so a stranger's key cannot write into a NAS's mailbox) and gives the relay `D_sig` to check
//! the signed `mute` / `unpair` messages before forwarding them to the NAS's mailbox.

use std::time::Duration;

use approvd_proto::ids::Sig;
use approvd_proto::wire::{
    HandleIssued, Notice, PushHandle, RefreshPushRequest, SignedMute, SignedUnpair,
};
use approvd_proto::{DeviceId, NasId, SignedMessage};

use super::{check_signature, mailbox, Deps, Error};
use crate::push_handle::HandleContents;
use crate::store::Bucket;

/// Longest mute, seconds.
pub const MAX_MUTE_SECS: u64 = 7 * 24 * 3600;

/// Open the caller's own handle.
fn own_handle(deps: &Deps, handle: &PushHandle, caller: DeviceId) -> Result<HandleContents, Error> {
    let mismatch = || Error::HandleMismatch {
        field: "push_handle".to_owned(),
    };
    let contents = deps
        .handles
        .open(handle, deps.clock.now())
        .map_err(|_| mismatch())?;
    if contents.device_id != caller {
        return Err(mismatch());
    }
    Ok(contents)
}

/// The pairing a signed `mute` or `unpair` message speaks for: the caller's own handle, a
/// message (`(message, field, its device_id, its nas_id)`) that names the caller and the
/// handle's NAS, and its signature under the handle's `D_sig`.
fn pairing_of<M: SignedMessage>(
    deps: &Deps,
    caller: DeviceId,
    handle: &PushHandle,
    (message, field, device_id, nas_id): (&M, &str, DeviceId, NasId),
    sig: &Sig,
) -> Result<HandleContents, Error> {
    let contents = own_handle(deps, handle, caller)?;
    if device_id != caller || nas_id != contents.nas_id {
        return Err(Error::field(
            field,
            "device_id and nas_id must be those of the handle's pairing",
        ));
    }
    check_signature(
        message,
        &contents.sig_key,
        sig,
        "sig",
        "the device's verdict key (D_sig)",
    )?;
    Ok(contents)
}

/// Mint a handle with the new push registration and deliver it to the NAS's mailbox.
pub async fn refresh_push(
    deps: &Deps,
    device_id: DeviceId,
    request: &RefreshPushRequest,
) -> Result<HandleIssued, Error> {
    let current = own_handle(deps, &request.push_handle, device_id)?;
    // The budget first: a registration check may resolve a host name.
    deps.take(&Bucket::DeviceRefreshes(device_id)).await?;
    super::check_registration(deps, request.push.as_ref()).await?;
    let push_handle = deps.handles.mint(&HandleContents {
        push: request.push.clone(),
        minted_at: deps.clock.now(),
        ..current
    });
    let notice = Notice::HandleRefreshed {
        device_id,
        push_handle: push_handle.clone(),
    };
    mailbox::post(deps, &current.nas_id, &notice).await?;
    Ok(HandleIssued { push_handle })
}

/// No pushes from that NAS to the caller until `mute.until`; the NAS gets the signed notice.
pub async fn mute(deps: &Deps, device_id: DeviceId, request: &SignedMute) -> Result<(), Error> {
    let mute = &request.mute;
    let contents = pairing_of(
        deps,
        device_id,
        &request.push_handle,
        (mute, "mute", mute.device_id, mute.nas_id),
        &request.sig,
    )?;
    let now = deps.clock.now();
    if mute.until <= now || mute.until > now + MAX_MUTE_SECS {
        return Err(Error::field(
            "mute.until",
            "must be in the future and at most 7 days away",
        ));
    }
    deps.store
        .set_mute(
            &mute.nas_id,
            &device_id,
            mute.until,
            Duration::from_secs(mute.until - now),
        )
        .await?;
    let notice = Notice::Muted {
        mute: request.mute.clone(),
        sig: request.sig,
    };
    mailbox::post(deps, &contents.nas_id, &notice).await
}

/// Drop the caller's pending challenges from that NAS and deliver the signed notice to it.
pub async fn unpair(deps: &Deps, device_id: DeviceId, request: &SignedUnpair) -> Result<(), Error> {
    let unpair = &request.unpair;
    let contents = pairing_of(
        deps,
        device_id,
        &request.push_handle,
        (unpair, "unpair", unpair.device_id, unpair.nas_id),
        &request.sig,
    )?;
    deps.store
        .drop_inbox_from(&device_id, &contents.nas_id)
        .await?;
    let notice = Notice::Unpaired {
        unpair: request.unpair.clone(),
        sig: request.sig,
    };
    mailbox::post(deps, &contents.nas_id, &notice).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::testing::deps;
    use approvd_proto::ids::PublicKey;
    use approvd_proto::{Mute, Unpair};

    const NOW: u64 = 1_800_000_000;

    #[tokio::test]
    async fn mute_and_unpair_need_the_callers_handle_and_verdict_key_and_reach_the_nas() {
        let (deps, _) = deps(NOW);
        let nas_id = NasId(PublicKey::from(&approvd_proto::generate_signing_key()));
        let device_id = DeviceId(PublicKey::from(&approvd_proto::generate_signing_key()));
        let verdict_key = approvd_proto::generate_signing_key();
        let handle = deps.handles.mint(&HandleContents {
            device_id,
            nas_id,
            sig_key: PublicKey::from(&verdict_key),
            push: None,
            minted_at: NOW,
        });
        let mute_message = Mute {
            nas_id,
            device_id,
            until: NOW + 3600,
            muted_at: NOW,
        };
        let request = SignedMute {
            sig: mute_message.sign(&verdict_key),
            mute: mute_message.clone(),
            push_handle: handle.clone(),
        };
        let stranger = DeviceId(PublicKey::from(&approvd_proto::generate_signing_key()));
        assert!(matches!(
            mute(&deps, stranger, &request).await,
            Err(Error::HandleMismatch { .. })
        ));
        let forged = SignedMute {
            sig: mute_message.sign(&approvd_proto::generate_signing_key()),
            ..request.clone()
        };
        assert!(matches!(
            mute(&deps, device_id, &forged).await,
            Err(Error::InvalidSignature { .. })
        ));
        mute(&deps, device_id, &request).await.expect("muted");
        assert_eq!(
            deps.store
                .muted_until(&nas_id, &device_id)
                .await
                .expect("store"),
            Some(NOW + 3600)
        );

        let unpair_message = Unpair {
            nas_id,
            device_id,
            unpaired_at: NOW,
        };
        let request = SignedUnpair {
            sig: unpair_message.sign(&verdict_key),
            unpair: unpair_message,
            push_handle: handle,
        };
        unpair(&deps, device_id, &request).await.expect("unpaired");
        let notices: Vec<Notice> = deps
            .store
            .mailbox(&nas_id, 10)
            .await
            .expect("mailbox")
            .into_iter()
            .map(|entry| entry.notice)
            .collect();
        assert!(matches!(
            notices.as_slice(),
            [Notice::Muted { .. }, Notice::Unpaired { .. }]
        ));
    }

    #[tokio::test]
    async fn refreshes_are_rate_limited_and_the_nas_keeps_only_the_newest_handle() {
        let (deps, _) = deps(NOW);
        let nas_id = NasId(PublicKey::from(&approvd_proto::generate_signing_key()));
        let device_id = DeviceId(PublicKey::from(&approvd_proto::generate_signing_key()));
        let mut handle = deps.handles.mint(&HandleContents {
            device_id,
            nas_id,
            sig_key: PublicKey::from(&approvd_proto::generate_signing_key()),
            push: None,
            minted_at: NOW,
        });
        let per_minute = deps.limits.refreshes_per_device.per_minute;
        for _ in 0..per_minute {
            let request = RefreshPushRequest {
                push_handle: handle.clone(),
                push: None,
            };
            handle = refresh_push(&deps, device_id, &request)
                .await
                .expect("within the budget")
                .push_handle;
        }
        let request = RefreshPushRequest {
            push_handle: handle.clone(),
            push: None,
        };
        assert!(matches!(
            refresh_push(&deps, device_id, &request).await,
            Err(Error::RateLimited {
                limit: crate::store::Limit::RefreshesPerDevice,
                ..
            })
        ));
        let mailbox = deps.store.mailbox(&nas_id, 100).await.expect("mailbox");
        assert_eq!(mailbox.len(), 1, "refreshes coalesce");
        assert!(matches!(
            &mailbox[0].notice,
            Notice::HandleRefreshed { push_handle, .. } if *push_handle == handle
        ));
    }
}
