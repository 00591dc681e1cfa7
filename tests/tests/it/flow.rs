//! The main flows against a real `approvd serve` process: pair → challenge → inbox → verdict →
//! NAS outcome; first answer wins; expiry; cancel; idempotent re-post; long-poll wakeups.

use std::time::{Duration, Instant};

use approvd_client::{Outcome, Phone};
use approvd_proto::wire::Delivery;
use approvd_proto::Decision;
use approvd_tests::{context, pair, push_registration, request_one, while_polling, RelayProcess};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn pair_challenge_inbox_verdict_round_trip() {
    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let (phone, device) = pair(&nas, "Alice's phone", Some(push_registration())).await;
    let (inbox_phone, inbox_device) = pair(&nas, "Alice's tablet", None).await;

    let sent = nas
        .request_approval(
            &[device.clone(), inbox_device.clone()],
            &context("alice"),
            true,
            Duration::from_secs(60),
        )
        .await
        .expect("challenge");
    let deliveries = approvd_tests::deliveries(&sent);
    assert_eq!(deliveries, vec![Delivery::Logged, Delivery::InboxOnly]);

    let received = phone.inbox(WAIT).await.expect("inbox");
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].context,
        context("alice").clone_with_time(received[0].context.time)
    );
    assert!(received[0].entry.number_matching);
    let number = sent.number.clone().expect("number matching draws a number");
    let verdict = phone.answer(&received[0], Decision::Approve, Some(&number));
    phone.submit(&verdict).await.expect("verdict accepted");

    let outcome = nas
        .wait_for_verdict(&sent, &[device.clone(), inbox_device], WAIT)
        .await
        .expect("poll")
        .expect("decided");
    assert_eq!(
        outcome,
        Outcome::Approved {
            device_id: device.device_id
        }
    );
    // The other device's inbox no longer holds the challenge.
    assert!(inbox_phone
        .inbox(Duration::ZERO)
        .await
        .expect("inbox")
        .is_empty());
    // The push carried only {v, cid}; the log shows the data and never the context or token.
    let log = relay.log();
    assert!(
        log.contains(&format!(r#"{{"cid":"{}","v":1}}"#, sent.cid)),
        "{log}"
    );
    for secret in ["alice", "198.51.100.23", "Lisbon", &"ab".repeat(32)] {
        assert!(!log.contains(secret), "relay log leaks {secret}");
    }
}

trait WithTime {
    fn clone_with_time(&self, time: u64) -> Self;
}

impl WithTime for approvd_proto::context::LoginContext {
    fn clone_with_time(&self, time: u64) -> Self {
        Self {
            time,
            ..self.clone()
        }
    }
}

#[tokio::test]
async fn deny_and_fraud_reach_the_nas() {
    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let (phone, device) = pair(&nas, "phone", None).await;
    for (decision, expected) in [
        (
            Decision::Deny,
            Outcome::Denied {
                device_id: device.device_id,
            },
        ),
        (
            Decision::Fraud,
            Outcome::FraudReported {
                device_id: device.device_id,
            },
        ),
    ] {
        let sent = request_one(&nas, &device, "bob").await;
        let received = phone.inbox(WAIT).await.expect("inbox");
        phone
            .submit(&phone.answer(&received[0], decision, None))
            .await
            .expect("verdict");
        let outcome = nas
            .wait_for_verdict(&sent, std::slice::from_ref(&device), WAIT)
            .await
            .expect("poll");
        assert_eq!(outcome, Some(expected));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_answer_wins_when_two_phones_answer_at_once() {
    let relay = RelayProcess::start(&[
        "--rate-challenges-per-device",
        "1000",
        "--rate-requests-per-caller",
        "100000",
    ]);
    let nas = relay.nas();
    let (mut phone_a, device_a) = pair(&nas, "a", None).await;
    let (mut phone_b, device_b) = pair(&nas, "b", None).await;
    // A hundred prompts in a minute is what the phone's prompt limit exists to stop.
    phone_a.set_prompt_limit(usize::MAX);
    phone_b.set_prompt_limit(usize::MAX);
    let devices = [device_a.clone(), device_b.clone()];
    for iteration in 0..100 {
        let sent = nas
            .request_approval(&devices, &context("carol"), false, Duration::from_secs(60))
            .await
            .expect("challenge");
        let inbox_a = phone_a.inbox(WAIT).await.expect("inbox a");
        let inbox_b = phone_b.inbox(WAIT).await.expect("inbox b");
        let verdict_a = phone_a.answer(&inbox_a[0], Decision::Approve, None);
        let verdict_b = phone_b.answer(&inbox_b[0], Decision::Deny, None);
        let (result_a, result_b) =
            tokio::join!(phone_a.submit(&verdict_a), phone_b.submit(&verdict_b));
        let accepted = [&result_a, &result_b]
            .iter()
            .filter(|result| result.is_ok())
            .count();
        assert_eq!(
            accepted, 1,
            "iteration {iteration}: {result_a:?} {result_b:?}"
        );
        let loser = if result_a.is_ok() {
            &result_b
        } else {
            &result_a
        };
        assert_eq!(
            loser.as_ref().err().and_then(|error| error.problem_name()),
            Some("already-decided"),
            "iteration {iteration}"
        );
        let outcome = nas
            .wait_for_verdict(&sent, &devices, WAIT)
            .await
            .expect("poll")
            .expect("decided");
        let expected = if result_a.is_ok() {
            Outcome::Approved {
                device_id: device_a.device_id,
            }
        } else {
            Outcome::Denied {
                device_id: device_b.device_id,
            }
        };
        assert_eq!(
            outcome, expected,
            "iteration {iteration}: the NAS sees the winner"
        );
    }
}

#[tokio::test]
async fn expired_challenges_answer_gone_then_disappear() {
    let relay = RelayProcess::start(&["--challenge-grace-secs", "2"]);
    let nas = relay.nas();
    let (phone, device) = pair(&nas, "phone", None).await;
    let sent = nas
        .request_approval(
            std::slice::from_ref(&device),
            &context("dave"),
            false,
            Duration::from_secs(2),
        )
        .await
        .expect("challenge");
    let received = phone.inbox(WAIT).await.expect("inbox");
    assert_eq!(received.len(), 1);
    // The NAS's long-poll ends at expiry with "expired", not at its 10 s wait.
    let started = Instant::now();
    let outcome = nas
        .wait_for_verdict(&sent, std::slice::from_ref(&device), WAIT)
        .await
        .expect("poll");
    assert_eq!(outcome, Some(Outcome::Expired));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let late = phone
        .submit(&phone.answer(&received[0], Decision::Approve, None))
        .await;
    assert_eq!(
        late.err()
            .and_then(|error| error.problem_name().map(str::to_owned))
            .as_deref(),
        Some("challenge-expired")
    );
    assert!(
        phone.inbox(Duration::ZERO).await.expect("inbox").is_empty(),
        "expired entries are hidden"
    );
    // After the grace period nothing is left.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let gone = nas.cancel(&sent.cid).await.expect_err("gone");
    assert_eq!(gone.problem_name(), Some("not-found"));
}

#[tokio::test]
async fn cancel_ends_the_challenge_for_everyone() {
    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let (phone, device) = pair(&nas, "phone", None).await;
    let sent = request_one(&nas, &device, "erin").await;
    let received = phone.inbox(WAIT).await.expect("inbox");
    // A NAS long-poll in flight is answered by the cancel.
    let poll = nas.wait_for_verdict(&sent, std::slice::from_ref(&device), WAIT);
    let (outcome, cancelled) = while_polling(poll, Duration::from_millis(300), async {
        nas.cancel(&sent.cid).await
    })
    .await;
    cancelled.expect("cancelled");
    assert_eq!(outcome.expect("poll"), Some(Outcome::Cancelled));
    assert!(phone.inbox(Duration::ZERO).await.expect("inbox").is_empty());
    let late = phone
        .submit(&phone.answer(&received[0], Decision::Approve, None))
        .await;
    assert_eq!(
        late.err()
            .and_then(|error| error.problem_name().map(str::to_owned))
            .as_deref(),
        Some("challenge-cancelled")
    );
    nas.cancel(&sent.cid)
        .await
        .expect("cancelling twice is fine");
}

#[tokio::test]
async fn identical_repost_is_idempotent_and_a_different_body_conflicts() {
    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let (_phone, device) = pair(&nas, "phone", None).await;
    let (request, _) = nas
        .build_challenge(
            std::slice::from_ref(&device),
            &context("frank"),
            false,
            Duration::from_secs(60),
        )
        .expect("build");
    let client = nas.client();
    let first: approvd_proto::wire::ChallengeCreated = client
        .call("POST", "/v1/challenges", "", Some(&request))
        .await
        .expect("created")
        .expect("body");
    let response = client
        .send(client.prepare(
            "POST",
            "/v1/challenges",
            "",
            Some(serde_json::to_vec(&request).expect("json")),
        ))
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 200, "re-post answers 200");
    let again: approvd_proto::wire::ChallengeCreated = response.json().await.expect("body");
    assert_eq!(again, first);
    let mut different = request.clone();
    different.number_matching = true;
    let conflict = client
        .call::<_, approvd_proto::wire::ChallengeCreated>(
            "POST",
            "/v1/challenges",
            "",
            Some(&different),
        )
        .await
        .expect_err("conflict");
    assert_eq!(conflict.problem_name(), Some("conflict"));
}

#[tokio::test]
async fn inbox_long_poll_is_woken_by_a_new_challenge() {
    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let (phone, device) = pair(&nas, "phone", None).await;
    let started = Instant::now();
    let poll = phone.inbox(Duration::from_secs(20));
    let (received, sent) = while_polling(poll, Duration::from_millis(500), async {
        nas.request_approval(
            std::slice::from_ref(&device),
            &context("gina"),
            false,
            Duration::from_secs(60),
        )
        .await
    })
    .await;
    let sent = sent.expect("challenge");
    let received = received.expect("inbox");
    assert_eq!(received[0].entry.cid, sent.cid);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken, not timed out: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn nas_long_poll_is_woken_by_the_verdict_and_times_out_with_204() {
    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let (phone, device) = pair(&nas, "phone", None).await;
    let sent = request_one(&nas, &device, "hank").await;
    let started = Instant::now();
    assert_eq!(
        nas.wait_for_verdict(&sent, std::slice::from_ref(&device), Duration::from_secs(1))
            .await
            .expect("poll"),
        None,
        "204 while pending"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    let started = Instant::now();
    let poll = nas.wait_for_verdict(
        &sent,
        std::slice::from_ref(&device),
        Duration::from_secs(20),
    );
    let (outcome, answered) = while_polling(poll, Duration::from_millis(500), async {
        let received = phone.inbox(WAIT).await.expect("inbox");
        phone
            .submit(&phone.answer(&received[0], Decision::Approve, None))
            .await
    })
    .await;
    answered.expect("verdict");
    assert_eq!(
        outcome.expect("poll"),
        Some(Outcome::Approved {
            device_id: device.device_id
        })
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_phone_that_enrolls_with_an_expired_uri_is_stopped_locally() {
    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let mut uri = nas
        .start_pairing("nas", "alice", Duration::from_secs(60))
        .await
        .expect("slot");
    uri.expires_at = 1;
    let error = Phone::enroll(&uri, "phone", "ios", None)
        .await
        .expect_err("expired");
    assert!(
        matches!(error, approvd_client::ClientError::Verification(_)),
        "{error}"
    );
}
