//! `approvd agent` over its Unix socket, against a real relay: an approval requested through
//! the local API reaches only the account's phone and comes back verified; denial, cancel,
//! offline and recovery codes; a phone that unpairs disappears from the agent's device list
//! without any call (the mailbox loop applied it).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use approvd_client::transport::unix_now;
use approvd_client::NasHome;
use approvd_proto::Decision;
use approvd_tests::{approvd_binary, eventually, pair_for, RelayProcess, TempDir};

const WAIT: Duration = Duration::from_secs(10);

/// The agent process; killed on drop.
struct AgentProcess {
    child: Child,
    socket: PathBuf,
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_agent(home: &Path) -> AgentProcess {
    let socket = home.join("agent.sock");
    let mut child = Command::new(approvd_binary())
        .args(["agent", "--home"])
        .arg(home)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(home.join("agent.log")).expect("log"))
        .spawn()
        .expect("spawn agent");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    assert!(line.starts_with("approvd agent listening on"), "{line}");
    AgentProcess { child, socket }
}

/// One HTTP/1.1 exchange over the agent's socket: status and JSON body.
fn call(
    agent: &AgentProcess,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut stream = UnixStream::connect(&agent.socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(40)))
        .expect("timeout");
    let body = body.map(|body| body.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status");
    let json = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .filter(|body| !body.is_empty())
        .map(|body| serde_json::from_str(body).expect("JSON body"))
        .unwrap_or(serde_json::Value::Null);
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_system_asks_the_agent_and_gets_verified_answers() {
    let relay = RelayProcess::start(&[]);
    let dir = TempDir::new("agent");
    let path = dir.0.join("nas");
    let home = NasHome::init(&path, &relay.url, "home-nas").expect("init");
    let nas = home.nas().expect("nas");
    let (phone, device, secret) = pair_for(&nas, "alice", "Alice's phone", None).await;
    home.add_device("alice", device.clone(), &secret)
        .expect("recorded");
    let (bob_phone, bob_device, bob_secret) = pair_for(&nas, "bob", "Bob's phone", None).await;
    home.add_device("bob", bob_device, &bob_secret)
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
    let (_, created) = call(
        &agent,
        "POST",
        "/v1/requests",
        Some(serde_json::json!({"user": "alice"})),
    );
    let id = created["request_id"].as_str().expect("id").to_owned();
    let received = phone.inbox(WAIT).await.expect("inbox").remove(0);
    phone
        .submit(&phone.answer(&received, Decision::Deny, None))
        .await
        .expect("denied");
    let (_, outcome) = call(&agent, "GET", &format!("/v1/requests/{id}?wait=10"), None);
    assert_eq!(outcome["status"], "denied", "{outcome}");
    let (_, created) = call(
        &agent,
        "POST",
        "/v1/requests",
        Some(serde_json::json!({"user": "alice"})),
    );
    let id = created["request_id"].as_str().expect("id").to_owned();
    assert_eq!(
        call(&agent, "DELETE", &format!("/v1/requests/{id}"), None).0,
        204
    );
    let (_, outcome) = call(&agent, "GET", &format!("/v1/requests/{id}"), None);
    assert_eq!(outcome["status"], "cancelled", "{outcome}");

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
    let recovery = home.new_recovery_codes("alice").expect("codes");
    let (_, checked) = call(
        &agent,
        "POST",
        "/v1/accounts/alice/recovery-code",
        Some(serde_json::json!({"code": recovery[0]})),
    );
    assert_eq!(checked["result"], "accepted", "{checked}");

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
