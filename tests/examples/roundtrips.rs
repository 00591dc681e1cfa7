//! A quick local loop (not the load test): start `approvd serve` (memory store), pair phones,
//! then run full round trips — NAS creates a challenge, phone fetches its inbox, verifies, signs
//! and submits a verdict, NAS long-polls and verifies the outcome — and print the rate and the
//! median round-trip time. Build the binaries first in the same profile:
//!
//!     cargo build --release --workspace --bins
//!     cargo run --release -p approvd-tests --example roundtrips -- [SECONDS] [CONCURRENCY] [memory|redis]
//!
//! `redis` starts a private `redis-server` on a free port and runs the relay on it.

use std::time::{Duration, Instant};

use approvd_client::Outcome;
use approvd_proto::Decision;
use approvd_tests::{pair, request_one, RelayProcess};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let concurrency: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let store = args.next().unwrap_or_else(|| "memory".to_owned());
    let redis = (store == "redis").then(approvd_tests::redis::RedisServer::start);
    let redis_url = redis
        .as_ref()
        .map(|server| server.url())
        .unwrap_or_default();
    let mut relay_args = vec![
        "--rate-challenges-per-device",
        "1000000",
        "--rate-requests-per-caller",
        "1000000",
        "--log",
        "warn",
    ];
    if redis.is_some() {
        relay_args.extend(["--store", "redis", "--redis-url", &redis_url]);
    }
    let relay = RelayProcess::start(&relay_args);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut loops = Vec::new();
    for _ in 0..concurrency {
        let nas = relay.nas();
        let (phone, device) = pair(&nas, "bench", None).await;
        loops.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let started = Instant::now();
                let sent = request_one(&nas, &device, "bench").await;
                let received = phone.inbox(Duration::from_secs(5)).await.expect("inbox");
                phone
                    .submit(&phone.answer(&received[0], Decision::Approve, None))
                    .await
                    .expect("verdict");
                let outcome = nas
                    .wait_for_verdict(&sent, std::slice::from_ref(&device), Duration::from_secs(5))
                    .await
                    .expect("poll");
                assert!(matches!(outcome, Some(Outcome::Approved { .. })));
                latencies.push(started.elapsed());
            }
            latencies
        }));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    for handle in loops {
        latencies.extend(handle.await.expect("loop"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    println!(
        "{store}: {} round trips in {:.1} s with {} loop(s): {:.0} round trips/s, median {:.2} ms, p99 {:.2} ms \
         (each = 4 signed HTTP requests + HPKE seal/open + 4 Ed25519 signatures checked end to end)",
        latencies.len(),
        elapsed,
        concurrency,
        latencies.len() as f64 / elapsed,
        median.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0
    );
}
