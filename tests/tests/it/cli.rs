//! The README quickstart, run for real: the exact `approvd nas …` / `approvd phone …` commands
//! of README.md (each is checked to appear there verbatim) as subprocesses against a real relay.
//! Also `approvd demo`.

use std::io::{BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use approvd_tests::{approvd_binary, RelayProcess, TempDir};

const README_RELAY: &str = "http://127.0.0.1:8080";

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
        .expect("README.md")
}

/// `command` (as written in the README) with the relay URL swapped for `relay`, as arguments.
fn args(command: &str, relay: &str) -> Vec<String> {
    assert!(
        readme().contains(command),
        "README.md no longer shows `{command}`"
    );
    command
        .strip_prefix("approvd ")
        .expect("starts with approvd")
        .replace(README_RELAY, relay)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn run(dir: &TempDir, arguments: &[String]) -> Output {
    Command::new(approvd_binary())
        .args(arguments)
        .current_dir(&dir.0)
        .output()
        .expect("run approvd")
}

fn spawn(dir: &TempDir, arguments: &[String]) -> Child {
    Command::new(approvd_binary())
        .args(arguments)
        .current_dir(&dir.0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn approvd")
}

/// Read `child`'s stdout until a line satisfies `want`; return that line.
fn read_until(reader: &mut impl std::io::BufRead, want: impl Fn(&str) -> bool) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader.read_line(&mut line).expect("read stdout");
        assert!(read > 0, "stdout ended before the expected line");
        if want(line.trim()) {
            return line.trim().to_owned();
        }
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_readme_quickstart_works_as_written() {
    let relay = RelayProcess::start(&[]);
    let dir = TempDir::new("quickstart");

    let init = run(
        &dir,
        &args(
            "approvd nas init --relay http://127.0.0.1:8080 --label home-nas",
            &relay.url,
        ),
    );
    assert!(init.status.success(), "{}", text(&init));

    let mut pair = spawn(&dir, &args("approvd nas pair --user alice", &relay.url));
    let mut pair_out = BufReader::new(pair.stdout.take().expect("stdout"));
    let uri = read_until(&mut pair_out, |line| line.starts_with("approvd://pair?"));
    assert!(readme()
        .contains("approvd phone enroll --name \"Alice's laptop\" 'approvd://pair?v=1&r=...'"));
    let mut enroll = Command::new(approvd_binary())
        .args(["phone", "enroll", "--name", "Alice's laptop", &uri])
        .current_dir(&dir.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn enroll");
    let mut enroll_out = BufReader::new(enroll.stdout.take().expect("stdout"));
    read_until(&mut pair_out, |line| line.contains("wants to pair"));
    let code_line = read_until(&mut enroll_out, |line| line.starts_with("Security code:"));
    let phone_code = code_line
        .split_whitespace()
        .nth(2)
        .expect("code")
        .to_owned();
    assert_eq!(phone_code.len(), 6, "{code_line}");
    pair.stdin
        .take()
        .expect("stdin")
        .write_all(format!("{phone_code}\n").as_bytes())
        .expect("type the phone's code on the NAS");
    let paired = pair.wait_with_output().expect("pair");
    assert!(paired.status.success(), "{}", text(&paired));
    let paired_line = read_until(&mut enroll_out, |line| line.starts_with("paired with"));
    assert!(paired_line.contains("NAS signature verified"));
    assert!(enroll.wait().expect("enroll").success());
    let mut request = spawn(
        &dir,
        &args(
            "approvd nas request --user alice --ip 203.0.113.7",
            &relay.url,
        ),
    );
    let mut request_out = BufReader::new(request.stdout.take().expect("stdout"));
    let cid = read_until(&mut request_out, |line| line.starts_with("challenge "))
        .split_whitespace()
        .nth(1)
        .expect("cid")
        .to_owned();
    let number = read_until(&mut request_out, |line| line.starts_with("number to type"))
        .rsplit(' ')
        .next()
        .expect("number")
        .to_owned();

    let inbox = run(&dir, &args("approvd phone inbox", &relay.url));
    let inbox_text = text(&inbox);
    assert!(
        inbox.status.success()
            && inbox_text.contains(&cid)
            && inbox_text.contains("user:      alice")
            && inbox_text.contains("203.0.113.7"),
        "{inbox_text}"
    );

    let approve_args = args("approvd phone approve <cid> --number <NNN>", &relay.url)
        .into_iter()
        .map(|arg| arg.replace("<cid>", &cid).replace("<NNN>", &number))
        .collect::<Vec<_>>();
    let approve = run(&dir, &approve_args);
    assert!(approve.status.success(), "{}", text(&approve));
    let outcome = request.wait_with_output().expect("request");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut request_out, &mut rest);
    assert_eq!(outcome.status.code(), Some(0), "{rest}");
    assert!(
        rest.contains("APPROVED by Alice's laptop (signature verified)"),
        "{rest}"
    );
    assert!(readme().contains("APPROVED by Alice's laptop (signature verified)"));

    // A denial exits 1; so does an approval with the wrong number, which the NAS counts as a
    // denial even though the relay accepts it.
    let mut denied = spawn(
        &dir,
        &[
            "nas".to_owned(),
            "request".to_owned(),
            "--user".to_owned(),
            "alice".to_owned(),
        ],
    );
    let mut denied_out = BufReader::new(denied.stdout.take().expect("stdout"));
    let cid = read_until(&mut denied_out, |line| line.starts_with("challenge "))
        .split_whitespace()
        .nth(1)
        .expect("cid")
        .to_owned();
    let deny = run(&dir, &["phone".into(), "deny".into(), cid]);
    assert!(deny.status.success(), "phone deny: {}", text(&deny));
    assert_eq!(denied.wait().expect("request").code(), Some(1));

    let mut wrong = spawn(
        &dir,
        &[
            "nas".into(),
            "request".into(),
            "--user".into(),
            "alice".into(),
            "--number-matching".into(),
        ],
    );
    let mut wrong_out = BufReader::new(wrong.stdout.take().expect("stdout"));
    let cid = read_until(&mut wrong_out, |line| line.starts_with("challenge "))
        .split_whitespace()
        .nth(1)
        .expect("cid")
        .to_owned();
    let number = read_until(&mut wrong_out, |line| line.starts_with("number to type"))
        .rsplit(' ')
        .next()
        .expect("n")
        .to_owned();
    let wrong_number = if number == "100" { "101" } else { "100" };
    assert!(run(
        &dir,
        &[
            "phone".into(),
            "approve".into(),
            cid,
            "--number".into(),
            wrong_number.into()
        ]
    )
    .status
    .success());
    let wrong_exit = wrong.wait().expect("request").code();
    let mut wrong_rest = String::new();
    let _ = std::io::Read::read_to_string(&mut wrong_out, &mut wrong_rest);
    assert_eq!(
        wrong_exit,
        Some(1),
        "an approval with the wrong number is a denial: {wrong_rest}"
    );
    assert!(wrong_rest.contains("wrong number"), "{wrong_rest}");

    // Offline codes work once.
    let otp = run(&dir, &["phone".into(), "otp".into()]);
    let code = String::from_utf8_lossy(&otp.stdout)
        .split_whitespace()
        .next()
        .expect("code")
        .to_owned();
    let nas_otp = |code: &str| {
        run(
            &dir,
            &[
                "nas".into(),
                "otp".into(),
                "--user".into(),
                "alice".into(),
                code.to_owned(),
            ],
        )
        .status
        .code()
    };
    assert_eq!(nas_otp(&code), Some(0));
    assert_eq!(nas_otp(&code), Some(1), "used once");

    // Mute and unpair reach the NAS's device list through the mailbox.
    assert!(run(
        &dir,
        &[
            "phone".into(),
            "mute".into(),
            "--minutes".into(),
            "5".into()
        ]
    )
    .status
    .success());
    let mailbox = run(&dir, &["nas".into(), "mailbox".into()]);
    assert!(text(&mailbox).contains("Muted"), "{}", text(&mailbox));
    assert!(text(&run(&dir, &["nas".into(), "devices".into()])).contains("muted for 5 min"));
    assert!(run(&dir, &["phone".into(), "unpair".into()])
        .status
        .success());
    assert!(text(&run(&dir, &["nas".into(), "mailbox".into()])).contains("Unpaired"));
    assert!(text(&run(&dir, &["nas".into(), "devices".into()])).contains("no paired devices"));
}

#[test]
fn a_world_readable_nas_key_is_refused() {
    let relay = RelayProcess::start(&[]);
    let dir = TempDir::new("loose-key");
    assert!(run(
        &dir,
        &[
            "nas".into(),
            "init".into(),
            "--relay".into(),
            relay.url.clone()
        ]
    )
    .status
    .success());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            dir.0.join("approvd-nas/nas.key"),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        let output = run(&dir, &["nas".into(), "devices".into()]);
        assert_eq!(output.status.code(), Some(3));
        assert!(text(&output).contains("chmod 600"), "{}", text(&output));
    }
}

#[test]
fn the_demo_verifies_everything_and_exits_0() {
    let dir = TempDir::new("demo");
    let output = run(&dir, &["demo".into()]);
    let shown = text(&output);
    assert!(output.status.success(), "{shown}");
    for expected in [
        "the phone's code typed and matched",
        "APPROVED by Alice's iPhone",
        "already decided",
        "INVALID to the NAS",
        "refused the second time",
        "All checks passed.",
    ] {
        assert!(shown.contains(expected), "{expected} missing:\n{shown}");
    }
    assert!(readme().contains("cargo run --release -p approvd -- demo"));
}

/// A minimal container has no `ca-certificates`: a plain-http relay must still be reachable.
#[test]
fn the_demo_runs_without_any_system_root_certificates() {
    let dir = TempDir::new("demo-no-roots");
    let empty = dir.0.join("no-certs");
    std::fs::create_dir_all(&empty).expect("dir");
    let output = Command::new(approvd_binary())
        .arg("demo")
        .current_dir(&dir.0)
        .env("SSL_CERT_FILE", empty.join("none.pem"))
        .env("SSL_CERT_DIR", &empty)
        .output()
        .expect("run");
    let shown = text(&output);
    assert!(output.status.success(), "{shown}");
    assert!(shown.contains("All checks passed."), "{shown}");
}
