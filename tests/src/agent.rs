//! The NAS agent (`approvd agent`) as a process for tests, its typed client
//! (`approvd_agent::client`, for everything a login system does), and one-shot raw HTTP/1.1
//! calls over its Unix socket (for what no client would send: malformed and hostile input).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::approvd_binary;

/// The agent process; killed on drop.
#[derive(Debug)]
pub struct AgentProcess {
    pub child: Child,
    /// The admin socket (`<home>/agent.sock`, or `--socket`): every route.
    pub socket: PathBuf,
    /// The login socket (`<home>/login.sock`, or `--login-socket`): sign-in requests only.
    pub login_socket: PathBuf,
    /// `127.0.0.1:<port>` when started with `--listen`.
    pub tcp: Option<String>,
}

impl AgentProcess {
    /// The API's client over the admin socket.
    pub fn client(&self) -> approvd_agent::client::AgentClient {
        approvd_agent::client::AgentClient::new(approvd_agent::client::Endpoint::Socket(
            self.socket.clone(),
        ))
        .expect("client")
    }

    /// The API's client over the login socket (what a login system holds).
    pub fn login_client(&self) -> approvd_agent::client::AgentClient {
        approvd_agent::client::AgentClient::new(approvd_agent::client::Endpoint::Socket(
            self.login_socket.clone(),
        ))
        .expect("client")
    }

    /// SIGTERM, then wait for the exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("exit")
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_agent(home: &Path) -> AgentProcess {
    start_agent_with(home, &[])
}

pub fn start_agent_with(home: &Path, extra: &[&str]) -> AgentProcess {
    let mut child = Command::new(approvd_binary())
        .args(["agent", "--home"])
        .arg(home)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(home.join("agent.log")).expect("log"))
        .spawn()
        .expect("spawn agent");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut socket = || {
        let mut line = String::new();
        stdout.read_line(&mut line).expect("a listening line");
        let (path, _) = line
            .trim()
            .strip_prefix("approvd agent listening on ")
            .and_then(|rest| rest.split_once(" ("))
            .unwrap_or_else(|| panic!("a socket line: {line}"));
        PathBuf::from(path)
    };
    let (socket, login_socket) = (socket(), socket());
    let tcp = extra.contains(&"--listen").then(|| {
        let mut line = String::new();
        stdout.read_line(&mut line).expect("third line");
        line.trim()
            .strip_prefix("approvd agent listening on http://")
            .expect("the TCP address")
            .to_owned()
    });
    AgentProcess {
        child,
        socket,
        login_socket,
        tcp,
    }
}

/// One HTTP/1.1 exchange over the agent's socket: status and JSON body.
pub fn call(
    agent: &AgentProcess,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let body = body.map(|body| body.to_string()).unwrap_or_default();
    call_raw(agent, method, path, body.as_bytes())
}

/// [`call`] with a body of any bytes (not JSON, oversized, …).
pub fn call_raw(
    agent: &AgentProcess,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, serde_json::Value) {
    let mut stream = UnixStream::connect(&agent.socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(40)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .expect("write");
    // The agent may answer (413) before reading all of a large body, then close.
    let _ = stream.write_all(body);
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
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

/// An approval of `purpose` for `account`, asked through the agent and approved on `phone`
/// (with the number the agent drew): what to give as `approval` (N-8).
pub async fn approved_on(
    agent: &approvd_agent::client::AgentClient,
    phone: &approvd_client::Phone,
    account: &approvd_agent::api::AccountName,
    purpose: approvd_agent::api::Purpose,
) -> approvd_agent::api::Authorisation {
    let asked = agent
        .ask_approval(account, purpose)
        .await
        .expect("approval asked");
    let received = phone
        .inbox(Duration::from_secs(30))
        .await
        .expect("inbox")
        .into_iter()
        .find(|received| received.challenge.cid == asked.request_id)
        .expect("the approval request");
    assert_eq!(
        received.context.action.as_deref(),
        Some(purpose.action(account).as_str()),
        "the phone is told what it approves"
    );
    phone
        .submit(&phone.answer(
            &received,
            approvd_proto::Decision::Approve,
            asked.number.as_deref(),
        ))
        .await
        .expect("approved");
    let status = agent
        .request_status(&asked.request_id, 10)
        .await
        .expect("status");
    assert!(
        matches!(status, approvd_agent::api::RequestStatus::Approved(_)),
        "{status:?}"
    );
    approvd_agent::api::Authorisation {
        approval: Some(asked.request_id),
        recovery_code: None,
    }
}
