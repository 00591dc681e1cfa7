//! The pairing as revised before any phone app ships (PROTOCOL.md §5, §13): the NAS commits to
//! one claim before any code is shown, so a claim made with a seen QR code gets no code and the
//! real phone raises the alarm; the offline-code secret is random and sealed to the phone, not
//! derived from the QR code; the request key and the approval key are different keys.

use std::time::Duration;

use approvd_client::transport::unix_now;
use approvd_client::{ClientError, Phone};
use approvd_proto::context::SealSecret;
use approvd_proto::wire::{ClaimMac, ClaimRequest, HandleIssued, PairingAcceptance};
use approvd_proto::{DeviceId, PairAccept, PairClaim, PublicKey, SignedMessage as _};
use approvd_tests::RelayProcess;

const WAIT: Duration = Duration::from_secs(10);
const MINUTE: Duration = Duration::from_secs(60);

/// The offline-code secret of the first protocol draft: HKDF of the QR code's secret and the
/// device id, which every phone request shows as its `keyid`.
fn code_from_qr_and_device_id(k: &[u8; 32], device: &DeviceId, now: u64) -> String {
    let mut secret = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(b"approvd/v1/totp"), k)
        .expand(device.as_bytes(), &mut secret)
        .expect("32 bytes");
    approvd_proto::totp::code_at(&secret, now)
}

#[tokio::test]
async fn offline_codes_come_from_a_secret_sealed_at_confirmation_not_from_the_qr_code() {
    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let uri = nas
        .start_pairing("nas", "alice", MINUTE)
        .await
        .expect("slot");
    let mut phone = Phone::enroll(&uri, "phone", "ios", None)
        .await
        .expect("enroll");
    assert_eq!(
        phone.offline_code(unix_now()),
        None,
        "no code before the NAS confirmed"
    );
    let verified = nas
        .wait_for_claim(&uri, WAIT)
        .await
        .expect("poll")
        .expect("claim");
    let code = phone
        .wait_for_acceptance(WAIT)
        .await
        .expect("poll")
        .expect("accepted");
    let (device, code_secret) = nas.confirm(&verified, &code).await.expect("confirm");
    assert!(phone.wait_for_confirmation(WAIT).await.expect("poll"));

    let now = unix_now();
    let phone_code = phone.offline_code(now).expect("a code once confirmed");
    assert!(approvd_proto::totp::verify(&code_secret.0, &phone_code, now, None).is_some());
    // Someone who photographed the QR code and read the device id off any request cannot.
    let minted = code_from_qr_and_device_id(&uri.secret.0, &device.device_id, now);
    assert!(
        (0..3).all(|step| {
            let at = now.saturating_sub(30) + step * 30;
            approvd_proto::totp::verify(
                &code_secret.0,
                &code_from_qr_and_device_id(&uri.secret.0, &device.device_id, at),
                at,
                None,
            )
            .is_none()
        }),
        "a code minted from k and device_id ({minted}) is refused"
    );
    // And the phone forgot k.
    assert!(phone.to_state("nas", true).pairing_secret.is_none());
    assert!(phone.to_state("nas", true).code_secret.is_some());
}

#[tokio::test]
async fn a_claim_made_with_a_seen_qr_code_gets_no_code_and_the_real_phone_raises_the_alarm() {
    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let uri = nas
        .start_pairing("nas", "alice", MINUTE)
        .await
        .expect("slot");
    // An attacker who saw the QR code claims first, with its own keys and a valid MAC.
    let mut attacker = Phone::enroll(&uri, "attacker", "ios", None)
        .await
        .expect("the attacker's claim");
    let verified = nas
        .wait_for_claim(&uri, WAIT)
        .await
        .expect("poll")
        .expect("the NAS cannot tell and commits to it");
    // The user's phone is refused the slot and says why, loudly.
    let real = Phone::enroll(&uri, "real phone", "ios", None).await;
    assert!(matches!(real, Err(ClientError::Alarm(_))), "{real:?}");
    // The user types what their phone shows — nothing but the alarm — so any code they try
    // confirms nothing, and the attacker never gets the confirmation or a code secret.
    for typed in ["", "000000", "123456"] {
        if verified.code_matches(typed) {
            continue; // one in a million: the attacker's own code
        }
        assert!(matches!(
            nas.confirm(&verified, typed).await,
            Err(ClientError::Verification(_))
        ));
    }
    assert!(!attacker
        .wait_for_confirmation(Duration::ZERO)
        .await
        .expect("poll"));
}

#[tokio::test]
async fn a_phone_shows_no_code_under_an_acceptance_of_another_claim() {
    // A relay that hands the NAS another claim than the phone's (say, one ground so that its
    // code equals the phone's) cannot also forge the NAS's acceptance of the phone's claim: the
    // acceptance names the claim the NAS committed to, and the phone compares it with its own.
    let relay = RelayProcess::start(&[]);
    let nas_key = approvd_proto::generate_signing_key();
    let nas = approvd_client::Nas::new(&relay.url, nas_key.clone()).expect("nas");
    let uri = nas
        .start_pairing("nas", "alice", MINUTE)
        .await
        .expect("slot");
    let phone = Phone::enroll(&uri, "phone", "ios", None)
        .await
        .expect("enroll");
    let other_claim = PairClaim {
        device_id: DeviceId(PublicKey::from(&approvd_proto::generate_signing_key())),
        seal_key: SealSecret::generate().public_key(),
        ..phone_claim(&phone)
    };
    let accept = PairAccept {
        pairing_id: uri.pairing_id,
        nas_id: nas.nas_id(),
        device_id: other_claim.device_id,
        claim_hash: other_claim.hash(),
        accepted_at: unix_now(),
    };
    let of_another = PairingAcceptance {
        sig: accept.sign(&nas_key),
        accept: accept.clone(),
    };
    assert!(matches!(
        phone.check_acceptance(&of_another),
        Err(ClientError::Alarm(_))
    ));
    let own = PairAccept {
        device_id: phone.device_id(),
        claim_hash: phone_claim(&phone).hash(),
        ..accept
    };
    let by_another_key = PairingAcceptance {
        sig: own.sign(&approvd_proto::generate_signing_key()),
        accept: own.clone(),
    };
    assert!(matches!(
        phone.check_acceptance(&by_another_key),
        Err(ClientError::Verification(_))
    ));
    let genuine = PairingAcceptance {
        sig: own.sign(&nas_key),
        accept: own,
    };
    let code = phone.check_acceptance(&genuine).expect("its own claim");
    assert_eq!(code.len(), 6);
}

fn phone_claim(phone: &Phone) -> PairClaim {
    phone.to_state("nas", false).claim
}

#[tokio::test]
async fn one_key_for_requests_and_approvals_is_refused() {
    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let uri = nas
        .start_pairing("nas", "alice", MINUTE)
        .await
        .expect("slot");
    let key = approvd_proto::generate_signing_key();
    let refused = Phone::enroll_with_keys(
        &uri,
        "phone",
        "ios",
        None,
        key.clone(),
        key.clone(),
        SealSecret::generate(),
    )
    .await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|error| error.to_string().contains("claim.sig_key")),
        "{refused:?}"
    );
    // A client that skips that check is refused by the relay.
    let claim = PairClaim {
        pairing_id: uri.pairing_id,
        nas_id: uri.nas_id,
        device_id: DeviceId(PublicKey::from(&key)),
        sig_key: PublicKey::from(&key),
        seal_key: SealSecret::generate().public_key(),
        device_info: approvd_proto::pairing::seal_device_info(
            &uri.secret,
            &uri.pairing_id,
            &DeviceId(PublicKey::from(&key)),
            &approvd_proto::pairing::DeviceInfo {
                name: "phone".to_owned(),
                platform: "ios".to_owned(),
            },
        )
        .expect("sealed"),
        claimed_at: unix_now(),
    };
    let request = ClaimRequest {
        claim_key: uri.secret.relay_claim_key(),
        mac: ClaimMac(approvd_proto::pairing::claim_mac(&uri.secret, &claim)),
        sig: claim.sign(&key),
        claim,
        push: None,
    };
    let client = approvd_client::transport::RelayClient::new(&relay.url, key).expect("client");
    let path = format!("/v1/pairings/{}/claim", uri.pairing_id);
    let error = client
        .call::<_, HandleIssued>("POST", &path, "", Some(&request))
        .await
        .expect_err("refused");
    assert_eq!(error.problem_name(), Some("invalid-field"), "{error}");
    assert!(error.to_string().contains("claim.sig_key"), "{error}");
}

#[tokio::test]
async fn sign_ins_require_number_matching_with_at_least_three_digits() {
    use approvd_proto::context::{self, ContextBinding};
    use approvd_proto::wire::{InboxEntry, Sealed};
    use approvd_proto::{Challenge, Cid, Decision};
    use approvd_tests::{context, login, pair};

    let relay = RelayProcess::start(&[]);
    let nas_key = approvd_proto::generate_signing_key();
    let nas = approvd_client::Nas::new(&relay.url, nas_key.clone()).expect("nas");
    let (phone, device) = pair(&nas, "phone", None).await;
    let devices = std::slice::from_ref(&device);

    // The NAS SDK does not send a sign-in without number matching.
    let refused = nas.build_challenge(devices, &login("alice"), false, MINUTE);
    assert!(
        refused
            .as_ref()
            .is_err_and(|error| error.to_string().contains("number_matching")),
        "{refused:?}"
    );
    assert!(nas
        .build_challenge(devices, &context("alice"), false, MINUTE)
        .is_ok());

    // Numbers have 3 digits and differ among one user's (bob's) live challenges, of which there are
    // at most MAX_PENDING_PER_USER: the draw never runs out of numbers (N-11).
    let numbers: Vec<String> = (0..approvd_client::MAX_PENDING_PER_USER)
        .map(|_| {
            let (_, sent) = nas
                .build_challenge(devices, &login("bob"), true, MINUTE)
                .expect("built");
            sent.number.expect("a number")
        })
        .collect();
    assert!(numbers
        .iter()
        .all(|number| number.len() == 3 && number.bytes().all(|b| b.is_ascii_digit())));
    let distinct: std::collections::BTreeSet<&String> = numbers.iter().collect();
    assert_eq!(
        distinct.len(),
        numbers.len(),
        "no two live prompts of bob share a number"
    );
    let one_more = nas.build_challenge(devices, &login("bob"), true, MINUTE);
    assert!(
        one_more.is_err_and(|error| error.to_string().contains("too many sign-in requests")),
        "past the pending limit a challenge is refused, not drawn for ever"
    );

    // A phone refuses a sign-in that a NAS (or anyone with its key) sent without a number.
    let cid = Cid::random();
    let (created, expires) = (unix_now(), unix_now() + 60);
    let binding = ContextBinding {
        cid,
        nas_id: nas.nas_id(),
        device_id: device.device_id,
        created,
        expires,
        number_matching: false,
    };
    let sealed = context::seal(&login("alice"), &binding, &device.seal_key).expect("sealed");
    let challenge = Challenge {
        cid,
        nas_id: nas.nas_id(),
        device_id: device.device_id,
        created,
        expires,
        number_matching: false,
        context_hash: context::context_hash(&sealed),
    };
    let entry = InboxEntry {
        cid,
        nas_id: nas.nas_id(),
        created,
        expires,
        number_matching: false,
        sig: challenge.sign(&nas_key),
        sealed: Sealed(sealed),
    };
    let verdict = phone.verify_entry(entry, unix_now());
    assert!(
        verdict
            .as_ref()
            .is_err_and(|error| error.to_string().contains("number matching")),
        "{verdict:?}"
    );

    // The relay refuses a typed number of fewer than 3 digits.
    let sent = nas
        .request_approval(devices, &login("alice"), true, MINUTE)
        .await
        .expect("sent");
    let received = phone.inbox(WAIT).await.expect("inbox").remove(0);
    for short in ["", "7", "42"] {
        let error = phone
            .submit(&phone.answer(&received, Decision::Approve, Some(short)))
            .await
            .expect_err("refused");
        assert_eq!(
            error.problem_name(),
            Some("invalid-field"),
            "{short:?}: {error}"
        );
    }
    let number = sent.number.clone().expect("number");
    phone
        .submit(&phone.answer(&received, Decision::Approve, Some(&number)))
        .await
        .expect("three digits");
}

#[tokio::test]
async fn an_answered_challenge_is_never_shown_again_and_prompts_are_limited() {
    use approvd_proto::Decision;
    use approvd_tests::{pair, request_one};

    let relay = RelayProcess::start(&["--rate-challenges-per-device", "1000"]);
    let nas = relay.nas();
    let (phone, device) = pair(&nas, "phone", None).await;
    request_one(&nas, &device, "a").await;
    let received = phone.inbox(WAIT).await.expect("inbox").remove(0);
    // The user denies; a malicious relay drops the deny and delivers the challenge again.
    let _dropped = phone.answer(&received, Decision::Deny, None);
    assert!(
        phone.inbox(Duration::ZERO).await.expect("inbox").is_empty(),
        "the re-delivered cid is not shown again"
    );
    assert!(phone
        .verify_entry(received.entry.clone(), unix_now())
        .is_err());
    // Also after the app restarts from its saved state.
    let restarted = Phone::from_state(&phone.to_state("nas", true)).expect("restored");
    assert!(restarted
        .inbox(Duration::ZERO)
        .await
        .expect("inbox")
        .is_empty());

    // Past MAX_PROMPTS in the window, further challenges are held back and counted.
    for n in 0..approvd_client::MAX_PROMPTS + 2 {
        request_one(&nas, &device, &format!("user{n}")).await;
    }
    let shown = restarted.inbox(Duration::ZERO).await.expect("inbox");
    assert_eq!(
        shown.len(),
        approvd_client::MAX_PROMPTS - 1,
        "one prompt was used above"
    );
    assert_eq!(restarted.held_back_prompts(), 3);
    // Asking again shows the same prompts, not new ones.
    let again = restarted.inbox(Duration::ZERO).await.expect("inbox");
    assert_eq!(
        again.iter().map(|r| r.entry.cid).collect::<Vec<_>>(),
        shown.iter().map(|r| r.entry.cid).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn the_nas_accepts_one_verdict_per_challenge_and_honours_its_own_cancel() {
    use approvd_client::{ChallengeState, Outcome};
    use approvd_proto::Decision;
    use approvd_tests::{pair, request_one};

    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let (phone, device) = pair(&nas, "phone", None).await;
    let (other_phone, other_device) = pair(&nas, "other", None).await;
    let devices = [device.clone(), other_device.clone()];

    // Cancelled: an approval the relay delivers later (say it never got the cancel) is refused.
    let sent = request_one(&nas, &device, "a").await;
    let received = phone.inbox(WAIT).await.expect("inbox").remove(0);
    let approval = phone.answer(&received, Decision::Approve, None);
    nas.cancel(&sent.cid).await.expect("cancelled");
    assert_eq!(
        nas.challenge_state(&sent.cid),
        Some(ChallengeState::Cancelled)
    );
    assert_eq!(
        nas.judge(&sent, &devices, &approval, unix_now()),
        Outcome::Cancelled
    );

    // Decided: after the first verdict, a second (valid) one is not accepted.
    let sent = nas
        .request_approval(&devices, &approvd_tests::context("b"), false, MINUTE)
        .await
        .expect("sent");
    let first = phone.inbox(WAIT).await.expect("inbox").remove(0);
    let second = other_phone.inbox(WAIT).await.expect("inbox").remove(0);
    phone
        .submit(&phone.answer(&first, Decision::Deny, None))
        .await
        .expect("deny");
    assert_eq!(
        nas.wait_for_verdict(&sent, &devices, WAIT)
            .await
            .expect("poll"),
        Some(Outcome::Denied {
            device_id: device.device_id
        })
    );
    let late_approval = other_phone.answer(&second, Decision::Approve, None);
    assert!(matches!(
        nas.judge(&sent, &devices, &late_approval, unix_now()),
        Outcome::Invalid { .. }
    ));
}

/// `POST /v1/pairings` by a fresh NAS key; the status.
async fn create_slot_with_a_new_key(relay: &RelayProcess, forwarded_for: Option<&str>) -> u16 {
    let client = approvd_client::transport::RelayClient::new(
        &relay.url,
        approvd_proto::generate_signing_key(),
    )
    .expect("client");
    let body = serde_json::to_vec(&approvd_proto::wire::CreatePairingRequest {
        pairing_id: approvd_proto::PairingId::random(),
        ttl_secs: 60,
        claim_verifier: approvd_proto::Digest([0; 32]),
    })
    .expect("json");
    let mut prepared = client.prepare("POST", "/v1/pairings", "", Some(body));
    if let Some(address) = forwarded_for {
        prepared
            .headers
            .push(("X-Forwarded-For".to_owned(), address.to_owned()));
    }
    client.send(prepared).await.expect("sent").status().as_u16()
}

#[tokio::test]
async fn self_made_keys_do_not_escape_the_creation_quotas() {
    // Per IP: every request below is signed by a new key, so per-key limits never bite.
    let relay = RelayProcess::start(&["--rate-creations-per-ip", "3"]);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(create_slot_with_a_new_key(&relay, None).await);
    }
    assert_eq!(statuses, [201, 201, 201, 429, 429]);

    // Relay-wide: clients at different addresses share one ceiling.
    let relay = RelayProcess::start(&[
        "--trust-forwarded-for",
        "true",
        "--rate-creations-global",
        "2",
    ]);
    let mut statuses = Vec::new();
    for n in 0..3 {
        let address = format!("198.51.100.{n}");
        statuses.push(create_slot_with_a_new_key(&relay, Some(&address)).await);
    }
    assert_eq!(statuses, [201, 201, 429]);
}

#[tokio::test]
async fn a_nas_may_require_that_approvals_were_unlocked_by_the_user() {
    use approvd_client::Outcome;
    use approvd_proto::Decision;
    use approvd_tests::{pair, request_one};

    let relay = RelayProcess::start(&[]);
    let mut nas = relay.nas();
    nas.require_user_verification(true);
    let (mut phone, device) = pair(&nas, "phone", None).await;
    let devices = std::slice::from_ref(&device);

    let sent = request_one(&nas, &device, "a").await;
    let received = phone.inbox(WAIT).await.expect("inbox").remove(0);
    let tap_only = phone.answer(&received, Decision::Approve, None);
    assert!(!tap_only.verdict.user_verified);
    assert!(matches!(
        nas.judge(&sent, devices, &tap_only, unix_now()),
        Outcome::Invalid { reason } if reason.contains("user verification")
    ));
    // Claiming it after signing breaks the signature: the flag is signed.
    let mut claimed = tap_only.clone();
    claimed.verdict.user_verified = true;
    assert!(matches!(
        nas.judge(&sent, devices, &claimed, unix_now()),
        Outcome::Invalid { .. }
    ));

    phone.set_user_verified_signing(true);
    let verified = phone.answer(&received, Decision::Approve, None);
    assert_eq!(
        nas.judge(&sent, devices, &verified, unix_now()),
        Outcome::Approved {
            device_id: device.device_id
        }
    );
    // A denial needs no verification: anyone holding the phone may refuse.
    let deny = {
        phone.set_user_verified_signing(false);
        phone.answer(&received, Decision::Deny, None)
    };
    assert_eq!(
        nas.judge(&sent, devices, &deny, unix_now()),
        Outcome::Denied {
            device_id: device.device_id
        }
    );
}

#[tokio::test]
async fn the_relay_never_reads_the_device_name() {
    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let uri = nas
        .start_pairing("nas", "alice", MINUTE)
        .await
        .expect("slot");
    let name = "Alice's phone 7f3e";
    let _phone = Phone::enroll(&uri, name, "android", None)
        .await
        .expect("enroll");
    // What the relay holds and hands out: no name, no platform.
    let path = format!("/v1/pairings/{}/claim", uri.pairing_id);
    let raw: serde_json::Value = nas
        .client()
        .call::<(), serde_json::Value>("GET", &path, "", None)
        .await
        .expect("poll")
        .expect("claimed");
    let text = raw.to_string();
    assert!(
        !text.contains("7f3e") && !text.contains("android"),
        "{text}"
    );
    // The NAS, holding the QR code's secret, reads both.
    let verified = nas
        .wait_for_claim(&uri, WAIT)
        .await
        .expect("poll")
        .expect("claim");
    assert_eq!(verified.device.name, name);
    assert_eq!(verified.device.platform, "android");
    // Someone without the secret cannot.
    let mut other = uri.clone();
    other.secret = approvd_proto::pairing::PairingSecret([1; 32]);
    assert!(
        approvd_proto::pairing::open_device_info(&other.secret, &verified.claimed.claim).is_err()
    );
}
