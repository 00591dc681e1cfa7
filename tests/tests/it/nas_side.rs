//! The NAS side under attack (issue 26, `../shared/reviews/2026-12-02-attack-nas-side.md`):
//! each test replays a finding against the real agent and relay and shows it no longer works —
//! status polls that spent the NAS's relay budget (H1), a state lock others could hold (H2), a
//! second agent taking the socket (L2), a cancel forgotten at restart (M5), a relay that
//! redirects the agent or floods it (M8), push fatigue with no cool-down (N-3/M4), code
//! lockouts that told real accounts from strangers and grew the state (M1/N-4/L4), a removed
//! phone that could still approve (N-12), a socket born open to others (L1); and a NAS key
//! retired for good (N-14, issue 27).

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

/// Ask alice's phone, answer with `decision` (with the number shown, or with another one when
/// `wrong_number`), and wait for the agent's outcome.
async fn answered(
    agent: &approvd_agent::client::AgentClient,
    phone: &approvd_client::Phone,
    decision: Decision,
    wrong_number: bool,
) -> RequestStatus {
    let created = agent
        .create_request(&ApprovalRequest::sign_in(alice()))
        .await
        .expect("created");
    let prompt = phone
        .inbox(WAIT)
        .await
        .expect("inbox")
        .into_iter()
        .find(|prompt| prompt.challenge.cid == created.request_id)
        .expect("the prompt");
    let shown = created.number.clone().expect("a sign-in has a number");
    let number = if wrong_number {
        let other: u32 = shown.parse::<u32>().expect("digits") + 1;
        format!(
            "{:0width$}",
            other % 10u32.pow(shown.len() as u32),
            width = shown.len()
        )
    } else {
        shown
    };
    phone
        .submit(&phone.answer(&prompt, decision, Some(&number)))
        .await
        .expect("answered");
    agent
        .request_status(&created.request_id, 10)
        .await
        .expect("status")
}

/// N-3 / M4: a fraud report, or three wrong numbers in a row, cools the account down — the
/// next request answers `429 account-cooling-down` with the time left, nothing reaches the
/// phone, and a restart does not lift it. Before, "Send again" worked at once after a fraud
/// report and wrong numbers counted toward nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n3_a_fraud_report_or_wrong_numbers_cool_the_account_down_across_a_restart() {
    let relay = RelayProcess::start(&["--rate-challenges-per-device", "30"]);
    let dir = TempDir::new("n3-cooling");
    let (path, phone) = alices_nas(&relay, &dir).await;
    let mut agent_process = start_agent(&path);
    let agent = agent_process.client();
    // Two wrong numbers, then an approval: the run ends, nothing cools.
    for _ in 0..2 {
        let status = answered(&agent, &phone, Decision::Approve, true).await;
        assert!(
            matches!(status, RequestStatus::WrongNumber(_)),
            "{status:?}"
        );
    }
    let status = answered(&agent, &phone, Decision::Approve, false).await;
    assert!(matches!(status, RequestStatus::Approved(_)), "{status:?}");
    // Three wrong numbers in a row: the account cools down.
    for _ in 0..3 {
        let status = answered(&agent, &phone, Decision::Approve, true).await;
        assert!(
            matches!(status, RequestStatus::WrongNumber(_)),
            "{status:?}"
        );
    }
    let (status, problem) = call(
        &agent_process,
        "POST",
        "/v1/requests",
        Some(serde_json::json!({ "user": "alice" })),
    );
    assert_eq!(status, 429, "{problem}");
    assert_eq!(
        problem["type"],
        format!(
            "{}{}",
            approvd_proto::wire::PROBLEM_TYPE_PREFIX,
            ProblemType::AccountCoolingDown.name()
        )
    );
    let detail = problem["detail"].as_str().expect("detail");
    assert!(
        detail.contains("alice") && detail.contains(" s"),
        "{detail}"
    );
    // The phone is told (a notice, nothing to approve) and asked nothing.
    let mut fetched = Vec::new();
    for _ in 0..20 {
        fetched = phone.inbox(Duration::from_secs(1)).await.expect("inbox");
        if !fetched.is_empty() {
            break;
        }
    }
    assert_eq!(fetched.len(), 1, "{fetched:?}");
    let notice = &fetched[0].context;
    assert_eq!(notice.kind, approvd_proto::context::LoginKind::Notice);
    let text = notice.action.as_deref().unwrap_or_default();
    assert!(
        text.contains("Sign-ins to alice are paused for 5 min"),
        "{text}"
    );
    assert!(
        approvd_tests::requests(fetched).is_empty(),
        "a cooling account's phone is not asked"
    );
    // A restart keeps the cool-down.
    assert!(agent_process.terminate().success());
    let restarted = start_agent(&path);
    let refused = restarted
        .client()
        .create_request(&ApprovalRequest::sign_in(alice()))
        .await
        .expect_err("still cooling after the restart");
    assert_eq!(refused.kind(), Some(ProblemType::AccountCoolingDown));
}

/// N-3: a fraud report alone cools the account down at once (here on bob's own phone; alice,
/// another account on the same NAS, is still asked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n3_a_fraud_report_stops_the_next_request_to_that_account_only() {
    let relay = RelayProcess::start(&[]);
    let dir = TempDir::new("n3-fraud");
    let (path, phone) = alices_nas(&relay, &dir).await;
    let home = NasHome::open(&path).expect("home");
    let (bobs_phone, device, secret) =
        pair_for(&home.nas().expect("nas"), "bob", "Bob's", None).await;
    home.add_device("bob", device, &secret).expect("recorded");
    let agent_process = start_agent(&path);
    let agent = agent_process.client();
    let bob = AccountName::parse("bob").expect("name");
    let created = agent
        .create_request(&ApprovalRequest::sign_in(bob.clone()))
        .await
        .expect("created");
    let prompt = bobs_phone.inbox(WAIT).await.expect("inbox").remove(0);
    bobs_phone
        .submit(&bobs_phone.answer(&prompt, Decision::Fraud, created.number.as_deref()))
        .await
        .expect("reported");
    let status = agent
        .request_status(&created.request_id, 10)
        .await
        .expect("status");
    assert!(matches!(status, RequestStatus::Fraud(_)), "{status:?}");
    let refused = agent
        .create_request(&ApprovalRequest::sign_in(bob))
        .await
        .expect_err("bob cools down");
    assert_eq!(refused.kind(), Some(ProblemType::AccountCoolingDown));
    let status = answered(&agent, &phone, Decision::Approve, false).await;
    assert!(matches!(status, RequestStatus::Approved(_)), "{status:?}");
}

/// N-4 / M1 / L4: where a code is checked by name — the NAS's own tools on its home, such as
/// the PAM fallback while the agent is down (the API checks codes only inside a request) — a
/// name with no account answers wrong codes exactly as a real account does (failures, then a
/// lockout), nothing is written to the NAS state for it, and wrong offline codes never lock
/// the recovery codes (each kind has its own count).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m1_codes_for_unknown_names_answer_alike_and_grow_nothing_and_recovery_stays_open() {
    use approvd_agent::api::{CodeKind, CodeResult};
    use approvd_agent::service::{Keep, Service};
    let relay = RelayProcess::start(&[]);
    let dir = TempDir::new("m1-codes");
    let (path, _phone) = alices_nas(&relay, &dir).await;
    let agent = Service::open(&path, Keep::InMemory).expect("the home");
    let recovery = agent
        .new_recovery_codes(&alice())
        .await
        .expect("codes")
        .recovery_codes;
    let before = std::fs::read(path.join("devices.json")).expect("state");
    let stranger = AccountName::parse("mallory").expect("name");
    let answers = |account: AccountName| {
        let agent = agent.clone();
        async move {
            let mut seen = Vec::new();
            for _ in 0..7 {
                let result = agent
                    .check_code(&account, CodeKind::Offline, "000001")
                    .await
                    .expect("checked");
                seen.push(match result {
                    CodeResult::Rejected { failures } => format!("rejected {failures}"),
                    CodeResult::LockedOut { .. } => "locked".to_owned(),
                    CodeResult::Accepted { .. } => "accepted".to_owned(),
                });
            }
            seen
        }
    };
    let strangers = answers(stranger.clone()).await;
    // A few thousand more names: none reaches the NAS state.
    for n in 0..2000 {
        let name = AccountName::parse(&format!("nobody{n}")).expect("name");
        agent
            .check_code(&name, CodeKind::Recovery, "abcd-efgh")
            .await
            .expect("checked");
    }
    let after_strangers = std::fs::read(path.join("devices.json")).expect("state");
    assert_eq!(before, after_strangers, "strangers' codes write nothing");
    let alices = answers(alice()).await;
    assert_eq!(
        strangers, alices,
        "an unknown name answers as a real account"
    );
    assert_eq!(alices.last().map(String::as_str), Some("locked"));
    // Alice's offline codes are locked; her recovery codes still work.
    let used = agent
        .check_code(&alice(), CodeKind::Recovery, &recovery[0])
        .await
        .expect("checked");
    assert!(matches!(used, CodeResult::Accepted { .. }), "{used:?}");
}

/// N-12: removing a phone cancels the pending requests only it could answer, and an answer
/// it sends afterwards to a request another phone could still answer never counts. Before,
/// the removed phone's approval was judged against the keys recorded when the request went
/// out, so a lost (removed) phone could still approve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n12_a_removed_phone_can_no_longer_approve_and_its_own_requests_are_cancelled() {
    let relay = RelayProcess::start(&["--rate-challenges-per-device", "30"]);
    let dir = TempDir::new("n12-removed");
    let (path, lost) = alices_nas(&relay, &dir).await;
    let home = NasHome::open(&path).expect("home");
    let (_kept, device, secret) =
        pair_for(&home.nas().expect("nas"), "alice", "Alice's tablet", None).await;
    home.add_device("alice", device, &secret).expect("recorded");
    let agent_process = start_agent(&path);
    let agent = agent_process.client();
    let lost_id = home
        .state()
        .expect("state")
        .of("alice")
        .find(|record| record.device.name == "Alice's")
        .expect("the lost phone")
        .device
        .device_id;
    let both = agent
        .create_request(&ApprovalRequest::sign_in(alice()))
        .await
        .expect("to both phones");
    let only_lost = agent
        .create_request(&ApprovalRequest {
            devices: vec![lost_id],
            ..ApprovalRequest::sign_in(alice())
        })
        .await
        .expect("to the lost phone only");
    let prompts = lost.inbox(WAIT).await.expect("inbox");
    assert_eq!(prompts.len(), 2, "both requests reached the lost phone");
    agent
        .remove_device(&alice(), &lost_id)
        .await
        .expect("removed");
    assert_eq!(
        agent
            .request_status(&only_lost.request_id, 0)
            .await
            .expect("status"),
        RequestStatus::Cancelled,
        "nobody can answer it any more"
    );
    let prompt = prompts
        .iter()
        .find(|prompt| prompt.challenge.cid == both.request_id)
        .expect("the shared request");
    // The relay may still take the removed phone's answer; the agent must not count it.
    let _ = lost
        .submit(&lost.answer(prompt, Decision::Approve, both.number.as_deref()))
        .await;
    let status = agent
        .request_status(&both.request_id, 3)
        .await
        .expect("status");
    assert!(
        !matches!(status, RequestStatus::Approved(_)),
        "a removed phone's approval counts for nothing: {status:?}"
    );
}

/// L1 / I-6: the agent's socket is created 0600 whatever the umask (before, it was chmod'ed
/// only after bind, and with umask 000 another user could connect in that window), and a
/// socket directory others can write is refused with exit status 2 and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_the_socket_is_born_private_and_an_open_socket_directory_is_refused() {
    use std::os::unix::fs::FileTypeExt as _;
    use std::os::unix::process::CommandExt as _;
    let relay = RelayProcess::start(&[]);
    let dir = TempDir::new("l1-socket");
    let (path, _phone) = alices_nas(&relay, &dir).await;
    let open = dir.0.join("open");
    std::fs::create_dir(&open).expect("dir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let socket = open.join("agent.sock");
    let refused = std::process::Command::new(approvd_binary())
        .args(["agent", "--home"])
        .arg(&path)
        .arg("--socket")
        .arg(&socket)
        .output()
        .expect("agent");
    assert_eq!(refused.status.code(), Some(2));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("only the NAS's user can write"), "{said}");
    assert!(!socket.exists(), "nothing was bound there");

    // Under umask 000 the socket is 0600 from the start; watch it appear. (The umask is set
    // by a shell that then execs the agent: the tests forbid `unsafe`, so no `pre_exec`.)
    let mut agent = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 000; exec '{}' agent --home '{}'",
            approvd_binary().display(),
            path.display()
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .expect("agent");
    let socket = path.join("agent.sock");
    let deadline = std::time::Instant::now() + WAIT;
    let mut modes = Vec::new();
    while std::time::Instant::now() < deadline {
        if let Ok(metadata) = std::fs::symlink_metadata(&socket) {
            if metadata.file_type().is_socket() {
                modes.push(metadata.permissions().mode() & 0o777);
                if modes.len() > 20 {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(!modes.is_empty(), "the socket appeared");
    assert!(
        modes.iter().all(|mode| *mode == 0o600),
        "never anything but 0600: {:?}",
        modes
            .iter()
            .map(|mode| format!("{mode:o}"))
            .collect::<Vec<_>>()
    );
}

/// A `curl` of the agent's API over `socket` run as `nobody` (`runuser`): its HTTP status.
fn as_nobody(socket: &std::path::Path, method: &str, path: &str, body: &str) -> String {
    let output = std::process::Command::new("runuser")
        .args([
            "-u",
            "nobody",
            "--",
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(["--unix-socket"])
        .arg(socket)
        .args([
            "-X",
            method,
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
        ])
        .arg(format!("http://agent{path}"))
        .output()
        .expect("runuser curl");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// N-1: the local API was one all-powerful capability: any login integration could pair a
/// phone or mint recovery codes for any account, and check any account's codes with no
/// sign-in in progress. Now a login caller (the login socket, or the TCP login token) reaches
/// sign-in requests only, and a code counts only inside a request it opened (3 wrong codes
/// end the request). Admin changes are logged with who made them. Each socket checks its
/// caller's uid: run as `nobody`, the admin socket refuses even when its mode was loosened,
/// and the login socket admits the members of `--login-group`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n1_a_login_caller_can_neither_pair_nor_mint_codes_and_codes_count_only_in_its_requests() {
    use approvd_agent::api::{Authorisation, CodeResult, PairingRequest, Purpose};
    use approvd_agent::client::{AgentClient, Endpoint};
    use approvd_tests::agent::approved_on;
    let relay = RelayProcess::start(&["--rate-challenges-per-device", "30"]);
    let dir = TempDir::new("n1-capabilities");
    let (path, phone) = alices_nas(&relay, &dir).await;
    let sockets = dir.0.join("sockets");
    std::fs::create_dir(&sockets).expect("dir");
    std::fs::set_permissions(&sockets, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (login_token, admin_token) = ("login-token-0123456789", "admin-token-0123456789");
    for (name, token) in [("login.token", login_token), ("admin.token", admin_token)] {
        let file = dir.0.join(name);
        std::fs::write(&file, token).expect("token");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let (admin_socket, login_socket) = (sockets.join("admin.sock"), sockets.join("login.sock"));
    let args = [
        "--socket".to_owned(),
        admin_socket.display().to_string(),
        "--login-socket".to_owned(),
        login_socket.display().to_string(),
        "--login-group".to_owned(),
        "nogroup".to_owned(),
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--token-file".to_owned(),
        dir.0.join("login.token").display().to_string(),
        "--admin-token-file".to_owned(),
        dir.0.join("admin.token").display().to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let process = approvd_tests::agent::start_agent_with(&path, &args);
    let tcp = format!("http://{}", process.tcp.as_deref().expect("tcp"));
    let tcp_with = |token: &str| {
        AgentClient::new(Endpoint::Tcp {
            url: tcp.clone(),
            token: token.to_owned(),
        })
        .expect("client")
    };
    let mode = |socket: &std::path::Path| {
        std::fs::metadata(socket)
            .expect("socket")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!((mode(&admin_socket), mode(&login_socket)), (0o600, 0o660));

    // Over the login socket and with the login token: requests yes, admin routes 403.
    for login in [process.login_client(), tcp_with(login_token)] {
        let created = login
            .create_request(&ApprovalRequest::sign_in(alice()))
            .await
            .expect("a login caller asks");
        login
            .cancel_request(&created.request_id)
            .await
            .expect("and cancels");
        assert_eq!(
            login.devices(&alice()).await.expect("listed").devices.len(),
            1
        );
        let refusals = [
            login
                .start_pairing(&PairingRequest {
                    user: alice(),
                    ttl_secs: 60,
                    approval: None,
                    recovery_code: None,
                })
                .await
                .map(drop),
            login
                .new_recovery_codes(&alice(), &Authorisation::default())
                .await
                .map(drop),
            login
                .remove_device(&alice(), &phone.device_id())
                .await
                .map(drop),
        ];
        for refused in refusals {
            let refused = refused.expect_err("login may not do this");
            assert_eq!(refused.kind(), Some(ProblemType::NotAllowed), "{refused}");
        }
    }
    let stranger = tcp_with("not-the-token-0123456789")
        .create_request(&ApprovalRequest::sign_in(alice()))
        .await
        .expect_err("no token, no call");
    assert_eq!(stranger.kind(), Some(ProblemType::Unauthenticated));

    // The admin token and the admin socket reach everything (alice's phone approving, as
    // it must once she has one); each change is logged.
    let admin = process.client();
    let given = approved_on(&admin, &phone, &alice(), Purpose::Pair).await;
    tcp_with(admin_token)
        .start_pairing(&PairingRequest {
            user: alice(),
            ttl_secs: 60,
            approval: given.approval,
            recovery_code: None,
        })
        .await
        .expect("admin pairs");
    let given = approved_on(&admin, &phone, &alice(), Purpose::RecoveryCodes).await;
    let recovery = admin
        .new_recovery_codes(&alice(), &given)
        .await
        .expect("admin mints")
        .recovery_codes;
    let log = std::fs::read_to_string(path.join("agent.log")).expect("log");
    assert!(
        log.contains("admin: POST /v1/pairings by a TCP admin token: 201"),
        "{log}"
    );
    assert!(
        log.contains("admin: POST /v1/accounts/alice/recovery-codes by uid"),
        "{log}"
    );
    assert!(!log.contains(&recovery[0]), "codes are never logged");

    // Codes count only inside a request: 3 wrong ones end it, and then even the right code
    // is refused there (a new request, which the phone is shown, is needed).
    let login = process.login_client();
    let created = login
        .create_request(&ApprovalRequest::sign_in(alice()))
        .await
        .expect("created");
    for failures in 1..=3 {
        let checked = login
            .check_code(&created.request_id, "000001")
            .await
            .expect("checked");
        assert!(
            matches!(
                checked,
                CodeResult::Rejected { .. } | CodeResult::LockedOut { .. }
            ),
            "wrong code {failures}: {checked:?}"
        );
    }
    let ended = login
        .check_code(&created.request_id, &recovery[0])
        .await
        .expect_err("the request took its 3 wrong codes");
    assert_eq!(ended.kind(), Some(ProblemType::Conflict), "{ended}");
    assert_eq!(
        login
            .request_status(&created.request_id, 0)
            .await
            .expect("status"),
        RequestStatus::Cancelled
    );
    let unknown = login
        .check_code(&approvd_proto::Cid::random(), &recovery[0])
        .await
        .expect_err("no such request");
    assert_eq!(unknown.kind(), Some(ProblemType::NotFound));

    // The uid checks, as another user (the tests run as root on CI).
    let root = {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(&dir.0).expect("dir").uid() == 0
    };
    if root {
        std::fs::set_permissions(&admin_socket, std::fs::Permissions::from_mode(0o666))
            .expect("an operator's mistake");
        assert_eq!(
            as_nobody(
                &admin_socket,
                "POST",
                "/v1/accounts/alice/recovery-codes",
                ""
            ),
            "403",
            "the admin socket admits the agent's user and root only, whatever its mode"
        );
        assert_eq!(
            as_nobody(&login_socket, "POST", "/v1/requests", r#"{"user":"alice"}"#),
            "201",
            "nobody is in nogroup, the login group"
        );
        assert_eq!(
            as_nobody(&login_socket, "POST", "/v1/pairings", r#"{"user":"alice"}"#),
            "403"
        );
    } else {
        eprintln!("not root: the uid checks as `nobody` are not run");
    }

    // The relay is down: the request is opened for a code only (no phone was asked), and
    // the app's offline code settles it.
    drop(relay);
    let created = login
        .create_request(&ApprovalRequest::sign_in(alice()))
        .await
        .expect("opened for a code");
    assert!(created.relay_error.is_some(), "{created:?}");
    assert!(created.number.is_none() && created.deliveries.is_empty());
    assert_eq!(
        login
            .request_status(&created.request_id, 0)
            .await
            .expect("status"),
        RequestStatus::Pending
    );
    let code = phone
        .offline_code(approvd_client::transport::unix_now())
        .expect("code");
    let checked = login
        .check_code(&created.request_id, &code)
        .await
        .expect("checked");
    assert!(
        matches!(checked, CodeResult::Accepted { .. }),
        "{checked:?}"
    );
    assert_eq!(
        login
            .request_status(&created.request_id, 0)
            .await
            .expect("status"),
        RequestStatus::Cancelled
    );
}

/// N-8: once an account has a phone, the admin API pairs another phone or issues recovery
/// codes only with an approval on that phone — an `action` request naming the change, used
/// once and for that change only — or with one of the account's recovery codes. Before, any
/// admin caller added a phone to any account unasked and unseen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n8_a_phone_or_recovery_codes_are_added_only_with_the_accounts_approval() {
    use approvd_agent::api::{Authorisation, PairingRequest, Purpose};
    use approvd_tests::agent::approved_on;
    let relay = RelayProcess::start(&["--rate-challenges-per-device", "30"]);
    let dir = TempDir::new("n8-approval");
    let (path, phone) = alices_nas(&relay, &dir).await;
    let process = start_agent(&path);
    let admin = process.client();
    let pair = |given: Authorisation| PairingRequest {
        user: alice(),
        ttl_secs: 60,
        approval: given.approval,
        recovery_code: given.recovery_code,
    };
    let refused_with = |error: approvd_agent::client::ClientError| {
        assert_eq!(error.kind(), Some(ProblemType::ApprovalRequired), "{error}");
    };

    // Unasked: refused, whatever the admin capability.
    refused_with(
        admin
            .start_pairing(&pair(Authorisation::default()))
            .await
            .expect_err("no approval"),
    );
    refused_with(
        admin
            .new_recovery_codes(&alice(), &Authorisation::default())
            .await
            .expect_err("no approval"),
    );
    // A made-up approval, a denied one, one for another change: refused.
    refused_with(
        admin
            .start_pairing(&pair(Authorisation {
                approval: Some(approvd_proto::Cid::random()),
                recovery_code: None,
            }))
            .await
            .expect_err("made up"),
    );
    let denied = admin
        .ask_approval(&alice(), Purpose::Pair)
        .await
        .expect("asked");
    let received = phone
        .inbox(WAIT)
        .await
        .expect("inbox")
        .into_iter()
        .find(|received| received.challenge.cid == denied.request_id)
        .expect("the approval request");
    phone
        .submit(&phone.answer(&received, Decision::Deny, denied.number.as_deref()))
        .await
        .expect("denied");
    admin
        .request_status(&denied.request_id, 10)
        .await
        .expect("status");
    refused_with(
        admin
            .start_pairing(&pair(Authorisation {
                approval: Some(denied.request_id),
                recovery_code: None,
            }))
            .await
            .expect_err("denied"),
    );
    let for_codes = approved_on(&admin, &phone, &alice(), Purpose::RecoveryCodes).await;
    refused_with(
        admin
            .start_pairing(&pair(for_codes.clone()))
            .await
            .expect_err("approved for another change"),
    );

    // Approved on the phone: the change is made, once.
    let recovery = admin
        .new_recovery_codes(&alice(), &for_codes)
        .await
        .expect("approved")
        .recovery_codes;
    refused_with(
        admin
            .new_recovery_codes(&alice(), &for_codes)
            .await
            .expect_err("used up"),
    );
    let for_pairing = approved_on(&admin, &phone, &alice(), Purpose::Pair).await;
    admin
        .start_pairing(&pair(for_pairing.clone()))
        .await
        .expect("approved");
    refused_with(
        admin
            .start_pairing(&pair(for_pairing))
            .await
            .expect_err("used up"),
    );

    // No phone at hand: a recovery code approves instead, once.
    let with_code = Authorisation {
        approval: None,
        recovery_code: Some(recovery[0].clone()),
    };
    admin
        .start_pairing(&pair(with_code.clone()))
        .await
        .expect("a recovery code approves");
    refused_with(
        admin
            .start_pairing(&pair(with_code))
            .await
            .expect_err("that code is used"),
    );
    // The phones are told of a change a recovery code approved (they were not asked).
    let told = phone
        .inbox(WAIT)
        .await
        .expect("inbox")
        .into_iter()
        .find(|received| received.context.kind == approvd_proto::context::LoginKind::Notice)
        .expect("a notice");
    let text = told.context.action.clone().unwrap_or_default();
    assert!(
        text.contains("A new phone is being paired with alice, approved with a recovery code"),
        "{text}"
    );
    let log = std::fs::read_to_string(path.join("agent.log")).expect("log");
    assert!(log.contains("alice: Pair approved on"), "{log}");
    assert!(
        log.contains("alice: Pair approved with a recovery code"),
        "{log}"
    );
    assert!(!log.contains(&recovery[0]), "codes are never logged");
}

/// N-14: a NAS key whose owner abandoned it (a backup holding it leaked) can be retired.
/// `approvd nas retire` tells every phone; alice's app and bob's terminal phone delete their
/// pairings and confirm with their signed `unpair`; the key is set aside and `nas init` makes
/// a new one. A pairing that heard nothing from its NAS for a year expires on the phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n14_a_retired_nas_key_ends_the_pairings_it_reaches_and_idle_pairings_expire() {
    use approvd_client::PhoneHome;
    let relay = RelayProcess::start(&[]);
    let dir = TempDir::new("n14-retire");
    let (path, alices) = alices_nas(&relay, &dir).await;
    let home = NasHome::open(&path).expect("home");
    let old_nas_id = home.nas().expect("nas").nas_id();
    let (bobs, device, secret) = pair_for(&home.nas().expect("nas"), "bob", "Bob's", None).await;
    home.add_device("bob", device, &secret).expect("recorded");
    let bob_home = dir.0.join("bob-phone");
    PhoneHome::new(&bob_home)
        .save(&bobs.to_state("home-nas", true))
        .expect("bob's phone");
    let approvd = |args: &[&str]| {
        std::process::Command::new(approvd_binary())
            .args(args)
            .output()
            .expect("run approvd")
    };
    let nas_home = path.to_str().expect("utf-8");

    // Without --yes nothing happens; nor while an agent serves the home (it holds the key).
    let refused = approvd(&["nas", "retire", "--home", nas_home]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    let agent = start_agent(&path);
    let refused = approvd(&["nas", "retire", "--home", nas_home, "--yes"]);
    assert_eq!(refused.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("another agent serves this NAS home"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    drop(agent);
    assert_eq!(home.devices().expect("devices").len(), 2);
    assert!(NasHome::open(&path).is_ok());

    let retire = std::process::Command::new(approvd_binary())
        .args(["nas", "retire", "--home", nas_home, "--yes", "--wait", "30"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("retire");
    // Alice's app sees the retirement (signed by the key it pinned), shows why, unpairs.
    let deadline = std::time::Instant::now() + WAIT;
    let retirement = loop {
        let received = alices.inbox(Duration::from_secs(2)).await.expect("inbox");
        if let Some(found) = received.into_iter().find(|entry| entry.retires_pairing()) {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "alice's phone was not told"
        );
    };
    assert_eq!(retirement.context.nas_label, "home-nas");
    assert!(!retirement.context.is_answerable());
    assert!(
        retirement
            .context
            .action
            .as_deref()
            .is_some_and(|why| why.contains("retired its key")),
        "{:?}",
        retirement.context
    );
    alices.unpair().await.expect("unpair");
    // Bob's terminal phone deletes its pairing on its own.
    let inbox = approvd(&[
        "phone",
        "inbox",
        "--home",
        bob_home.to_str().expect("utf-8"),
        "--wait",
        "10",
    ]);
    let said = String::from_utf8_lossy(&inbox.stdout);
    assert!(inbox.status.success(), "{said}");
    assert!(
        said.contains("retired its key") && said.contains("pairing is deleted"),
        "{said}"
    );
    assert!(!PhoneHome::new(&bob_home).exists());

    let output = retire.wait_with_output().expect("retire ends");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("2 of 2 phones confirmed"), "{said}");
    // The key is set aside, never used again; the home makes a new one.
    assert!(NasHome::open(&path).is_err());
    assert!(std::fs::read_dir(&path).expect("home").any(|entry| entry
        .expect("entry")
        .file_name()
        .to_string_lossy()
        .starts_with("nas.key.retired-")));
    let fresh = NasHome::init(&path, &relay.url, "home-nas").expect("a new key");
    let nas = fresh.nas().expect("nas");
    assert_ne!(nas.nas_id(), old_nas_id);
    assert!(fresh.devices().expect("devices").is_empty());

    // A phone still holding a pairing with the old key is offered to delete it when the
    // re-keyed NAS, under the same name, pairs it again.
    let stale_home = dir.0.join("stale-phone");
    PhoneHome::new(&stale_home)
        .save(&alices.to_state("home-nas", true))
        .expect("a stale pairing");
    let uri = nas
        .start_pairing("home-nas", "alice", Duration::from_secs(60))
        .await
        .expect("a pairing")
        .to_uri();
    let enroll = approvd(&[
        "phone",
        "enroll",
        "--name",
        "Alice's",
        "--home",
        stale_home.to_str().expect("utf-8"),
        &uri,
    ]);
    let said = String::from_utf8_lossy(&enroll.stderr);
    assert!(!enroll.status.success());
    assert!(
        said.contains("older NAS key") && said.contains("approvd phone unpair"),
        "{said}"
    );

    // A pairing whose NAS has sent nothing that verified for over a year has expired.
    let (carols, _, _) = pair_for(&nas, "carol", "Carol's", None).await;
    let mut state = carols.to_state("home-nas", true);
    state.memory.last_heard = approvd_client::transport::unix_now() - 366 * 86_400;
    let carol_home = dir.0.join("carol-phone");
    PhoneHome::new(&carol_home)
        .save(&state)
        .expect("carol's phone");
    assert!(approvd_client::Phone::from_state(&state)
        .expect("phone")
        .unused_for_long(approvd_client::transport::unix_now()));
    let inbox = approvd(&[
        "phone",
        "inbox",
        "--home",
        carol_home.to_str().expect("utf-8"),
    ]);
    let said = String::from_utf8_lossy(&inbox.stdout);
    assert!(said.contains("over a year"), "{said}");
    assert!(!PhoneHome::new(&carol_home).exists());
}

/// I-9: an account can require user-verified approvals (the phone's approval key unlocked by
/// biometrics or a passcode). Alice's policy refuses her phone's plain tap, counts an unlocked
/// approval, leaves bob's account alone, survives a restart of the agent, and only the admin
/// capability may change it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i9_an_account_can_require_user_verified_approvals() {
    use approvd_agent::api::AccountPolicy;
    let relay = RelayProcess::start(&[]);
    let dir = TempDir::new("i9-user-verified");
    let (path, mut alices) = alices_nas(&relay, &dir).await;
    let home = NasHome::open(&path).expect("home");
    let (bobs, device, secret) = pair_for(&home.nas().expect("nas"), "bob", "Bob's", None).await;
    home.add_device("bob", device, &secret).expect("recorded");
    let bob = AccountName::parse("bob").expect("name");
    let mut agent_process = start_agent(&path);
    let agent = agent_process.client();
    let required = AccountPolicy {
        require_user_verification: true,
    };

    // A login front end cannot loosen (or set) the policy.
    let refused = agent_process
        .login_client()
        .set_policy(&alice(), &required)
        .await
        .expect_err("login capability");
    assert_eq!(refused.kind(), Some(ProblemType::NotAllowed), "{refused}");
    assert_eq!(
        agent.set_policy(&alice(), &required).await.expect("set"),
        required
    );

    // Sign in as `account`; `phone` approves with the right number.
    async fn approve(
        agent: &approvd_agent::client::AgentClient,
        account: &AccountName,
        phone: &approvd_client::Phone,
    ) -> RequestStatus {
        let asked = agent
            .create_request(&ApprovalRequest::sign_in(account.clone()))
            .await
            .expect("sent");
        let received = approvd_tests::only_request(phone, WAIT).await;
        assert_eq!(received.challenge.cid, asked.request_id);
        phone
            .submit(&phone.answer(&received, Decision::Approve, asked.number.as_deref()))
            .await
            .expect("submitted");
        agent
            .request_status(&asked.request_id, 5)
            .await
            .expect("status")
    }
    match approve(&agent, &alice(), &alices).await {
        RequestStatus::Invalid { reason } => {
            assert!(reason.contains("user verification"), "{reason}")
        }
        other => panic!("a plain tap approved alice's sign-in: {other:?}"),
    }
    assert!(
        matches!(
            approve(&agent, &bob, &bobs).await,
            RequestStatus::Approved(_)
        ),
        "bob's account has no such policy"
    );
    alices.set_user_verified_signing(true);
    assert!(matches!(
        approve(&agent, &alice(), &alices).await,
        RequestStatus::Approved(_)
    ));

    // The policy is kept in the NAS state: a restarted agent and the CLI read it.
    agent_process.terminate();
    let agent_process = start_agent(&path);
    let agent = agent_process.client();
    assert_eq!(agent.policy(&alice()).await.expect("policy"), required);
    alices.set_user_verified_signing(false);
    assert!(matches!(
        approve(&agent, &alice(), &alices).await,
        RequestStatus::Invalid { .. }
    ));
    drop(agent_process);
    let policy = |extra: &[&str]| {
        let output = std::process::Command::new(approvd_binary())
            .args(["nas", "policy", "--home"])
            .arg(&path)
            .args(["--user", "alice"])
            .args(extra)
            .output()
            .expect("policy");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let said = policy(&[]);
    assert!(
        said.contains("alice: approvals require user verification"),
        "{said}"
    );
    assert!(policy(&["--require-user-verification", "false"]).contains("do not require"));
    assert!(NasHome::open(&path)
        .expect("home")
        .state()
        .expect("state")
        .user_verified_accounts
        .is_empty());
}
