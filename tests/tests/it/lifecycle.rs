//! The relay as a process: it starts with zero flags, documents every option, refuses bad
//! configuration with a message naming the option, frees the waiter of a client that went away,
//! answers held long-polls with 503 on shutdown and exits promptly, reports readiness and
//! metrics, serves its OpenAPI document, and enforces the optional admission token.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use approvd_relay::config::OPTIONS;
use approvd_tests::{
    approvd_binary, ed25519_pems, eventually, pair, request_one, RelayProcess, TempDir,
};

/// `approvd serve` with no flags, run in a fresh directory.
fn serve_without_flags(dir: &TempDir) -> std::process::Child {
    Command::new(approvd_binary())
        .arg("serve")
        .current_dir(&dir.0)
        .env_remove("APPROVD_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// With 127.0.0.1:8080 taken, `approvd serve` must stop at once, naming the address.
fn refuses_a_taken_default_address() {
    let dir = TempDir::new("noflags-taken");
    let child = serve_without_flags(&dir);
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "started on a taken port: {stderr}"
    );
    assert!(
        stderr.contains("--bind 127.0.0.1:8080"),
        "the error names the address: {stderr}"
    );
}

/// The README's relay may already run on :8080 while the tests do: then only the refusal is
/// checked; when the port is free, both the start and (holding the port) the refusal.
#[tokio::test]
async fn serve_with_no_flags_starts_on_the_default_address() {
    let default = std::net::SocketAddr::from(([127, 0, 0, 1], 8080));
    if std::net::TcpListener::bind(default).is_err() {
        refuses_a_taken_default_address();
        return;
    }
    let dir = TempDir::new("noflags");
    let mut child = serve_without_flags(&dir);
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).map(|_| line)
    })
    .await
    .expect("join")
    .expect("read");
    let healthy = reqwest::get("http://127.0.0.1:8080/healthz")
        .await
        .map(|r| r.status().as_u16());
    let _ = child.kill();
    let output = child.wait_with_output().expect("wait");
    assert_eq!(
        line.trim(),
        "approvd listening on http://127.0.0.1:8080",
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(healthy.ok(), Some(200));
    assert!(
        dir.0.join("approvd-data/handle-keys").exists(),
        "the handle key was generated"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("pushes are logged, not sent"),
        "says push is log-only: {stderr}"
    );
    // Someone else takes the port (as the README's relay would).
    let Ok(_holder) = std::net::TcpListener::bind(default) else {
        return; // taken by another program in the meantime: nothing more to show
    };
    refuses_a_taken_default_address();
}

#[test]
fn help_documents_every_option_and_its_environment_variable() {
    let output = Command::new(approvd_binary())
        .args(["serve", "--help"])
        .output()
        .expect("run");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for option in OPTIONS {
        assert!(
            help.contains(&format!("--{}", option.flag)),
            "--{} missing",
            option.flag
        );
        assert!(
            help.contains(&format!("[env: {}]", option.env)),
            "{} missing",
            option.env
        );
    }
    assert!(help.contains("--config") && help.contains("APPROVD_CONFIG"));
}

#[test]
fn bad_configuration_exits_2_naming_the_option() {
    let output = Command::new(approvd_binary())
        .args(["serve", "--max-wait-secs", "0"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--max-wait-secs: must be between 1 and 300"),
        "{stderr}"
    );
    let output = Command::new(approvd_binary())
        .args(["serve"])
        .env("APPROVD_BIND", "not-an-address")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("APPROVD_BIND"));
}

/// N-5 and L5 (issue 27): one key for admission and forwarding is refused at startup, and so
/// is an admission or forwarding key option set to the empty string (it used to mean "off").
#[test]
fn operator_keys_must_differ_and_an_empty_key_option_is_an_error() {
    let dir = TempDir::new("one-key");
    let (_, public_pem) = ed25519_pems(&approvd_proto::generate_signing_key());
    let first = dir.0.join("operator.pub.pem");
    let second = dir.0.join("copy.pub.pem");
    std::fs::write(&first, &public_pem).expect("write");
    // The same key, wrapped differently, in another file.
    std::fs::write(&second, public_pem.replace('\n', "\r\n")).expect("write");
    let output = Command::new(approvd_binary())
        .args(["serve", "--bind", "127.0.0.1:0", "--admission-key-file"])
        .arg(&first)
        .arg("--push-forward-key-file")
        .arg(&second)
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--push-forward-key-file: is the same key as --admission-key-file"),
        "{stderr}"
    );
    for variable in [
        "APPROVD_ADMISSION_KEY_FILE",
        "APPROVD_PUSH_FORWARD_KEY_FILE",
    ] {
        let output = Command::new(approvd_binary())
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env(variable, "")
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(2), "{variable}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("{variable}: is set but empty")),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn a_poller_that_disconnects_frees_its_waiter() {
    let relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let (phone, _device) = pair(&nas, "phone", None).await;
    assert_eq!(relay.metric("approvd_longpoll_waiters").await, Some(0.0));
    let mut prepared = phone.client().prepare("GET", "/v1/inbox", "wait=30", None);
    prepared.timeout = Duration::from_millis(800);
    let poll = tokio::spawn({
        let client = phone.client().clone();
        async move { client.send(prepared).await }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        relay.metric("approvd_longpoll_waiters").await,
        Some(1.0),
        "held"
    );
    assert!(poll.await.expect("join").is_err(), "the client gave up");
    eventually(
        "the waiter of a gone client is still registered",
        Duration::from_secs(3),
        || async { relay.metric("approvd_longpoll_waiters").await == Some(0.0) },
    )
    .await;
}

#[tokio::test]
async fn shutdown_answers_held_polls_with_503_and_exits_quickly() {
    let mut relay = RelayProcess::start(&[]);
    let nas = relay.nas();
    let (phone, _device) = pair(&nas, "phone", None).await;
    let polls: Vec<_> = (0..3)
        .map(|_| {
            let prepared = phone.client().prepare("GET", "/v1/inbox", "wait=30", None);
            let client = phone.client().clone();
            tokio::spawn(async move { client.send(prepared).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    relay.terminate();
    for poll in polls {
        let response = poll.await.expect("join").expect("answered, not dropped");
        assert_eq!(response.status().as_u16(), 503);
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
        let problem: approvd_proto::wire::Problem = response.json().await.expect("problem");
        assert_eq!(problem.type_uri, "urn:approvd:problem:unavailable");
    }
    let status = relay.wait_exit(Duration::from_secs(5)).expect("exited");
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn readiness_metrics_and_openapi_are_served() {
    let relay = RelayProcess::start(&[]);
    assert_eq!(relay.get("/readyz").await.status().as_u16(), 200);
    let nas = relay.nas();
    let (phone, device) = pair(&nas, "phone", None).await;
    let sent = request_one(&nas, &device, "zed").await;
    let received = phone.inbox(Duration::from_secs(5)).await.expect("inbox");
    phone
        .submit(&phone.answer(&received[0], approvd_proto::Decision::Approve, None))
        .await
        .expect("verdict");
    let _ = nas
        .wait_for_verdict(&sent, std::slice::from_ref(&device), Duration::from_secs(5))
        .await;
    let metrics = relay.get("/metrics").await.text().await.expect("text");
    for expected in [
        "approvd_challenges_created_total 1",
        "approvd_verdicts_total{decision=\"approve\"} 1",
        "approvd_http_requests_total{method=\"POST\",route=\"/v1/challenges\",status=\"201\"} 1",
        "approvd_http_request_duration_seconds_bucket{route=\"/v1/challenges\"",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing from:\n{metrics}"
        );
    }
    // Labels are route patterns, never raw paths with ids.
    assert!(
        !metrics.contains(&sent.cid.to_string()),
        "a raw path leaked into a label"
    );
    let document: serde_json::Value = relay.get("/openapi.json").await.json().await.expect("json");
    assert!(document["paths"]["/v1/challenges/{cid}/verdict"]["post"].is_object());
}

#[tokio::test]
async fn admission_tokens_gate_nas_calls_only() {
    let operator = approvd_proto::generate_signing_key();
    let (private_pem, public_pem) = ed25519_pems(&operator);
    let dir = TempDir::new("admission");
    let key_path = dir.0.join("operator.pem");
    std::fs::write(&key_path, public_pem).expect("write");
    let relay = RelayProcess::start(&["--admission-key-file", key_path.to_str().expect("utf-8")]);
    assert!(relay.log().contains("admission: on"), "{}", relay.log());
    assert!(
        relay.log().contains("push forwarding: off"),
        "{}",
        relay.log()
    );
    let nas = relay.nas();
    // (purpose, sub, exp): a token as `approvd token` makes it, or of another purpose.
    let token = |purpose: &str, sub: String, exp: u64| {
        let claims =
            serde_json::json!({ "sub": sub, "aud": format!("approvd-{purpose}"), "exp": exp });
        let key = jsonwebtoken::EncodingKey::from_ed_pem(private_pem.as_bytes()).expect("key");
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.typ = Some(format!("approvd-{purpose}+jwt"));
        jsonwebtoken::encode(&header, &claims, &key).expect("jwt")
    };
    let private_path = dir.0.join("operator.key.pem");
    std::fs::write(&private_path, &private_pem).expect("write");
    let minted = |purpose: &str, sub: &str| {
        Command::new(approvd_binary())
            .args(["token", "--purpose", purpose, "--key-file"])
            .arg(&private_path)
            .args(["--sub", sub, "--valid-days", "1"])
            .output()
            .expect("approvd token")
    };
    let output = minted("admission", &nas.nas_id().to_string());
    assert!(output.status.success(), "{output:?}");
    let from_the_tool = String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    // L6: the tool refuses subjects the relay would refuse.
    for (purpose, sub) in [("admission", "home-nas"), ("forward", "a:b{c}")] {
        let output = minted(purpose, sub);
        assert_eq!(output.status.code(), Some(2), "{purpose} {sub}: {output:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("--sub"));
    }
    let now = approvd_client::transport::unix_now();
    let nas_id = nas.nas_id().to_string();
    let cases = [
        (None, 401, "admission-required"),
        (Some(from_the_tool), 201, ""),
        (Some(token("admission", nas_id.clone(), now + 600)), 201, ""),
        (
            Some(token(
                "admission",
                relay.nas().nas_id().to_string(),
                now + 600,
            )),
            403,
            "admission-denied",
        ),
        (
            Some(token("admission", nas_id.clone(), now - 3600)),
            403,
            "admission-denied",
        ),
        // N-5: a forwarding token for the same subject, by the same key, admits nothing.
        (
            Some(token("forward", nas_id.clone(), now + 600)),
            403,
            "admission-denied",
        ),
        (Some("not.a.jwt".to_owned()), 403, "admission-denied"),
    ];
    for (bearer, status, problem) in cases {
        let body = serde_json::to_vec(&approvd_proto::wire::CreatePairingRequest {
            pairing_id: approvd_proto::PairingId::random(),
            ttl_secs: 60,
            claim_verifier: approvd_proto::Digest([0; 32]),
        })
        .expect("json");
        let mut prepared = nas.client().prepare("POST", "/v1/pairings", "", Some(body));
        if let Some(bearer) = &bearer {
            prepared
                .headers
                .push(("Authorization".to_owned(), format!("Bearer {bearer}")));
        }
        let response = nas.client().send(prepared).await.expect("sent");
        assert_eq!(response.status().as_u16(), status, "{bearer:?}");
        if !problem.is_empty() {
            let got: approvd_proto::wire::Problem = response.json().await.expect("problem");
            assert_eq!(got.type_uri, format!("urn:approvd:problem:{problem}"));
        }
    }
    // Phones never need one.
    let phone = approvd_client::RelayClient::new(&relay.url, approvd_proto::generate_signing_key())
        .expect("client");
    let response = phone
        .send(phone.prepare("GET", "/v1/inbox", "", None))
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 204);
}

/// Read one HTTP/1.1 response (head and `content-length` body) from a kept-alive connection.
fn read_response(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read as _;
    let mut data = Vec::new();
    let mut byte = [0; 1];
    while !data.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => data.push(byte[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&data).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    let _ = stream.read_exact(&mut body);
    data.extend_from_slice(&body);
    String::from_utf8_lossy(&data).into_owned()
}

/// Every request the relay has begun to read gets an answer after SIGTERM (issue 27): requests
/// on kept-alive connections during the drain, and a body that completes 3.5 s after the
/// signal (workers used to be stopped 2 s after the drain, cutting it). Idle connections are
/// closed once the listener stops, so the relay still exits at once.
#[tokio::test]
async fn after_sigterm_every_request_begun_gets_an_answer() {
    use std::io::Write as _;
    const CONNECTIONS: u64 = 40;
    let mut relay = RelayProcess::start(&["--shutdown-drain-secs", "1"]);
    let address = relay.url.trim_start_matches("http://").to_owned();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut kept = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut stream = std::net::TcpStream::connect(&address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream.write_all(request).expect("write");
        let first = read_response(&mut stream);
        assert!(first.starts_with("HTTP/1.1 200"), "{first}");
        kept.push(stream);
    }
    // A pairing request whose body is half sent before the signal.
    let body = br#"{"ttl_secs":60,"pairing_id":"AAAAAAAAAAAAAAAAAAAAAA","nas_label":"x"}"#;
    let mut slow = std::net::TcpStream::connect(&address).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    slow.write_all(
        format!(
            "POST /v1/pairings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .expect("head");
    slow.write_all(&body[..10]).expect("half the body");

    relay.terminate();
    let signalled = Instant::now();
    // The kept connections speak again during the drain (0.5 s to 0.95 s after the signal):
    // every request is answered, with `Connection: close`. Others speak after the listener
    // stopped (1.1 s to 1.5 s): by then the relay has closed them as idle, which a client sees
    // before it writes (a FIN), or, if still open, it answers.
    let speakers: Vec<_> = kept
        .into_iter()
        .enumerate()
        .map(|(index, stream)| {
            let index = index as u64;
            let at = if index.is_multiple_of(2) {
                Duration::from_millis(500 + 450 * index / CONNECTIONS)
            } else {
                Duration::from_millis(1100 + 400 * index / CONNECTIONS)
            };
            std::thread::spawn(move || {
                let mut stream = stream;
                std::thread::sleep(at.saturating_sub(signalled.elapsed()));
                stream.set_nonblocking(true).expect("nonblocking");
                let closed = matches!(stream.peek(&mut [0; 1]), Ok(0));
                stream.set_nonblocking(false).expect("blocking");
                if closed {
                    return (at, true, None);
                }
                let written = stream.write_all(request).is_ok();
                (at, written, Some(read_response(&mut stream)))
            })
        })
        .collect();
    for speaker in speakers {
        let (at, written, answer) = speaker.join().expect("speaker");
        let Some(answer) = answer else {
            assert!(
                at > Duration::from_secs(1),
                "closed during the drain at {at:?}"
            );
            continue;
        };
        assert!(written, "{at:?}: the request could not be written");
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "a request sent {at:?} after SIGTERM on a kept-alive connection: {answer:?}"
        );
        assert!(answer.to_ascii_lowercase().contains("connection: close"));
    }
    std::thread::sleep(Duration::from_millis(3500).saturating_sub(signalled.elapsed()));
    slow.write_all(&body[10..]).expect("the rest of the body");
    let answer = read_response(&mut slow);
    assert!(
        answer.starts_with("HTTP/1.1 4"),
        "a body completed 3.5 s after SIGTERM is answered (its signature is missing): {answer:?}"
    );
    let status = relay.wait_exit(Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "{status:?}");
}

/// After SIGTERM the relay keeps answering for the drain window — a request on an open
/// keep-alive connection and one on a new connection — each with `Connection: close`, while
/// `/readyz` says 503; then it exits.
#[tokio::test]
async fn a_draining_relay_answers_every_request_and_closes_keep_alives() {
    use std::io::Write as _;
    let mut relay = RelayProcess::start(&["--shutdown-drain-secs", "2"]);
    let address = relay.url.trim_start_matches("http://").to_owned();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut kept = std::net::TcpStream::connect(&address).expect("connect");
    kept.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    kept.write_all(request).expect("write");
    let before = read_response(&mut kept);
    assert!(before.starts_with("HTTP/1.1 200"), "{before}");
    assert!(!before.to_ascii_lowercase().contains("connection: close"));

    relay.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    kept.write_all(request).expect("write during the drain");
    let during = read_response(&mut kept);
    assert!(during.starts_with("HTTP/1.1 200"), "{during}");
    assert!(
        during.to_ascii_lowercase().contains("connection: close"),
        "{during}"
    );
    let ready = relay.get("/readyz").await;
    assert_eq!(ready.status().as_u16(), 503);
    assert_eq!(
        ready
            .headers()
            .get("connection")
            .and_then(|value| value.to_str().ok()),
        Some("close")
    );
    let status = relay.wait_exit(Duration::from_secs(6)).expect("exited");
    assert!(status.success(), "{status:?}");
}
