//! The NAS side under attack (issue 26, `../shared/reviews/2026-12-02-attack-nas-side.md`):
//! each test replays a finding against the real agent and relay and shows it no longer works —
//! status polls that spent the NAS's relay budget (H1), a state lock others could hold (H2), a
//! second agent taking the socket (L2), a cancel forgotten at restart (M5), a relay that
//! redirects the agent or floods it (M8).

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use approvd_agent::api::{AccountName, ApprovalRequest, ProblemType, RequestStatus};
use approvd_client::NasHome;
use approvd_proto::Decision;
use approvd_tests::agent::{call, start_agent};
use approvd_tests::{approvd_binary, pair_for, RelayProcess, TempDir};

const WAIT: Duration = Duration::from_secs(10);

fn alice() -> AccountName {
    AccountName::parse("alice").expect("name")
}

/// A NAS home on `relay` with alice's phone paired and recorded.
async fn alices_nas(
    relay: &RelayProcess,
    dir: &TempDir,
) -> (std::path::PathBuf, approvd_client::Phone) {
    let path = dir.0.join("nas");
    let home = NasHome::init(&path, &relay.url, "home-nas").expect("init");
    let (phone, device, secret) =
        pair_for(&home.nas().expect("nas"), "alice", "Alice's", None).await;
    home.add_device("alice", device, &secret).expect("recorded");
    (path, phone)
}

/// H1: before, each status read was one signed relay call under the NAS key, so ~120 reads a
/// minute (here 30) locked every sign-in of every user out. Now 400 reads of one request, at
/// `wait=0` and held, cost one long-poll at a time: a new sign-in is still sent and approved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_status_polls_share_one_relay_poll_and_never_spend_the_nas_budget() {
    let relay = RelayProcess::start(&["--rate-requests-per-caller", "30"]);
    let dir = TempDir::new("h1-budget");
    let (path, phone) = alices_nas(&relay, &dir).await;
    let agent_process = start_agent(&path);
    let agent = agent_process.client();
    let stale = agent
        .create_request(&ApprovalRequest::sign_in(alice()))
        .await
        .expect("created");
    let held: Vec<_> = (0..20)
        .map(|_| {
            let agent = agent.clone();
            tokio::spawn(async move { agent.request_status(&stale.request_id, 3).await })
        })
        .collect();
    for _ in 0..400 {
        let status = agent
            .request_status(&stale.request_id, 0)
            .await
            .expect("status");
        assert_eq!(status, RequestStatus::Pending);
    }
    for poll in held {
        let status = poll.await.expect("task").expect("held status");
        assert_eq!(status, RequestStatus::Pending);
    }
    // Another sign-in now: sent, delivered and approved as if nobody had polled.
    let fresh = agent
        .create_request(&ApprovalRequest::sign_in(alice()))
        .await
        .expect("a new request is not refused for the polls");
    let received = phone.inbox(WAIT).await.expect("inbox");
    let prompt = received
        .iter()
        .find(|prompt| prompt.challenge.cid == fresh.request_id)
        .expect("the new prompt");
    phone
        .submit(&phone.answer(prompt, Decision::Approve, fresh.number.as_deref()))
        .await
        .expect("approved");
    let outcome = agent
        .request_status(&fresh.request_id, 10)
        .await
        .expect("status");
    assert!(matches!(outcome, RequestStatus::Approved(_)), "{outcome:?}");
}

/// H2 and L2: the home is 0700 and its lock 0600, so no other account can open the lock; a
/// lock held anyway (here by the NAS's own user) makes state calls answer `503 state-busy`
/// within the lock deadline while everything else answers at once; a loose home and a second
/// agent on the same home are refused at startup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_a_held_state_lock_never_stalls_the_agent_and_one_agent_owns_a_home() {
    let relay = RelayProcess::start(&[]);
    let dir = TempDir::new("h2-lock");
    let (path, _phone) = alices_nas(&relay, &dir).await;
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o700);
    let agent_process = start_agent(&path);
    let agent = agent_process.client();
    agent.devices(&alice()).await.expect("devices");
    assert_eq!(mode(&path.join("devices.lock")), 0o600);
    assert_eq!(mode(&path.join("devices.json")), 0o600);

    let lock = std::fs::File::open(path.join("devices.lock")).expect("open the lock");
    lock.lock().expect("hold it");
    let started = std::time::Instant::now();
    let busy = agent.devices(&alice()).await.expect_err("busy");
    assert_eq!(busy.kind(), Some(ProblemType::StateBusy), "{busy}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    // Meanwhile the rest of the API answers at once, on the one worker.
    let (status, _) = call(&agent_process, "GET", "/openapi.json", None);
    assert_eq!(status, 200);
    let during = tokio::spawn({
        let agent = agent.clone();
        async move { agent.devices(&alice()).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let quick = std::time::Instant::now();
    let (status, _) = call(&agent_process, "GET", "/openapi.json", None);
    assert_eq!(status, 200);
    assert!(
        quick.elapsed() < Duration::from_secs(1),
        "a lock wait blocked the worker"
    );
    drop(lock);
    during
        .await
        .expect("task")
        .expect("served once the lock is free");

    // A second agent on this home is refused and the first keeps its socket.
    let second = std::process::Command::new(approvd_binary())
        .args(["agent", "--home"])
        .arg(&path)
        .output()
        .expect("second agent");
    assert_eq!(second.status.code(), Some(3));
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        said.contains("another agent serves this NAS home"),
        "{said}"
    );
    agent
        .devices(&alice())
        .await
        .expect("the first agent still answers");
    drop(agent_process);

    // A home others can enter is refused, naming the fix.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let loose = std::process::Command::new(approvd_binary())
        .args(["agent", "--home"])
        .arg(&path)
        .output()
        .expect("agent");
    assert_eq!(loose.status.code(), Some(3));
    let said = String::from_utf8_lossy(&loose.stderr);
    assert!(said.contains("chmod 700"), "{said}");
}

/// M5 / N-10: the agent's own cancel is on disk before the relay is told. Here the phone's
/// approval is on the relay before the cancel (the relay keeps it): after a restart the
/// request is still `cancelled` — never `approved`, never lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m5_a_cancel_stands_across_a_restart_whatever_the_relay_holds() {
    let relay = RelayProcess::start(&[]);
    let dir = TempDir::new("m5-cancel");
    let (path, phone) = alices_nas(&relay, &dir).await;
    let mut agent_process = start_agent(&path);
    let agent = agent_process.client();
    let created = agent
        .create_request(&ApprovalRequest::sign_in(alice()))
        .await
        .expect("created");
    let prompt = phone.inbox(WAIT).await.expect("inbox").remove(0);
    phone
        .submit(&phone.answer(&prompt, Decision::Approve, created.number.as_deref()))
        .await
        .expect("approved on the relay");
    // The caller cancels before it has read the answer (the relay may refuse the cancel).
    let _ = agent.cancel_request(&created.request_id).await;
    assert_eq!(
        agent
            .request_status(&created.request_id, 2)
            .await
            .expect("status"),
        RequestStatus::Cancelled
    );
    assert!(agent_process.terminate().success());
    let restarted = start_agent(&path);
    let status = restarted
        .client()
        .request_status(&created.request_id, 3)
        .await
        .expect("still known after the restart");
    assert_eq!(status, RequestStatus::Cancelled);
}

/// M8: a relay that redirects is not followed (the signed request never reaches the address
/// it names), and an answer larger than the SDK's cap is refused without being buffered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m8_a_relay_can_neither_redirect_the_nas_nor_flood_its_memory() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let target = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"entries\":[],\"more\":false}"))
        .mount(&target)
        .await;
    let evil = MockServer::start().await;
    Mock::given(path("/v1/mailbox"))
        .respond_with(ResponseTemplate::new(307).insert_header(
            "location",
            format!("{}/router/admin?action=reboot", target.uri()),
        ))
        .mount(&evil)
        .await;
    let key = approvd_proto::generate_signing_key();
    let nas = approvd_client::Nas::new(&evil.uri(), key.clone()).expect("nas");
    let redirected = nas.drain_mailbox(&[], Duration::ZERO).await;
    assert!(
        redirected.is_err(),
        "a redirect is an unexpected answer: {redirected:?}"
    );
    assert!(
        target
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "the redirect target was never called"
    );

    let flood = MockServer::start().await;
    let body = format!(
        "{}{{}}",
        " ".repeat(approvd_client::transport::MAX_ANSWER + 1)
    );
    Mock::given(path("/v1/mailbox"))
        .respond_with(ResponseTemplate::new(200).set_body_string(body))
        .mount(&flood)
        .await;
    let nas = approvd_client::Nas::new(&flood.uri(), key).expect("nas");
    let flooded = nas.drain_mailbox(&[], Duration::ZERO).await;
    let error = flooded.expect_err("refused");
    assert!(error.to_string().contains("larger than"), "{error}");
}
