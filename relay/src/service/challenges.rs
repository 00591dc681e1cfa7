//! Challenges and verdicts: a NAS creates a challenge (handles opened and matched, signatures
//! checked, the per-device push-bombing limit applied, mutes honoured, inbox entries stored,
//! pushes sent within a budget), cancels it, and waits for the verdict; a phone reads its inbox
//! and submits a verdict (the first answer wins); the targets that did not answer are dismissed.

use std::time::Duration;

use approvd_proto::ids::Digest;
use approvd_proto::wire::{
    ChallengeCreated, CreateChallengeRequest, Delivery, Inbox, PushRegistration, SignedVerdict,
    TargetDelivery,
};
use approvd_proto::{Cid, Decision, DeviceId, NasId, SignedMessage as _};

use super::{check_signature, Deps, Error};
use crate::metrics::Ended;
use crate::push::{PushJob, PushKind, PushMessage};
use crate::store::{
    Bucket, CancelOutcome, ChallengeState, CreateOutcome, DecideOutcome, Limit, StoredChallenge,
    StoredTarget, Topic,
};

/// The answer to a create request.
#[derive(Debug)]
pub struct Created {
    pub report: ChallengeCreated,
    /// `false` when this was an identical re-post of an existing challenge.
    pub new: bool,
}

/// The answer to a re-post of an existing `cid`: the same report if the body is identical.
fn replay(
    existing: &StoredChallenge,
    nas_id: NasId,
    body_digest: Digest,
) -> Result<Created, Error> {
    if existing.nas_id == nas_id && existing.body_hash == body_digest {
        Ok(Created {
            report: ChallengeCreated {
                cid: existing.cid,
                expires: existing.expires,
                deliveries: existing.deliveries.clone(),
            },
            new: false,
        })
    } else {
        Err(Error::Conflict(
            "a challenge with this cid exists with a different body; use a fresh random cid",
        ))
    }
}

/// Every target must come with a handle this relay minted for this NAS and that device, and with
/// a valid `challenge` signature by this NAS. Returns the stored targets with the push
/// registration each handle carries.
fn open_targets(
    deps: &Deps,
    nas_id: NasId,
    request: &CreateChallengeRequest,
    now: u64,
) -> Result<Vec<(StoredTarget, Option<PushRegistration>)>, Error> {
    request
        .targets
        .iter()
        .enumerate()
        .map(|(index, target)| {
            let field = format!("targets[{index}].push_handle");
            let contents =
                deps.handles
                    .open(&target.push_handle, now)
                    .map_err(|_| Error::HandleMismatch {
                        field: field.clone(),
                    })?;
            if contents.nas_id != nas_id || contents.device_id != target.device_id {
                return Err(Error::HandleMismatch { field });
            }
            let challenge = request.challenge_for(nas_id, target);
            check_signature(
                &challenge,
                &nas_id.0,
                &target.sig,
                format!("targets[{index}].sig"),
                "the caller's key",
            )?;
            let stored = StoredTarget {
                device_id: target.device_id,
                sig_key: contents.sig_key,
                challenge_hash: challenge.hash(),
                sealed: target.sealed.clone(),
                sig: target.sig,
                in_inbox: true,
                push_handle: contents.push.as_ref().map(|_| target.push_handle.clone()),
            };
            Ok((stored, contents.push))
        })
        .collect()
}

/// Push-bombing defence and mutes: each target's delivery before any push, and the push jobs.
/// A rate-limited target gets no inbox entry; a muted one gets no push.
async fn plan_deliveries(
    deps: &Deps,
    nas_id: NasId,
    targets: &mut [(StoredTarget, Option<PushRegistration>)],
    now: u64,
) -> Result<(Vec<TargetDelivery>, Vec<PushJob>), Error> {
    let mut deliveries = Vec::with_capacity(targets.len());
    let mut jobs = Vec::new();
    let mut retry_after_secs = u64::MAX;
    let devices: Vec<DeviceId> = targets.iter().map(|(target, _)| target.device_id).collect();
    let reservations = deps
        .store
        .reserve_targets(
            &nas_id,
            &devices,
            deps.limits.rate(Limit::ChallengesPerDevice),
            deps.clock.now_us(),
        )
        .await?;
    for ((target, registration), reservation) in targets.iter_mut().zip(reservations) {
        let bucket = Bucket::DeviceChallenges(target.device_id);
        let limited = match deps.refuse_if_limited(&bucket, reservation.rate) {
            Ok(()) => None,
            Err(Error::RateLimited {
                retry_after_secs, ..
            }) => Some(retry_after_secs),
            Err(other) => return Err(other),
        };
        let delivery = if let Some(after) = limited {
            retry_after_secs = retry_after_secs.min(after);
            target.in_inbox = false;
            Delivery::RateLimited
        } else if reservation.muted_until.is_some_and(|until| until > now) {
            Delivery::Muted
        } else if let Some(registration) = registration.take() {
            jobs.push(PushJob {
                device_id: target.device_id,
                registration,
            });
            Delivery::Pending
        } else {
            Delivery::InboxOnly
        };
        deliveries.push(TargetDelivery {
            device_id: target.device_id,
            delivery,
        });
    }
    if deliveries
        .iter()
        .all(|entry| entry.delivery == Delivery::RateLimited)
    {
        return Err(Error::RateLimited {
            limit: Limit::ChallengesPerDevice,
            retry_after_secs,
        });
    }
    Ok((deliveries, jobs))
}

/// `nas_id` creates a challenge for its targets and pushes to them; `body_digest` (SHA-256 of
/// the request body) makes an identical re-post idempotent.
pub async fn create(
    deps: &Deps,
    nas_id: NasId,
    request: &CreateChallengeRequest,
    body_digest: Digest,
) -> Result<Created, Error> {
    let now = deps.clock.now();
    if request.created.abs_diff(now) > deps.limits.clock_skew_secs {
        return Err(Error::field(
            "created",
            "is too far from the relay's clock; check the NAS clock",
        ));
    }
    if request.expires <= now {
        return Err(Error::field("expires", "is in the past"));
    }
    if let Some(existing) = deps.store.challenge(&request.cid).await? {
        return replay(&existing, nas_id, body_digest);
    }
    let mut targets = open_targets(deps, nas_id, request, now)?;
    let (mut deliveries, jobs) = plan_deliveries(deps, nas_id, &mut targets, now).await?;

    let stored = StoredChallenge {
        cid: request.cid,
        nas_id,
        created: request.created,
        expires: request.expires,
        number_matching: request.number_matching,
        body_hash: body_digest,
        targets: targets.into_iter().map(|(target, _)| target).collect(),
        deliveries: deliveries.clone(),
        state: ChallengeState::Pending,
    };
    let ttl = Duration::from_secs(request.expires - now) + deps.limits.challenge_grace;
    if let CreateOutcome::Exists(existing) = deps.store.create_challenge(&stored, ttl).await? {
        return replay(&existing, nas_id, body_digest);
    }
    deps.metrics.challenges.inc();

    if !jobs.is_empty() {
        let message = PushMessage {
            cid: request.cid,
            expires: request.expires,
            kind: PushKind::Alert,
        };
        for (device_id, delivery) in deps.push.dispatch(jobs, message, nas_id).await {
            if let Some(entry) = deliveries
                .iter_mut()
                .find(|entry| entry.device_id == device_id)
            {
                entry.delivery = delivery;
            }
        }
        deps.store
            .record_deliveries(&request.cid, &deliveries)
            .await?;
    }
    Ok(Created {
        report: ChallengeCreated {
            cid: request.cid,
            expires: request.expires,
            deliveries,
        },
        new: true,
    })
}

/// Tell the targets' apps (all but `answered_by`, and none that muted this NAS) that the
/// challenge is over; the pushes go out in the background.
async fn dismiss_others(
    deps: &Deps,
    challenge: &StoredChallenge,
    answered_by: Option<DeviceId>,
) -> Result<(), Error> {
    let now = deps.clock.now();
    let mut jobs = Vec::new();
    for target in &challenge.targets {
        if Some(target.device_id) == answered_by {
            continue;
        }
        let Some(handle) = &target.push_handle else {
            continue;
        };
        let Some(registration) = deps.handles.open(handle, now).ok().and_then(|h| h.push) else {
            continue;
        };
        let muted = deps
            .store
            .muted_until(&challenge.nas_id, &target.device_id)
            .await?
            .is_some_and(|until| until > now);
        if !muted {
            jobs.push(PushJob {
                device_id: target.device_id,
                registration,
            });
        }
    }
    if !jobs.is_empty() {
        let message = PushMessage {
            cid: challenge.cid,
            expires: challenge.expires.max(now + 1),
            kind: PushKind::Dismiss,
        };
        deps.push.dismiss(jobs, message, challenge.nas_id);
    }
    Ok(())
}

/// The challenge, if `nas_id` sent it.
async fn owned_challenge(deps: &Deps, cid: &Cid, nas_id: NasId) -> Result<StoredChallenge, Error> {
    let challenge = deps
        .store
        .challenge(cid)
        .await?
        .ok_or(Error::NotFound("challenge"))?;
    if challenge.nas_id != nas_id {
        return Err(Error::NotOwner("this challenge belongs to another NAS"));
    }
    Ok(challenge)
}

/// `nas_id` cancels its pending challenge (cancelling twice is fine).
pub async fn cancel(deps: &Deps, nas_id: NasId, cid: Cid) -> Result<(), Error> {
    let challenge = owned_challenge(deps, &cid, nas_id).await?;
    match deps.store.cancel(&cid).await? {
        CancelOutcome::Cancelled => {
            deps.metrics.challenge_ended(Ended::Cancelled, None);
            dismiss_others(deps, &challenge, None).await
        }
        CancelOutcome::AlreadyCancelled => Ok(()),
        CancelOutcome::AlreadyDecided => Err(Error::AlreadyDecided),
        CancelOutcome::Missing => Err(Error::NotFound("challenge")),
    }
}

/// `nas_id` waits up to `wait` for the verdict on its challenge (`None`: still pending).
pub async fn await_verdict(
    deps: &Deps,
    nas_id: NasId,
    cid: Cid,
    wait: Duration,
) -> Result<Option<SignedVerdict>, Error> {
    // The first read also checks ownership: a challenge that is not there (or not this NAS's)
    // at the start is unknown. One that disappears later has expired only if its time is up:
    // before that it was lost (Redis restarted empty), and a lost challenge must read as
    // unknown, never as expired (the NAS would tell its user the wrong thing).
    let expires = std::cell::Cell::new(None::<u64>);
    deps.long_poll_until(Topic::Challenge(cid), wait, || async {
        let challenge = match expires.get() {
            None => owned_challenge(deps, &cid, nas_id).await?,
            Some(expires) => match deps.store.challenge(&cid).await? {
                Some(challenge) => challenge,
                None if expires <= deps.clock.now() => return Err(Error::ChallengeExpired),
                None => return Err(Error::NotFound("challenge")),
            },
        };
        expires.set(Some(challenge.expires));
        match challenge.state {
            ChallengeState::Decided { verdict } => Ok((Some(*verdict), None)),
            ChallengeState::Cancelled => Err(Error::ChallengeCancelled),
            ChallengeState::Pending if challenge.expires <= deps.clock.now() => {
                // Counted here, where its NAS learns it (an SDK stops polling then); a
                // challenge nobody polls for leaves no trace, as the store only lets it lapse.
                deps.metrics.challenge_ended(Ended::Expired, None);
                Err(Error::ChallengeExpired)
            }
            // Wake up (at the latest) just after expiry to answer "expired", not "pending".
            ChallengeState::Pending => Ok((None, Some(challenge.expires))),
        }
    })
    .await
}

/// `device_id` answers challenge `cid`: stored only if it is the first answer and every check
/// the relay can make holds (target, NAS, challenge hash, `D_sig` signature, expiry).
pub async fn submit_verdict(
    deps: &Deps,
    device_id: DeviceId,
    cid: Cid,
    request: &SignedVerdict,
) -> Result<(), Error> {
    let verdict = &request.verdict;
    if verdict.cid != cid {
        return Err(Error::field(
            "verdict.cid",
            "must equal the cid in the path",
        ));
    }
    if verdict.device_id != device_id {
        return Err(Error::NotOwner(
            "verdict.device_id must be the key that signs the request (D_api)",
        ));
    }
    let challenge = deps
        .store
        .challenge(&cid)
        .await?
        .ok_or(Error::NotFound("challenge"))?;
    match &challenge.state {
        ChallengeState::Decided { .. } => return Err(Error::AlreadyDecided),
        ChallengeState::Cancelled => return Err(Error::ChallengeCancelled),
        ChallengeState::Pending => {}
    }
    let target = challenge
        .targets
        .iter()
        .find(|target| target.device_id == device_id)
        .ok_or(Error::NotTargeted)?;
    if verdict.nas_id != challenge.nas_id {
        return Err(Error::field(
            "verdict.nas_id",
            "is not the NAS that sent this challenge",
        ));
    }
    if verdict.challenge_hash != target.challenge_hash {
        return Err(Error::field(
            "verdict.challenge_hash",
            "is not the hash of the challenge message for this device",
        ));
    }
    check_signature(
        verdict,
        &target.sig_key,
        &request.sig,
        "sig",
        "the device's verdict key (D_sig)",
    )?;
    if challenge.expires <= deps.clock.now() {
        return Err(Error::ChallengeExpired);
    }
    match deps.store.decide(&cid, request).await? {
        DecideOutcome::Accepted => {
            deps.metrics
                .verdicts
                .with_label_values(&[verdict.decision.as_str()])
                .inc();
            let ended = match verdict.decision {
                Decision::Approve => Ended::Approved,
                Decision::Deny => Ended::Denied,
                Decision::Fraud => Ended::Fraud,
            };
            let latency = deps.clock.now().saturating_sub(challenge.created);
            deps.metrics
                .challenge_ended(ended, Some(Duration::from_secs(latency)));
            dismiss_others(deps, &challenge, Some(device_id)).await
        }
        DecideOutcome::AlreadyDecided => Err(Error::AlreadyDecided),
        DecideOutcome::Cancelled => Err(Error::ChallengeCancelled),
        DecideOutcome::Missing => Err(Error::ChallengeExpired),
    }
}

/// `device_id`'s pending challenges, oldest first, waiting up to `wait` for one.
pub async fn await_inbox(
    deps: &Deps,
    device_id: DeviceId,
    wait: Duration,
) -> Result<Option<Inbox>, Error> {
    deps.long_poll(Topic::Inbox(device_id), wait, || async {
        let entries = deps.store.inbox(&device_id, deps.clock.now()).await?;
        Ok((!entries.is_empty()).then_some(Inbox { entries }))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::PushResult;
    use crate::push_handle::HandleContents;
    use crate::service::testing::{deps, deps_pushing_to, FixedClock, RecordingSender};
    use approvd_proto::ids::{PublicKey, Sig};
    use approvd_proto::wire::{ChallengeTarget, Notice, PushHandle, PushProvider, Sealed};
    use approvd_proto::{Decision, Verdict};
    use ed25519_dalek::SigningKey;

    const NOW: u64 = 1_800_000_000;

    /// A NAS and one paired phone (with or without push), as the relay sees them.
    struct World {
        deps: Deps,
        clock: std::sync::Arc<FixedClock>,
        nas_key: SigningKey,
        device_id: DeviceId,
        verdict_key: SigningKey,
        handle: approvd_proto::wire::PushHandle,
    }

    fn world(push: bool) -> World {
        let (deps, clock) = deps(NOW);
        let nas_key = approvd_proto::generate_signing_key();
        let device_id = DeviceId(PublicKey::from(&approvd_proto::generate_signing_key()));
        let verdict_key = approvd_proto::generate_signing_key();
        let handle = deps.handles.mint(&HandleContents {
            device_id,
            nas_id: NasId(PublicKey::from(&nas_key)),
            sig_key: PublicKey::from(&verdict_key),
            push: push.then(|| PushRegistration {
                provider: PushProvider::Apns,
                token: "ab".repeat(32),
                topic: "dev.approvd.test".to_owned(),
                p256dh: None,
                auth: None,
            }),
            minted_at: NOW,
        });
        World {
            deps,
            clock,
            nas_key,
            device_id,
            verdict_key,
            handle,
        }
    }

    impl World {
        fn nas_id(&self) -> NasId {
            NasId(PublicKey::from(&self.nas_key))
        }

        /// A create request for this phone, signed by `signer` (normally the NAS).
        fn request_signed_by(&self, signer: &SigningKey) -> CreateChallengeRequest {
            let mut request = CreateChallengeRequest {
                cid: Cid::random(),
                created: NOW,
                expires: NOW + 60,
                number_matching: false,
                targets: vec![ChallengeTarget {
                    device_id: self.device_id,
                    push_handle: self.handle.clone(),
                    sealed: Sealed(vec![7; 256]),
                    sig: Sig([0; 64]),
                }],
            };
            let challenge = request.challenge_for(self.nas_id(), &request.targets[0]);
            request.targets[0].sig = challenge.sign(signer);
            request
        }

        fn request(&self) -> CreateChallengeRequest {
            self.request_signed_by(&self.nas_key)
        }

        async fn create(&self, request: &CreateChallengeRequest) -> Result<Created, Error> {
            let digest = Digest::of(&serde_json::to_vec(request).expect("json"));
            create(&self.deps, self.nas_id(), request, digest).await
        }

        /// The phone's verdict on `request`, signed by `key`.
        fn verdict(
            &self,
            request: &CreateChallengeRequest,
            key: &SigningKey,
            decision: Decision,
        ) -> SignedVerdict {
            let challenge = request.challenge_for(self.nas_id(), &request.targets[0]);
            let verdict = Verdict {
                cid: request.cid,
                nas_id: self.nas_id(),
                device_id: self.device_id,
                challenge_hash: challenge.hash(),
                decision,
                number: None,
                user_verified: false,
                decided_at: NOW,
            };
            SignedVerdict {
                sig: verdict.sign(key),
                verdict,
            }
        }
    }

    #[tokio::test]
    async fn the_first_verdict_is_stored_and_read_back_by_the_nas() {
        let world = world(true);
        let request = world.request();
        let created = world.create(&request).await.expect("created");
        assert!(created.new);
        assert_eq!(
            created.report.deliveries[0].delivery,
            Delivery::Logged,
            "the log sender sends nothing"
        );
        let inbox = await_inbox(&world.deps, world.device_id, Duration::ZERO)
            .await
            .expect("inbox")
            .expect("one entry");
        assert_eq!(inbox.entries[0].cid, request.cid);

        let approve = world.verdict(&request, &world.verdict_key, Decision::Approve);
        submit_verdict(&world.deps, world.device_id, request.cid, &approve)
            .await
            .expect("first answer");
        let deny = world.verdict(&request, &world.verdict_key, Decision::Deny);
        assert!(matches!(
            submit_verdict(&world.deps, world.device_id, request.cid, &deny).await,
            Err(Error::AlreadyDecided)
        ));
        let read = await_verdict(&world.deps, world.nas_id(), request.cid, Duration::ZERO)
            .await
            .expect("poll");
        assert_eq!(read, Some(approve));
        let stranger = NasId(PublicKey::from(&approvd_proto::generate_signing_key()));
        assert!(matches!(
            await_verdict(&world.deps, stranger, request.cid, Duration::ZERO).await,
            Err(Error::NotOwner(_))
        ));
    }

    #[tokio::test]
    async fn a_verdict_not_signed_by_the_paired_verdict_key_is_refused() {
        let world = world(false);
        let request = world.request();
        world.create(&request).await.expect("created");
        let forged = world.verdict(
            &request,
            &approvd_proto::generate_signing_key(),
            Decision::Approve,
        );
        match submit_verdict(&world.deps, world.device_id, request.cid, &forged).await {
            Err(Error::InvalidSignature { field, detail }) => {
                assert_eq!(field, "sig");
                assert!(detail.contains("D_sig"), "{detail}");
            }
            other => panic!("expected a bad signature, got {other:?}"),
        }
        let other_device = DeviceId(PublicKey::from(&approvd_proto::generate_signing_key()));
        let mut stolen = world.verdict(&request, &world.verdict_key, Decision::Approve);
        stolen.verdict.device_id = other_device;
        assert!(matches!(
            submit_verdict(&world.deps, other_device, request.cid, &stolen).await,
            Err(Error::NotTargeted)
        ));
    }

    #[tokio::test]
    async fn a_challenge_not_signed_by_the_caller_or_for_a_foreign_handle_is_refused() {
        let world = world(false);
        let forged = world.request_signed_by(&approvd_proto::generate_signing_key());
        match world.create(&forged).await {
            Err(Error::InvalidSignature { field, .. }) => assert_eq!(field, "targets[0].sig"),
            other => panic!("expected a bad signature, got {other:?}"),
        }
        let thief = NasId(PublicKey::from(&approvd_proto::generate_signing_key()));
        let request = world.request();
        let digest = Digest([0; 32]);
        match create(&world.deps, thief, &request, digest).await {
            Err(Error::HandleMismatch { field }) => assert_eq!(field, "targets[0].push_handle"),
            other => panic!("expected a handle mismatch, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_identical_repost_is_the_same_challenge_and_a_different_body_conflicts() {
        let world = world(false);
        let request = world.request();
        let first = world.create(&request).await.expect("created");
        let again = world.create(&request).await.expect("idempotent");
        assert!(!again.new);
        assert_eq!(again.report.deliveries, first.report.deliveries);
        let mut changed = request.clone();
        changed.number_matching = true;
        assert!(matches!(
            world.create(&changed).await,
            Err(Error::Conflict(_))
        ));
    }

    #[tokio::test]
    async fn push_bombing_is_limited_per_device() {
        let world = world(true);
        let per_minute = world.deps.limits.challenges_per_device.per_minute;
        for _ in 0..per_minute {
            world.create(&world.request()).await.expect("within budget");
        }
        match world.create(&world.request()).await {
            Err(Error::RateLimited {
                limit: Limit::ChallengesPerDevice,
                retry_after_secs,
            }) => assert!(retry_after_secs >= 1),
            other => panic!("expected the per-device limit, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_muted_device_gets_its_inbox_entry_but_no_push() {
        let world = world(true);
        world
            .deps
            .store
            .set_mute(
                &world.nas_id(),
                &world.device_id,
                NOW + 600,
                Duration::from_secs(600),
            )
            .await
            .expect("muted");
        let request = world.request();
        let created = world.create(&request).await.expect("created");
        assert_eq!(created.report.deliveries[0].delivery, Delivery::Muted);
        let inbox = await_inbox(&world.deps, world.device_id, Duration::ZERO)
            .await
            .expect("inbox");
        assert!(inbox.is_some());
    }

    #[tokio::test]
    async fn after_expiry_the_nas_hears_expired_and_a_late_verdict_is_refused() {
        let world = world(false);
        let request = world.request();
        world.create(&request).await.expect("created");
        world.clock.advance_secs(61);
        assert!(matches!(
            await_verdict(&world.deps, world.nas_id(), request.cid, Duration::ZERO).await,
            Err(Error::ChallengeExpired)
        ));
        let late = world.verdict(&request, &world.verdict_key, Decision::Approve);
        assert!(matches!(
            submit_verdict(&world.deps, world.device_id, request.cid, &late).await,
            Err(Error::ChallengeExpired)
        ));
    }

    #[tokio::test]
    async fn cancel_is_final_and_only_for_the_owner() {
        let world = world(false);
        let request = world.request();
        world.create(&request).await.expect("created");
        let stranger = NasId(PublicKey::from(&approvd_proto::generate_signing_key()));
        assert!(matches!(
            cancel(&world.deps, stranger, request.cid).await,
            Err(Error::NotOwner(_))
        ));
        cancel(&world.deps, world.nas_id(), request.cid)
            .await
            .expect("cancelled");
        cancel(&world.deps, world.nas_id(), request.cid)
            .await
            .expect("twice is fine");
        let verdict = world.verdict(&request, &world.verdict_key, Decision::Approve);
        assert!(matches!(
            submit_verdict(&world.deps, world.device_id, request.cid, &verdict).await,
            Err(Error::ChallengeCancelled)
        ));
    }

    #[tokio::test]
    async fn a_waiting_nas_is_answered_when_the_relay_shuts_down() {
        let world = world(false);
        let request = world.request();
        world.create(&request).await.expect("created");
        let poll = await_verdict(
            &world.deps,
            world.nas_id(),
            request.cid,
            Duration::from_secs(20),
        );
        let (outcome, ()) = tokio::join!(poll, async {
            tokio::task::yield_now().await;
            world.deps.shutdown.cancel();
        });
        assert!(matches!(outcome, Err(Error::ShuttingDown)));
    }

    /// A phone paired with `nas_id` whose push token is `token`: (device, verdict key, handle).
    fn paired_phone(deps: &Deps, nas_id: NasId, token: &str) -> (DeviceId, SigningKey, PushHandle) {
        let device_id = DeviceId(PublicKey::from(&approvd_proto::generate_signing_key()));
        let verdict_key = approvd_proto::generate_signing_key();
        let handle = deps.handles.mint(&HandleContents {
            device_id,
            nas_id,
            sig_key: PublicKey::from(&verdict_key),
            push: Some(PushRegistration {
                provider: PushProvider::Fcm,
                token: token.to_owned(),
                topic: "dev.approvd.test".to_owned(),
                p256dh: None,
                auth: None,
            }),
            minted_at: NOW,
        });
        (device_id, verdict_key, handle)
    }

    /// A challenge from `nas_key` to every phone in `phones`.
    fn request_to(
        nas_key: &SigningKey,
        phones: &[&(DeviceId, SigningKey, PushHandle)],
    ) -> CreateChallengeRequest {
        let nas_id = NasId(PublicKey::from(nas_key));
        let mut request = CreateChallengeRequest {
            cid: Cid::random(),
            created: NOW,
            expires: NOW + 60,
            number_matching: false,
            targets: phones
                .iter()
                .map(|(device_id, _, handle)| ChallengeTarget {
                    device_id: *device_id,
                    push_handle: handle.clone(),
                    sealed: Sealed(vec![7; 256]),
                    sig: Sig([0; 64]),
                })
                .collect(),
        };
        for index in 0..request.targets.len() {
            let challenge = request.challenge_for(nas_id, &request.targets[index]);
            request.targets[index].sig = challenge.sign(nas_key);
        }
        request
    }

    /// Who got a dismissal for `cid`.
    async fn dismissed(recorder: &RecordingSender, cid: Cid) -> Vec<String> {
        recorder
            .sent()
            .await
            .into_iter()
            .filter(|(_, message)| message.cid == cid && message.kind == PushKind::Dismiss)
            .map(|(token, _)| token)
            .collect()
    }

    #[tokio::test]
    async fn a_muted_phone_gets_no_dismissal_after_a_verdict_or_a_cancel() {
        let recorder = RecordingSender::answering(PushResult::Delivered);
        let (deps, _) = deps_pushing_to(NOW, recorder.clone());
        let nas_key = approvd_proto::generate_signing_key();
        let nas_id = NasId(PublicKey::from(&nas_key));
        let answering = paired_phone(&deps, nas_id, "token-a");
        let muted = paired_phone(&deps, nas_id, "token-b");
        let other = paired_phone(&deps, nas_id, "token-c");
        let request = request_to(&nas_key, &[&answering, &muted, &other]);
        let digest = Digest([1; 32]);
        create(&deps, nas_id, &request, digest)
            .await
            .expect("created");
        // The phone mutes this NAS while the challenge is pending.
        deps.store
            .set_mute(&nas_id, &muted.0, NOW + 600, Duration::from_secs(600))
            .await
            .expect("muted");
        let challenge = request.challenge_for(nas_id, &request.targets[0]);
        let verdict = approvd_proto::Verdict {
            cid: request.cid,
            nas_id,
            device_id: answering.0,
            challenge_hash: challenge.hash(),
            decision: Decision::Approve,
            number: None,
            user_verified: false,
            decided_at: NOW,
        };
        let signed = SignedVerdict {
            sig: verdict.sign(&answering.1),
            verdict,
        };
        submit_verdict(&deps, answering.0, request.cid, &signed)
            .await
            .expect("answered");
        assert_eq!(dismissed(&recorder, request.cid).await, ["token-c"]);

        let second = request_to(&nas_key, &[&answering, &muted, &other]);
        create(&deps, nas_id, &second, Digest([2; 32]))
            .await
            .expect("created");
        cancel(&deps, nas_id, second.cid).await.expect("cancelled");
        let mut tokens = dismissed(&recorder, second.cid).await;
        tokens.sort();
        assert_eq!(tokens, ["token-a", "token-c"]);
    }

    #[tokio::test]
    async fn a_dead_token_is_reported_dated_when_it_was_learned() {
        let recorder = RecordingSender::answering(PushResult::Gone);
        let (deps, _) = deps_pushing_to(NOW, recorder.clone());
        let nas_key = approvd_proto::generate_signing_key();
        let nas_id = NasId(PublicKey::from(&nas_key));
        let phone = paired_phone(&deps, nas_id, "dead-token");
        let mut request = request_to(&nas_key, &[&phone]);
        request.expires = NOW + 120;
        let target = request.targets[0].clone();
        request.targets[0].sig = request.challenge_for(nas_id, &target).sign(&nas_key);
        let created = create(&deps, nas_id, &request, Digest([3; 32]))
            .await
            .expect("created");
        assert_eq!(created.report.deliveries[0].delivery, Delivery::Gone);
        let mailbox = deps.store.mailbox(&nas_id, 10).await.expect("mailbox");
        assert_eq!(mailbox.len(), 1);
        assert!(matches!(
            mailbox[0].notice,
            Notice::PushGone { device_id } if device_id == phone.0
        ));
        assert_eq!(
            mailbox[0].at, NOW,
            "dated when learned, not from the expiry"
        );
    }
}
