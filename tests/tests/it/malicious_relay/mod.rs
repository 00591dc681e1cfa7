//! The relay as the adversary: the NAS and phone SDKs talk to a proxy in front of a real relay
//! ([`proxy::MaliciousRelay`]) that rewrites answers in every way [`mutate::mutations`] generates
//! — every field × every rewrite, and every field and whole answer taken from another flow
//! (another challenge, phone, account or NAS). For every message of every flow (pairing claim,
//! acceptance and confirmation; delivery report; inbox; verdict; mailbox) each case asserts that
//! nothing is ever approved or paired that the user did not approve or pair, that no context is
//! shown but the one the NAS sealed for that phone, and that the genuine answer still works
//! afterwards. Each test prints its case count and the reasons the SDK gave. Targeted attacks
//! that need more than one rewrite (a dropped deny re-delivered 50 times, a hidden challenge, a
//! key swapped through a mailbox notice, an approve after cancel, a wrong number stored first, a
//! request replayed to another replica) follow.

mod mutate;
mod proxy;
mod targeted;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use approvd_client::{ClientError, MailboxEvent, Nas, Outcome, PairedDevice, Phone, SentChallenge};
use approvd_proto::context::LoginContext;
use approvd_proto::signed::Decision;
use approvd_proto::wire::SignedVerdict;
use approvd_proto::{Cid, SignedMessage as _};
use approvd_tests::{login, only_request, RelayProcess};
use serde_json::Value;

use mutate::{mutations, Mutation};
use proxy::{Exchange, MaliciousRelay};

const VERDICT: &str = "GET /v1/challenges/{cid}/verdict";
const INBOX: &str = "GET /v1/inbox";
const MAILBOX: &str = "GET /v1/mailbox";
const CLAIM: &str = "GET /v1/pairings/{pairing_id}/claim";
const ACCEPTANCE: &str = "GET /v1/pairings/{pairing_id}/acceptance";
const CONFIRMATION: &str = "GET /v1/pairings/{pairing_id}/confirmation";
const MINUTE: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(5);

/// A relay whose limits a test of hundreds of flows cannot reach, behind the proxy.
async fn malicious_relay() -> (RelayProcess, MaliciousRelay) {
    let relay = RelayProcess::start(&[
        "--rate-challenges-per-device",
        "1000000",
        "--rate-requests-per-caller",
        "1000000",
        "--rate-creations-per-ip",
        "1000000",
        "--rate-creations-global",
        "1000000",
        "--rate-auth-failures-per-ip",
        "1000000",
    ]);
    let proxy = MaliciousRelay::start(&relay.url).await;
    (relay, proxy)
}

/// A NAS that reaches the relay only through the proxy (its pairing QR codes name the proxy,
/// so its phones do too).
fn nas_behind(proxy: &MaliciousRelay, key: &ed25519_dalek::SigningKey) -> Nas {
    Nas::new(&proxy.url, key.clone()).expect("nas")
}

/// Pair a phone through the proxy, with no prompt limit (these tests show hundreds).
async fn paired(nas: &Nas, account: &str, name: &str) -> (Phone, PairedDevice) {
    let (mut phone, device, _) = approvd_tests::pair_for(nas, account, name, None).await;
    phone.set_prompt_limit(usize::MAX);
    (phone, device)
}

/// Serve `answer` (rewritten by `mutation`) instead of the relay's next answer on `route`;
/// the returned cell says what was served (`None`: the mutation did not apply to it, and the
/// relay's own answer went through).
fn serve_mutated(
    proxy: &MaliciousRelay,
    route: &str,
    base: Option<Value>,
    mutation: &Mutation,
) -> Arc<Mutex<Option<Value>>> {
    let served = Arc::new(Mutex::new(None));
    let cell = Arc::clone(&served);
    let mutation = mutation.clone();
    proxy.once(route, move |exchange: &mut Exchange| {
        let answer = base.clone().unwrap_or_else(|| exchange.json());
        if let Some(rewritten) = mutation.apply(&answer) {
            exchange.status = 200;
            exchange.body = serde_json::to_vec(&rewritten).expect("json");
            *cell.lock().expect("cell") = Some(rewritten);
        }
        true
    });
    served
}

/// How the cases of one message ended, by the SDK's reason; printed, and checked to be many.
#[derive(Default)]
struct Tally {
    cases: usize,
    outcomes: BTreeMap<String, usize>,
}

impl Tally {
    fn count(&mut self, outcome: impl Into<String>) {
        self.cases += 1;
        *self.outcomes.entry(outcome.into()).or_default() += 1;
    }

    fn report(&self, message: &str, at_least: usize) {
        println!("malicious relay, {message}: {} rewrites", self.cases);
        for (outcome, count) in &self.outcomes {
            println!("  {count:>4}  {outcome}");
        }
        assert!(
            self.cases >= at_least,
            "only {} cases for {message}",
            self.cases
        );
    }
}

/// A short name for an error the SDK returned.
fn error_class(error: &ClientError) -> String {
    match error {
        ClientError::Verification(reason) => format!("refused: {reason}"),
        ClientError::Alarm(_) => "ALARM raised".to_owned(),
        ClientError::Unexpected { .. } => "refused: not a protocol answer".to_owned(),
        ClientError::Relay { problem, .. } => format!("relay problem {}", problem.type_uri),
        other => format!("error: {other}"),
    }
}

/// The last answer with a body (200 or 201) recorded on `route`, as JSON.
fn recorded(proxy: &MaliciousRelay, route: &str) -> Value {
    proxy
        .seen(route)
        .into_iter()
        .rev()
        .find(|exchange| exchange.status == 200 || exchange.status == 201)
        .map(|exchange| exchange.json())
        .unwrap_or_else(|| panic!("no answer recorded on {route}"))
}

/// A phone's answer to `sent`, submitted through the proxy; returns the GET-verdict answer
/// the NAS then receives, unmodified.
async fn answered(
    nas: &Nas,
    proxy: &MaliciousRelay,
    phone: &Phone,
    sent: &SentChallenge,
    devices: &[PairedDevice],
    decision: Decision,
) -> Value {
    let received = only_request(phone, WAIT).await;
    assert_eq!(received.entry.cid, sent.cid);
    let verdict = phone.answer(&received, decision, sent.number.as_deref());
    phone.submit(&verdict).await.expect("submit");
    let outcome = nas
        .wait_for_verdict(sent, devices, WAIT)
        .await
        .expect("poll")
        .expect("verdict");
    assert!(!matches!(outcome, Outcome::Invalid { .. }), "{outcome:?}");
    recorded(proxy, VERDICT)
}

async fn ask(nas: &Nas, devices: &[PairedDevice], user: &str) -> SentChallenge {
    nas.request_approval(devices, &login(user), true, MINUTE)
        .await
        .expect("challenge")
}

/// The parties of the verdict and inbox cases, all behind the proxy: a NAS (and its key) with
/// two phones of alice's and one of bob's, and another NAS with one phone.
struct Cast {
    key: ed25519_dalek::SigningKey,
    nas: Nas,
    alice: (Phone, PairedDevice),
    alice_tablet: (Phone, PairedDevice),
    bob: (Phone, PairedDevice),
    other_nas: Nas,
    stranger: (Phone, PairedDevice),
}

impl Cast {
    async fn pair(proxy: &MaliciousRelay) -> Self {
        let key = approvd_proto::generate_signing_key();
        let nas = nas_behind(proxy, &key);
        let alice = paired(&nas, "alice", "alice's phone").await;
        let alice_tablet = paired(&nas, "alice", "alice's tablet").await;
        let bob = paired(&nas, "bob", "bob's phone").await;
        let other_nas = nas_behind(proxy, &approvd_proto::generate_signing_key());
        let stranger = paired(&other_nas, "alice", "phone of another NAS").await;
        Self {
            key,
            nas,
            alice,
            alice_tablet,
            bob,
            other_nas,
            stranger,
        }
    }
}

/// A genuine approval by `phone` of a new challenge to it alone, as the NAS received it.
async fn approval_of(
    nas: &Nas,
    proxy: &MaliciousRelay,
    (phone, device): (&Phone, &PairedDevice),
    devices: &[PairedDevice],
    user: &str,
) -> Value {
    let sent = ask(nas, std::slice::from_ref(device), user).await;
    answered(nas, proxy, phone, &sent, devices, Decision::Approve).await
}

/// How the NAS judges `verdict` when the relay serves it as the answer to its next poll.
async fn judged_when_served(
    nas: &Nas,
    proxy: &MaliciousRelay,
    sent: &SentChallenge,
    devices: &[PairedDevice],
    verdict: &SignedVerdict,
) -> Option<Outcome> {
    proxy.answer_json_once(VERDICT, verdict);
    nas.wait_for_verdict(sent, devices, Duration::ZERO)
        .await
        .expect("poll")
}

#[tokio::test]
async fn a_malicious_relay_never_turns_any_rewritten_verdict_into_a_decision() {
    let (_relay, proxy) = malicious_relay().await;
    let Cast {
        key,
        nas,
        alice: (phone, device),
        alice_tablet: (other_phone, other_device),
        bob: (bob_phone, bob_device),
        other_nas,
        stranger: (stranger, stranger_device),
    } = Cast::pair(&proxy).await;
    let alice = [device.clone(), other_device.clone()];

    // Donors: genuine approvals the relay has seen elsewhere.
    let older_approve = approval_of(&nas, &proxy, (&phone, &device), &alice, "alice").await;
    let tablet_approve =
        approval_of(&nas, &proxy, (&other_phone, &other_device), &alice, "alice").await;
    let bob_approve = approval_of(
        &nas,
        &proxy,
        (&bob_phone, &bob_device),
        std::slice::from_ref(&bob_device),
        "bob",
    )
    .await;
    let foreign_approve = approval_of(
        &other_nas,
        &proxy,
        (&stranger, &stranger_device),
        std::slice::from_ref(&stranger_device),
        "alice",
    )
    .await;
    let donors = [
        ("an older approval by this phone", older_approve),
        ("an approval by alice's other phone", tablet_approve),
        ("bob's approval (another account)", bob_approve),
        ("an approval sent to another NAS", foreign_approve),
    ];

    let mut tally = Tally::default();
    for decision in [Decision::Deny, Decision::Approve] {
        let sent = ask(&nas, std::slice::from_ref(&device), "alice").await;
        let genuine = answered(&nas, &proxy, &phone, &sent, &alice, decision).await;
        let genuine_verdict: SignedVerdict =
            serde_json::from_value(genuine.clone()).expect("verdict");
        for mutation in mutations(&genuine, &donors) {
            // A NAS that has not judged this challenge yet (its record is the SentChallenge).
            let fresh = nas_behind(&proxy, &key);
            let served = serve_mutated(&proxy, VERDICT, Some(genuine.clone()), &mutation);
            let outcome = fresh.wait_for_verdict(&sent, &alice, Duration::ZERO).await;
            let Some(served) = served.lock().expect("cell").take() else {
                continue;
            };
            let same = serde_json::from_value::<SignedVerdict>(served)
                .is_ok_and(|verdict| verdict == genuine_verdict);
            let label = format!("{decision:?} verdict, {}", mutation.label);
            match outcome {
                Ok(Some(Outcome::Invalid { reason })) => tally.count(format!("invalid: {reason}")),
                Ok(Some(Outcome::Approved { .. } | Outcome::Denied { .. })) if same => {
                    tally.count("the genuine verdict, re-encoded: decided as the phone did")
                }
                Ok(Some(
                    decided @ (Outcome::Approved { .. }
                    | Outcome::Denied { .. }
                    | Outcome::WrongNumber { .. }
                    | Outcome::FraudReported { .. }),
                )) => panic!("{label}: the NAS decided {decided:?} on a rewritten verdict"),
                Ok(Some(other)) => tally.count(format!("{other:?}")),
                Ok(None) => tally.count("no verdict"),
                Err(error) => tally.count(error_class(&error)),
            }
        }
        // The genuine verdict still decides, after every attempt.
        let fresh = nas_behind(&proxy, &key);
        let outcome = fresh
            .wait_for_verdict(&sent, &alice, Duration::ZERO)
            .await
            .expect("poll");
        let expected = match decision {
            Decision::Approve => Outcome::Approved {
                device_id: device.device_id,
            },
            _ => Outcome::Denied {
                device_id: device.device_id,
            },
        };
        assert_eq!(outcome, Some(expected));
    }
    tally.report("the verdict a NAS receives", 150);
}

/// What the NAS sealed for one phone: challenge hash and context, by cid.
type Sent = BTreeMap<Cid, (approvd_proto::ids::Digest, LoginContext)>;

fn remember(
    sent: &mut Sent,
    challenge: &SentChallenge,
    device: &PairedDevice,
    context: LoginContext,
) {
    let hash = challenge
        .challenge_hashes
        .iter()
        .find(|(id, _)| *id == device.device_id)
        .map(|(_, hash)| *hash)
        .expect("targeted");
    sent.insert(challenge.cid, (hash, context));
}

#[tokio::test]
async fn a_malicious_relay_never_shows_a_phone_a_challenge_or_context_the_nas_did_not_send_it() {
    let (_relay, proxy) = malicious_relay().await;
    let Cast {
        key: _,
        nas,
        alice: (phone, device),
        alice_tablet: (other_phone, other_device),
        bob: (bob_phone, bob_device),
        other_nas,
        stranger: (stranger, stranger_device),
    } = Cast::pair(&proxy).await;
    let alice = [device.clone(), other_device.clone()];
    let mut sent_to_phone = Sent::new();

    // A challenge the NAS cancels, and one that expires: the relay keeps their entries.
    let cancelled = ask(&nas, std::slice::from_ref(&device), "alice").await;
    remember(&mut sent_to_phone, &cancelled, &device, login("alice"));
    let _ = only_request(&phone, WAIT).await;
    let cancelled_inbox = recorded(&proxy, INBOX);
    nas.cancel(&cancelled.cid).await.expect("cancel");
    let expiring = nas
        .request_approval(
            std::slice::from_ref(&device),
            &login("alice"),
            true,
            Duration::from_secs(1),
        )
        .await
        .expect("challenge");
    remember(&mut sent_to_phone, &expiring, &device, login("alice"));
    let _ = only_request(&phone, WAIT).await;
    let expired_inbox = recorded(&proxy, INBOX);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // The sample: one pending sign-in sealed for both of alice's phones.
    let context = login("alice");
    let sample = ask(&nas, &alice, "alice").await;
    remember(&mut sent_to_phone, &sample, &device, context.clone());
    let _ = only_request(&other_phone, WAIT).await;
    let same_challenge_other_phone = recorded(&proxy, INBOX);
    let _ = only_request(&phone, WAIT).await;
    let genuine = recorded(&proxy, INBOX);
    let _ = ask(&nas, std::slice::from_ref(&bob_device), "bob").await;
    let _ = only_request(&bob_phone, WAIT).await;
    let bob_inbox = recorded(&proxy, INBOX);
    let _ = ask(&other_nas, std::slice::from_ref(&stranger_device), "alice").await;
    let _ = only_request(&stranger, WAIT).await;
    let foreign_inbox = recorded(&proxy, INBOX);
    let donors = [
        (
            "the same challenge's entry for alice's other phone",
            same_challenge_other_phone,
        ),
        ("a challenge the NAS cancelled", cancelled_inbox),
        ("an expired challenge", expired_inbox),
        ("bob's challenge (another account)", bob_inbox),
        ("a challenge of another NAS", foreign_inbox),
    ];

    let mut tally = Tally::default();
    for mutation in mutations(&genuine, &donors) {
        let served = serve_mutated(&proxy, INBOX, Some(genuine.clone()), &mutation);
        let shown = phone.inbox(Duration::ZERO).await;
        if served.lock().expect("cell").is_none() {
            continue;
        }
        let shown = match shown {
            Ok(shown) => shown,
            Err(error) => {
                tally.count(error_class(&error));
                continue;
            }
        };
        for received in &shown {
            let Some((hash, sealed_context)) = sent_to_phone.get(&received.entry.cid) else {
                panic!(
                    "{}: the phone showed a challenge the NAS never sent it",
                    mutation.label
                );
            };
            assert_eq!(received.challenge.hash(), *hash, "{}", mutation.label);
            assert_eq!(received.context, *sealed_context, "{}", mutation.label);
            assert_ne!(received.entry.cid, expiring.cid, "{}", mutation.label);
        }
        let genuine_shown = shown
            .iter()
            .any(|received| received.entry.cid == sample.cid);
        tally.count(match (shown.len(), genuine_shown) {
            (0, _) => "nothing shown (every entry failed the phone's checks)",
            (_, true) => "only NAS-signed challenges shown, the sample among them",
            (_, false) => "only NAS-signed challenges shown: a cancelled one re-delivered",
        });
    }
    tally.report("the inbox a phone receives", 70);

    // The cancelled challenge, re-delivered and approved: the NAS honours its own cancel.
    let replay = Mutation::whole(&donors[1].1);
    let _ = serve_mutated(&proxy, INBOX, Some(genuine.clone()), &replay);
    let shown = phone.inbox(Duration::ZERO).await.expect("inbox");
    let received = shown
        .iter()
        .find(|received| received.entry.cid == cancelled.cid)
        .expect("the phone cannot know the NAS cancelled it");
    let approve = phone.answer(received, Decision::Approve, cancelled.number.as_deref());
    assert_eq!(
        judged_when_served(&nas, &proxy, &cancelled, &alice, &approve).await,
        Some(Outcome::Cancelled)
    );
}

#[tokio::test]
async fn a_malicious_relay_cannot_forge_replay_or_move_mailbox_notices() {
    let (_relay, proxy) = malicious_relay().await;
    let nas = nas_behind(&proxy, &approvd_proto::generate_signing_key());
    let (muting, muting_device) = paired(&nas, "alice", "mutes").await;
    let (mut refreshing, refreshing_device) = paired(&nas, "alice", "refreshes").await;
    let (unpairing, unpairing_device) = paired(&nas, "alice", "unpairs").await;
    let (_bob, bob_device) = paired(&nas, "bob", "bob's phone").await;
    let devices = [
        muting_device.clone(),
        refreshing_device.clone(),
        unpairing_device.clone(),
        bob_device.clone(),
    ];
    let now = approvd_client::transport::unix_now();
    muting.mute(now + 3600).await.expect("mute");
    refreshing
        .refresh_push(Some(approvd_tests::push_registration()))
        .await
        .expect("refresh");
    unpairing.unpair().await.expect("unpair");
    let genuine_events = nas.drain_mailbox(&devices, WAIT).await.expect("mailbox");
    let genuine = recorded(&proxy, MAILBOX);
    assert_eq!(genuine_events.len(), 3, "{genuine_events:?}");
    // Another NAS's phone mutes and unpairs: its signed notices are the donor.
    let other_nas = nas_behind(&proxy, &approvd_proto::generate_signing_key());
    let (stranger, stranger_device) = paired(&other_nas, "alice", "another NAS's phone").await;
    stranger.mute(now + 60).await.expect("mute");
    stranger.unpair().await.expect("unpair");
    let _ = other_nas
        .drain_mailbox(std::slice::from_ref(&stranger_device), WAIT)
        .await
        .expect("mailbox");
    let foreign = recorded(&proxy, MAILBOX);
    let donors = [("another NAS's mailbox", foreign)];

    let mut tally = Tally::default();
    for mutation in mutations(&genuine, &donors) {
        let served = serve_mutated(&proxy, MAILBOX, Some(genuine.clone()), &mutation);
        let events = nas.drain_mailbox(&devices, Duration::ZERO).await;
        if served.lock().expect("cell").is_none() {
            continue;
        }
        let events = match events {
            Ok(events) => events,
            Err(error) => {
                tally.count(error_class(&error));
                continue;
            }
        };
        let mut kinds = Vec::new();
        for event in &events {
            match event {
                MailboxEvent::Unpaired { .. } | MailboxEvent::Muted { .. } => {
                    assert!(
                        genuine_events.contains(event),
                        "{}: a forged notice was applied: {event:?}",
                        mutation.label
                    );
                    kinds.push("signed notice verified");
                }
                // The relay's own notices: it could drop pushes anyway; they must name a device
                // of this NAS.
                MailboxEvent::HandleRefreshed { device_id, .. }
                | MailboxEvent::PushGone { device_id } => {
                    assert!(devices.iter().any(|device| device.device_id == *device_id));
                    kinds.push("relay notice");
                }
                MailboxEvent::Ignored { .. } => kinds.push("ignored"),
            }
        }
        kinds.sort_unstable();
        kinds.dedup();
        tally.count(if kinds.is_empty() {
            "no events".to_owned()
        } else {
            kinds.join(" + ")
        });
    }
    tally.report("the mailbox a NAS drains", 60);
}

/// One pairing up to the NAS's claim poll, with `rewrite` applied to the answer on `route`.
/// Returns whether the pairing completed, and with which keys on the NAS's side.
async fn pairing_under(
    nas: &Nas,
    proxy: &MaliciousRelay,
    route: &str,
    mutation: &Mutation,
) -> Option<String> {
    let uri = nas
        .start_pairing("nas", "alice", MINUTE)
        .await
        .expect("slot");
    let mut phone = Phone::enroll(&uri, "phone", "ios", None)
        .await
        .expect("enroll");
    let served = if route == CLAIM {
        Some(serve_mutated(proxy, CLAIM, None, mutation))
    } else {
        None
    };
    let verified = match nas.wait_for_claim(&uri, WAIT).await {
        Ok(Some(verified)) => verified,
        Ok(None) => return Some("no claim".to_owned()),
        Err(error) => return Some(error_class(&error)),
    };
    if let Some(served) = &served {
        if served.lock().expect("cell").is_none() {
            return None;
        }
    }
    let genuine_claim = phone.to_state("nas", false).claim;
    let same_keys = verified.claimed.claim == genuine_claim;
    let served = (route == ACCEPTANCE).then(|| serve_mutated(proxy, ACCEPTANCE, None, mutation));
    let shown = phone.wait_for_acceptance(WAIT).await;
    if let Some(served) = &served {
        if served.lock().expect("cell").is_none() {
            return None;
        }
    }
    // The user types what the phone shows — if it shows anything.
    let code = match shown {
        Ok(Some(code)) => code,
        Ok(None) => return Some("phone shows no code".to_owned()),
        Err(error) => return Some(error_class(&error)),
    };
    if !verified.code_matches(&code) {
        return Some("codes differ: the user does not confirm".to_owned());
    }
    assert!(
        same_keys,
        "{}: the phone's code confirms a claim with other keys",
        mutation.label
    );
    let (device, code_secret) = nas.confirm(&verified, &code).await.expect("confirm");
    assert_eq!(device.device_id, phone.device_id(), "{}", mutation.label);
    let served =
        (route == CONFIRMATION).then(|| serve_mutated(proxy, CONFIRMATION, None, mutation));
    let confirmed = phone.wait_for_confirmation(WAIT).await;
    if let Some(served) = &served {
        if served.lock().expect("cell").is_none() {
            return None;
        }
    }
    let now = approvd_client::transport::unix_now();
    let outcome = match confirmed {
        Ok(true) => {
            assert_eq!(
                phone.offline_code(now),
                Some(approvd_proto::totp::code_at(&code_secret.0, now)),
                "{}: the phone took an offline-code secret the NAS did not send",
                mutation.label
            );
            "paired with the genuine keys and code secret".to_owned()
        }
        Ok(false) => "no confirmation".to_owned(),
        Err(error) => {
            // Nothing was lost: the genuine confirmation still completes the pairing.
            assert!(phone.wait_for_confirmation(WAIT).await.expect("retry"));
            format!("{} (the genuine one then completes)", error_class(&error))
        }
    };
    Some(outcome)
}

#[tokio::test]
async fn a_malicious_relay_never_pairs_other_keys_through_any_rewritten_pairing_message() {
    let (_relay, proxy) = malicious_relay().await;
    let nas = nas_behind(&proxy, &approvd_proto::generate_signing_key());
    let other_nas = nas_behind(&proxy, &approvd_proto::generate_signing_key());
    // Samples and donors: a whole pairing on this NAS, one on this NAS for another phone, and
    // one on another NAS.
    let _ = paired(&nas, "alice", "first").await;
    let own = [CLAIM, ACCEPTANCE, CONFIRMATION].map(|route| recorded(&proxy, route));
    let _ = paired(&nas, "bob", "second").await;
    let second = [CLAIM, ACCEPTANCE, CONFIRMATION].map(|route| recorded(&proxy, route));
    let _ = paired(&other_nas, "alice", "elsewhere").await;
    let foreign = [CLAIM, ACCEPTANCE, CONFIRMATION].map(|route| recorded(&proxy, route));
    for (index, (route, message, at_least)) in [
        (CLAIM, "the claim a NAS receives", 80),
        (ACCEPTANCE, "the acceptance a phone receives", 40),
        (CONFIRMATION, "the confirmation a phone receives", 40),
    ]
    .into_iter()
    .enumerate()
    {
        let donors = [
            (
                "another phone's pairing with this NAS",
                second[index].clone(),
            ),
            ("a pairing with another NAS", foreign[index].clone()),
        ];
        let mut tally = Tally::default();
        for mutation in mutations(&own[index], &donors) {
            proxy.disarm();
            let outcome = pairing_under(&nas, &proxy, route, &mutation).await;
            if let Some(outcome) = outcome {
                tally.count(outcome);
            }
        }
        tally.report(message, at_least);
    }
}

#[tokio::test]
async fn a_malicious_relay_s_delivery_report_changes_nothing_the_nas_decides() {
    // The answer to creating a challenge is the relay's own report (who was pushed): a lie can
    // only mislead about delivery. Whatever it says, the NAS keeps its own record of the
    // challenge, and the phone's genuine answer — and nothing else — decides it.
    let (_relay, proxy) = malicious_relay().await;
    let nas = nas_behind(&proxy, &approvd_proto::generate_signing_key());
    let (phone, device) = paired(&nas, "alice", "alice's phone").await;
    let (_tablet, other_device) = paired(&nas, "alice", "alice's tablet").await;
    let alice = [device.clone(), other_device.clone()];
    let _ = ask(&nas, &alice, "alice").await;
    let genuine = recorded(&proxy, "POST /v1/challenges");
    let received = only_request(&phone, WAIT).await;
    phone
        .submit(&phone.answer(&received, Decision::Deny, None))
        .await
        .expect("deny");
    let _ = ask(&nas, std::slice::from_ref(&device), "alice").await;
    let single = recorded(&proxy, "POST /v1/challenges");
    let received = only_request(&phone, WAIT).await;
    phone
        .submit(&phone.answer(&received, Decision::Deny, None))
        .await
        .expect("deny");
    let donors = [("the report of another challenge", single)];
    let mut tally = Tally::default();
    for mutation in mutations(&genuine, &donors) {
        let served = serve_mutated(
            &proxy,
            "POST /v1/challenges",
            Some(genuine.clone()),
            &mutation,
        );
        let sent = nas
            .request_approval(&alice, &login("alice"), true, MINUTE)
            .await;
        if served.lock().expect("cell").is_none() {
            continue;
        }
        let received = only_request(&phone, WAIT).await;
        let number = sent.as_ref().ok().and_then(|sent| sent.number.clone());
        let approve = phone.answer(&received, Decision::Approve, number.as_deref());
        phone.submit(&approve).await.expect("approve");
        match sent {
            Ok(sent) => {
                assert_eq!(sent.cid, received.entry.cid, "{}", mutation.label);
                let outcome = nas
                    .wait_for_verdict(&sent, &alice, WAIT)
                    .await
                    .expect("poll");
                assert_eq!(
                    outcome,
                    Some(Outcome::Approved {
                        device_id: device.device_id
                    }),
                    "{}",
                    mutation.label
                );
                tally.count("report ignored: the genuine approval decides");
            }
            Err(error) => tally.count(format!(
                "{} (the NAS has no challenge to decide)",
                error_class(&error)
            )),
        }
    }
    tally.report("the delivery report a NAS receives", 30);
}
