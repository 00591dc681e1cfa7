//! Security properties, tested against a real relay: stolen or forged handles are refused,
//! forged and tampered verdicts are refused by the relay *and* by the NAS (which trusts only its
//! own records), swapped pairing keys are caught by the MAC, push bombing is limited, and the
//! phone's mute / unpair / refresh reach the NAS signed.

use std::time::Duration;

use approvd_client::transport::unix_now;
use approvd_client::{ClientError, Outcome};
use approvd_proto::wire::{
    ChallengeCreated, Delivery, Notice, PairingClaimed, PushHandle, SignedVerdict,
};
use approvd_proto::{Decision, Digest, PublicKey, SignedMessage as _, Verdict};
use approvd_tests::{context, pair, push_registration, request_one, RelayProcess};

const WAIT: Duration = Duration::from_secs(10);
const MINUTE: Duration = Duration::from_secs(60);

fn problem(result: Result<impl std::fmt::Debug, ClientError>) -> String {
    match result {
        Ok(value) => panic!("expected a problem, got {value:?}"),
        Err(error) => error.problem_name().unwrap_or("not a problem").to_owned(),
    }
}

#[tokio::test]
async fn a_handle_stolen_from_one_nas_is_useless_to_another() {
    let relay = RelayProcess::start(&[]);
    let victim_nas = relay.nas();
    let thief_nas = relay.nas();
    let (_phone, device) = pair(&victim_nas, "victim", Some(push_registration())).await;
    // The thief targets the victim's device with the victim's handle: refused.
    let result = thief_nas
        .request_approval(
            std::slice::from_ref(&device),
            &context("mallory"),
            false,
            MINUTE,
        )
        .await;
    assert_eq!(problem(result), "handle-mismatch");
    // A handle of one device presented for another device of the same NAS: refused.
    let (_other_phone, other_device) = pair(&victim_nas, "other", None).await;
    let swapped = approvd_client::PairedDevice {
        push_handle: other_device.push_handle.clone(),
        ..device.clone()
    };
    let result = victim_nas
        .request_approval(&[swapped], &context("alice"), false, MINUTE)
        .await;
    assert_eq!(problem(result), "handle-mismatch");
    // Bytes that no relay key opens: refused.
    let forged = approvd_client::PairedDevice {
        push_handle: PushHandle(vec![1; 120]),
        ..device
    };
    let result = victim_nas
        .request_approval(&[forged], &context("alice"), false, MINUTE)
        .await;
    assert_eq!(problem(result), "handle-mismatch");
}

#[tokio::test]
async fn a_challenge_not_signed_by_the_caller_is_refused() {
    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let (_phone, device) = pair(&nas, "phone", None).await;
    let (mut request, _) = nas
        .build_challenge(std::slice::from_ref(&device), &context("a"), false, MINUTE)
        .expect("build");
    request.targets[0].sig.0[0] ^= 1;
    let result = nas
        .client()
        .call::<_, ChallengeCreated>("POST", "/v1/challenges", "", Some(&request))
        .await;
    assert_eq!(problem(result), "invalid-signature");
}

#[tokio::test]
async fn forged_and_tampered_verdicts_are_refused_by_relay_and_nas() {
    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let (phone, device) = pair(&nas, "phone", None).await;
    let (bystander, bystander_device) = pair(&nas, "bystander", None).await;
    let devices = [device.clone(), bystander_device.clone()];
    let sent = nas
        .request_approval(
            std::slice::from_ref(&device),
            &context("alice"),
            true,
            MINUTE,
        )
        .await
        .expect("challenge");
    let received = phone.inbox(WAIT).await.expect("inbox").remove(0);
    let number = sent.number.clone().expect("number");
    let genuine = phone.answer(&received, Decision::Approve, Some(&number));

    // Signed by the wrong key (the API key instead of D_sig).
    let forged = SignedVerdict {
        sig: genuine.verdict.sign(phone.api_key()),
        verdict: genuine.verdict.clone(),
    };
    assert_eq!(problem(phone.submit(&forged).await), "invalid-signature");
    // Tampered after signing: approve turned into deny.
    let tampered = SignedVerdict {
        verdict: Verdict {
            decision: Decision::Deny,
            ..genuine.verdict.clone()
        },
        sig: genuine.sig,
    };
    assert_eq!(problem(phone.submit(&tampered).await), "invalid-signature");
    // Answering another challenge (hash of something else), correctly signed.
    let mut other = genuine.verdict.clone();
    other.challenge_hash = Digest([0; 32]);
    let other = SignedVerdict {
        sig: other.sign(phone.sig_key()),
        verdict: other,
    };
    assert_eq!(problem(phone.submit(&other).await), "invalid-field");
    // A paired but untargeted device.
    let mut untargeted = genuine.verdict.clone();
    untargeted.device_id = bystander.device_id();
    let untargeted = SignedVerdict {
        sig: untargeted.sign(bystander.sig_key()),
        verdict: untargeted,
    };
    assert_eq!(problem(bystander.submit(&untargeted).await), "not-targeted");
    // A device submitting a verdict in another device's name.
    assert_eq!(problem(bystander.submit(&genuine).await), "not-owner");

    // The NAS trusts only its own records: a malicious relay handing over any of these gets
    // `Invalid`, never `Approved`.
    let now = unix_now();
    for (what, verdict) in [
        ("forged", &forged),
        ("tampered", &tampered),
        ("other challenge", &other),
    ] {
        assert!(
            matches!(
                nas.judge(&sent, &devices, verdict, now),
                Outcome::Invalid { .. }
            ),
            "{what}"
        );
    }
    let relay_made = {
        let relay_key = approvd_proto::generate_signing_key();
        let verdict = genuine.verdict.clone();
        SignedVerdict {
            sig: verdict.sign(&relay_key),
            verdict,
        }
    };
    assert!(
        matches!(
            nas.judge(&sent, &devices, &relay_made, now),
            Outcome::Invalid { .. }
        ),
        "relay-signed"
    );
    // An approval with another number (or none) is a deny that counts toward the lockout, never
    // an approval.
    let wrong_number = phone.answer(&received, Decision::Approve, Some("000"));
    assert_eq!(
        nas.judge(&sent, &devices, &wrong_number, now),
        Outcome::WrongNumber {
            device_id: device.device_id
        },
        "wrong number"
    );
    let no_number = phone.answer(&received, Decision::Approve, None);
    assert_eq!(
        nas.judge(&sent, &devices, &no_number, now),
        Outcome::WrongNumber {
            device_id: device.device_id
        },
        "no number"
    );
    assert!(
        matches!(
            nas.judge(&sent, &[bystander_device], &genuine, now),
            Outcome::Invalid { .. }
        ),
        "unknown device"
    );

    // The genuine verdict still works after all that.
    phone.submit(&genuine).await.expect("genuine verdict");
    let outcome = nas
        .wait_for_verdict(&sent, &devices, WAIT)
        .await
        .expect("poll");
    assert_eq!(
        outcome,
        Some(Outcome::Approved {
            device_id: device.device_id
        })
    );
    // And a replay of it is refused: the first answer won.
    assert_eq!(problem(phone.submit(&genuine).await), "already-decided");
}

#[tokio::test]
async fn swapped_pairing_keys_are_caught() {
    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let uri = nas
        .start_pairing("nas", "alice", MINUTE)
        .await
        .expect("slot");
    let _phone = approvd_client::Phone::enroll(&uri, "phone", "ios", None)
        .await
        .expect("enroll");
    let verified = nas
        .wait_for_claim(&uri, WAIT)
        .await
        .expect("poll")
        .expect("claim");
    // A relay that swaps in its own verdict key (and signs the claim with it) cannot fix the MAC.
    let attacker = approvd_proto::generate_signing_key();
    let mut swapped: PairingClaimed = verified.claimed.clone();
    swapped.claim.sig_key = PublicKey::from(&attacker);
    swapped.sig = swapped.claim.sign(&attacker);
    let error = nas
        .verify_claim(&uri, &swapped, unix_now())
        .expect_err("refused");
    assert!(error.to_string().contains("MAC"), "{error}");
    let mut swapped_seal = verified.claimed.clone();
    swapped_seal.claim.seal_key = approvd_proto::SealKey([7; 32]);
    assert!(nas.verify_claim(&uri, &swapped_seal, unix_now()).is_err());

    // The relay itself refuses a claim whose signature is not by claim.sig_key, and a second claim.
    let uri = nas
        .start_pairing("nas", "alice", MINUTE)
        .await
        .expect("slot");
    let phone = approvd_client::Phone::enroll(&uri, "first", "ios", None)
        .await
        .expect("first claim");
    let second = approvd_client::Phone::enroll(&uri, "second", "ios", None).await;
    assert!(
        matches!(second, Err(approvd_client::ClientError::Alarm(_))),
        "a phone that finds its QR code claimed already raises the alarm: {second:?}"
    );
    // Another NAS may not poll or confirm the slot; another device may not poll the confirmation.
    let other_nas = relay.nas();
    assert_eq!(
        problem(other_nas.wait_for_claim(&uri, Duration::ZERO).await),
        "not-owner"
    );
    let stranger = {
        let stranger_uri = nas
            .start_pairing("nas", "alice", MINUTE)
            .await
            .expect("slot");
        approvd_client::Phone::enroll(&stranger_uri, "stranger", "ios", None)
            .await
            .expect("enroll")
    };
    let path = format!("/v1/pairings/{}/confirmation", uri.pairing_id);
    let result = stranger
        .client()
        .call::<(), serde_json::Value>("GET", &path, "", None)
        .await;
    assert_eq!(problem(result), "not-owner");
    drop(phone);
}

#[tokio::test]
async fn an_expired_pairing_slot_cannot_be_claimed() {
    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let uri = nas
        .start_pairing("nas", "alice", Duration::from_secs(1))
        .await
        .expect("slot");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut still_valid_locally = uri.clone();
    still_valid_locally.expires_at = unix_now() + 60;
    let result = approvd_client::Phone::enroll(&still_valid_locally, "late", "ios", None).await;
    assert_eq!(problem(result.map(|_| ())), "pairing-expired");
}

#[tokio::test]
async fn push_bombing_is_rate_limited_per_device() {
    let relay = RelayProcess::start(&["--rate-challenges-per-device", "3"]);
    let nas = relay.nas();
    let (_phone, device) = pair(&nas, "victim", Some(push_registration())).await;
    for _ in 0..3 {
        let sent = nas
            .request_approval(std::slice::from_ref(&device), &context("x"), false, MINUTE)
            .await
            .expect("allowed");
        assert_eq!(sent.report.deliveries[0].delivery, Delivery::Logged);
    }
    let error = nas
        .request_approval(std::slice::from_ref(&device), &context("x"), false, MINUTE)
        .await
        .expect_err("limited");
    assert_eq!(error.problem_name(), Some("rate-limited"));
    // With a fresh device in the same request, only the exhausted one is reported limited.
    let (_other, fresh) = pair(&nas, "fresh", None).await;
    let sent = nas
        .request_approval(&[device.clone(), fresh], &context("x"), false, MINUTE)
        .await
        .expect("partly allowed");
    let deliveries = approvd_tests::deliveries(&sent);
    assert_eq!(deliveries, vec![Delivery::RateLimited, Delivery::InboxOnly]);
    // The limit holds over HTTP with Retry-After.
    let (request, _) = nas
        .build_challenge(std::slice::from_ref(&device), &context("x"), false, MINUTE)
        .expect("build");
    let client = nas.client();
    let response = client
        .send(client.prepare(
            "POST",
            "/v1/challenges",
            "",
            Some(serde_json::to_vec(&request).expect("json")),
        ))
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 429);
    assert!(response.headers().get("retry-after").is_some());
}

#[tokio::test]
async fn mute_unpair_and_push_refresh_reach_the_nas_signed() {
    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let (mut phone, device) = pair(&nas, "phone", Some(push_registration())).await;
    let client = nas.client();

    phone.mute(unix_now() + 600).await.expect("mute");
    let sent = request_one(&nas, &device, "m").await;
    assert_eq!(
        sent.report.deliveries[0].delivery,
        Delivery::Muted,
        "no push, but…"
    );
    assert_eq!(
        phone.inbox(WAIT).await.expect("inbox").len(),
        1,
        "…still in the inbox"
    );

    phone.refresh_push(None).await.expect("refresh");
    phone.unpair().await.expect("unpair");
    assert!(
        phone.inbox(Duration::ZERO).await.expect("inbox").is_empty(),
        "unpair drops pending entries"
    );

    let mailbox: approvd_proto::wire::Mailbox = client
        .call::<(), _>("GET", "/v1/mailbox", "wait=5", None)
        .await
        .expect("mailbox")
        .expect("entries");
    let kinds: Vec<&Notice> = mailbox.entries.iter().map(|entry| &entry.notice).collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    match kinds[0] {
        Notice::Muted { mute, sig } => mute
            .verify(&device.sig_key, sig)
            .expect("mute signed by D_sig"),
        other => panic!("{other:?}"),
    }
    match kinds[1] {
        Notice::HandleRefreshed {
            device_id,
            push_handle,
        } => {
            assert_eq!(*device_id, device.device_id);
            assert_eq!(push_handle, phone.push_handle());
        }
        other => panic!("{other:?}"),
    }
    match kinds[2] {
        Notice::Unpaired { unpair, sig } => unpair
            .verify(&device.sig_key, sig)
            .expect("unpair signed by D_sig"),
        other => panic!("{other:?}"),
    }
    let ids: Vec<String> = mailbox
        .entries
        .iter()
        .map(|entry| entry.id.clone())
        .collect();
    client
        .call::<_, ()>(
            "POST",
            "/v1/mailbox/ack",
            "",
            Some(&approvd_proto::wire::MailboxAck { ids }),
        )
        .await
        .expect("ack");
    assert!(client
        .call::<(), approvd_proto::wire::Mailbox>("GET", "/v1/mailbox", "", None)
        .await
        .expect("mailbox")
        .is_none());

    // A stranger's key cannot write into this NAS's mailbox: it has no handle of this pairing.
    let stranger =
        approvd_client::RelayClient::new(&relay.url, approvd_proto::generate_signing_key())
            .expect("client");
    let request = approvd_proto::wire::RefreshPushRequest {
        push_handle: device.push_handle.clone(),
        push: None,
    };
    let result = stranger
        .call::<_, serde_json::Value>("POST", "/v1/devices/push", "", Some(&request))
        .await;
    assert_eq!(problem(result), "handle-mismatch");
}
