//! `approvd agent` over its Unix socket, against a real relay: an approval requested through
//! the local API reaches only the account's phone and comes back verified; denial, cancel,
//! offline and recovery codes; a phone that unpairs disappears from the agent's device list
//! without any call (the mailbox loop applied it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use approvd_agent::api::{
    AccountName, ApprovalRequest, Authorisation, CodeKind, CodeResult, Decider, Devices,
    PairingRequest, PairingStarted, PairingState, PairingStatus, ProblemType, Purpose,
    RecoveryCodes, RequestCreated, RequestStatus,
};
use approvd_agent::client::AgentClient;
use approvd_client::transport::unix_now;
use approvd_client::NasHome;
use approvd_proto::{Cid, Decision};
use approvd_tests::agent::{approved_on, call, call_raw, start_agent, start_agent_with};
use approvd_tests::{approvd_binary, eventually, pair_for, RelayProcess, TempDir};

const WAIT: Duration = Duration::from_secs(10);

/// A relay, a NAS home in a temporary directory, and alice's phone paired and recorded.
struct Setup {
    relay: RelayProcess,
    dir: TempDir,
    path: PathBuf,
    home: NasHome,
    phone: approvd_client::Phone,
    device: approvd_client::PairedDevice,
}

async fn with_alices_phone(label: &str, phone_name: &str) -> Setup {
    // Room for the dozen requests one test sends alice's phone.
    let relay = RelayProcess::start(&["--rate-challenges-per-device", "30"]);
    let dir = TempDir::new(label);
    let path = dir.0.join("nas");
    let home = NasHome::init(&path, &relay.url, "home-nas").expect("init");
    let nas = home.nas().expect("nas");
    let (phone, device, secret) = pair_for(&nas, "alice", phone_name, None).await;
    home.add_device("alice", device.clone(), &secret)
        .expect("recorded");
    Setup {
        relay,
        dir,
        path,
        home,
        phone,
        device,
    }
}

fn alice() -> AccountName {
    AccountName::parse("alice").expect("name")
}

/// Ask alice's phones through the agent.
async fn ask(agent: &AgentClient, request: ApprovalRequest) -> RequestCreated {
    agent.create_request(&request).await.expect("created")
}

/// The phone answers `decision` to its first pending request; the outcome the agent reports.
async fn answered(
    agent: &AgentClient,
    phone: &approvd_client::Phone,
    id: &Cid,
    decision: Decision,
) -> RequestStatus {
    let received = phone.inbox(WAIT).await.expect("inbox").remove(0);
    phone
        .submit(&phone.answer(&received, decision, None))
        .await
        .expect("answered");
    agent.request_status(id, 10).await.expect("status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_system_asks_the_agent_and_gets_verified_answers() {
    let Setup {
        relay: _relay,
        dir: _dir,
        path,
        home,
        phone,
        device,
    } = with_alices_phone("agent", "Alice's phone").await;
    let nas = home.nas().expect("nas");
    let (bob_phone, bob_device, bob_secret) = pair_for(&nas, "bob", "Bob's phone", None).await;
    home.add_device("bob", bob_device.clone(), &bob_secret)
        .expect("recorded");
    let process = start_agent(&path);
    let agent = process.client();
    let bob = AccountName::parse("bob").expect("name");

    // Approve: the login page shows the number, the user types it on their phone.
    let created = ask(
        &agent,
        ApprovalRequest {
            service: "SSH".to_owned(),
            client_ip: Some("203.0.113.7".to_owned()),
            ..ApprovalRequest::sign_in(alice())
        },
    )
    .await;
    let number = created.number.clone().expect("a number for a sign-in");
    assert_eq!(created.reached().collect::<Vec<_>>(), [&device.device_id]);
    assert!(bob_phone
        .inbox(Duration::ZERO)
        .await
        .expect("inbox")
        .is_empty());
    let received = phone.inbox(WAIT).await.expect("inbox").remove(0);
    assert_eq!(received.context.service, "SSH");
    assert_eq!(
        agent
            .request_status(&created.request_id, 0)
            .await
            .expect("status"),
        RequestStatus::Pending
    );
    phone
        .submit(&phone.answer(&received, Decision::Approve, Some(&number)))
        .await
        .expect("approved");
    let outcome = agent
        .request_status(&created.request_id, 10)
        .await
        .expect("status");
    assert_eq!(
        outcome,
        RequestStatus::Approved(Decider {
            device_id: device.device_id,
            device_name: Some("Alice's phone".to_owned()),
        })
    );
    // A decided request is answered from the record, as often as asked.
    assert_eq!(
        agent
            .request_status(&created.request_id, 0)
            .await
            .expect("again"),
        outcome
    );

    // Deny, and cancel.
    let id = ask(&agent, ApprovalRequest::sign_in(alice()))
        .await
        .request_id;
    let outcome = answered(&agent, &phone, &id, Decision::Deny).await;
    assert!(matches!(outcome, RequestStatus::Denied(_)), "{outcome:?}");
    let id = ask(&agent, ApprovalRequest::sign_in(alice()))
        .await
        .request_id;
    agent.cancel_request(&id).await.expect("cancelled");
    assert_eq!(
        agent.request_status(&id, 0).await.expect("status"),
        RequestStatus::Cancelled
    );

    // The API describes itself, and every route it documents is served.
    let document = agent.openapi().await.expect("document");
    let paths = document["paths"].as_object().expect("paths");
    assert_eq!(paths.len(), 13, "{document}");
    for (path, item) in paths {
        for method in item.as_object().expect("methods").keys() {
            let concrete = path
                .replace("{id}", "AAAAAAAAAAAAAAAAAAAAAA")
                .replace("{device_id}", "AAAAAAAAAAAAAAAAAAAAAA")
                .replace("{user}", "nobody");
            let body = (method == "post").then(|| serde_json::json!({}));
            let (_, answer) = call(&process, &method.to_uppercase(), &concrete, body);
            assert_ne!(
                answer["type"], "urn:approvd:problem:no-route",
                "{method} {path}"
            );
        }
    }

    // Codes count only inside a request: alice's offline code typed into a request for bob is
    // wrong; typed into one for alice it is accepted and ends that request, so no phone's
    // answer (and no second code) counts any more.
    let now = unix_now();
    let code = phone.offline_code(now).expect("code");
    let for_bob = ask(&agent, ApprovalRequest::sign_in(bob.clone()))
        .await
        .request_id;
    let checked = agent.check_code(&for_bob, &code).await.expect("checked");
    assert_eq!(
        checked,
        CodeResult::Rejected { failures: 1 },
        "alice's code is not bob's"
    );
    agent.cancel_request(&for_bob).await.expect("cancelled");
    let for_alice = ask(&agent, ApprovalRequest::sign_in(alice()))
        .await
        .request_id;
    let checked = agent.check_code(&for_alice, &code).await.expect("checked");
    assert_eq!(
        checked,
        CodeResult::Accepted {
            device_id: Some(device.device_id)
        }
    );
    assert_eq!(
        agent.request_status(&for_alice, 0).await.expect("status"),
        RequestStatus::Cancelled
    );
    let ended = agent
        .check_code(&for_alice, &code)
        .await
        .expect_err("the request is over");
    assert_eq!(ended.kind(), Some(ProblemType::Conflict), "{ended}");
    let given = approved_on(&agent, &phone, &alice(), Purpose::RecoveryCodes).await;
    let issued = agent
        .new_recovery_codes(&alice(), &given)
        .await
        .expect("issued");
    let recovery = &issued.recovery_codes[0];
    assert_eq!(CodeKind::of(recovery), CodeKind::Recovery);
    let for_alice = ask(&agent, ApprovalRequest::sign_in(alice()))
        .await
        .request_id;
    let checked = agent
        .check_code(&for_alice, recovery)
        .await
        .expect("checked");
    assert_eq!(checked, CodeResult::Accepted { device_id: None });
    let log = std::fs::read_to_string(path.join("agent.log")).unwrap_or_default();
    assert!(log.contains("bob: wrong code"), "{log}");
    assert!(
        !log.contains(&code) && !log.contains(recovery.as_str()),
        "failed and accepted codes are logged without the code"
    );

    // A request nobody answers, then fraud: after a fraud report the account cools down.
    let id = ask(
        &agent,
        ApprovalRequest {
            lifetime_secs: 1,
            ..ApprovalRequest::sign_in(alice())
        },
    )
    .await
    .request_id;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        agent.request_status(&id, 5).await.expect("status"),
        RequestStatus::Expired
    );
    let id = ask(&agent, ApprovalRequest::sign_in(alice()))
        .await
        .request_id;
    let outcome = answered(&agent, &phone, &id, Decision::Fraud).await;
    assert!(matches!(outcome, RequestStatus::Fraud(_)), "{outcome:?}");
    let cooling = agent
        .create_request(&ApprovalRequest::sign_in(alice()))
        .await
        .expect_err("alice cools down after the fraud report");
    assert_eq!(
        cooling.kind(),
        Some(ProblemType::AccountCoolingDown),
        "{cooling}"
    );

    // An account without phones is a typed refusal.
    let refused = agent
        .create_request(&ApprovalRequest::sign_in(
            AccountName::parse("carol").expect("name"),
        ))
        .await
        .expect_err("carol has no phone");
    assert_eq!(refused.kind(), Some(ProblemType::NoDevices), "{refused}");

    // Removing is per account.
    let refused = agent
        .remove_device(&alice(), &bob_device.device_id)
        .await
        .expect_err("bob's phone is not alice's to remove");
    assert_eq!(refused.kind(), Some(ProblemType::NotFound));
    agent
        .remove_device(&bob, &bob_device.device_id)
        .await
        .expect("removed");
    assert!(agent
        .devices(&bob)
        .await
        .expect("listed")
        .devices
        .is_empty());

    // The phone unpairs; the agent's mailbox loop drops it without being asked.
    assert_eq!(
        agent.devices(&alice()).await.expect("listed").devices.len(),
        1
    );
    phone.unpair().await.expect("unpaired");
    eventually(
        "the agent applies the unpair notice",
        Duration::from_secs(30),
        || {
            let agent = &agent;
            async move {
                agent
                    .devices(&alice())
                    .await
                    .is_ok_and(|listed| listed.devices.is_empty())
            }
        },
    )
    .await;
    let log = std::fs::read_to_string(path.join("agent.log")).unwrap_or_default();
    assert!(
        log.contains("Unpaired"),
        "the agent logs what it applied: {log}"
    );
}

/// A pairing started through the agent and claimed by a new phone called `name`: the pairing
/// and the code that phone shows.
async fn claimed_by(
    agent: &AgentClient,
    request: &PairingRequest,
    name: &str,
) -> (PairingStarted, String) {
    let started = agent.start_pairing(request).await.expect("started");
    let uri = approvd_proto::pairing::PairingUri::parse(&started.uri, unix_now()).expect("uri");
    let phone = approvd_client::Phone::enroll(&uri, name, "android", None)
        .await
        .expect("enroll");
    let code = phone
        .wait_for_acceptance(WAIT)
        .await
        .expect("poll")
        .expect("the agent committed to the claim");
    (started, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_pair_for_an_account_through_the_agent() {
    use approvd_client::Phone;
    use approvd_proto::pairing::PairingUri;

    let relay = RelayProcess::start(&[]);
    let dir = TempDir::new("agent-pairing");
    let path = dir.0.join("nas");
    NasHome::init(&path, &relay.url, "home-nas").expect("init");
    let process = start_agent(&path);
    let agent = process.client();
    let carol = AccountName::parse("carol").expect("name");
    let pairing = |ttl_secs, given: Authorisation| PairingRequest {
        user: carol.clone(),
        ttl_secs,
        approval: given.approval,
        recovery_code: given.recovery_code,
    };

    // Carol's first phone needs no approval: she has none yet.
    let started = agent
        .start_pairing(&pairing(120, Authorisation::default()))
        .await
        .expect("started");
    assert!(started.qr_svg.contains("<svg"));
    let uri = PairingUri::parse(&started.uri, unix_now()).expect("uri");
    assert_eq!(uri.account, "carol");
    let waiting = agent
        .pairing_status(&started.pairing_id)
        .await
        .expect("status");
    assert_eq!(
        (&waiting.user, &waiting.state),
        (&carol, &PairingState::Waiting)
    );

    let mut phone = Phone::enroll(&uri, "Carol's phone", "android", None)
        .await
        .expect("enroll");
    let code = phone
        .wait_for_acceptance(WAIT)
        .await
        .expect("poll")
        .expect("the agent committed to the claim");
    // The agent records the claim a moment after the phone can see its acceptance.
    let mut claimed = waiting;
    for _ in 0..40 {
        claimed = agent
            .pairing_status(&started.pairing_id)
            .await
            .expect("status");
        if claimed.state != PairingState::Waiting {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        claimed.state,
        PairingState::Claimed {
            device_name: "Carol's phone".to_owned(),
            platform: "android".to_owned()
        }
    );
    let paired = agent
        .confirm_pairing(&started.pairing_id, &code)
        .await
        .expect("confirmed");
    assert!(matches!(paired.pairing.state, PairingState::Paired { .. }));
    assert_eq!(
        paired.recovery_codes.as_ref().map(Vec::len),
        Some(approvd_client::home::RECOVERY_CODES),
        "the account's first phone comes with recovery codes"
    );
    assert!(phone.wait_for_confirmation(WAIT).await.expect("poll"));
    let listed = agent.devices(&carol).await.expect("listed");
    assert_eq!(listed.devices[0].name, "Carol's phone");

    // The user may refuse a phone that is not theirs.
    let started = agent
        .start_pairing(&pairing(
            300,
            approved_on(&agent, &phone, &carol, Purpose::Pair).await,
        ))
        .await
        .expect("started");
    let rejected = agent
        .reject_pairing(&started.pairing_id)
        .await
        .expect("rejected");
    assert_eq!(
        rejected.state,
        PairingState::Failed {
            reason: "rejected".to_owned()
        }
    );

    // A wrong code confirms nothing, and the pairing has to start over.
    let (started, code) = claimed_by(
        &agent,
        &pairing(
            300,
            approved_on(&agent, &phone, &carol, Purpose::Pair).await,
        ),
        "Carol's tablet",
    )
    .await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let refused = agent
        .confirm_pairing(&started.pairing_id, wrong)
        .await
        .expect_err("a wrong code");
    assert_eq!(refused.kind(), Some(ProblemType::WrongCode), "{refused}");
    let failed = agent
        .pairing_status(&started.pairing_id)
        .await
        .expect("status");
    assert!(matches!(failed.state, PairingState::Failed { .. }));
    let refused = agent
        .confirm_pairing(&started.pairing_id, &code)
        .await
        .expect_err("the right code after a wrong one is too late");
    assert_eq!(refused.kind(), Some(ProblemType::Conflict));
    let listed = agent.devices(&carol).await.expect("listed");
    assert_eq!(listed.devices.len(), 1);
    // The second phone of the account gets no new recovery codes.
    let (started, code) = claimed_by(
        &agent,
        &pairing(
            300,
            approved_on(&agent, &phone, &carol, Purpose::Pair).await,
        ),
        "Carol's laptop",
    )
    .await;
    let paired = agent
        .confirm_pairing(&started.pairing_id, &code)
        .await
        .expect("confirmed");
    assert_eq!(paired.recovery_codes, None);

    // A claim nobody confirms ends at the QR code's expiry, and the agent erases the pairing
    // secret it kept for the code check (I-11); the right code is then too late.
    let (started, code) = claimed_by(
        &agent,
        &pairing(3, approved_on(&agent, &phone, &carol, Purpose::Pair).await),
        "Carol's watch",
    )
    .await;
    let log = path.join("agent.log");
    eventually(
        "the abandoned claim's secret is erased",
        Duration::from_secs(10),
        || {
            let log = log.clone();
            async move {
                std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains(&format!(
                    "pairing {} expired with its claim unconfirmed; the pairing secret is erased",
                    started.pairing_id
                ))
            }
        },
    )
    .await;
    let refused = agent
        .confirm_pairing(&started.pairing_id, &code)
        .await
        .expect_err("expired");
    assert_eq!(refused.kind(), Some(ProblemType::Conflict));
}

#[tokio::test]
async fn over_tcp_the_agent_wants_its_token() {
    let relay = RelayProcess::start(&[]);
    let dir = TempDir::new("agent-tcp");
    let path = dir.0.join("nas");
    NasHome::init(&path, &relay.url, "home-nas").expect("init");
    let token_file = dir.0.join("token");
    approvd_client::files::write_atomic(&token_file, b"s3cret-token-0123456789\n", true)
        .expect("token");
    let token_arg = token_file.display().to_string();
    let agent = start_agent_with(
        &path,
        &["--listen", "127.0.0.1:0", "--token-file", &token_arg],
    );
    let url = format!(
        "http://{}/v1/accounts/alice/devices",
        agent.tcp.as_deref().expect("tcp")
    );
    let http = reqwest::Client::new();
    let status = |request: reqwest::RequestBuilder| async move {
        request.send().await.expect("sent").status().as_u16()
    };
    assert_eq!(status(http.get(&url)).await, 401, "no token");
    assert_eq!(
        status(http.get(&url).bearer_auth("wrong-token-0123456789")).await,
        401
    );
    assert_eq!(
        status(http.get(&url).bearer_auth("s3cret-token-0123456789")).await,
        200
    );
    // The Unix socket needs no token: its mode (0600) decides who may connect.
    assert_eq!(
        call(&agent, "GET", "/v1/accounts/alice/devices", None).0,
        200
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&agent.socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "socket mode {mode:o}");
    // Only loopback addresses are served.
    let refused = Command::new(approvd_binary())
        .args(["agent", "--home"])
        .arg(&path)
        .args(["--socket"])
        .arg(dir.0.join("other.sock"))
        .args(["--listen", "0.0.0.0:0", "--token-file", &token_arg])
        .output()
        .expect("run");
    assert_eq!(refused.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_still_judges_what_was_pending_and_sigterm_ends_held_polls() {
    let Setup {
        relay: _relay,
        dir: _dir,
        path,
        phone,
        ..
    } = with_alices_phone("agent-restart", "Alice's phone").await;
    let mut process = start_agent(&path);
    let agent = process.client();
    let created = ask(&agent, ApprovalRequest::sign_in(alice())).await;
    let number = created.number.clone().expect("number");

    // A held poll is answered 503 at SIGTERM, not cut off.
    let held = {
        let agent = agent.clone();
        let id = created.request_id;
        tokio::spawn(async move { agent.request_status(&id, 20).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    assert!(process.terminate().success());
    let refused = held
        .await
        .expect("held poll")
        .expect_err("answered at shutdown");
    assert_eq!(refused.kind(), Some(ProblemType::Unavailable), "{refused}");
    assert!(refused.is_unreachable(), "a caller retries or falls back");
    assert!(started.elapsed() < Duration::from_secs(10));

    // The phone answers while the agent is down; the restarted agent judges the answer.
    let received = phone.inbox(WAIT).await.expect("inbox").remove(0);
    phone
        .submit(&phone.answer(&received, Decision::Approve, Some(&number)))
        .await
        .expect("approved");
    let process = start_agent(&path);
    let outcome = process
        .client()
        .request_status(&created.request_id, 10)
        .await
        .expect("status");
    assert!(matches!(outcome, RequestStatus::Approved(_)), "{outcome:?}");
}

/// The README's `curl` lines, with the socket and request id of this test.
fn readme_curl(socket: &Path, request_id: &str) -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    readme
        .lines()
        .filter(|line| line.starts_with("curl -s --unix-socket approvd-nas/login.sock"))
        .map(|line| {
            line.replace("approvd-nas/login.sock", &socket.display().to_string())
                .replace("<request_id>", request_id)
        })
        .collect()
}

fn sh(command: &str) -> serde_json::Value {
    let output = Command::new("sh")
        .args(["-c", command])
        .output()
        .expect("sh");
    assert!(output.status.success(), "{command}");
    serde_json::from_slice(&output.stdout).expect("JSON from curl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_curl_example_asks_and_gets_the_answer() {
    let Setup {
        relay: _relay,
        dir: _dir,
        path,
        phone,
        ..
    } = with_alices_phone("agent-readme", "Alice's laptop").await;
    let agent = start_agent(&path);

    let commands = readme_curl(&agent.login_socket, "");
    assert_eq!(
        commands.len(),
        2,
        "the README shows the request and the poll"
    );
    let created = sh(&commands[0]);
    let id = created["request_id"].as_str().expect("request_id");
    let number = created["number"].as_str().expect("number");
    let received = phone.inbox(WAIT).await.expect("inbox").remove(0);
    assert_eq!(received.context.client_ip.as_deref(), Some("203.0.113.7"));
    phone
        .submit(&phone.answer(&received, Decision::Approve, Some(number)))
        .await
        .expect("approved");
    let outcome = sh(&readme_curl(&agent.login_socket, id)[1]);
    assert_eq!(outcome["status"], "approved", "{outcome}");
    assert_eq!(outcome["device_name"], "Alice's laptop");
}

/// `json` reads as a `T` and writes back as exactly `json`: the answer is the type.
fn is_exactly<T: serde::Serialize + serde::de::DeserializeOwned>(json: &serde_json::Value) -> T {
    let typed: T = serde_json::from_value(json.clone())
        .unwrap_or_else(|error| panic!("{json} is not a {}: {error}", std::any::type_name::<T>()));
    assert_eq!(&serde_json::to_value(&typed).expect("serializes"), json);
    typed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_serves_its_document_and_answers_exactly_its_types() {
    let Setup {
        relay: _relay,
        dir: _dir,
        path,
        phone,
        ..
    } = with_alices_phone("agent-openapi", "Alice's phone").await;
    let process = start_agent(&path);

    // The document served is the one the agent crate checks every answer type against.
    let (status, served) = call(&process, "GET", "/openapi.json", None);
    assert_eq!(status, 200);
    let built = approvd_agent::http::served_document();
    assert!(
        !built.to_string().contains("u-int"),
        "registry format names"
    );
    assert_eq!(served, built);

    let (status, created) = call(
        &process,
        "POST",
        "/v1/requests",
        Some(serde_json::json!({"user": "alice", "client_ip": "203.0.113.7"})),
    );
    assert_eq!(status, 201, "{created}");
    let created: RequestCreated = is_exactly(&created);
    let path_of = format!("/v1/requests/{}", created.request_id);
    let (_, pending) = call(&process, "GET", &path_of, None);
    assert_eq!(
        is_exactly::<RequestStatus>(&pending),
        RequestStatus::Pending
    );
    let received = phone.inbox(WAIT).await.expect("inbox").remove(0);
    phone
        .submit(&phone.answer(&received, Decision::Approve, created.number.as_deref()))
        .await
        .expect("approved");
    let (_, approved) = call(&process, "GET", &format!("{path_of}?wait=10"), None);
    assert!(matches!(
        is_exactly::<RequestStatus>(&approved),
        RequestStatus::Approved(_)
    ));
    let (_, listed) = call(&process, "GET", "/v1/accounts/alice/devices", None);
    assert_eq!(is_exactly::<Devices>(&listed).devices.len(), 1);
    let (_, second) = call(
        &process,
        "POST",
        "/v1/requests",
        Some(serde_json::json!({"user": "alice"})),
    );
    let second: RequestCreated = is_exactly(&second);
    let (_, checked) = call(
        &process,
        "POST",
        &format!("/v1/requests/{}/code", second.request_id),
        Some(serde_json::json!({"code": "000000"})),
    );
    is_exactly::<CodeResult>(&checked);
    // Alice has a phone: new recovery codes and another phone are approved on it first.
    let agent = process.client();
    let given = approved_on(&agent, &phone, &alice(), Purpose::RecoveryCodes).await;
    let (status, issued) = call(
        &process,
        "POST",
        "/v1/accounts/alice/recovery-codes",
        Some(serde_json::json!({"approval": given.approval})),
    );
    assert_eq!(status, 201, "{issued}");
    is_exactly::<RecoveryCodes>(&issued);
    let given = approved_on(&agent, &phone, &alice(), Purpose::Pair).await;
    let (status, started) = call(
        &process,
        "POST",
        "/v1/pairings",
        Some(serde_json::json!({"user": "alice", "approval": given.approval})),
    );
    assert_eq!(status, 201, "{started}");
    let started: PairingStarted = is_exactly(&started);
    let (_, waiting) = call(
        &process,
        "GET",
        &format!("/v1/pairings/{}", started.pairing_id),
        None,
    );
    is_exactly::<PairingStatus>(&waiting);
    let (_, problem) = call(&process, "GET", "/v1/pairings/AAAAAAAAAAAAAAAAAAAAAA", None);
    let problem: approvd_agent::api::Problem = is_exactly(&problem);
    assert_eq!(problem.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_problem_and_loses_nothing() {
    let Setup {
        relay: _relay,
        dir: _dir,
        path,
        phone,
        ..
    } = with_alices_phone("agent-bad-input", "Alice's phone").await;
    let process = start_agent(&path);
    let agent = process.client();
    // A request in flight while the bad input arrives.
    let created = ask(&agent, ApprovalRequest::sign_in(alice())).await;

    let problem_type = |answer: &serde_json::Value| {
        answer["type"]
            .as_str()
            .and_then(|uri| uri.strip_prefix("urn:approvd:problem:"))
            .unwrap_or_else(|| panic!("not a problem: {answer}"))
            .to_owned()
    };
    let oversized = format!(
        "{{\"user\":\"{}\"}}",
        "a".repeat(approvd_agent::api::MAX_BODY)
    );
    let cases: Vec<(&str, String, Vec<u8>, u16, &str)> = vec![
        (
            "POST",
            "/v1/requests".into(),
            b"{not json".to_vec(),
            400,
            "invalid-body",
        ),
        (
            "POST",
            "/v1/requests".into(),
            b"".to_vec(),
            400,
            "invalid-body",
        ),
        (
            "POST",
            "/v1/requests".into(),
            br#"{"usr":"alice"}"#.to_vec(),
            400,
            "invalid-body",
        ),
        (
            "POST",
            "/v1/requests".into(),
            br#"{"user":"../etc"}"#.to_vec(),
            400,
            "invalid-body",
        ),
        (
            "POST",
            "/v1/requests".into(),
            br#"{"user":""}"#.to_vec(),
            400,
            "invalid-body",
        ),
        (
            "POST",
            "/v1/requests".into(),
            br#"{"user":"alice","devices":["nope"]}"#.to_vec(),
            400,
            "invalid-body",
        ),
        (
            "POST",
            "/v1/requests".into(),
            br#"{"user":"alice","lifetime_secs":-5}"#.to_vec(),
            400,
            "invalid-body",
        ),
        (
            "POST",
            "/v1/requests".into(),
            oversized.into_bytes(),
            413,
            "body-too-large",
        ),
        (
            "POST",
            "/v1/requests".into(),
            format!(
                "{{\"user\":\"alice\",\"location\":\"{}\"}}",
                "x".repeat(5000)
            )
            .into_bytes(),
            400,
            "invalid-field",
        ),
        (
            "GET",
            "/v1/requests/nonsense".into(),
            Vec::new(),
            404,
            "not-found",
        ),
        (
            "GET",
            format!("/v1/requests/{}?wait=soon", created.request_id),
            Vec::new(),
            400,
            "invalid-field",
        ),
        (
            "GET",
            format!("/v1/requests/{}?wait=1&extra=1", created.request_id),
            Vec::new(),
            400,
            "invalid-field",
        ),
        (
            "GET",
            "/v1/accounts/a%3Ab/devices".into(),
            Vec::new(),
            400,
            "invalid-field",
        ),
        (
            "GET",
            "/v1/accounts/%20alice/devices".into(),
            Vec::new(),
            400,
            "invalid-field",
        ),
        (
            "DELETE",
            "/v1/accounts/alice/devices/short".into(),
            Vec::new(),
            404,
            "not-found",
        ),
        (
            "POST",
            "/v1/pairings/AAAAAAAAAAAAAAAAAAAAAA/confirm".into(),
            br#"{"code":"123456"}"#.to_vec(),
            404,
            "not-found",
        ),
        (
            "POST",
            "/v1/requests/AAAAAAAAAAAAAAAAAAAAAA/code".into(),
            br#"{"code":1}"#.to_vec(),
            400,
            "invalid-body",
        ),
        (
            "POST",
            "/v1/requests/AAAAAAAAAAAAAAAAAAAAAA/code".into(),
            br#"{"code":"123456"}"#.to_vec(),
            404,
            "not-found",
        ),
        (
            "POST",
            "/v1/requests/not-an-id/code".into(),
            br#"{"code":"123456"}"#.to_vec(),
            404,
            "not-found",
        ),
        ("PUT", "/v1/requests".into(), Vec::new(), 404, "no-route"),
        ("GET", "/v2/anything".into(), Vec::new(), 404, "no-route"),
    ];
    for (method, path, body, status, kind) in cases {
        let (got, answer) = call_raw(&process, method, &path, &body);
        assert_eq!(
            (got, problem_type(&answer).as_str()),
            (status, kind),
            "{method} {path}: {answer}"
        );
    }
    // An expired pairing confirms nothing (dave has no phone: no approval is needed).
    let started = agent
        .start_pairing(&PairingRequest {
            user: AccountName::parse("dave").expect("name"),
            ttl_secs: 1,
            approval: None,
            recovery_code: None,
        })
        .await
        .expect("started");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = agent
        .pairing_status(&started.pairing_id)
        .await
        .expect("status");
    assert_eq!(expired.state, PairingState::Expired);
    let refused = agent
        .confirm_pairing(&started.pairing_id, "123456")
        .await
        .expect_err("expired");
    assert_eq!(refused.kind(), Some(ProblemType::Conflict));

    // Nothing was lost: the request in flight is still judged.
    let received = phone.inbox(WAIT).await.expect("inbox").remove(0);
    phone
        .submit(&phone.answer(&received, Decision::Approve, created.number.as_deref()))
        .await
        .expect("approved");
    let outcome = agent
        .request_status(&created.request_id, 10)
        .await
        .expect("status");
    assert!(matches!(outcome, RequestStatus::Approved(_)), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_names_reach_their_phones_exactly_whatever_their_characters() {
    let relay = RelayProcess::start(&[]);
    let dir = TempDir::new("agent-names");
    let path = dir.0.join("nas");
    let home = NasHome::init(&path, &relay.url, "home-nas").expect("init");
    let nas = home.nas().expect("nas");
    let names = [
        "jürgen",
        "Jane Doe",
        "DOMAIN\\jane",
        "a%2Fb+c?d#e",
        "user@example.com",
    ];
    let mut phones = Vec::new();
    for name in names {
        let (phone, device, secret) = pair_for(&nas, name, name, None).await;
        home.add_device(name, device, &secret).expect("recorded");
        phones.push(phone);
    }
    let process = start_agent(&path);
    let agent = process.client();
    for (name, phone) in names.iter().zip(&phones) {
        let account = AccountName::parse(name).expect("a name");
        let listed = agent.devices(&account).await.expect("listed");
        assert_eq!(listed.devices.len(), 1, "{name}");
        assert_eq!(listed.devices[0].name, *name, "only {name}'s phone");
        let created = ask(&agent, ApprovalRequest::sign_in(account.clone())).await;
        let received = phone.inbox(WAIT).await.expect("inbox");
        assert_eq!(received.len(), 1, "{name}");
        assert_eq!(received[0].context.user, *name);
        let code = phone.offline_code(unix_now()).expect("code");
        let checked = agent
            .check_code(&created.request_id, &code)
            .await
            .expect("checked");
        assert!(
            matches!(checked, CodeResult::Accepted { .. }),
            "{name}: {checked:?}"
        );
    }
    // The same name typed decomposed (u + combining diaeresis) is the same account.
    let (status, created) = call(
        &process,
        "POST",
        "/v1/requests",
        Some(serde_json::json!({"user": "ju\u{0308}rgen"})),
    );
    assert_eq!(status, 201, "{created}");
    let received = phones[0].inbox(WAIT).await.expect("inbox");
    assert_eq!(received.len(), 1);
}
