//! `roundtrip`: full approvals. A NAS signs and posts a challenge; the phone learns of it (its
//! held inbox long-poll answers, or the FCM mock's push wakes it and it fetches its inbox),
//! verifies and decrypts it, signs an approval with the number the login page shows; the NAS's
//! held verdict poll returns and the NAS judges the verdict. Closed loop (`--concurrency`
//! approvals in flight) or open loop (`--rate` starts per second, latency counted from the
//! scheduled start so a slow relay cannot hide its queue).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use approvd_client::{Outcome, SentChallenge};
use approvd_proto::context::{LoginContext, LoginKind};
use approvd_proto::wire::ChallengeCreated;
use approvd_proto::{Cid, Decision};
use tokio::sync::mpsc;

use crate::fleet::Pair;
use crate::report::{error_kind, Recorder};

/// How phones learn of a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Learn {
    /// A held inbox long-poll (`GET /v1/inbox?wait=`).
    Poll,
    /// An FCM push to the local mock, then an inbox fetch.
    Push,
}

/// What the NAS side and the phone side share about each live challenge.
#[derive(Debug, Default)]
pub struct Shared {
    /// The number the login page shows (the simulated user types it on the phone).
    numbers: Mutex<HashMap<Cid, String>>,
    /// When the phone sent its verdict (for the verdict-to-NAS latency).
    submitted: Mutex<HashMap<Cid, Instant>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn login(user: &str) -> LoginContext {
    LoginContext {
        user: user.to_owned(),
        service: "DSM".to_owned(),
        nas_label: "loadtest".to_owned(),
        client_ip: Some("198.51.100.23".to_owned()),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) loadtest".to_owned()),
        location: Some("Berlin, DE".to_owned()),
        kind: LoginKind::Login,
        action: None,
        time: approvd_client::transport::unix_now(),
    }
}

/// Answer every challenge the phone was shown: approve with the login page's number.
async fn answer_all(
    pair: &Pair,
    received: Vec<approvd_client::ReceivedChallenge>,
    shared: &Shared,
    recorder: &Recorder,
) {
    for challenge in received {
        let cid = challenge.entry.cid;
        let number = lock(&shared.numbers).get(&cid).cloned();
        let verdict = pair
            .phone
            .answer(&challenge, Decision::Approve, number.as_deref());
        lock(&shared.submitted).insert(cid, Instant::now());
        if let Err(error) = pair.phone.submit(&verdict).await {
            recorder.error(error_kind("verdict", &error));
        }
    }
}

/// The phone's side for the whole run: learn of challenges and answer them.
pub async fn phone(
    pair: Pair,
    learn: Learn,
    mut pushes: Option<mpsc::UnboundedReceiver<String>>,
    shared: Arc<Shared>,
    recorder: Arc<Recorder>,
) {
    loop {
        let wait = match (learn, pushes.as_mut()) {
            (Learn::Push, Some(pushes)) => {
                if pushes.recv().await.is_none() {
                    return;
                }
                while pushes.try_recv().is_ok() {}
                Duration::ZERO
            }
            _ => Duration::from_secs(20),
        };
        match pair.phone.inbox(wait).await {
            Ok(received) => answer_all(&pair, received, &shared, &recorder).await,
            Err(error) => {
                recorder.error(error_kind("inbox", &error));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One approval from `started` (the scheduled start in an open loop).
pub async fn approval(pair: &Pair, shared: &Shared, recorder: &Recorder, started: Instant) {
    let devices = std::slice::from_ref(&pair.device);
    let built = pair.nas.build_challenge(
        devices,
        &login("loadtest-user"),
        true,
        Duration::from_secs(60),
    );
    let (request, sent) = match built {
        Ok(built) => built,
        Err(error) => return recorder.error(error_kind("build", &error)),
    };
    let cid = sent.cid;
    if let Some(number) = &sent.number {
        lock(&shared.numbers).insert(cid, number.clone());
    }
    let outcome = async {
        let report: Option<ChallengeCreated> = pair
            .nas
            .client()
            .call("POST", "/v1/challenges", "", Some(&request))
            .await
            .map_err(|error| error_kind("create", &error))?;
        let report = report.ok_or("create: empty answer")?;
        recorder.latency("create", started.elapsed());
        let sent = SentChallenge { report, ..sent };
        loop {
            match pair
                .nas
                .wait_for_verdict(&sent, devices, Duration::from_secs(10))
                .await
            {
                Ok(Some(outcome)) => return Ok(outcome),
                Ok(None) if started.elapsed() < Duration::from_secs(60) => continue,
                Ok(None) => return Err("verdict poll: no verdict within 60 s".to_owned()),
                Err(error) => return Err(error_kind("verdict poll", &error)),
            }
        }
    }
    .await;
    let returned = Instant::now();
    lock(&shared.numbers).remove(&cid);
    let submitted = lock(&shared.submitted).remove(&cid);
    match outcome {
        Ok(Outcome::Approved { .. }) => {
            recorder.latency("roundtrip", returned - started);
            if let Some(submitted) = submitted {
                recorder.latency(
                    "verdict_to_nas",
                    returned.saturating_duration_since(submitted),
                );
            }
        }
        Ok(other) => recorder.error(format!("outcome: {other:?}")),
        Err(kind) => recorder.error(kind),
    }
}

/// Closed loop: `concurrency` workers, each starting its next approval when the last ends.
pub async fn closed_loop(
    pairs: Arc<Vec<Pair>>,
    concurrency: usize,
    until: Instant,
    shared: Arc<Shared>,
    recorder: Arc<Recorder>,
) {
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (pairs, shared, recorder) = (
                Arc::clone(&pairs),
                Arc::clone(&shared),
                Arc::clone(&recorder),
            );
            tokio::spawn(async move {
                let mut next = worker;
                while Instant::now() < until {
                    let pair = &pairs[next % pairs.len()];
                    next += concurrency;
                    approval(pair, &shared, &recorder, Instant::now()).await;
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
}

/// Open loop: start `rate` approvals per second whatever the relay's speed.
pub async fn open_loop(
    pairs: Arc<Vec<Pair>>,
    rate: f64,
    until: Instant,
    shared: Arc<Shared>,
    recorder: Arc<Recorder>,
) {
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut scheduled = Instant::now();
    let mut next = 0;
    let mut running = tokio::task::JoinSet::new();
    while scheduled < until {
        tokio::time::sleep_until(scheduled.into()).await;
        let (pairs, shared, recorder) = (
            Arc::clone(&pairs),
            Arc::clone(&shared),
            Arc::clone(&recorder),
        );
        let index = next % pairs.len();
        running.spawn(async move {
            approval(&pairs[index], &shared, &recorder, scheduled).await;
        });
        next += 1;
        scheduled += interval;
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}
