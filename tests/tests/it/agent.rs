//! `approvd agent` over its Unix socket, against a real relay: an approval requested through
//! the local API reaches only the account's phone and comes back verified; denial, cancel,
//! offline and recovery codes; a phone that unpairs disappears from the agent's device list
//! without any call (the mailbox loop applied it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use approvd_client::transport::unix_now;
use approvd_client::NasHome;
use approvd_proto::Decision;
use approvd_tests::agent::{call, start_agent, start_agent_with, AgentProcess};
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
    let relay = RelayProcess::start(&[]);
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

/// Ask alice's phones through the agent; the request id.
fn ask(agent: &AgentProcess, body: serde_json::Value) -> String {
    let (status, created) = call(agent, "POST", "/v1/requests", Some(body));
    assert_eq!(status, 201, "{created}");
    created["request_id"].as_str().expect("id").to_owned()
}

/// The phone answers `decision` to its first pending request; the outcome the agent reports.
async fn answered(
    agent: &AgentProcess,
    phone: &approvd_client::Phone,
    id: &str,
    decision: Decision,
) -> serde_json::Value {
    let received = phone.inbox(WAIT).await.expect("inbox").remove(0);
    phone
        .submit(&phone.answer(&received, decision, None))
        .await
        .expect("answered");
    call(agent, "GET", &format!("/v1/requests/{id}?wait=10"), None).1
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
    let agent = start_agent(&path);

    // Approve: the login page shows the number, the user types it on their phone.
    let (status, created) = call(
        &agent,
        "POST",
        "/v1/requests",
        Some(serde_json::json!({"user": "alice", "service": "SSH", "client_ip": "203.0.113.7"})),
    );
    assert_eq!(status, 201, "{created}");
    let id = created["request_id"].as_str().expect("id").to_owned();
    let number = created["number"]
        .as_str()
        .expect("a number for a sign-in")
        .to_owned();
    assert!(bob_phone
        .inbox(Duration::ZERO)
        .await
        .expect("inbox")
        .is_empty());
    let received = phone.inbox(WAIT).await.expect("inbox").remove(0);
    assert_eq!(received.context.service, "SSH");
    let (status, pending) = call(&agent, "GET", &format!("/v1/requests/{id}"), None);
    assert_eq!((status, pending["status"].as_str()), (200, Some("pending")));
    phone
        .submit(&phone.answer(&received, Decision::Approve, Some(&number)))
        .await
        .expect("approved");
    let (status, outcome) = call(&agent, "GET", &format!("/v1/requests/{id}?wait=10"), None);
    assert_eq!(status, 200);
    assert_eq!(outcome["status"], "approved", "{outcome}");
    assert_eq!(outcome["device_name"], "Alice's phone");

    // Deny, and cancel.
    let id = ask(&agent, serde_json::json!({"user": "alice"}));
    let outcome = answered(&agent, &phone, &id, Decision::Deny).await;
    assert_eq!(outcome["status"], "denied", "{outcome}");
    let id = ask(&agent, serde_json::json!({"user": "alice"}));
    assert_eq!(
        call(&agent, "DELETE", &format!("/v1/requests/{id}"), None).0,
        204
    );
    let (_, outcome) = call(&agent, "GET", &format!("/v1/requests/{id}"), None);
    assert_eq!(outcome["status"], "cancelled", "{outcome}");

    // The API describes itself, and every route it documents is served.
    let (status, document) = call(&agent, "GET", "/openapi.json", None);
    assert_eq!(status, 200);
    let paths = document["paths"].as_object().expect("paths");
    assert_eq!(paths.len(), 12, "{document}");
    for (path, item) in paths {
        for method in item.as_object().expect("methods").keys() {
            let concrete = path
                .replace("{id}", "AAAAAAAAAAAAAAAAAAAAAA")
                .replace("{device_id}", "AAAAAAAAAAAAAAAAAAAAAA")
                .replace("{user}", "nobody");
            let body = (method == "post").then(|| serde_json::json!({}));
            let (_, answer) = call(&agent, &method.to_uppercase(), &concrete, body);
            assert_ne!(
                answer["type"], "urn:approvd:problem:no-route",
                "{method} {path}"
            );
        }
    }

    // Fraud, and a request nobody answers.
    let id = ask(&agent, serde_json::json!({"user": "alice"}));
    let outcome = answered(&agent, &phone, &id, Decision::Fraud).await;
    assert_eq!(outcome["status"], "fraud", "{outcome}");
    let id = ask(
        &agent,
        serde_json::json!({"user": "alice", "lifetime_secs": 1}),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, outcome) = call(&agent, "GET", &format!("/v1/requests/{id}?wait=5"), None);
    assert_eq!(outcome["status"], "expired", "{outcome}");

    // Bad input is a problem, never a crash.
    let (status, problem) = call(
        &agent,
        "POST",
        "/v1/requests",
        Some(serde_json::json!({"user": "carol"})),
    );
    assert_eq!(status, 404, "{problem}");
    assert_eq!(problem["type"], "urn:approvd:problem:no-devices");
    let (status, _) = call(
        &agent,
        "POST",
        "/v1/requests",
        Some(serde_json::json!({"usr": "alice"})),
    );
    assert_eq!(status, 400);
    assert_eq!(call(&agent, "GET", "/v1/requests/nonsense", None).0, 404);

    // Offline and recovery codes, per account.
    let now = unix_now();
    let code = phone.offline_code(now).expect("code");
    let (_, checked) = call(
        &agent,
        "POST",
        "/v1/accounts/bob/offline-code",
        Some(serde_json::json!({"code": code})),
    );
    assert_eq!(checked["result"], "rejected", "alice's code is not bob's");
    let (_, checked) = call(
        &agent,
        "POST",
        "/v1/accounts/alice/offline-code",
        Some(serde_json::json!({"code": code})),
    );
    assert_eq!(checked["result"], "accepted", "{checked}");
    let (status, issued) = call(&agent, "POST", "/v1/accounts/alice/recovery-codes", None);
    assert_eq!(status, 201, "{issued}");
    let (_, checked) = call(
        &agent,
        "POST",
        "/v1/accounts/alice/recovery-code",
        Some(serde_json::json!({"code": issued["recovery_codes"][0]})),
    );
    assert_eq!(checked["result"], "accepted", "{checked}");
    let log = std::fs::read_to_string(path.join("agent.log")).unwrap_or_default();
    assert!(
        log.contains("alice: wrong code") || log.contains("bob: wrong code"),
        "{log}"
    );
    assert!(
        !log.contains(&code),
        "failed and accepted codes are logged without the code"
    );

    // Removing is per account.
    let bob_id = bob_device.device_id.to_string();
    let (status, _) = call(
        &agent,
        "DELETE",
        &format!("/v1/accounts/alice/devices/{bob_id}"),
        None,
    );
    assert_eq!(status, 404, "bob's phone is not alice's to remove");
    let (status, _) = call(
        &agent,
        "DELETE",
        &format!("/v1/accounts/bob/devices/{bob_id}"),
        None,
    );
    assert_eq!(status, 204);
    let (_, listed) = call(&agent, "GET", "/v1/accounts/bob/devices", None);
    assert_eq!(listed["devices"].as_array().map(Vec::len), Some(0));

    // The phone unpairs; the agent's mailbox loop drops it without being asked.
    let (_, listed) = call(&agent, "GET", "/v1/accounts/alice/devices", None);
    assert_eq!(listed["devices"].as_array().map(Vec::len), Some(1));
    phone.unpair().await.expect("unpaired");
    eventually(
        "the agent applies the unpair notice",
        Duration::from_secs(30),
        || {
            let agent = &agent;
            async move {
                let (_, listed) = call(agent, "GET", "/v1/accounts/alice/devices", None);
                listed["devices"].as_array().is_some_and(Vec::is_empty)
            }
        },
    )
    .await;
    let log = std::fs::read_to_string(path.join("agent.log")).unwrap_or_default();
    assert!(
        log.contains("Unpaired"),
        "the agent logs what it applied: {log}"
    );
    drop(device);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_pair_for_an_account_through_the_agent() {
    use approvd_client::Phone;
    use approvd_proto::pairing::PairingUri;

    let relay = RelayProcess::start(&[]);
    let dir = TempDir::new("agent-pairing");
    let path = dir.0.join("nas");
    NasHome::init(&path, &relay.url, "home-nas").expect("init");
    let agent = start_agent(&path);

    let (status, started) = call(
        &agent,
        "POST",
        "/v1/pairings",
        Some(serde_json::json!({"user": "carol", "ttl_secs": 120})),
    );
    assert_eq!(status, 201, "{started}");
    assert!(started["qr_svg"]
        .as_str()
        .is_some_and(|svg| svg.contains("<svg")));
    let id = started["pairing_id"].as_str().expect("id").to_owned();
    let uri = PairingUri::parse(started["uri"].as_str().expect("uri"), unix_now()).expect("uri");
    assert_eq!(uri.account, "carol");
    let (_, waiting) = call(&agent, "GET", &format!("/v1/pairings/{id}"), None);
    assert_eq!(waiting["status"], "waiting");

    let mut phone = Phone::enroll(&uri, "Carol's phone", "android", None)
        .await
        .expect("enroll");
    let code = phone
        .wait_for_acceptance(WAIT)
        .await
        .expect("poll")
        .expect("the agent committed to the claim");
    // The agent records the claim a moment after the phone can see its acceptance.
    let mut claimed = serde_json::Value::Null;
    for _ in 0..40 {
        claimed = call(&agent, "GET", &format!("/v1/pairings/{id}"), None).1;
        if claimed["status"] != "waiting" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(claimed["status"], "claimed", "{claimed}");
    assert_eq!(claimed["device_name"], "Carol's phone");
    let (status, paired) = call(
        &agent,
        "POST",
        &format!("/v1/pairings/{id}/confirm"),
        Some(serde_json::json!({ "code": code })),
    );
    assert_eq!(status, 200, "{paired}");
    assert_eq!(
        paired["recovery_codes"].as_array().map(Vec::len),
        Some(approvd_client::home::RECOVERY_CODES),
        "the account's first phone comes with recovery codes"
    );
    assert!(phone.wait_for_confirmation(WAIT).await.expect("poll"));
    let (_, listed) = call(&agent, "GET", "/v1/accounts/carol/devices", None);
    assert_eq!(listed["devices"][0]["name"], "Carol's phone");

    // The user may refuse a phone that is not theirs.
    let (_, started) = call(
        &agent,
        "POST",
        "/v1/pairings",
        Some(serde_json::json!({"user": "carol"})),
    );
    let id = started["pairing_id"].as_str().expect("id").to_owned();
    let (status, rejected) = call(&agent, "POST", &format!("/v1/pairings/{id}/reject"), None);
    assert_eq!((status, rejected["status"].as_str()), (200, Some("failed")));

    // A wrong code confirms nothing, and the pairing has to start over.
    let (_, started) = call(
        &agent,
        "POST",
        "/v1/pairings",
        Some(serde_json::json!({"user": "carol"})),
    );
    let id = started["pairing_id"].as_str().expect("id").to_owned();
    let uri = PairingUri::parse(started["uri"].as_str().expect("uri"), unix_now()).expect("uri");
    let second = Phone::enroll(&uri, "Carol's tablet", "android", None)
        .await
        .expect("enroll");
    let code = second
        .wait_for_acceptance(WAIT)
        .await
        .expect("poll")
        .expect("accepted");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (status, problem) = call(
        &agent,
        "POST",
        &format!("/v1/pairings/{id}/confirm"),
        Some(serde_json::json!({ "code": wrong })),
    );
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["type"], "urn:approvd:problem:wrong-code");
    let (_, failed) = call(&agent, "GET", &format!("/v1/pairings/{id}"), None);
    assert_eq!(failed["status"], "failed");
    let (status, _) = call(
        &agent,
        "POST",
        &format!("/v1/pairings/{id}/confirm"),
        Some(serde_json::json!({ "code": code })),
    );
    assert_eq!(status, 409, "the right code after a wrong one is too late");
    let (_, listed) = call(&agent, "GET", "/v1/accounts/carol/devices", None);
    assert_eq!(listed["devices"].as_array().map(Vec::len), Some(1));
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
    let mut agent = start_agent(&path);
    let (_, created) = call(
        &agent,
        "POST",
        "/v1/requests",
        Some(serde_json::json!({"user": "alice"})),
    );
    let id = created["request_id"].as_str().expect("id").to_owned();
    let number = created["number"].as_str().expect("number").to_owned();

    // A held poll is answered 503 at SIGTERM, not cut off.
    let held = {
        let socket = agent.socket.clone();
        let id = id.clone();
        std::thread::spawn(move || {
            let probe = AgentProcess {
                child: Command::new("true").spawn().expect("placeholder"),
                socket,
                tcp: None,
            };
            call(&probe, "GET", &format!("/v1/requests/{id}?wait=20"), None)
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let started = std::time::Instant::now();
    assert!(agent.terminate().success());
    let (status, problem) = held.join().expect("held poll");
    assert_eq!(status, 503, "{problem}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // The phone answers while the agent is down; the restarted agent judges the answer.
    let received = phone.inbox(WAIT).await.expect("inbox").remove(0);
    phone
        .submit(&phone.answer(&received, Decision::Approve, Some(&number)))
        .await
        .expect("approved");
    let agent = start_agent(&path);
    let (_, outcome) = call(&agent, "GET", &format!("/v1/requests/{id}?wait=10"), None);
    assert_eq!(outcome["status"], "approved", "{outcome}");
}

/// The README's `curl` lines, with the socket and request id of this test.
fn readme_curl(socket: &Path, request_id: &str) -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    readme
        .lines()
        .filter(|line| line.starts_with("curl -s --unix-socket approvd-nas/agent.sock"))
        .map(|line| {
            line.replace("approvd-nas/agent.sock", &socket.display().to_string())
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

    let commands = readme_curl(&agent.socket, "");
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
    let outcome = sh(&readme_curl(&agent.socket, id)[1]);
    assert_eq!(outcome["status"], "approved", "{outcome}");
    assert_eq!(outcome["device_name"], "Alice's laptop");
}
