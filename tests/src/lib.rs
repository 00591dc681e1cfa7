//! Harness for the integration tests: start the real `approvd` binary on a free loopback port,
//! learn its address from its first stdout line, keep its log, kill it on drop. Plus small
//! helpers to pair phones and build login contexts. Owns no production behaviour.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use approvd_client::{Nas, PairedDevice, Phone};
use approvd_proto::context::{LoginContext, LoginKind};
use approvd_proto::wire::PushRegistration;

pub mod agent;
pub mod redis;
pub mod tls;

/// The `approvd` binary next to this test executable (`target/<profile>/approvd`). The test
/// script builds it first (`cargo build --workspace --bins`).
pub fn approvd_binary() -> PathBuf {
    workspace_binary("approvd")
}

/// A binary of the workspace next to this test executable (`target/<profile>/<name>`).
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let binary = profile_dir.join(name);
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build --workspace --bins --lib` first (scripts/test does)",
        binary.display()
    );
    binary
}

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "approvd-{label}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `approvd serve`.
#[derive(Debug)]
pub struct RelayProcess {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    log_path: PathBuf,
    pub dir: TempDir,
}

impl RelayProcess {
    /// Start `approvd serve --bind 127.0.0.1:0 --data-dir <temp> <extra_args>`.
    pub fn start(extra_args: &[&str]) -> Self {
        Self::start_with_env(extra_args, &[])
    }

    /// [`RelayProcess::start`] with extra environment variables.
    pub fn start_with_env(extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::launch(Command::new(approvd_binary()), extra_args, env)
    }

    /// [`RelayProcess::start`] in a process allowed only `nofile` open file descriptors
    /// (`ulimit -n`), as on a host whose limits are low or already used up.
    pub fn start_with_fd_limit(nofile: u64, extra_args: &[&str]) -> Self {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg("ulimit -n \"$0\" && exec \"$@\"")
            .arg(nofile.to_string())
            .arg(approvd_binary());
        Self::launch(command, extra_args, &[])
    }

    /// Run `command` (the binary, or a wrapper that execs it) with `serve` and the test flags.
    fn launch(mut command: Command, extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = TempDir::new("relay");
        let log_path = dir.0.join("relay.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        command
            .arg("serve")
            .args(["--bind", "127.0.0.1:0"])
            .env("APPROVD_LOG", "info,actix_server=warn")
            .arg("--data-dir")
            .arg(dir.0.join("data"))
            .args(extra_args)
            .env_remove("APPROVD_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("spawn approvd");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_default();
        let url = line
            .trim()
            .strip_prefix("approvd listening on ")
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("approvd did not start (stdout: {line:?}); its log:\n{log}")
            })
            .to_owned();
        Self {
            child,
            url,
            log_path,
            dir,
        }
    }

    /// The relay's process id (for readings from /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the relay logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Kill the process at once (SIGKILL), as in a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Send SIGTERM (graceful shutdown).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Wait for the process to exit, up to `timeout`; the exit status, or `None` if still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A NAS with a fresh key talking to this relay.
    pub fn nas(&self) -> Nas {
        Nas::new(&self.url, approvd_proto::generate_signing_key()).expect("relay URL")
    }

    /// An unauthenticated GET (operations endpoints).
    pub async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(format!("{}{path}", self.url))
            .await
            .expect("request")
    }

    /// The sum of the samples of `prefix`: a metric name (all its series) or one series
    /// written as exposed (`name{label="value"}`). `None` when the relay exports none.
    pub async fn metric(&self, prefix: &str) -> Option<f64> {
        let text = self
            .get("/metrics")
            .await
            .text()
            .await
            .expect("metrics text");
        let values: Vec<f64> = text
            .lines()
            .filter_map(|line| line.strip_prefix(prefix))
            .filter(|rest| rest.starts_with(['{', ' ']))
            .filter_map(|rest| rest.rsplit(' ').next()?.parse().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A handle key file that several replicas share (every replica must open every handle).
pub fn shared_handle_keys(dir: &TempDir) -> String {
    let path = dir.0.join("handle-keys");
    std::fs::write(
        &path,
        approvd_relay::push_handle::HandleKeys::generate_file_text().as_bytes(),
    )
    .expect("write keys");
    path.display().to_string()
}

/// A context for tests of the relay's behaviour: an action approval, which (unlike a sign-in)
/// may go without number matching. [`login`] is a sign-in.
pub fn context(user: &str) -> LoginContext {
    LoginContext {
        kind: LoginKind::Action,
        action: Some(format!("Approve the test request of {user}")),
        ..login(user)
    }
}

/// A sign-in context for tests (number matching required).
pub fn login(user: &str) -> LoginContext {
    LoginContext {
        user: user.to_owned(),
        service: "DSM".to_owned(),
        nas_label: "test-nas".to_owned(),
        client_ip: Some("198.51.100.23".to_owned()),
        user_agent: Some("Mozilla/5.0 (test)".to_owned()),
        location: Some("Lisbon, PT".to_owned()),
        kind: LoginKind::Login,
        action: None,
        time: approvd_client::transport::unix_now(),
    }
}

/// A fake push registration (the relay's log sender "delivers" it).
pub fn push_registration() -> PushRegistration {
    PushRegistration {
        provider: approvd_proto::wire::PushProvider::Apns,
        token: "ab".repeat(32),
        topic: "dev.approvd.test".to_owned(),
        p256dh: None,
        auth: None,
    }
}

/// Assert that the relay told the NAS, through its mailbox, that `gone`'s push token or
/// subscription is dead (a `push_gone` notice), within 5 s.
pub async fn assert_push_gone_reaches_the_nas(
    nas: &Nas,
    devices: &[approvd_client::PairedDevice],
    gone: approvd_proto::DeviceId,
) {
    let events = nas
        .drain_mailbox(devices, Duration::from_secs(5))
        .await
        .expect("mailbox");
    assert!(
        events.contains(&approvd_client::MailboxEvent::PushGone { device_id: gone }),
        "{events:?}"
    );
}

/// What the relay reported for each target of a sent challenge, in target order.
pub fn deliveries(sent: &approvd_client::SentChallenge) -> Vec<approvd_proto::wire::Delivery> {
    sent.report
        .deliveries
        .iter()
        .map(|entry| entry.delivery)
        .collect()
}

/// Ask `device` (alone) to approve a 60-second login of `user`, without number matching.
pub async fn request_one(
    nas: &Nas,
    device: &PairedDevice,
    user: &str,
) -> approvd_client::SentChallenge {
    nas.request_approval(
        std::slice::from_ref(device),
        &context(user),
        false,
        Duration::from_secs(60),
    )
    .await
    .expect("challenge")
}

/// Pair a new phone with `nas` through the relay (full flow, every check) for the account
/// `alice`. Returns the phone and the device record the NAS keeps.
pub async fn pair(nas: &Nas, name: &str, push: Option<PushRegistration>) -> (Phone, PairedDevice) {
    let (phone, device, _) = pair_for(nas, "alice", name, push).await;
    (phone, device)
}

/// [`pair`] for `account`; also returns the offline-code secret the NAS keeps.
pub async fn pair_for(
    nas: &Nas,
    account: &str,
    name: &str,
    push: Option<PushRegistration>,
) -> (Phone, PairedDevice, approvd_proto::totp::CodeSecret) {
    let uri = nas
        .start_pairing("test-nas", account, Duration::from_secs(120))
        .await
        .expect("start pairing");
    let mut phone = Phone::enroll(&uri, name, "ios", push)
        .await
        .expect("enroll");
    let verified = nas
        .wait_for_claim(&uri, Duration::from_secs(5))
        .await
        .expect("claim poll")
        .expect("claim arrived");
    let code = phone
        .wait_for_acceptance(Duration::from_secs(5))
        .await
        .expect("acceptance poll")
        .expect("the NAS accepted this claim");
    assert!(
        verified.code_matches(&code),
        "the NAS expects the code the phone shows"
    );
    let (device, code_secret) = nas.confirm(&verified, &code).await.expect("confirm");
    assert!(
        phone
            .wait_for_confirmation(Duration::from_secs(5))
            .await
            .expect("confirmation poll"),
        "confirmation arrived"
    );
    (phone, device, code_secret)
}

/// Run `poll` (a request that waits: a long-poll, a held verdict poll) while `act` starts after
/// `delay` — the shape of every "one party waits, another acts" test. Returns both outputs.
pub async fn while_polling<P, A>(poll: P, delay: Duration, act: A) -> (P::Output, A::Output)
where
    P: std::future::Future,
    A: std::future::Future,
{
    tokio::join!(poll, async move {
        tokio::time::sleep(delay).await;
        act.await
    })
}

/// Re-check `holds` every 50 ms until it is true; panic with `what` after `timeout`. For effects
/// that happen in the background (pushes, dismissals, metrics).
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut holds: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    while !holds().await {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The requests to answer among what the phone fetched: notices and retirements (the NAS
/// telling, with nothing to approve) left out.
pub fn requests(
    fetched: Vec<approvd_client::ReceivedChallenge>,
) -> Vec<approvd_client::ReceivedChallenge> {
    fetched
        .into_iter()
        .filter(|received| received.context.is_answerable())
        .collect()
}

/// The phone's one pending request, waiting up to `wait` for it (a held inbox poll also ends
/// when a request is withdrawn: poll again until one is there). Panics if there are several.
pub async fn only_request(phone: &Phone, wait: Duration) -> approvd_client::ReceivedChallenge {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let fetched = phone.inbox(wait).await.expect("inbox");
        let only_notices = !fetched.is_empty();
        let mut pending = requests(fetched);
        if !pending.is_empty() {
            assert_eq!(pending.len(), 1, "one request on the phone");
            return pending.remove(0);
        }
        if only_notices {
            // A notice answers the held poll at once; wait a moment before asking again.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no request reached the phone"
        );
    }
}

/// PKCS#8 (private) and SPKI (public) PEM for an Ed25519 key.
pub fn ed25519_pems(key: &ed25519_dalek::SigningKey) -> (String, String) {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let mut private = hex_bytes("302e020100300506032b657004220420");
    private.extend_from_slice(&key.to_bytes());
    let mut public = hex_bytes("302a300506032b6570032100");
    public.extend_from_slice(key.verifying_key().as_bytes());
    (
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            engine.encode(private)
        ),
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            engine.encode(public)
        ),
    )
}

fn hex_bytes(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}
