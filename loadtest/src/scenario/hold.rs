//! `hold`: many idle long-polls at once — half inbox polls (phones waiting for a challenge),
//! half verdict polls (NASes waiting for an answer) — held for a while, then all woken by real
//! events (a challenge for each waiting phone, an approval of each awaited challenge). Reads
//! the relay's memory and open files while they are held and after they end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use approvd_proto::wire::{ChallengeCreated, Inbox, SignedVerdict};
use approvd_proto::Decision;

use crate::fleet::Pair;
use crate::report::{error_kind, Recorder};

/// Post one challenge from the pair's NAS to its phone; its `cid`.
pub async fn challenge(pair: &Pair, recorder: &Recorder) -> Option<approvd_proto::Cid> {
    let context = approvd_proto::context::LoginContext {
        user: "loadtest-user".to_owned(),
        service: "SSH".to_owned(),
        nas_label: "loadtest".to_owned(),
        client_ip: None,
        user_agent: None,
        location: None,
        kind: approvd_proto::context::LoginKind::Action,
        action: Some("Hold test".to_owned()),
        time: approvd_client::transport::unix_now(),
    };
    let devices = std::slice::from_ref(&pair.device);
    let (request, sent) = pair
        .nas
        .build_challenge(devices, &context, false, Duration::from_secs(110))
        .ok()?;
    match pair
        .nas
        .client()
        .call::<_, ChallengeCreated>("POST", "/v1/challenges", "", Some(&request))
        .await
    {
        Ok(_) => Some(sent.cid),
        Err(error) => {
            recorder.error(error_kind("create", &error));
            None
        }
    }
}

/// A held inbox poll of `pair`'s phone; records its time from `woken` when it answers.
pub async fn inbox_poll(
    pair: Pair,
    wait_secs: u64,
    wake: Arc<tokio::sync::watch::Receiver<Option<Instant>>>,
    recorder: Arc<Recorder>,
) {
    let answer = pair
        .phone
        .client()
        .call::<(), Inbox>("GET", "/v1/inbox", &format!("wait={wait_secs}"), None)
        .await;
    finish(
        answer.map(|inbox| inbox.is_some()),
        "inbox poll",
        &wake,
        &recorder,
    );
}

/// A held verdict poll by `pair`'s NAS on `cid`.
pub async fn verdict_poll(
    pair: Pair,
    cid: approvd_proto::Cid,
    wait_secs: u64,
    wake: Arc<tokio::sync::watch::Receiver<Option<Instant>>>,
    recorder: Arc<Recorder>,
) {
    let answer = pair
        .nas
        .client()
        .call::<(), SignedVerdict>(
            "GET",
            &format!("/v1/challenges/{cid}/verdict"),
            &format!("wait={wait_secs}"),
            None,
        )
        .await;
    finish(
        answer.map(|verdict| verdict.is_some()),
        "verdict poll",
        &wake,
        &recorder,
    );
}

fn finish(
    answer: Result<bool, approvd_client::ClientError>,
    step: &str,
    wake: &tokio::sync::watch::Receiver<Option<Instant>>,
    recorder: &Recorder,
) {
    match (answer, *wake.borrow()) {
        (Ok(true), Some(woken)) => recorder.latency("woken", woken.elapsed()),
        (Ok(true), None) => recorder.error(format!("{step}: answered before the wake-up")),
        (Ok(false), _) => recorder.error(format!("{step}: wait ran out (raise --wait-secs)")),
        (Err(error), _) => recorder.error(error_kind(step, &error)),
    }
}

/// Wake every verdict poll on `cid`: the phone approves it.
pub async fn approve(pair: &Pair, recorder: &Recorder) {
    match pair.phone.inbox(Duration::ZERO).await {
        Ok(received) => {
            for challenge in received {
                let verdict = pair.phone.answer(&challenge, Decision::Approve, None);
                if let Err(error) = pair.phone.submit(&verdict).await {
                    recorder.error(error_kind("verdict", &error));
                }
            }
        }
        Err(error) => recorder.error(error_kind("inbox", &error)),
    }
}

/// Probe `/healthz` once; its latency.
pub async fn health(http: &reqwest::Client, relay: &str) -> Result<Duration, String> {
    let started = Instant::now();
    match http.get(format!("{relay}/healthz")).send().await {
        Ok(response) if response.status().is_success() => Ok(started.elapsed()),
        Ok(response) => Err(format!("healthz: {}", response.status().as_u16())),
        Err(_) => Err("healthz: unreachable".to_owned()),
    }
}
