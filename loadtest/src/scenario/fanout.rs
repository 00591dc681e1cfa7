//! `fanout`: challenges to many push-enabled phones at once (up to the protocol's 10 targets
//! per challenge), as fast as the relay takes them; the FCM mock times every push's arrival
//! against its challenge's start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use approvd_proto::context::{LoginContext, LoginKind};
use approvd_proto::wire::{ChallengeCreated, Delivery};

use crate::fleet::Pair;
use crate::report::{error_kind, Recorder};

/// Post one challenge from `nas_pairs[0]`'s NAS to every device in `nas_pairs`; remembers its
/// start under its `cid` and counts the relay's delivery report.
pub async fn challenge(
    targets: &[Pair],
    starts: &Mutex<HashMap<String, Instant>>,
    recorder: &Recorder,
) {
    let nas = &targets[0].nas;
    let devices: Vec<_> = targets.iter().map(|pair| pair.device.clone()).collect();
    let context = LoginContext {
        user: "loadtest-user".to_owned(),
        service: "DSM".to_owned(),
        nas_label: "loadtest".to_owned(),
        client_ip: None,
        user_agent: None,
        location: None,
        kind: LoginKind::Action,
        action: Some("Fan-out test".to_owned()),
        time: approvd_client::transport::unix_now(),
    };
    let (request, sent) =
        match nas.build_challenge(&devices, &context, false, Duration::from_secs(60)) {
            Ok(built) => built,
            Err(error) => return recorder.error(error_kind("build", &error)),
        };
    let started = Instant::now();
    starts
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(sent.cid.to_string(), started);
    match nas
        .client()
        .call::<_, ChallengeCreated>("POST", "/v1/challenges", "", Some(&request))
        .await
    {
        Ok(Some(report)) => {
            recorder.latency("create", started.elapsed());
            for delivery in report.deliveries {
                if !matches!(delivery.delivery, Delivery::Pushed | Delivery::Pending) {
                    recorder.error(format!("delivery: {:?}", delivery.delivery));
                }
            }
        }
        Ok(None) => recorder.error("create: empty answer"),
        Err(error) => recorder.error(error_kind("create", &error)),
    }
}

/// Send `challenges` challenges of `per_challenge` targets each, `concurrency` at a time,
/// cycling over `pairs` (all paired to one NAS).
pub async fn run(
    pairs: Arc<Vec<Pair>>,
    challenges: usize,
    per_challenge: usize,
    concurrency: usize,
    starts: Arc<Mutex<HashMap<String, Instant>>>,
    recorder: Arc<Recorder>,
    sent: impl Fn() + Send + Sync + 'static,
) {
    let sent = Arc::new(sent);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (pairs, starts, recorder, next, sent) = (
                Arc::clone(&pairs),
                Arc::clone(&starts),
                Arc::clone(&recorder),
                Arc::clone(&next),
                Arc::clone(&sent),
            );
            tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if index >= challenges {
                        return;
                    }
                    let targets: Vec<Pair> = (0..per_challenge)
                        .map(|k| pairs[(index * per_challenge + k) % pairs.len()].clone())
                        .collect();
                    challenge(&targets, &starts, &recorder).await;
                    sent();
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
}
