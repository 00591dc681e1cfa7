//! The SDK's own duties against a real relay: applying mailbox notices, judging late verdicts
//! expired, refusing a claim whose MAC fails, and the phone refusing inbox entries that are not
//! signed by the pinned NAS key.

use std::time::Duration;

use approvd_client::transport::unix_now;
use approvd_client::{MailboxEvent, Outcome, Phone};
use approvd_proto::wire::SignedVerdict;
use approvd_proto::{Decision, SignedMessage as _};
use approvd_tests::{pair, push_registration, request_one, RelayProcess};

const WAIT: Duration = Duration::from_secs(10);
const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_refreshed_handle_reaches_the_nas_and_is_used() {
    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let (mut phone, mut device) = pair(&nas, "phone", None).await;
    phone
        .refresh_push(Some(push_registration()))
        .await
        .expect("refresh");
    let events = nas
        .drain_mailbox(std::slice::from_ref(&device), Duration::from_secs(5))
        .await
        .expect("drain");
    let [MailboxEvent::HandleRefreshed {
        device_id,
        push_handle,
    }] = events.as_slice()
    else {
        panic!("{events:?}")
    };
    assert_eq!(*device_id, device.device_id);
    assert_eq!(push_handle, phone.push_handle());
    device.push_handle = push_handle.clone();
    // The new handle carries push: the next challenge goes to the push sender (here the
    // development log sender, reported `logged`) instead of inbox-only.
    let sent = request_one(&nas, &device, "a").await;
    assert_eq!(
        sent.report.deliveries[0].delivery,
        approvd_proto::wire::Delivery::Logged
    );
    assert!(
        nas.drain_mailbox(std::slice::from_ref(&device), Duration::ZERO)
            .await
            .expect("drain")
            .is_empty(),
        "acknowledged"
    );
}

#[tokio::test]
async fn unpair_notices_are_verified_and_unknown_devices_ignored() {
    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let (phone, device) = pair(&nas, "phone", None).await;
    let (other_phone, _other_device) = pair(&nas, "other", None).await;
    phone.unpair().await.expect("unpair");
    other_phone.unpair().await.expect("unpair");
    // The NAS only knows `device`: the other notice is ignored, not applied.
    let events = nas
        .drain_mailbox(std::slice::from_ref(&device), Duration::from_secs(5))
        .await
        .expect("drain");
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[0],
        MailboxEvent::Unpaired {
            device_id: device.device_id
        }
    );
    assert!(matches!(events[1], MailboxEvent::Ignored { .. }));
}

#[tokio::test]
async fn a_verdict_after_expiry_is_judged_expired() {
    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let (phone, device) = pair(&nas, "phone", None).await;
    let sent = request_one(&nas, &device, "a").await;
    let received = phone.inbox(WAIT).await.expect("inbox").remove(0);
    let on_time = phone.answer(&received, Decision::Approve, None);
    assert_eq!(
        nas.judge(&sent, std::slice::from_ref(&device), &on_time, unix_now()),
        Outcome::Approved {
            device_id: device.device_id
        }
    );
    // Signed after expiry (a phone with a wrong clock, or a replay of an old answer).
    let mut late = on_time.verdict.clone();
    late.decided_at = sent.expires + 1;
    let late = SignedVerdict {
        sig: late.sign(phone.sig_key()),
        verdict: late,
    };
    assert_eq!(
        nas.judge(&sent, std::slice::from_ref(&device), &late, unix_now()),
        Outcome::Expired
    );
    // Received long after expiry.
    assert_eq!(
        nas.judge(
            &sent,
            std::slice::from_ref(&device),
            &on_time,
            sent.expires + 60
        ),
        Outcome::Expired
    );
}

/// N-15 (issue 27): someone who saw the slot id (in a log) but not the QR code claims it. The
/// relay refuses the claim, as it lacks the QR code's `k_relay`, before storing anything: the
/// user's phone then claims the slot, raises no alarm, and pairs. (A claim with the right
/// `k_relay` and a wrong MAC can come only from the relay itself: the NAS refuses it, see
/// the malicious-relay suite.)
#[tokio::test]
async fn a_claim_without_the_qr_codes_relay_key_is_refused_and_the_phone_still_pairs() {
    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let uri = nas
        .start_pairing("nas", "alice", MINUTE)
        .await
        .expect("slot");
    let mut guessed = uri.clone();
    guessed.secret = approvd_proto::pairing::PairingSecret([9; 32]);
    let refused = Phone::enroll(&guessed, "impostor", "ios", None)
        .await
        .expect_err("the relay refuses a claim without k_relay");
    assert_eq!(refused.problem_name(), Some("not-owner"), "{refused}");
    assert!(
        nas.wait_for_claim(&uri, Duration::ZERO)
            .await
            .expect("poll")
            .is_none(),
        "nothing was stored"
    );
    let phone = Phone::enroll(&uri, "phone", "ios", None)
        .await
        .expect("the user's phone claims the slot, no alarm");
    let verified = nas
        .wait_for_claim(&uri, WAIT)
        .await
        .expect("poll")
        .expect("the phone's claim");
    assert_eq!(verified.claimed.claim.device_id, phone.device_id());
    let code = phone
        .wait_for_acceptance(WAIT)
        .await
        .expect("acceptance")
        .expect("a code is shown");
    nas.confirm(&verified, &code).await.expect("paired");
}

#[tokio::test]
async fn the_phone_refuses_inbox_entries_not_signed_by_the_pinned_nas() {
    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let (phone, device) = pair(&nas, "phone", None).await;
    request_one(&nas, &device, "a").await;
    let entry = phone.inbox(WAIT).await.expect("inbox").remove(0).entry;
    assert!(phone.verify_entry(entry.clone(), unix_now()).is_ok());
    let mut forged = entry.clone();
    forged.sig = forged
        .challenge(phone.device_id())
        .sign(&approvd_proto::generate_signing_key());
    assert!(
        phone.verify_entry(forged, unix_now()).is_err(),
        "signed by another key"
    );
    let mut moved = entry.clone();
    moved.expires += 10;
    assert!(
        phone.verify_entry(moved, unix_now()).is_err(),
        "a changed field breaks the signature"
    );
    let mut swapped = entry.clone();
    swapped.sealed.0[40] ^= 1;
    assert!(
        phone.verify_entry(swapped, unix_now()).is_err(),
        "a changed context breaks the hash"
    );
    assert!(
        phone.verify_entry(entry.clone(), entry.expires).is_err(),
        "expired"
    );
}

#[tokio::test]
async fn a_nas_never_shows_a_qr_code_phones_would_refuse() {
    // Every field within its own limit can still make the QR code too long once
    // percent-encoded — here a relay URL of 340 characters that each take three (found by the
    // `pairing_uri` fuzzer). The NAS says so before it makes a slot, instead of showing a QR
    // code every phone refuses.
    let relay = RelayProcess::start(&[]);
    let long_base = format!("{}/{}", relay.url, "(".repeat(340));
    let nas = approvd_client::Nas::new(&long_base, approvd_proto::generate_signing_key())
        .expect("a valid relay URL");
    let refused = nas
        .start_pairing("東京の家のNAS", "ユーザー", Duration::from_secs(60))
        .await;
    assert!(
        matches!(&refused, Err(approvd_client::ClientError::Protocol(_))),
        "{refused:?}"
    );
    assert!(refused
        .expect_err("refused")
        .to_string()
        .contains("pairing URI"));
    // With the relay's own URL the same label and account fit, and the phone parses the code.
    let uri = relay
        .nas()
        .start_pairing("東京の家のNAS", "ユーザー", Duration::from_secs(60))
        .await
        .expect("fits");
    approvd_proto::pairing::PairingUri::parse(&uri.to_uri(), unix_now()).expect("parses");
}
