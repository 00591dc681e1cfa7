//! Pairing: the NAS registers a slot, the phone claims it, the NAS waits for the claim and
//! accepts it (its commitment, before any code is shown), then confirms once the user typed the
//! phone's code; the phone waits for the acceptance and then the confirmation. The relay checks what it can (caller keys,
//! the claim's signature, slot ownership, single use, expiry) and mints the pairing's handle;
//! the MAC under the pairing secret is checked by the NAS, which alone knows the secret.

use std::time::Duration;

use approvd_proto::wire::{
    ClaimRequest, CreatePairingRequest, HandleIssued, PairingAcceptance, PairingClaimed,
    PairingConfirmation, PairingCreated,
};
use approvd_proto::{DeviceId, Digest, NasId, PairClaim, PairingId, SignedMessage as _};

use super::{check_signature, Deps, Error};
use crate::push_handle::HandleContents;
use crate::store::{ClaimOutcome, PairingSlot, PairingState, PairingStep, StepOutcome, Topic};

/// Slots are kept this long past their expiry so late pollers learn "expired", not "unknown".
const PAIRING_GRACE: Duration = Duration::from_secs(60);

/// The slot, if it exists and has not expired.
async fn live_slot(deps: &Deps, id: &PairingId) -> Result<PairingState, Error> {
    let pairing = deps
        .store
        .pairing(id)
        .await?
        .ok_or(Error::NotFound("pairing"))?;
    if pairing.slot.expires_at <= deps.clock.now() {
        return Err(Error::PairingExpired);
    }
    Ok(pairing)
}

/// Time left until the slot expires.
fn until_expiry(deps: &Deps, pairing: &PairingState) -> Duration {
    Duration::from_secs(pairing.slot.expires_at.saturating_sub(deps.clock.now()))
}

/// `nas_id` registers a pairing slot.
pub async fn create(
    deps: &Deps,
    nas_id: NasId,
    request: &CreatePairingRequest,
) -> Result<PairingCreated, Error> {
    let slot = PairingSlot {
        pairing_id: request.pairing_id,
        nas_id,
        expires_at: deps.clock.now() + request.ttl_secs,
        claim_verifier: request.claim_verifier,
    };
    let ttl = Duration::from_secs(request.ttl_secs) + PAIRING_GRACE;
    if !deps.store.create_pairing(&slot, ttl).await? {
        return Err(Error::Conflict(
            "a pairing with this pairing_id exists; use a fresh random id",
        ));
    }
    Ok(PairingCreated {
        pairing_id: slot.pairing_id,
        expires_at: slot.expires_at,
    })
}

/// `device_id` claims slot `id` with its keys; answers the pairing's push handle.
pub async fn claim(
    deps: &Deps,
    device_id: DeviceId,
    id: PairingId,
    request: &ClaimRequest,
) -> Result<HandleIssued, Error> {
    let claim = &request.claim;
    if claim.pairing_id != id {
        return Err(Error::field(
            "claim.pairing_id",
            "must equal the pairing_id in the path",
        ));
    }
    if claim.device_id != device_id {
        return Err(Error::NotOwner(
            "claim.device_id must be the key that signs the request (D_api)",
        ));
    }
    let pairing = live_slot(deps, &id).await?;
    // N-15: only someone who read the QR code holds `k_relay`. Checked before anything is
    // stored, so a claim made by someone who only saw the `pairing_id` (in a log) consumes
    // nothing and makes no phone raise the alarm.
    let shown = Digest::of(request.claim_key.as_bytes());
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        shown.as_bytes().as_slice(),
        pairing.slot.claim_verifier.as_bytes().as_slice(),
    )) {
        return Err(Error::NotOwner(
            "claim_key is not this slot's: a claim must carry the QR code's relay-claim key",
        ));
    }
    if claim.nas_id != pairing.slot.nas_id {
        return Err(Error::field(
            "claim.nas_id",
            "is not the NAS that registered this slot",
        ));
    }
    check_signature(claim, &claim.sig_key, &request.sig, "sig", "claim.sig_key")?;
    super::check_registration(deps, request.push.as_ref()).await?;
    let push_handle = deps.handles.mint(&HandleContents {
        device_id: claim.device_id,
        nas_id: claim.nas_id,
        sig_key: claim.sig_key,
        push: request.push.clone(),
        minted_at: deps.clock.now(),
    });
    let claimed = PairingClaimed {
        claim: request.claim.clone(),
        mac: request.mac,
        sig: request.sig,
        push_handle: push_handle.clone(),
    };
    match deps.store.claim_pairing(&id, &claimed).await? {
        ClaimOutcome::Stored => Ok(HandleIssued { push_handle }),
        ClaimOutcome::AlreadyClaimed => Err(Error::AlreadyClaimed),
        ClaimOutcome::Missing => Err(Error::NotFound("pairing")),
    }
}

/// The slot's owner waits up to `wait` for the phone's claim.
pub async fn await_claim(
    deps: &Deps,
    nas_id: NasId,
    id: PairingId,
    wait: Duration,
) -> Result<Option<PairingClaimed>, Error> {
    let first = live_slot(deps, &id).await?;
    if first.slot.nas_id != nas_id {
        return Err(Error::NotOwner("this pairing slot belongs to another NAS"));
    }
    let wait = wait.min(until_expiry(deps, &first));
    deps.long_poll(Topic::Pairing(id), wait, || async {
        Ok(live_slot(deps, &id).await?.claimed)
    })
    .await
}

/// The slot's owner accepts the claim it will confirm (PROTOCOL.md §5.1 step 4).
pub async fn accept(
    deps: &Deps,
    nas_id: NasId,
    id: PairingId,
    request: &PairingAcceptance,
) -> Result<(), Error> {
    let accept = &request.accept;
    let claim = owned_claim(deps, nas_id, id, accept.pairing_id, accept.nas_id).await?;
    if accept.device_id != claim.device_id || accept.claim_hash != claim.hash() {
        return Err(Error::field(
            "accept.claim_hash",
            "must be the hash of the claim stored for this slot (and device_id its device)",
        ));
    }
    check_signature(accept, &nas_id.0, &request.sig, "sig", "the caller's key")?;
    let step = PairingStep::Accept(request.clone());
    match deps.store.advance_pairing(&id, &step).await? {
        StepOutcome::Stored => Ok(()),
        // The NAS re-sends the very acceptance it signed when it retries (its SDK signs one
        // per slot, PROTOCOL.md §5.1 step 4): that is the stored one, so it succeeds again.
        StepOutcome::AlreadyDone
            if live_slot(deps, &id).await?.acceptance.as_ref() == Some(request) =>
        {
            Ok(())
        }
        StepOutcome::AlreadyDone => Err(Error::Conflict(
            "this slot's claim is accepted already; the first acceptance stands",
        )),
        StepOutcome::NotReady => Err(Error::Conflict(NOT_CLAIMED)),
        StepOutcome::Missing => Err(Error::NotFound("pairing")),
    }
}

/// The slot's owner confirms the device whose claim it accepted.
pub async fn confirm(
    deps: &Deps,
    nas_id: NasId,
    id: PairingId,
    request: &PairingConfirmation,
) -> Result<(), Error> {
    let confirm = &request.confirm;
    let claim = owned_claim(deps, nas_id, id, confirm.pairing_id, confirm.nas_id).await?;
    if confirm.device_id != claim.device_id || confirm.claim_hash != claim.hash() {
        return Err(Error::field(
            "confirm.claim_hash",
            "must be the hash of the claim stored for this slot (and device_id its device)",
        ));
    }
    if confirm.code_secret_hash != Digest::of(&request.code_secret.0) {
        return Err(Error::field(
            "confirm.code_secret_hash",
            "must be the SHA-256 of `code_secret`",
        ));
    }
    check_signature(confirm, &nas_id.0, &request.sig, "sig", "the caller's key")?;
    let step = PairingStep::Confirm(request.clone());
    match deps.store.advance_pairing(&id, &step).await? {
        StepOutcome::Stored => Ok(()),
        StepOutcome::AlreadyDone => Err(Error::AlreadyConfirmed),
        StepOutcome::NotReady => Err(Error::Conflict(
            "nothing to confirm: accept the claim first (POST .../accept), then show the code",
        )),
        StepOutcome::Missing => Err(Error::NotFound("pairing")),
    }
}

const NOT_CLAIMED: &str = "nothing to accept or confirm: the slot has not been claimed yet";

/// The claim stored in `nas_id`'s live slot `id`, after checking that the message names this
/// slot and its NAS.
async fn owned_claim(
    deps: &Deps,
    nas_id: NasId,
    id: PairingId,
    named_slot: PairingId,
    named_nas: NasId,
) -> Result<PairClaim, Error> {
    let pairing = live_slot(deps, &id).await?;
    if pairing.slot.nas_id != nas_id {
        return Err(Error::NotOwner("this pairing slot belongs to another NAS"));
    }
    let claimed = pairing.claimed.ok_or(Error::Conflict(NOT_CLAIMED))?;
    if named_slot != id || named_nas != nas_id {
        return Err(Error::field(
            "pairing_id",
            "pairing_id and nas_id must name this slot and its NAS",
        ));
    }
    Ok(claimed.claim)
}

/// The device that claimed the slot waits up to `wait` for the NAS's acceptance.
pub async fn await_acceptance(
    deps: &Deps,
    device_id: DeviceId,
    id: PairingId,
    wait: Duration,
) -> Result<Option<PairingAcceptance>, Error> {
    await_nas_step(deps, device_id, id, wait, |pairing| pairing.acceptance).await
}

/// The device that claimed the slot waits up to `wait` for the NAS's confirmation.
pub async fn await_confirmation(
    deps: &Deps,
    device_id: DeviceId,
    id: PairingId,
    wait: Duration,
) -> Result<Option<PairingConfirmation>, Error> {
    await_nas_step(deps, device_id, id, wait, |pairing| pairing.confirmation).await
}

/// The claimant long-polls for what `step` picks out of the slot.
async fn await_nas_step<T>(
    deps: &Deps,
    device_id: DeviceId,
    id: PairingId,
    wait: Duration,
    step: fn(PairingState) -> Option<T>,
) -> Result<Option<T>, Error> {
    let first = live_slot(deps, &id).await?;
    let claimant = first
        .claimed
        .as_ref()
        .map(|claimed| claimed.claim.device_id);
    if claimant != Some(device_id) {
        return Err(Error::NotOwner(
            "only the device that claimed this slot may poll it",
        ));
    }
    let wait = wait.min(until_expiry(deps, &first));
    deps.long_poll(Topic::Pairing(id), wait, || async {
        Ok(step(live_slot(deps, &id).await?))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::testing::deps;
    use approvd_proto::ids::{Digest, PublicKey};
    use approvd_proto::pairing::SealedDeviceInfo;
    use approvd_proto::wire::{ClaimMac, SealedCodeSecret};
    use approvd_proto::{PairAccept, PairClaim, PairConfirm, SealKey};
    use ed25519_dalek::SigningKey;

    const NOW: u64 = 1_800_000_000;

    /// The QR code's secret of every slot here.
    fn secret() -> approvd_proto::pairing::PairingSecret {
        approvd_proto::pairing::PairingSecret([5; 32])
    }

    fn key() -> SigningKey {
        approvd_proto::generate_signing_key()
    }

    fn claim_request(id: PairingId, nas_id: NasId, device: &SigningKey) -> ClaimRequest {
        let verdict_key = key();
        let claim = PairClaim {
            pairing_id: id,
            nas_id,
            device_id: DeviceId(PublicKey::from(device)),
            sig_key: PublicKey::from(&verdict_key),
            seal_key: SealKey([9; 32]),
            device_info: SealedDeviceInfo([3; approvd_proto::pairing::SEALED_DEVICE_INFO]),
            claimed_at: NOW,
        };
        ClaimRequest {
            sig: claim.sign(&verdict_key),
            claim,
            claim_key: secret().relay_claim_key(),
            mac: ClaimMac([0; 32]),
            push: None,
        }
    }

    /// A 60 s slot of a new NAS, registered with [`secret`]'s claim verifier.
    async fn open_slot(deps: &Deps) -> (NasId, PairingId) {
        let nas_id = NasId(PublicKey::from(&key()));
        let id = PairingId::random();
        let slot = CreatePairingRequest {
            pairing_id: id,
            ttl_secs: 60,
            claim_verifier: secret().claim_verifier(),
        };
        create(deps, nas_id, &slot).await.expect("slot");
        (nas_id, id)
    }

    /// N-15: a claim without the QR code's `k_relay` is refused before anything is stored, so
    /// the phone that read the QR code still claims the slot (and raises no alarm).
    #[tokio::test]
    async fn a_claim_without_the_relay_claim_key_consumes_nothing() {
        let (deps, _) = deps(NOW);
        let (nas_id, id) = open_slot(&deps).await;
        let stranger = key();
        let mut garbage = claim_request(id, nas_id, &stranger);
        garbage.claim_key = approvd_proto::ids::ClaimKey([0; 32]);
        let stranger_id = DeviceId(PublicKey::from(&stranger));
        match super::claim(&deps, stranger_id, id, &garbage).await {
            Err(Error::NotOwner(reason)) => assert!(reason.contains("claim_key"), "{reason}"),
            other => panic!("expected the claim key refused, got {other:?}"),
        }
        let phone = key();
        let genuine = claim_request(id, nas_id, &phone);
        super::claim(&deps, DeviceId(PublicKey::from(&phone)), id, &genuine)
            .await
            .expect("the phone that read the QR code claims the slot");
    }

    #[tokio::test]
    async fn a_slot_is_claimed_once_confirmed_by_its_nas_and_seen_by_the_claimant() {
        let (deps, _) = deps(NOW);
        let nas_key = key();
        let nas_id = NasId(PublicKey::from(&nas_key));
        let id = PairingId::random();
        let slot = CreatePairingRequest {
            pairing_id: id,
            ttl_secs: 120,
            claim_verifier: secret().claim_verifier(),
        };
        assert_eq!(
            create(&deps, nas_id, &slot).await.expect("slot").expires_at,
            NOW + 120
        );
        assert!(matches!(
            create(&deps, nas_id, &slot).await,
            Err(Error::Conflict(_))
        ));

        let phone = key();
        let phone_id = DeviceId(PublicKey::from(&phone));
        let request = claim_request(id, nas_id, &phone);
        claim(&deps, phone_id, id, &request).await.expect("claimed");
        let intruder = key();
        let second = claim_request(id, nas_id, &intruder);
        assert!(matches!(
            claim(&deps, DeviceId(PublicKey::from(&intruder)), id, &second).await,
            Err(Error::AlreadyClaimed)
        ));
        let claimed = await_claim(&deps, nas_id, id, Duration::ZERO)
            .await
            .expect("poll")
            .expect("claimed");
        assert_eq!(claimed.claim, request.claim);

        let sealed = SealedCodeSecret([5; 80]);
        let confirm = PairConfirm {
            pairing_id: id,
            nas_id,
            device_id: phone_id,
            claim_hash: request.claim.hash(),
            code_secret_hash: Digest::of(&sealed.0),
            confirmed_at: NOW,
        };
        let right = PairingConfirmation {
            sig: confirm.sign(&nas_key),
            confirm: confirm.clone(),
            code_secret: sealed,
        };
        assert!(
            matches!(
                super::confirm(&deps, nas_id, id, &right).await,
                Err(Error::Conflict(_))
            ),
            "no confirmation before the NAS accepted the claim"
        );
        let mut accept = PairAccept {
            pairing_id: id,
            nas_id,
            device_id: phone_id,
            claim_hash: Digest([0; 32]),
            accepted_at: NOW,
        };
        let wrong = PairingAcceptance {
            sig: accept.sign(&nas_key),
            accept: accept.clone(),
        };
        match super::accept(&deps, nas_id, id, &wrong).await {
            Err(Error::InvalidField { field, .. }) => assert_eq!(field, "accept.claim_hash"),
            other => panic!("expected the claim hash refused, got {other:?}"),
        }
        accept.claim_hash = request.claim.hash();
        let acceptance = PairingAcceptance {
            sig: accept.sign(&nas_key),
            accept,
        };
        super::accept(&deps, nas_id, id, &acceptance)
            .await
            .expect("accepted");
        // The same acceptance re-sent (the NAS retrying) succeeds again; any other is refused.
        super::accept(&deps, nas_id, id, &acceptance)
            .await
            .expect("the same acceptance again");
        let mut later = acceptance.accept.clone();
        later.accepted_at += 1;
        let other = PairingAcceptance {
            sig: later.sign(&nas_key),
            accept: later,
        };
        assert!(matches!(
            super::accept(&deps, nas_id, id, &other).await,
            Err(Error::Conflict(_))
        ));
        assert_eq!(
            await_acceptance(&deps, phone_id, id, Duration::ZERO)
                .await
                .expect("poll"),
            Some(acceptance)
        );
        let tampered = PairingConfirmation {
            code_secret: SealedCodeSecret([6; 80]),
            ..right.clone()
        };
        match super::confirm(&deps, nas_id, id, &tampered).await {
            Err(Error::InvalidField { field, .. }) => {
                assert_eq!(field, "confirm.code_secret_hash")
            }
            other => panic!("expected the sealed secret's hash refused, got {other:?}"),
        }
        super::confirm(&deps, nas_id, id, &right)
            .await
            .expect("confirmed");
        assert_eq!(
            await_confirmation(&deps, phone_id, id, Duration::ZERO)
                .await
                .expect("poll"),
            Some(right)
        );
        assert!(matches!(
            await_confirmation(
                &deps,
                DeviceId(PublicKey::from(&intruder)),
                id,
                Duration::ZERO
            )
            .await,
            Err(Error::NotOwner(_))
        ));
    }

    #[tokio::test]
    async fn a_claim_with_a_bad_signature_or_for_another_nas_is_refused() {
        let (deps, _) = deps(NOW);
        let (nas_id, id) = open_slot(&deps).await;
        let phone = key();
        let phone_id = DeviceId(PublicKey::from(&phone));
        let mut forged = claim_request(id, nas_id, &phone);
        forged.claim.device_info.0[0] ^= 1;
        match claim(&deps, phone_id, id, &forged).await {
            Err(Error::InvalidSignature { field, detail }) => {
                assert_eq!(field, "sig");
                assert!(detail.starts_with("the pair-claim signature"), "{detail}");
            }
            other => panic!("expected a bad signature, got {other:?}"),
        }
        let other_nas = NasId(PublicKey::from(&key()));
        let misdirected = claim_request(id, other_nas, &phone);
        assert!(matches!(
            claim(&deps, phone_id, id, &misdirected).await,
            Err(Error::InvalidField { .. })
        ));
        assert!(matches!(
            await_claim(&deps, other_nas, id, Duration::ZERO).await,
            Err(Error::NotOwner(_))
        ));
    }

    #[tokio::test]
    async fn an_expired_slot_says_so() {
        let (deps, clock) = deps(NOW);
        let nas_id = NasId(PublicKey::from(&key()));
        let id = PairingId::random();
        let slot = CreatePairingRequest {
            pairing_id: id,
            ttl_secs: 30,
            claim_verifier: secret().claim_verifier(),
        };
        create(&deps, nas_id, &slot).await.expect("slot");
        clock.advance_secs(31);
        assert!(matches!(
            await_claim(&deps, nas_id, id, Duration::ZERO).await,
            Err(Error::PairingExpired)
        ));
        let phone = key();
        let request = claim_request(id, nas_id, &phone);
        assert!(matches!(
            claim(&deps, DeviceId(PublicKey::from(&phone)), id, &request).await,
            Err(Error::PairingExpired)
        ));
    }
}
