//! Many stateless replicas on one Redis (standalone and Cluster): any replica serves any
//! request, wakeups cross replicas, first-answer-wins holds across replicas, rate limits are
//! shared, Redis outages give 503 and heal by themselves, a killed replica loses nothing, and
//! every key is gone after expiry + grace.

use std::time::{Duration, Instant};

use approvd_client::{Nas, Outcome, PairedDevice, Phone};
use approvd_proto::Decision;
use approvd_tests::redis::{RedisCluster, RedisServer};
use approvd_tests::{
    context, eventually, request_one, shared_handle_keys, while_polling, RelayProcess, TempDir,
};

const WAIT: Duration = Duration::from_secs(10);

/// Two replicas on the same store (args select it), sharing one handle key file.
fn replicas(store_args: &[&str], extra: &[&str]) -> (RelayProcess, RelayProcess, TempDir) {
    let dir = TempDir::new("replicas");
    let keys = shared_handle_keys(&dir);
    let mut args: Vec<&str> = vec!["--store", "redis", "--handle-key-file", &keys];
    args.extend_from_slice(store_args);
    args.extend_from_slice(extra);
    (RelayProcess::start(&args), RelayProcess::start(&args), dir)
}

/// Pair a phone whose NAS talks to `nas_relay` while the phone talks to `phone_relay`.
async fn pair_across(nas: &Nas, phone_relay: &RelayProcess, name: &str) -> (Phone, PairedDevice) {
    let mut uri = nas
        .start_pairing("nas", "alice", Duration::from_secs(120))
        .await
        .expect("slot on A");
    uri.relay = phone_relay.url.clone();
    let claim_poll = nas.wait_for_claim(&uri, WAIT);
    let (claimed, enrolled) = while_polling(claim_poll, Duration::from_millis(200), async {
        Phone::enroll(&uri, name, "ios", None).await
    })
    .await;
    let mut phone = enrolled.expect("claim on B");
    let verified = claimed.expect("poll on A").expect("woken across replicas");
    let code = phone
        .wait_for_acceptance(WAIT)
        .await
        .expect("poll on B")
        .expect("accepted on A");
    let (device, _) = nas.confirm(&verified, &code).await.expect("confirm on A");
    assert!(phone.wait_for_confirmation(WAIT).await.expect("poll on B"));
    (phone, device)
}

async fn cross_replica_flow(a: &RelayProcess, b: &RelayProcess) {
    let nas_key = approvd_proto::generate_signing_key();
    let nas_a = Nas::new(&a.url, nas_key.clone()).expect("nas on A");
    let nas_b = Nas::new(&b.url, nas_key).expect("same NAS on B");
    let (mut phone_1, device_1) = pair_across(&nas_a, b, "one").await;
    let (mut phone_2, device_2) = pair_across(&nas_a, a, "two").await;
    // A hundred prompts in a minute is what the phone's prompt limit exists to stop.
    phone_1.set_prompt_limit(usize::MAX);
    phone_2.set_prompt_limit(usize::MAX);
    let devices = [device_1.clone(), device_2.clone()];

    // An inbox long-poll on B is woken by a challenge created on A.
    let started = Instant::now();
    let poll = phone_1.inbox(Duration::from_secs(20));
    let (received, sent) = while_polling(poll, Duration::from_millis(300), async {
        request_one(&nas_a, &device_1, "x").await
    })
    .await;
    assert_eq!(received.expect("inbox on B")[0].entry.cid, sent.cid);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken across replicas: {:?}",
        started.elapsed()
    );

    // The NAS long-polls on A; the phone answers on B; A is woken.
    let started = Instant::now();
    let verdict_poll = nas_a.wait_for_verdict(&sent, &devices, Duration::from_secs(20));
    let (outcome, answered) = while_polling(verdict_poll, Duration::from_millis(300), async {
        let received = phone_1.inbox(Duration::ZERO).await.expect("inbox");
        phone_1
            .submit(&phone_1.answer(&received[0], Decision::Approve, None))
            .await
    })
    .await;
    answered.expect("verdict on B");
    assert_eq!(
        outcome.expect("poll on A"),
        Some(Outcome::Approved {
            device_id: device_1.device_id
        })
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Both wakeups came through Redis pub/sub, and their latency was measured.
    for (relay, name) in [(a, "A"), (b, "B")] {
        let woken = relay
            .metric("approvd_longpoll_wakeups_total{source=\"redis\"}")
            .await;
        let timed = relay
            .metric("approvd_longpoll_wake_latency_seconds_count{source=\"redis\"}")
            .await;
        assert!(
            woken >= Some(1.0) && timed >= Some(1.0),
            "{name}: {woken:?} {timed:?}"
        );
    }

    // Two phones answer the same challenge on different replicas at the same instant.
    for iteration in 0..100 {
        let nas = if iteration % 2 == 0 { &nas_a } else { &nas_b };
        let sent = nas
            .request_approval(&devices, &context("y"), false, Duration::from_secs(60))
            .await
            .expect("challenge");
        let entry_1 = phone_1.inbox(WAIT).await.expect("inbox 1").remove(0);
        let entry_2 = phone_2.inbox(WAIT).await.expect("inbox 2").remove(0);
        let verdict_1 = phone_1.answer(&entry_1, Decision::Approve, None);
        let verdict_2 = phone_2.answer(&entry_2, Decision::Deny, None);
        let (result_1, result_2) =
            tokio::join!(phone_1.submit(&verdict_1), phone_2.submit(&verdict_2));
        assert_eq!(
            [&result_1, &result_2]
                .iter()
                .filter(|result| result.is_ok())
                .count(),
            1,
            "iteration {iteration}: {result_1:?} {result_2:?}"
        );
        let outcome = nas_b
            .wait_for_verdict(&sent, &devices, WAIT)
            .await
            .expect("poll")
            .expect("decided");
        let expected = if result_1.is_ok() {
            Outcome::Approved {
                device_id: device_1.device_id,
            }
        } else {
            Outcome::Denied {
                device_id: device_2.device_id,
            }
        };
        assert_eq!(outcome, expected, "iteration {iteration}");
    }
}

const FAST_LIMITS: [&str; 4] = [
    "--rate-challenges-per-device",
    "100000",
    "--rate-requests-per-caller",
    "100000",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_on_standalone_redis_serve_one_flow() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (a, b, _dir) = replicas(&["--redis-url", &url], &FAST_LIMITS);
    cross_replica_flow(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_on_a_redis_cluster_serve_one_flow() {
    let cluster = RedisCluster::start();
    let seeds = cluster.seeds().join(",");
    let (a, b, _dir) = replicas(&["--redis-cluster", &seeds], &FAST_LIMITS);
    cross_replica_flow(&a, &b).await;
    // Keys of one challenge share a slot; all of them carry a TTL.
    for key in cluster.scan("approvd:*") {
        let node = cluster
            .nodes
            .iter()
            .find(|node| node.cli(&["EXISTS", &key]).trim() == "1");
        if let Some(node) = node {
            let ttl: i64 = node.cli(&["PTTL", &key]).trim().parse().unwrap_or(-3);
            assert!(ttl > 0 || ttl == -2, "{key} has no TTL ({ttl})");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_per_device_limit_holds_across_replicas() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (a, b, _dir) = replicas(
        &["--redis-url", &url],
        &["--rate-challenges-per-device", "4"],
    );
    let nas_key = approvd_proto::generate_signing_key();
    let nas_a = Nas::new(&a.url, nas_key.clone()).expect("nas");
    let nas_b = Nas::new(&b.url, nas_key).expect("nas");
    let (_phone, device) = pair_across(&nas_a, &b, "victim").await;
    for index in 0..4 {
        let nas = if index % 2 == 0 { &nas_a } else { &nas_b };
        request_one(nas, &device, "x").await;
    }
    for nas in [&nas_a, &nas_b] {
        let error = nas
            .request_approval(
                std::slice::from_ref(&device),
                &context("x"),
                false,
                Duration::from_secs(60),
            )
            .await
            .expect_err("limited");
        assert_eq!(
            error.problem_name(),
            Some("rate-limited"),
            "N replicas must not mean N times the limit"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_outage_gives_503_and_heals_without_a_restart() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let (a, _b, _dir) = replicas(&["--redis-url", &url, "--redis-timeout-ms", "500"], &[]);
    let nas = a.nas();
    let (phone, device) = pair_across(&nas, &a, "phone").await;
    let sent = request_one(&nas, &device, "x").await;

    // Held long-polls end promptly with 503 when Redis dies (not at their 20 s wait).
    let started = Instant::now();
    let poll = nas.wait_for_verdict(
        &sent,
        std::slice::from_ref(&device),
        Duration::from_secs(20),
    );
    let (outcome, ()) = while_polling(poll, Duration::from_millis(500), async {
        redis.kill();
    })
    .await;
    let error = outcome.expect_err("503");
    assert_eq!(error.problem_name(), Some("unavailable"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        a.get("/readyz").await.status().as_u16(),
        503,
        "readiness reflects Redis"
    );
    let store_errors = a.metric("approvd_store_errors_total").await.unwrap_or(0.0);
    assert!(
        store_errors >= 2.0,
        "the failed poll and readiness check are counted: {store_errors}"
    );
    assert_eq!(a.metric("approvd_store_up").await, Some(0.0));
    assert!(
        a.metric("approvd_store_errors_total{operation=\"ping\"}")
            .await
            >= Some(1.0),
        "errors are counted by operation"
    );

    // Redis comes back (empty): readiness recovers by itself, and a new flow works; the handle
    // lives in the NAS's records, not in Redis, so no re-pairing is needed.
    redis.restart();
    eventually(
        "readyz did not recover",
        Duration::from_secs(15),
        || async { a.get("/readyz").await.status().as_u16() == 200 },
    )
    .await;
    assert_eq!(a.metric("approvd_store_up").await, Some(1.0));
    let sent = request_one(&nas, &device, "y").await;
    let received = phone.inbox(WAIT).await.expect("inbox").remove(0);
    phone
        .submit(&phone.answer(&received, Decision::Approve, None))
        .await
        .expect("verdict");
    let outcome = nas
        .wait_for_verdict(&sent, std::slice::from_ref(&device), WAIT)
        .await
        .expect("poll");
    assert_eq!(
        outcome,
        Some(Outcome::Approved {
            device_id: device.device_id
        })
    );
}

/// D3 (issue 27): Redis restarts empty while a NAS holds a verdict poll. The challenge had
/// ~58 s left, so it was lost, not expired: the poll says `not-found`, as a fresh poll does,
/// never `challenge-expired` (which the NAS would show its user as "you were too slow").
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_challenge_lost_in_a_redis_restart_reads_as_unknown_never_as_expired() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let (a, _b, _dir) = replicas(&["--redis-url", &url, "--redis-timeout-ms", "500"], &[]);
    let nas = a.nas();
    let (_phone, device) = pair_across(&nas, &a, "phone").await;
    let sent = request_one(&nas, &device, "x").await;
    let poll = nas.wait_for_verdict(
        &sent,
        std::slice::from_ref(&device),
        Duration::from_secs(20),
    );
    let (outcome, ()) = while_polling(poll, Duration::from_millis(500), async {
        redis.restart();
    })
    .await;
    let error = outcome.expect_err("the challenge is gone");
    assert_eq!(error.problem_name(), Some("not-found"), "{error}");
    let fresh = nas
        .wait_for_verdict(&sent, std::slice::from_ref(&device), Duration::ZERO)
        .await
        .expect_err("still gone");
    assert_eq!(fresh.problem_name(), Some("not-found"), "{fresh}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_replica_loses_nothing() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (mut a, b, _dir) = replicas(&["--redis-url", &url], &[]);
    let nas_key = approvd_proto::generate_signing_key();
    let nas_a = Nas::new(&a.url, nas_key.clone()).expect("nas");
    let nas_b = Nas::new(&b.url, nas_key).expect("nas");
    let (phone, device) = pair_across(&nas_a, &b, "phone").await;
    let sent = request_one(&nas_a, &device, "x").await;
    let held = nas_a.wait_for_verdict(
        &sent,
        std::slice::from_ref(&device),
        Duration::from_secs(20),
    );
    let (lost, ()) = while_polling(held, Duration::from_millis(300), async {
        a.kill();
    })
    .await;
    assert!(lost.is_err(), "the poll on the killed replica failed");
    let received = phone.inbox(WAIT).await.expect("inbox on B").remove(0);
    phone
        .submit(&phone.answer(&received, Decision::Approve, None))
        .await
        .expect("verdict on B");
    let outcome = nas_b
        .wait_for_verdict(&sent, std::slice::from_ref(&device), WAIT)
        .await
        .expect("re-poll on B");
    assert_eq!(
        outcome,
        Some(Outcome::Approved {
            device_id: device.device_id
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_of_a_challenge_outlives_expiry_plus_grace() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (a, _b, _dir) = replicas(&["--redis-url", &url, "--challenge-grace-secs", "1"], &[]);
    let nas = a.nas();
    let (phone, device) = pair_across(&nas, &a, "phone").await;
    let sent = nas
        .request_approval(
            std::slice::from_ref(&device),
            &context("x"),
            false,
            Duration::from_secs(2),
        )
        .await
        .expect("challenge");
    assert_eq!(phone.inbox(WAIT).await.expect("inbox").len(), 1);
    let pattern = format!("*{}*", sent.cid);
    assert!(
        !redis
            .cli(&["--scan", "--pattern", &pattern])
            .trim()
            .is_empty(),
        "keys exist while live"
    );
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        redis.cli(&["--scan", "--pattern", &pattern]).trim(),
        "",
        "keys left after expiry + grace"
    );
    assert_eq!(
        redis
            .cli(&[
                "--scan",
                "--pattern",
                &format!("approvd:inbox:{{{}}}", device.device_id)
            ])
            .trim(),
        "",
        "inbox key gone"
    );
    // Every remaining key has a TTL.
    for key in redis.cli(&["--scan", "--pattern", "approvd:*"]).lines() {
        let ttl: i64 = redis.cli(&["PTTL", key]).trim().parse().unwrap_or(-3);
        assert!(ttl > 0 || ttl == -2, "{key} has no TTL ({ttl})");
    }
}
