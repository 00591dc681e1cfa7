//! Attacks that take a malicious relay more than one rewrite: a dropped deny with the challenge
//! re-delivered 50 times, a challenge hidden while its number is typed into another, a wrong
//! number stored first, a handle swapped through a mailbox notice, a claim made with the QR
//! code's secret (as many as a grinding relay likes), a claim with a small-order seal key, a
//! verdict signed with the request key, and a request replayed to another replica.

use std::time::Duration;

use approvd_client::transport::unix_now;
use approvd_client::{ClientError, MailboxEvent, Nas, Outcome, Phone, RelayClient};
use approvd_proto::context::SealSecret;
use approvd_proto::ids::{PublicKey, SealKey};
use approvd_proto::pairing::{self, DeviceInfo, PairingUri};
use approvd_proto::signed::{Decision, PairClaim, Verdict};
use approvd_proto::wire::{ClaimMac, PairingClaimed, SignedVerdict};
use approvd_proto::{DeviceId, SignedMessage as _};
use approvd_tests::{login, only_request};

use super::proxy::MaliciousRelay;
use super::{
    ask, judged_when_served, malicious_relay, nas_behind, paired, recorded, ACCEPTANCE, CLAIM,
    INBOX, MAILBOX, MINUTE, VERDICT, WAIT,
};

const ACCEPT: &str = "POST /v1/pairings/{pairing_id}/accept";

#[tokio::test]
async fn a_dropped_deny_redelivered_and_repushed_50_times_prompts_once() {
    let (_relay, proxy) = malicious_relay().await;
    let nas = nas_behind(&proxy, &approvd_proto::generate_signing_key());
    let (phone, device) = paired(&nas, "alice", "phone").await;
    let sent = ask(&nas, std::slice::from_ref(&device), "alice").await;
    let received = only_request(&phone, WAIT).await;
    let inbox = recorded(&proxy, INBOX);
    phone
        .submit(&phone.answer(&received, Decision::Deny, None))
        .await
        .expect("deny");
    // The relay hides the deny from the NAS…
    proxy.answer_once(VERDICT, 204, Vec::new());
    assert_eq!(
        nas.wait_for_verdict(&sent, std::slice::from_ref(&device), Duration::ZERO)
            .await
            .expect("poll"),
        None
    );
    // …and pushes the same challenge again and again: the phone fetches and never shows it.
    let mut prompts = 1;
    for _ in 0..50 {
        proxy.answer_json_once(INBOX, &inbox);
        prompts += phone.inbox(Duration::ZERO).await.expect("inbox").len();
    }
    assert_eq!(prompts, 1, "an answered challenge was shown again");
}

#[tokio::test]
async fn a_hidden_challenge_s_number_typed_into_another_is_a_wrong_number() {
    let (_relay, proxy) = malicious_relay().await;
    let nas = nas_behind(&proxy, &approvd_proto::generate_signing_key());
    let (phone, device) = paired(&nas, "alice", "phone").await;
    let devices = std::slice::from_ref(&device);
    // The attacker's sign-in A, then the user's own sign-in B with its number on the page.
    let a = ask(&nas, devices, "alice").await;
    let shown_a = only_request(&phone, WAIT).await;
    let inbox_with_a_only = recorded(&proxy, INBOX);
    let b = ask(&nas, devices, "alice").await;
    assert_ne!(a.number, b.number, "numbers are distinct per account");
    // The relay hides B and shows A; the user types B's number into A.
    proxy.answer_json_once(INBOX, &inbox_with_a_only);
    let shown = phone.inbox(Duration::ZERO).await.expect("inbox");
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].entry.cid, shown_a.entry.cid);
    let typed_b_into_a = phone.answer(&shown[0], Decision::Approve, b.number.as_deref());
    phone.submit(&typed_b_into_a).await.expect("submit");
    assert_eq!(
        nas.wait_for_verdict(&a, devices, WAIT).await.expect("poll"),
        Some(Outcome::WrongNumber {
            device_id: device.device_id
        })
    );
    assert_eq!(
        nas.wait_for_verdict(&b, devices, Duration::ZERO)
            .await
            .expect("poll"),
        None,
        "B stays pending"
    );
}

#[tokio::test]
async fn a_wrong_number_approve_stored_first_decides_and_the_right_one_after_is_refused() {
    let (_relay, proxy) = malicious_relay().await;
    let nas = nas_behind(&proxy, &approvd_proto::generate_signing_key());
    let (phone, device) = paired(&nas, "alice", "phone").await;
    let (tablet, tablet_device) = paired(&nas, "alice", "tablet").await;
    let devices = [device.clone(), tablet_device.clone()];
    let sent = ask(&nas, &devices, "alice").await;
    let on_phone = only_request(&phone, WAIT).await;
    let on_tablet = only_request(&tablet, WAIT).await;
    let wrong = phone.answer(&on_phone, Decision::Approve, Some("000"));
    let right = tablet.answer(&on_tablet, Decision::Approve, sent.number.as_deref());
    phone
        .submit(&wrong)
        .await
        .expect("the first answer is stored");
    assert_eq!(
        nas.wait_for_verdict(&sent, &devices, WAIT)
            .await
            .expect("poll"),
        Some(Outcome::WrongNumber {
            device_id: device.device_id
        })
    );
    // The relay now hands over the right number's approval: the NAS decided already.
    assert!(matches!(
        judged_when_served(&nas, &proxy, &sent, &devices, &right).await,
        Some(Outcome::Invalid { .. })
    ));
}

#[tokio::test]
async fn a_handle_refreshed_notice_cannot_bring_in_the_relay_s_own_signing_key() {
    let (_relay, proxy) = malicious_relay().await;
    let nas = nas_behind(&proxy, &approvd_proto::generate_signing_key());
    let (mut phone, mut device) = paired(&nas, "alice", "phone").await;
    // The relay pairs a phone of its own and moves its handle onto alice's device.
    let (attacker, attacker_device) = paired(&nas, "mallory", "attacker").await;
    phone
        .refresh_push(Some(approvd_tests::push_registration()))
        .await
        .expect("refresh");
    let handle = attacker_device.push_handle.clone();
    proxy.once(MAILBOX, move |exchange| {
        let mut mailbox = exchange.json();
        mailbox["entries"][0]["notice"]["push_handle"] = serde_json::json!(handle);
        exchange.body = serde_json::to_vec(&mailbox).expect("json");
        true
    });
    let events = nas
        .drain_mailbox(std::slice::from_ref(&device), WAIT)
        .await
        .expect("mailbox");
    let [MailboxEvent::HandleRefreshed { push_handle, .. }] = events.as_slice() else {
        panic!("{events:?}");
    };
    // The NAS takes the handle (it is the relay's to mint; at worst pushes go astray), and the
    // malicious relay accepts the challenge (the honest one refuses a handle of another device).
    device.push_handle = push_handle.clone();
    let devices = std::slice::from_ref(&device);
    let (_, sent) = nas
        .build_challenge(devices, &login("alice"), true, MINUTE)
        .expect("challenge");
    // …but a verdict signed with the attacker's key, for alice's device, does not verify.
    let forged = Verdict {
        cid: sent.cid,
        nas_id: nas.nas_id(),
        device_id: device.device_id,
        challenge_hash: sent.challenge_hashes[0].1,
        decision: Decision::Approve,
        number: sent.number.clone(),
        user_verified: true,
        decided_at: unix_now(),
    };
    for signed in [
        SignedVerdict {
            sig: forged.sign(attacker.sig_key()),
            verdict: forged.clone(),
        },
        SignedVerdict {
            sig: forged.sign(attacker.api_key()),
            verdict: forged.clone(),
        },
    ] {
        assert!(matches!(
            judged_when_served(&nas, &proxy, &sent, devices, &signed).await,
            Some(Outcome::Invalid { .. })
        ));
    }
}

#[tokio::test]
async fn a_verdict_signed_with_the_request_key_is_refused_by_relay_and_nas() {
    let (_relay, proxy) = malicious_relay().await;
    let nas = nas_behind(&proxy, &approvd_proto::generate_signing_key());
    let (phone, device) = paired(&nas, "alice", "phone").await;
    let devices = std::slice::from_ref(&device);
    let sent = ask(&nas, devices, "alice").await;
    let received = only_request(&phone, WAIT).await;
    let genuine = phone.answer(&received, Decision::Approve, sent.number.as_deref());
    let by_api_key = SignedVerdict {
        sig: genuine.verdict.sign(phone.api_key()),
        verdict: genuine.verdict.clone(),
    };
    let refused = phone.submit(&by_api_key).await;
    assert_eq!(
        refused.as_ref().err().and_then(ClientError::problem_name),
        Some("invalid-signature"),
        "{refused:?}"
    );
    assert!(matches!(
        judged_when_served(&nas, &proxy, &sent, devices, &by_api_key).await,
        Some(Outcome::Invalid { .. })
    ));
}

/// A claim for the slot of `uri` with fresh keys, made by whoever holds the QR code's secret
/// (as the relay does when it saw the QR code), sealing to `seal_key`.
fn claim_with_the_qr_secret(
    uri: &PairingUri,
    seal_key: SealKey,
    handle: &serde_json::Value,
) -> serde_json::Value {
    let api = approvd_proto::generate_signing_key();
    let sig = approvd_proto::generate_signing_key();
    let device_id = DeviceId(PublicKey::from(&api));
    let info = DeviceInfo {
        name: "iPhone".to_owned(),
        platform: "ios".to_owned(),
    };
    let claim = PairClaim {
        pairing_id: uri.pairing_id,
        nas_id: uri.nas_id,
        device_id,
        sig_key: PublicKey::from(&sig),
        seal_key,
        device_info: pairing::seal_device_info(&uri.secret, &uri.pairing_id, &device_id, &info)
            .expect("seal"),
        claimed_at: unix_now(),
    };
    let claimed = PairingClaimed {
        mac: ClaimMac(pairing::claim_mac(&uri.secret, &claim)),
        sig: claim.sign(&sig),
        claim,
        push_handle: serde_json::from_value(handle.clone()).expect("handle"),
    };
    serde_json::to_value(claimed).expect("json")
}

/// A new pairing slot the user's phone claims, with the relay set to hand the NAS, in place of
/// that claim, one of its own made with the QR secret and sealing to `seal_key`.
async fn slot_with_a_claim_of_the_relay(
    nas: &Nas,
    proxy: &MaliciousRelay,
    seal_key: SealKey,
) -> (PairingUri, Phone) {
    let uri = nas
        .start_pairing("nas", "alice", MINUTE)
        .await
        .expect("slot");
    let phone = Phone::enroll(&uri, "phone", "ios", None)
        .await
        .expect("enroll");
    let slot = uri.clone();
    proxy.once(CLAIM, move |exchange| {
        let genuine = exchange.json();
        let ours = claim_with_the_qr_secret(&slot, seal_key, &genuine["push_handle"]);
        exchange.body = serde_json::to_vec(&ours).expect("json");
        true
    });
    (uri, phone)
}

#[tokio::test]
async fn a_relay_holding_the_qr_secret_grinds_claims_but_the_phone_never_shows_a_code() {
    let (_relay, proxy) = malicious_relay().await;
    let nas = nas_behind(&proxy, &approvd_proto::generate_signing_key());
    // Each attempt: the relay swaps the phone's claim for one of its own, made with the QR
    // code's secret. The NAS cannot tell (the MAC verifies) and commits to it; the phone sees
    // an acceptance of another claim and raises the alarm instead of showing a code. So however
    // many claims it grinds for a code equal to the phone's, there is no code to match.
    for attempt in 0..20 {
        let (uri, phone) =
            slot_with_a_claim_of_the_relay(&nas, &proxy, SealSecret::generate().public_key()).await;
        // The honest relay refuses an acceptance of a claim it did not store; this one takes it.
        proxy.answer_once(ACCEPT, 204, Vec::new());
        let verified = nas
            .wait_for_claim(&uri, WAIT)
            .await
            .expect("poll")
            .expect("the NAS cannot tell a claim made with its own QR code");
        assert_ne!(verified.claimed.claim.device_id, phone.device_id());
        // It hands the phone the NAS's acceptance — of the claim the NAS was shown.
        let acceptance = proxy.seen(ACCEPT).pop().expect("accepted").request;
        proxy.answer_once(ACCEPTANCE, 200, acceptance);
        // (The honest relay holds nothing for the phone: ask without waiting.)
        let shown = phone.wait_for_acceptance(Duration::ZERO).await;
        assert!(
            matches!(shown, Err(ClientError::Alarm(_))),
            "attempt {attempt}: {shown:?}"
        );
    }
}

/// N-6 (issue 27): the relay lets the NAS accept the phone's claim, answers that accept 503,
/// and when the integrator retries, offers a claim of its own (ground to show the same code).
/// The NAS SDK signs one acceptance per slot whatever the relay answers: the retry is refused
/// and no second `pair-accept` is ever sent. A retry that is shown the same claim again gets
/// the same acceptance (so a genuine relay hiccup heals).
#[tokio::test]
async fn a_relay_that_fails_the_first_accept_never_gets_a_second_for_its_own_claim() {
    let (_relay, proxy) = malicious_relay().await;
    let nas = nas_behind(&proxy, &approvd_proto::generate_signing_key());
    let unavailable =
        br#"{"type":"urn:approvd:problem:unavailable","title":"Service unavailable","status":503}"#;

    // A hiccup: the first accept is answered 503, the retry sees the same claim.
    let uri = nas
        .start_pairing("nas", "alice", MINUTE)
        .await
        .expect("slot");
    let phone = Phone::enroll(&uri, "phone", "ios", None)
        .await
        .expect("enroll");
    proxy.answer_once(ACCEPT, 503, unavailable.to_vec());
    assert!(
        nas.wait_for_claim(&uri, WAIT).await.is_err(),
        "the 503 reaches the caller"
    );
    let verified = nas
        .wait_for_claim(&uri, WAIT)
        .await
        .expect("retry")
        .expect("the same claim");
    let accepts = proxy.seen(ACCEPT);
    assert_eq!(accepts.len(), 2);
    assert_eq!(
        accepts[0].request, accepts[1].request,
        "the same signed acceptance, re-sent"
    );
    let code = phone
        .wait_for_acceptance(WAIT)
        .await
        .expect("acceptance")
        .expect("shown");
    assert!(verified.code_matches(&code));

    // The attack: after the failed accept the relay serves a claim made with the QR secret.
    let uri = nas
        .start_pairing("nas", "alice", MINUTE)
        .await
        .expect("slot");
    let _phone = Phone::enroll(&uri, "phone", "ios", None)
        .await
        .expect("enroll");
    proxy.answer_once(ACCEPT, 503, unavailable.to_vec());
    assert!(nas.wait_for_claim(&uri, WAIT).await.is_err());
    let before = proxy.seen(ACCEPT).len();
    let slot = uri.clone();
    proxy.once(CLAIM, move |exchange| {
        let genuine = exchange.json();
        let ground = claim_with_the_qr_secret(
            &slot,
            SealSecret::generate().public_key(),
            &genuine["push_handle"],
        );
        exchange.body = serde_json::to_vec(&ground).expect("json");
        true
    });
    proxy.answer_once(ACCEPT, 204, Vec::new());
    let refused = nas.wait_for_claim(&uri, WAIT).await;
    match refused {
        Err(ClientError::Verification(reason)) => {
            assert!(reason.contains("second claim"), "{reason}");
        }
        other => panic!("a second claim for an accepted slot: {other:?}"),
    }
    assert_eq!(
        proxy.seen(ACCEPT).len(),
        before,
        "no second pair-accept was signed and sent"
    );
    proxy.disarm();
}

#[tokio::test]
async fn a_claim_with_an_all_zero_or_small_order_seal_key_never_pairs() {
    let (_relay, proxy) = malicious_relay().await;
    let nas = nas_behind(&proxy, &approvd_proto::generate_signing_key());
    for point in [[0u8; 32], {
        let mut one = [0u8; 32];
        one[0] = 1;
        one
    }] {
        let (uri, _phone) = slot_with_a_claim_of_the_relay(&nas, &proxy, SealKey(point)).await;
        let refused = match nas.wait_for_claim(&uri, WAIT).await {
            Err(error) => error.to_string(),
            Ok(None) => panic!("no claim"),
            // Refused at the latest when the NAS seals the offline-code secret to it.
            // (The relay knows the QR secret, so it knows the code its own claim shows.)
            Ok(Some(verified)) => nas
                .confirm(
                    &verified,
                    &pairing::sas(&uri.secret, &verified.claimed.claim),
                )
                .await
                .expect_err("sealed to a small-order key")
                .to_string(),
        };
        assert!(!refused.is_empty());
    }
}

#[tokio::test]
async fn a_request_replayed_to_another_replica_is_refused() {
    let redis = approvd_tests::redis::RedisServer::start();
    let dir = approvd_tests::TempDir::new("replay-replica");
    let keys = approvd_tests::shared_handle_keys(&dir);
    let url = redis.url();
    let args = [
        "--store",
        "redis",
        "--redis-url",
        &url,
        "--handle-key-file",
        &keys,
    ];
    let (a, b) = (
        approvd_tests::RelayProcess::start(&args),
        approvd_tests::RelayProcess::start(&args),
    );
    let key = approvd_proto::generate_signing_key();
    let body = serde_json::to_vec(&approvd_proto::wire::CreatePairingRequest {
        pairing_id: approvd_proto::PairingId::random(),
        ttl_secs: 60,
        claim_verifier: approvd_proto::Digest([0; 32]),
    })
    .expect("json");
    let to_a = RelayClient::new(&a.url, key.clone()).expect("client");
    let to_b = RelayClient::new(&b.url, key).expect("client");
    let prepared = to_a.prepare("POST", "/v1/pairings", "", Some(body));
    let first = to_a.send(prepared.clone()).await.expect("sent");
    assert_eq!(first.status().as_u16(), 201);
    let replayed = approvd_client::transport::decode::<serde_json::Value>(
        to_b.send(prepared).await.expect("sent"),
    )
    .await;
    assert_eq!(
        replayed.as_ref().err().and_then(ClientError::problem_name),
        Some("replayed-nonce"),
        "{replayed:?}"
    );
}

#[tokio::test]
async fn a_verdict_replayed_after_expiry_or_twice_for_one_challenge_decides_nothing_more() {
    let (_relay, proxy) = malicious_relay().await;
    let nas = nas_behind(&proxy, &approvd_proto::generate_signing_key());
    let (phone, device) = paired(&nas, "alice", "phone").await;
    let devices = std::slice::from_ref(&device);
    let sent = ask(&nas, devices, "alice").await;
    let received = only_request(&phone, WAIT).await;
    let approve = phone.answer(&received, Decision::Approve, sent.number.as_deref());
    // Held back until the challenge is over, the genuine approval is only `expired`.
    assert_eq!(
        nas.judge(&sent, devices, &approve, sent.expires + 6),
        Outcome::Expired
    );
    phone.submit(&approve).await.expect("submit");
    assert_eq!(
        nas.wait_for_verdict(&sent, devices, WAIT)
            .await
            .expect("poll"),
        Some(Outcome::Approved {
            device_id: device.device_id
        })
    );
    // Served a second time, it is refused: one verdict per challenge.
    assert!(matches!(
        judged_when_served(&nas, &proxy, &sent, devices, &approve).await,
        Some(Outcome::Invalid { .. })
    ));
}
