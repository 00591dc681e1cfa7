//! PAM logins approved on the phone (`deploy/pam/`), run by `pamtester` through the real
//! libpam: the shipped `/etc/pam.d/approvd` line with `pam_approvd.so` and `approvd pam`, a
//! real agent and relay, and an SDK phone that reads the number from what PAM shows. Approve,
//! deny, wrong number, fraud, expiry, an account without phones, `pam_exec.so`, and both
//! policies for an unreachable relay and a stopped agent (offline code through the PAM
//! conversation). libpam reads services only from /etc/pam.d, so this test runs as root (the
//! test script does).

use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use approvd_client::transport::unix_now;
use approvd_client::{NasHome, Phone, ReceivedChallenge};
use approvd_proto::Decision;
use approvd_tests::agent::start_agent;
use approvd_tests::{
    approvd_binary, only_request, pair_for, workspace_binary, RelayProcess, TempDir,
};

const WAIT: Duration = Duration::from_secs(30);

/// A PAM service file under /etc/pam.d, removed on drop.
struct Service {
    name: String,
}

impl Service {
    fn install(label: &str, auth: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let name = format!(
            "approvd-test-{label}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let path = Path::new("/etc/pam.d").join(&name);
        std::fs::write(&path, format!("{auth}\naccount required pam_permit.so\n")).unwrap_or_else(
            |error| {
                panic!(
                    "cannot write {}: {error}. libpam reads services only from /etc/pam.d: run the tests as root (scripts/test does in CI)",
                    path.display()
                )
            },
        );
        Self { name }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(Path::new("/etc/pam.d").join(&self.name));
    }
}

/// The shipped `deploy/pam/approvd` auth line, pointed at this build, this home and `policy`.
fn shipped_line(home: &Path, policy: &str, extra: &str) -> String {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/pam/approvd"),
    )
    .expect("deploy/pam/approvd");
    let line = shipped
        .lines()
        .find(|line| line.starts_with("auth "))
        .expect("an auth line");
    let module = workspace_binary("libpam_approvd.so");
    line.replace(
        "/usr/local/lib/security/pam_approvd.so",
        &module.display().to_string(),
    )
    .replace(
        "/usr/local/bin/approvd",
        &approvd_binary().display().to_string(),
    )
    .replace("/var/lib/approvd/nas", &home.display().to_string())
    .replace(
        "--when-unreachable deny",
        &format!("--when-unreachable {policy}{extra}"),
    )
}

/// A running `pamtester`: what it prints (stdout and stderr, as it comes: a prompt has no
/// line end) and its exit.
struct Login {
    child: std::process::Child,
    output: mpsc::Receiver<String>,
    seen: String,
}

impl Login {
    fn start(service: &Service, user: &str, typed: Option<&str>) -> Self {
        // pamtester prints PAM's messages with stdio: unbuffered, so they arrive as shown.
        let mut child = Command::new("stdbuf")
            .args(["-o0", "-e0", "pamtester"])
            .args(["-v", "-I", "rhost=203.0.113.9", "-I", "tty=ssh"])
            .args([&service.name, user, "authenticate"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect(
                "pamtester is missing: install the Debian package pamtester (scripts/test does)",
            );
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some(typed) = typed {
            writeln!(stdin, "{typed}").expect("type");
        }
        drop(stdin);
        let (send, output) = mpsc::channel();
        for mut stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let send = send.clone();
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(read @ 1..) = stream.read(&mut buffer) {
                    let _ = send.send(String::from_utf8_lossy(&buffer[..read]).into_owned());
                }
            });
        }
        Self {
            child,
            output,
            seen: String::new(),
        }
    }

    /// The number PAM showed (waiting for it).
    fn number(&mut self) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let shown = self
                .seen
                .split("by typing ")
                .nth(1)
                .and_then(|rest| rest.split([',', '.', ' ']).next())
                .filter(|number| number.len() == 3);
            if let Some(number) = shown {
                return number.to_owned();
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.output.recv_timeout(left) {
                Ok(text) => self.seen.push_str(&text),
                Err(_) => panic!(
                    "pamtester never showed the number; it printed {:?}",
                    self.seen
                ),
            }
        }
    }

    /// Whether authentication succeeded, and everything printed.
    fn finish(mut self) -> (bool, String) {
        let status = self.child.wait().expect("pamtester exit");
        self.seen.extend(self.output.iter());
        (status.success(), self.seen)
    }
}

/// A login the phone answers with `decision` (and the number PAM showed, or `number`).
async fn answered(
    service: &Service,
    phone: &Phone,
    decision: Decision,
    number: Option<&str>,
) -> (bool, String, ReceivedChallenge) {
    // Enter at the number prompt (pam_exec shows the number as a message instead).
    let mut login = Login::start(service, "alice", Some(""));
    let shown = login.number();
    let received = only_request(phone, WAIT).await;
    phone
        .submit(&phone.answer(&received, decision, Some(number.unwrap_or(&shown))))
        .await
        .expect("answer");
    let (ok, output) = tokio::task::spawn_blocking(move || login.finish())
        .await
        .expect("pamtester");
    (ok, output, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_and_console_logins_wait_for_the_phone() {
    let mut relay = RelayProcess::start(&["--rate-challenges-per-device", "30"]);
    let dir = TempDir::new("pam");
    let home_path: PathBuf = dir.0.join("nas");
    let home = NasHome::init(&home_path, &relay.url, "Home NAS").expect("init");
    let nas = home.nas().expect("nas");
    let (phone, device, secret) = pair_for(&nas, "alice", "Alice's phone", None).await;
    home.add_device("alice", device, &secret).expect("recorded");
    let recovery = home.new_recovery_codes("alice").expect("recovery codes");
    drop(home);
    let mut agent = start_agent(&home_path);

    // Approve: PAM shows the number; the phone sees the login's service, address and terminal.
    let service = Service::install("deny", &shipped_line(&home_path, "deny", ""));
    let (ok, output, received) = answered(&service, &phone, Decision::Approve, None).await;
    assert!(ok, "{output}");
    assert!(output.contains("successfully authenticated"), "{output}");
    assert_eq!(received.context.user, "alice");
    assert_eq!(received.context.service, service.name);
    assert_eq!(received.context.client_ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(received.context.user_agent.as_deref(), Some("terminal ssh"));
    assert!(received.challenge.number_matching);

    // A code typed at the number prompt instead (here a recovery code): signed in, and the
    // phone's request is withdrawn.
    let mut login = Login::start(&service, "alice", Some(&recovery[0]));
    login.number();
    let (ok, output) = tokio::task::spawn_blocking(move || login.finish())
        .await
        .expect("pamtester");
    assert!(ok && output.contains("code accepted"), "{output}");
    approvd_tests::eventually("the request was withdrawn", WAIT, || async {
        phone.inbox(Duration::ZERO).await.expect("inbox").is_empty()
    })
    .await;
    let (ok, output) = Login::start(&service, "alice", Some(&recovery[0])).finish();
    assert!(
        !ok && output.contains("wrong code"),
        "a recovery code works once: {output}"
    );

    // Refusals: each fails the login with its own message.
    for (decision, wrong, message) in [
        (Decision::Deny, false, "you denied this login"),
        (Decision::Approve, true, "did not match"),
        (Decision::Fraud, false, "reported this login as not you"),
    ] {
        let wrong = wrong.then_some("000");
        let (ok, output, _) = answered(&service, &phone, decision, wrong).await;
        assert!(!ok, "{output}");
        assert!(output.contains(message), "{output}");
        assert!(output.contains("Authentication failure"), "{output}");
    }
    // After the fraud report alice cools down: the next login is refused without asking.
    let (ok, output) = Login::start(&service, "alice", None).finish();
    assert!(!ok && output.contains("not asked for a while"), "{output}");
    // The operator lifts it: stop the agent, remove the cool-down file, start it again.
    assert!(agent.terminate().success());
    std::fs::remove_file(home_path.join("agent-cooldowns.json")).expect("the cool-down file");
    agent = start_agent(&home_path);

    // Nobody answers: expired.
    let short = Service::install("expiry", &shipped_line(&home_path, "deny", " --lifetime 2"));
    let login = Login::start(&short, "alice", None);
    let (ok, output) = tokio::task::spawn_blocking(move || login.finish())
        .await
        .expect("pamtester");
    assert!(!ok && output.contains("expired"), "{output}");

    // An account without phones: "user unknown" (PAM_USER_UNKNOWN), so a stack may skip it.
    let (ok, output) = Login::start(&service, "bob", None).finish();
    assert!(!ok, "{output}");
    assert!(output.contains("no phone paired"), "{output}");
    assert!(output.contains("User not known"), "{output}");

    // pam_exec.so works too (messages only): the number arrives through its `stdout` option.
    let exec = Service::install(
        "exec",
        &format!(
            "auth required pam_exec.so stdout {} pam --socket {}",
            approvd_binary().display(),
            agent.login_socket.display()
        ),
    );
    let (ok, output, _) = answered(&exec, &phone, Decision::Approve, None).await;
    assert!(ok, "{output}");

    // The relay is down. Policy deny: refused. Policy offline-code: the code the app shows,
    // asked through the PAM conversation and checked by the agent.
    relay.kill();
    let (ok, output) = Login::start(&service, "alice", None).finish();
    assert!(!ok, "{output}");
    assert!(output.contains("cannot be asked right now"), "{output}");
    let fallback = Service::install("code", &shipped_line(&home_path, "offline-code", ""));
    let (ok, output) = Login::start(&fallback, "alice", Some("123456x")).finish();
    assert!(!ok && output.contains("wrong code"), "{output}");
    let code = phone.offline_code(unix_now()).expect("offline code");
    let (ok, output) = Login::start(&fallback, "alice", Some(&code)).finish();
    assert!(ok, "{output}");
    assert!(
        output.contains("Offline code from the approvd app"),
        "{output}"
    );
    assert!(output.contains("code accepted"), "{output}");
    let (ok, output) = Login::start(&fallback, "alice", Some(&code)).finish();
    assert!(!ok, "a code works once: {output}");

    // The agent is down too: the code is checked in the NAS home (--home).
    agent.terminate();
    let (ok, output) = Login::start(&service, "alice", None).finish();
    assert!(
        !ok && output.contains("cannot be asked right now"),
        "{output}"
    );
    let next = phone
        .offline_code(unix_now() + approvd_proto::totp::STEP)
        .expect("offline code");
    let (ok, output) = Login::start(&fallback, "alice", Some(&next)).finish();
    assert!(ok, "{output}");
    // No code typed at all: refused.
    let (ok, output) = Login::start(&fallback, "alice", None).finish();
    assert!(!ok, "{output}");
}

/// A real SSH login through a real sshd configured with the shipped
/// `deploy/pam/sshd_config.d/approvd.conf` and `/etc/pam.d/approvd` line: the key first, then
/// the phone. The ssh client reads the number prompt through `SSH_ASKPASS` (a script that notes
/// the prompt and answers Enter), the phone approves with that number, the command runs; a
/// denial refuses the login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssh_login_needs_the_key_and_the_phone() {
    let sshd = Path::new("/usr/sbin/sshd");
    assert!(
        sshd.exists(),
        "sshd is missing: install the Debian package openssh-server (scripts/test does)"
    );
    let relay = RelayProcess::start(&[]);
    let dir = TempDir::new("sshd");
    let home_path = dir.0.join("nas");
    let home = NasHome::init(&home_path, &relay.url, "Home NAS").expect("init");
    let nas = home.nas().expect("nas");
    let (phone, device, secret) = pair_for(&nas, "root", "Root's phone", None).await;
    home.add_device("root", device, &secret).expect("recorded");
    drop(home);
    let _agent = start_agent(&home_path);

    // sshd names its PAM service after the name it runs under: a link gives it this test's.
    let service = Service::install(
        "sshd",
        &format!(
            "{}\nsession required pam_permit.so",
            shipped_line(&home_path, "deny", "")
        ),
    );
    let link = dir.0.join(&service.name);
    std::os::unix::fs::symlink(sshd, &link).expect("link");
    let keygen = |name: &str| {
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.0.join(name))
            .status()
            .expect("ssh-keygen");
        assert!(status.success());
    };
    keygen("host_key");
    keygen("user_key");
    std::fs::copy(dir.0.join("user_key.pub"), dir.0.join("authorized_keys")).expect("keys");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/pam/sshd_config.d/approvd.conf");
    let config = dir.0.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_key\nPidFile none\n\
             AuthorizedKeysFile {dir}/authorized_keys\nPermitRootLogin yes\nStrictModes no\n\
             Include {shipped}\n",
            dir = dir.0.display(),
            shipped = shipped.canonicalize().expect("shipped config").display(),
        ),
    )
    .expect("config");
    std::fs::create_dir_all("/run/sshd").expect("sshd's privilege separation directory");
    let checked = Command::new(&link)
        .arg("-T")
        .arg("-f")
        .arg(&config)
        .output()
        .expect("sshd -T");
    let effective = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(effective.contains("authenticationmethods publickey,keyboard-interactive"));
    let mut daemon = Command::new(&link)
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .expect("sshd");
    let mut stderr = daemon.stderr.take().expect("stderr");
    let mut first = [0u8; 256];
    let read = stderr.read(&mut first).expect("sshd output");
    let line = String::from_utf8_lossy(&first[..read]).into_owned();
    assert!(line.contains("Server listening"), "{line}");
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    struct Daemon(std::process::Child);
    impl Drop for Daemon {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _daemon = Daemon(daemon);

    let prompts = dir.0.join("prompts");
    let askpass = dir.0.join("askpass");
    std::fs::write(
        &askpass,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$1\" >> {}\necho\n",
            prompts.display()
        ),
    )
    .expect("askpass");
    std::fs::set_permissions(
        &askpass,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let ssh = |decision: Decision| {
        let _ = std::fs::remove_file(&prompts);
        let login = Command::new("ssh")
            .args(["-F", "/dev/null", "-p", &port.to_string(), "-i"])
            .arg(dir.0.join("user_key"))
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "BatchMode=no",
                "-o",
                "NumberOfPasswordPrompts=1",
                "root@127.0.0.1",
                "echo",
                "signed-in-over-ssh",
            ])
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ssh is missing: install the Debian package openssh-client");
        let prompts = prompts.clone();
        let phone = &phone;
        let service = &service.name;
        async move {
            let deadline = std::time::Instant::now() + WAIT;
            let number = loop {
                let shown = std::fs::read_to_string(&prompts).unwrap_or_default();
                if let Some(number) = shown
                    .split("by typing ")
                    .nth(1)
                    .and_then(|rest| rest.split([',', ' ']).next())
                {
                    break number.to_owned();
                }
                assert!(std::time::Instant::now() < deadline, "no number prompt");
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            let received = only_request(phone, WAIT).await;
            assert_eq!(&received.context.service, service);
            assert_eq!(received.context.client_ip.as_deref(), Some("127.0.0.1"));
            phone
                .submit(&phone.answer(&received, decision, Some(&number)))
                .await
                .expect("answer");
            tokio::task::spawn_blocking(move || login.wait_with_output())
                .await
                .expect("join")
                .expect("ssh")
        }
    };
    let approved = ssh(Decision::Approve).await;
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&approved.stdout).trim(),
        "signed-in-over-ssh"
    );
    let denied = ssh(Decision::Deny).await;
    assert!(!denied.status.success());
    assert!(denied.stdout.is_empty(), "no command ran");
}

/// The page's resident memory (`VmRSS`), KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Alice signs in on the web page from her own address: password, the number on her phone,
/// then the page's finish step. Whether she got a session.
async fn web_sign_in(http: &reqwest::Client, base: &str, phone: &Phone) -> Result<(), String> {
    let (cookie, csrf) = crate::signin_web::browser_cookie_and_token(http, base).await;
    let started = http
        .post(format!("{base}/login"))
        .header("cookie", &cookie)
        .header("x-forwarded-for", "203.0.113.7")
        .form(&[
            ("username", "alice"),
            ("password", "correct horse"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .map_err(|error| error.to_string())?;
    let attempt = started
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .filter(|location| location.starts_with("/attempt/"))
        .map(str::to_owned)
        .ok_or_else(|| format!("the password step answered {}", started.status()))?;
    let page = http
        .get(format!("{base}{attempt}"))
        .header("cookie", &cookie)
        .send()
        .await
        .map_err(|error| error.to_string())?
        .text()
        .await
        .map_err(|error| error.to_string())?;
    let number = page
        .split("id=\"number\"")
        .nth(1)
        .and_then(|rest| rest.split('>').nth(1))
        .and_then(|rest| rest.split('<').next())
        .filter(|number| number.len() == 3)
        .ok_or_else(|| "no number on the attempt page".to_owned())?
        .to_owned();
    let received = only_request(phone, WAIT).await;
    // Behind the (trusted) proxy, the phone shows the client's address, not the proxy's (M3).
    if received.context.client_ip.as_deref() != Some("203.0.113.7") {
        return Err(format!(
            "the phone shows {:?}, not the client's address",
            received.context.client_ip
        ));
    }
    phone
        .submit(&phone.answer(&received, Decision::Approve, Some(&number)))
        .await
        .map_err(|error| error.to_string())?;
    // As the page's script does: wait for the approval, then finish.
    let mut status = String::new();
    for _ in 0..5 {
        let answer: serde_json::Value = http
            .get(format!("{base}{attempt}/status?wait=10"))
            .header("cookie", &cookie)
            .send()
            .await
            .map_err(|error| error.to_string())?
            .json()
            .await
            .map_err(|error| error.to_string())?;
        status = answer["status"].as_str().unwrap_or_default().to_owned();
        if status != "pending" {
            break;
        }
    }
    if status != "approved" {
        return Err(format!("the attempt's status is {status}"));
    }
    let finished = http
        .post(format!("{base}{attempt}/finish"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .map_err(|error| error.to_string())?;
    let signed_in = finished
        .headers()
        .get("location")
        .is_some_and(|to| to == "/")
        && finished
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|cookie| {
                cookie
                    .to_str()
                    .is_ok_and(|cookie| !cookie.contains("Max-Age=0"))
            });
    if signed_in {
        Ok(())
    } else {
        Err(format!("the finish step answered {}", finished.status()))
    }
}

/// What one anonymous client does until `stop` is set: status polls of its own decoy
/// attempts and of made-up ids (`wait=0`), wrong passwords for made-up names, passwordless
/// attempts for names with no phone and wrong codes (with a wrong password) typed into them,
/// all from its one address. Counts of each answer status.
async fn hammer(
    base: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::collections::BTreeMap<u16, u64> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let (cookie, csrf) = crate::signin_web::browser_cookie_and_token(&http, &base).await;
    let mut seen = std::collections::BTreeMap::new();
    let mut attempts: Vec<String> = Vec::new();
    let mut n = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        let request = match n % 4 {
            0 => http.post(format!("{base}/login")).form(&[
                ("username", format!("guess{n}")),
                ("password", "hunter2".to_owned()),
                ("csrf", csrf.clone()),
            ]),
            1 => http
                .post(format!("{base}/passwordless"))
                .form(&[("username", format!("mallory{n}")), ("csrf", csrf.clone())]),
            2 => match attempts.last() {
                Some(attempt) => http.post(format!("{base}{attempt}/code")).form(&[
                    ("code", "000000".to_owned()),
                    ("password", "hunter2".to_owned()),
                    ("csrf", csrf.clone()),
                ]),
                None => http.get(format!("{base}/attempt/{}/status?wait=0", "A".repeat(22))),
            },
            _ => {
                let attempt = attempts
                    .get(n as usize % attempts.len().max(1))
                    .cloned()
                    .unwrap_or_else(|| format!("/attempt/{}", "B".repeat(22)));
                http.get(format!("{base}{attempt}/status?wait=0"))
            }
        };
        let Ok(answer) = request
            .header("cookie", &cookie)
            .header("x-forwarded-for", "198.51.100.66")
            .send()
            .await
        else {
            *seen.entry(0).or_default() += 1;
            continue;
        };
        if let Some(location) = answer
            .headers()
            .get("location")
            .and_then(|value| value.to_str().ok())
            .filter(|location| location.starts_with("/attempt/"))
        {
            attempts.push(location.to_owned());
        }
        *seen.entry(answer.status().as_u16()).or_default() += 1;
    }
    seen
}

/// The soak of issue 26: while one anonymous client hammers the sign-in page (status polls,
/// wrong passwords, decoy attempts and wrong codes, from its own address), alice signs in three
/// times on the web page and three times over PAM, and is never refused; the page's memory
/// stays bounded (its password checks run in at most 4 × 19 MiB of reused buffers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_user_signs_in_over_pam_and_the_web_while_a_stranger_hammers_the_page() {
    let crate::signin_web::AlicesPage {
        page,
        base,
        http,
        phone,
        home_path,
        ..
    } = &crate::signin_web::alices_page("soak", &["--rate-challenges-per-device", "30"]).await;
    let base = base.clone();
    let pid = page.0.id();
    let service = Service::install("soak", &shipped_line(home_path, "deny", ""));
    let before = rss_kib(pid);

    // Two connections of one client, as fast as the page answers, for as long as alice signs in.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let strangers: Vec<_> = (0..2)
        .map(|_| tokio::spawn(hammer(base.clone(), stop.clone())))
        .collect();
    let mut refused = Vec::new();
    let mut peak = before;
    for round in 0..3 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        if let Err(why) = web_sign_in(http, &base, phone).await {
            refused.push(format!("web sign-in {round}: {why}"));
        }
        let (ok, output, _) = answered(&service, phone, Decision::Approve, None).await;
        if !ok {
            refused.push(format!("PAM login {round}: {output}"));
        }
        peak = peak.max(rss_kib(pid));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut seen = std::collections::BTreeMap::new();
    for stranger in strangers {
        for (status, count) in stranger.await.expect("stranger") {
            *seen.entry(status).or_insert(0u64) += count;
        }
    }
    peak = peak.max(rss_kib(pid));
    let total: u64 = seen.values().sum();
    eprintln!(
        "soak: {total} stranger requests {seen:?}; page RSS {} MiB before, {} MiB at most",
        before / 1024,
        peak / 1024
    );
    assert!(refused.is_empty(), "alice was refused: {refused:#?}");
    assert!(total > 1000, "the stranger did hammer: {seen:?}");
    assert!(
        !seen.contains_key(&500) && !seen.contains_key(&0),
        "no server error, no dropped connection: {seen:?}"
    );
    assert!(
        seen.get(&429).copied().unwrap_or(0) > 0,
        "the stranger's wrong passwords and attempts were limited: {seen:?}"
    );
    assert!(
        peak < 160 * 1024,
        "the page stays within its password buffers and some: {} MiB",
        peak / 1024
    );
}

/// H3: with the agent down, the PAM helper (root) checks a code in the NAS home. Before, it
/// wrote the state as root: `devices.json` became root's and the agent (its own user) could
/// no longer start. Now it becomes the home's owner first: after a code login the files are
/// still the owner's (`nobody` here), and an agent running as that user starts on the home.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h3_the_root_fallback_leaves_a_home_of_another_user_that_users_own() {
    use std::os::unix::fs::MetadataExt as _;
    let relay = RelayProcess::start(&[]);
    let dir = TempDir::new("pam-owner");
    let home_path: PathBuf = dir.0.join("nas");
    let home = NasHome::init(&home_path, &relay.url, "Home NAS").expect("init");
    let (phone, device, secret) =
        pair_for(&home.nas().expect("nas"), "alice", "Alice's phone", None).await;
    home.add_device("alice", device, &secret).expect("recorded");
    drop(home);
    let id = |flag: &str| {
        let output = Command::new("id")
            .args([flag, "nobody"])
            .output()
            .expect("id");
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse::<u32>()
            .expect("an id")
    };
    let (uid, gid) = (id("-u"), id("-g"));
    let mut paths = vec![home_path.clone()];
    paths.extend(
        std::fs::read_dir(&home_path)
            .expect("home")
            .map(|entry| entry.expect("entry").path()),
    );
    for path in &paths {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
    }
    let before = std::fs::read(home_path.join("devices.json")).expect("state");

    // No agent runs: the helper falls back to the home, as nobody.
    let service = Service::install("owner", &shipped_line(&home_path, "offline-code", ""));
    let code = phone.offline_code(unix_now()).expect("offline code");
    let (ok, output) = Login::start(&service, "alice", Some(&code)).finish();
    assert!(ok, "{output}");
    assert!(output.contains("code accepted"), "{output}");
    let after = std::fs::read(home_path.join("devices.json")).expect("state");
    assert_ne!(before, after, "the accepted step was written");
    for entry in std::fs::read_dir(&home_path).expect("home") {
        let path = entry.expect("entry").path();
        let meta = std::fs::symlink_metadata(&path).expect("meta");
        assert_eq!(
            (meta.uid(), meta.gid()),
            (uid, gid),
            "{} belongs to the home's owner",
            path.display()
        );
    }
    // The owner's agent starts on it (it refuses a home whose files are not its own).
    let agent = Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(approvd_binary())
        .args(["agent", "--home"])
        .arg(&home_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agent as nobody");
    let mut agent = crate::signin_web::Killed(agent);
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(agent.0.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("a line");
    assert!(line.starts_with("approvd agent listening on"), "{line}");
}
