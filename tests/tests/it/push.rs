//! Push delivery through a real relay process, with FCM pointed at a local HTTP mock: the pushes
//! carry only `{v, cid}` (random markers put in the login context never appear in any byte sent
//! to the provider, nor in the relay's log), a dead token becomes `gone` plus a mailbox notice,
//! an app without credentials raises the configuration alarm, and bad credentials stop startup
//! with a message naming the option.

use std::process::Command;
use std::time::Duration;

use approvd_proto::wire::{Delivery, PushProvider, PushRegistration};
use approvd_tests::{approvd_binary, context, eventually, pair, RelayProcess, TempDir};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub(crate) const APP: &str = "dev.approvd.fcm";

pub(crate) fn fcm(token: &str, topic: &str) -> PushRegistration {
    PushRegistration {
        provider: PushProvider::Fcm,
        token: token.to_owned(),
        topic: topic.to_owned(),
        p256dh: None,
        auth: None,
    }
}

fn marker() -> String {
    approvd_proto::ids::encode_b64(&approvd_proto::random_bytes::<12>())
}

pub(crate) async fn fcm_mock() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"access_token": "t", "expires_in": 3600})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/projects/approvd-test/messages:send"))
        .and(body_string_contains("dead-token"))
        .respond_with(ResponseTemplate::new(404).set_body_json(serde_json::json!({"error": {"code": 404, "status": "NOT_FOUND", "details": [{"errorCode": "UNREGISTERED"}]}})))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/projects/approvd-test/messages:send"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"name": "m"})))
        .with_priority(2)
        .mount(&server)
        .await;
    server
}

/// A service-account file in `dir` whose token endpoint is `server`'s.
fn service_account_file(dir: &std::path::Path, server: &MockServer) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/fixtures/fcm-service-account.json"
    ))
    .expect("fixture");
    let mut value: serde_json::Value = serde_json::from_str(&text).expect("json");
    value["token_uri"] = serde_json::json!(format!("{}/token", server.uri()));
    let path = dir.join(format!("service-account-{}.json", server.address().port()));
    std::fs::write(&path, value.to_string()).expect("write");
    path.display().to_string()
}

/// A relay whose FCM credentials point at `server` for the app `APP`.
pub(crate) fn fcm_relay(server: &MockServer, extra: &[&str]) -> (RelayProcess, TempDir) {
    let dir = TempDir::new("fcm");
    let account = service_account_file(&dir.0, server);
    let base = server.uri();
    let mut args = vec![
        "--fcm-service-account-file",
        &account,
        "--fcm-app-ids",
        APP,
        "--fcm-base-url",
        &base,
        "--fcm-allow-http",
        "true",
    ];
    args.extend_from_slice(extra);
    (RelayProcess::start(&args), dir)
}

#[tokio::test]
async fn pushes_carry_nothing_but_v_and_cid_and_dead_tokens_reach_the_nas() {
    let server = fcm_mock().await;
    let (relay, _dir) = fcm_relay(&server, &[]);
    let nas = relay.nas();
    let (phone, device) = pair(&nas, "android", Some(fcm("live-device-token", APP))).await;
    let (_dead, dead_device) = pair(&nas, "old android", Some(fcm("dead-token", APP))).await;
    let (_other_app, unknown_app) = pair(
        &nas,
        "other app",
        Some(fcm("other-token", "com.unknown.app")),
    )
    .await;

    let (user, ip, location, agent) = (
        marker(),
        format!("203.0.113.{}", approvd_proto::random_bytes::<1>()[0]),
        marker(),
        marker(),
    );
    let login = approvd_proto::context::LoginContext {
        user: user.clone(),
        client_ip: Some(ip.clone()),
        location: Some(location.clone()),
        user_agent: Some(agent.clone()),
        ..context("x")
    };
    let devices = [device.clone(), dead_device.clone(), unknown_app.clone()];
    let sent = nas
        .request_approval(&devices, &login, false, Duration::from_secs(60))
        .await
        .expect("challenge");
    let deliveries = approvd_tests::deliveries(&sent);
    assert_eq!(
        deliveries,
        vec![Delivery::Pushed, Delivery::Gone, Delivery::Failed]
    );
    // The context did travel (sealed) to the phone...
    let received = phone.inbox(Duration::from_secs(5)).await.expect("inbox");
    assert_eq!(received[0].context.user, user);
    // ...but no byte sent to the push provider, and no log line, holds any of it.
    let requests = server.received_requests().await.expect("recorded");
    let sends: Vec<&wiremock::Request> = requests
        .iter()
        .filter(|r| r.url.path().ends_with("messages:send"))
        .collect();
    assert_eq!(sends.len(), 2, "the live and the dead token");
    for request in &requests {
        let bytes = String::from_utf8_lossy(&request.body);
        let headers = format!("{:?}", request.headers);
        for secret in [&user, &ip, &location, &agent] {
            assert!(
                !bytes.contains(secret.as_str()) && !headers.contains(secret.as_str()),
                "{secret} reached the push provider"
            );
        }
    }
    let live: serde_json::Value = serde_json::from_slice(
        &sends
            .iter()
            .find(|r| String::from_utf8_lossy(&r.body).contains("live-device-token"))
            .expect("live push")
            .body,
    )
    .expect("json");
    assert_eq!(
        live["message"]["data"],
        serde_json::json!({"v": "1", "cid": sent.cid.to_string()})
    );
    let log = relay.log();
    for secret in [
        &user,
        &ip,
        &location,
        &agent,
        &"live-device-token".to_owned(),
        &"dead-token".to_owned(),
    ] {
        assert!(!log.contains(secret.as_str()), "relay log leaks {secret}");
    }
    // The dead token reaches the NAS through its mailbox too.
    approvd_tests::assert_push_gone_reaches_the_nas(&nas, &devices, dead_device.device_id).await;
    // The app without credentials raised the configuration alarm.
    assert_eq!(
        relay
            .metric("approvd_push_total{credential=\"none\",provider=\"none\",result=\"failed_config\"}")
            .await,
        Some(1.0)
    );
    assert_eq!(
        relay
            .metric("approvd_push_total{credential=\"default\",provider=\"fcm\",result=\"gone\"}")
            .await,
        Some(1.0)
    );
}

pub(crate) fn start_error(args: &[&str]) -> String {
    let dir = TempDir::new("push-config");
    let output = Command::new(approvd_binary())
        .arg("serve")
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.0.join("data"))
        .args(args)
        .output()
        .expect("run");
    assert!(!output.status.success(), "started with {args:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_push_credentials_stop_startup_naming_the_option() {
    let dir = TempDir::new("creds");
    let garbage = dir.0.join("garbage");
    std::fs::write(&garbage, "not a key").expect("write");
    let garbage = garbage.display().to_string();
    let stderr = start_error(&[
        "--apns-key-file",
        "/nonexistent.p8",
        "--apns-key-id",
        "K",
        "--apns-team-id",
        "T",
        "--apns-topics",
        "a.b",
    ]);
    assert!(
        stderr.contains("--apns-key-file: /nonexistent.p8"),
        "{stderr}"
    );
    let stderr = start_error(&[
        "--apns-key-file",
        &garbage,
        "--apns-key-id",
        "K",
        "--apns-team-id",
        "T",
        "--apns-topics",
        "a.b",
    ]);
    assert!(
        stderr.contains("--apns-key-file: not a usable APNs .p8 key"),
        "{stderr}"
    );
    let stderr = start_error(&["--apns-key-file", &garbage]);
    assert!(stderr.contains("--apns-key-id: is required"), "{stderr}");
    let stderr = start_error(&[
        "--apns-cert-file",
        &garbage,
        "--apns-cert-key-file",
        &garbage,
        "--apns-topics",
        "a.b",
    ]);
    assert!(
        stderr.contains("--apns-cert-file: not a usable APNs certificate and key"),
        "{stderr}"
    );
    let stderr = start_error(&["--apns-cert-file", &garbage, "--apns-topics", "a.b"]);
    assert!(
        stderr.contains(
            "--apns-cert-key-file: --apns-cert-file and --apns-cert-key-file go together"
        ),
        "{stderr}"
    );
    let stderr = start_error(&["--fcm-service-account-file", &garbage, "--fcm-app-ids", "a"]);
    assert!(
        stderr.contains("--fcm-service-account-file: the service account JSON is not usable"),
        "{stderr}"
    );
}

/// Pushes the mock received for `token`, as their `data` objects.
pub(crate) async fn pushes_to(server: &MockServer, token: &str) -> Vec<serde_json::Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|request| request.url.path().ends_with("messages:send"))
        .filter_map(|request| serde_json::from_slice::<serde_json::Value>(&request.body).ok())
        .filter(|body| body["message"]["token"] == token)
        .map(|body| body["message"]["data"].clone())
        .collect()
}

#[tokio::test]
async fn the_phones_that_did_not_answer_get_a_dismissal() {
    let server = fcm_mock().await;
    let (relay, _dir) = fcm_relay(&server, &[]);
    let nas = relay.nas();
    let (phone_a, device_a) = pair(&nas, "a", Some(fcm("token-a", APP))).await;
    let (_phone_b, device_b) = pair(&nas, "b", Some(fcm("token-b", APP))).await;
    let devices = [device_a, device_b];
    let sent = nas
        .request_approval(&devices, &context("x"), false, Duration::from_secs(60))
        .await
        .expect("challenge");
    let received = phone_a.inbox(Duration::from_secs(5)).await.expect("inbox");
    phone_a
        .submit(&phone_a.answer(&received[0], approvd_proto::Decision::Approve, None))
        .await
        .expect("verdict");
    let cid = sent.cid.to_string();
    let dismissal = serde_json::json!({"v": "1", "cid": cid, "dismiss": "1"});
    eventually(
        "phone b got no dismissal",
        Duration::from_secs(5),
        || async { pushes_to(&server, "token-b").await.contains(&dismissal) },
    )
    .await;
    assert_eq!(
        pushes_to(&server, "token-a").await,
        vec![serde_json::json!({"v": "1", "cid": cid})],
        "the phone that answered gets none"
    );

    // Cancelling dismisses every target.
    let sent = nas
        .request_approval(&devices, &context("y"), false, Duration::from_secs(60))
        .await
        .expect("challenge");
    nas.cancel(&sent.cid).await.expect("cancel");
    let dismissal = serde_json::json!({"v": "1", "cid": sent.cid.to_string(), "dismiss": "1"});
    for token in ["token-a", "token-b"] {
        eventually(
            &format!("{token} got no dismissal after cancel"),
            Duration::from_secs(5),
            || async { pushes_to(&server, token).await.contains(&dismissal) },
        )
        .await;
    }
}

#[tokio::test]
async fn a_slow_provider_is_reported_pending_and_the_push_still_completes() {
    let server = fcm_mock().await;
    Mock::given(method("POST"))
        .and(path("/v1/projects/approvd-test/messages:send"))
        .and(body_string_contains("slow-token"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(800)))
        .with_priority(1)
        .mount(&server)
        .await;
    let (relay, _dir) = fcm_relay(&server, &["--push-budget-ms", "100"]);
    let nas = relay.nas();
    let (phone, device) = pair(&nas, "slow", Some(fcm("slow-token", APP))).await;
    let started = std::time::Instant::now();
    let sent = nas
        .request_approval(
            std::slice::from_ref(&device),
            &context("x"),
            false,
            Duration::from_secs(60),
        )
        .await
        .expect("challenge");
    assert_eq!(sent.report.deliveries[0].delivery, Delivery::Pending);
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "answered within the budget: {:?}",
        started.elapsed()
    );
    // The phone can fetch the challenge at once, and the push completes in the background.
    assert_eq!(phone.inbox(Duration::ZERO).await.expect("inbox").len(), 1);
    eventually(
        "the push never completed",
        Duration::from_secs(5),
        || async {
            relay
                .metric("approvd_push_total{credential=\"default\",provider=\"fcm\",result=\"delivered\"}")
                .await
                == Some(1.0)
        },
    )
    .await;
}

/// One relay, two Firebase projects (`[[push.fcm]]` entries in its config file, each with its
/// own service account and endpoint): each phone's push goes through the credential that
/// serves its app, and the metrics name the credentials by label.
#[tokio::test]
async fn several_credentials_each_serve_their_own_apps() {
    let acme_server = fcm_mock().await;
    let globex_server = fcm_mock().await;
    let dir = TempDir::new("fleet");
    let config = dir.0.join("relay.toml");
    let entry = |label: &str, server: &MockServer, app: &str| {
        let account = service_account_file(&dir.0, server);
        format!(
            "[[push.fcm]]\nlabel = \"{label}\"\nservice_account_file = \"{account}\"\n\
             app_ids = [\"{app}\"]\nbase_url = \"{}\"\nallow_http = true\n\n",
            server.uri()
        )
    };
    std::fs::write(
        &config,
        entry("acme-android", &acme_server, "com.acme.approvd")
            + &entry("globex-android", &globex_server, "com.globex.signin"),
    )
    .expect("config");
    let relay = RelayProcess::start(&["--config", &config.display().to_string()]);
    let nas = relay.nas();
    let (_acme_phone, acme) = pair(&nas, "acme", Some(fcm("acme-token", "com.acme.approvd"))).await;
    let (_globex_phone, globex) = pair(
        &nas,
        "globex",
        Some(fcm("globex-token", "com.globex.signin")),
    )
    .await;
    let sent = nas
        .request_approval(
            &[acme.clone(), globex.clone()],
            &context("x"),
            false,
            Duration::from_secs(60),
        )
        .await
        .expect("challenge");
    assert!(sent
        .report
        .deliveries
        .iter()
        .all(|entry| entry.delivery == Delivery::Pushed));
    assert_eq!(pushes_to(&acme_server, "acme-token").await.len(), 1);
    assert!(pushes_to(&acme_server, "globex-token").await.is_empty());
    assert_eq!(pushes_to(&globex_server, "globex-token").await.len(), 1);
    assert!(pushes_to(&globex_server, "acme-token").await.is_empty());
    for label in ["acme-android", "globex-android"] {
        let series = format!(
            "approvd_push_total{{credential=\"{label}\",provider=\"fcm\",result=\"delivered\"}}"
        );
        assert_eq!(relay.metric(&series).await, Some(1.0), "{series}");
    }
    // A bad entry stops startup naming it.
    let broken = dir.0.join("broken.toml");
    std::fs::write(
        &broken,
        "[[push.fcm]]\nlabel = \"acme-android\"\nservice_account_file = \"/nonexistent.json\"\napp_ids = [\"a\"]\n",
    )
    .expect("config");
    let stderr = start_error(&["--config", &broken.display().to_string()]);
    assert!(
        stderr.contains(
            "push credential `acme-android`: --fcm-service-account-file: /nonexistent.json"
        ),
        "{stderr}"
    );
}

/// `approvd push-test` through the configured credentials against the FCM mock: a live token
/// is delivered, a dead one is reported gone, a topic no credential serves is a configuration
/// error; each with its exit status.
#[tokio::test]
async fn push_test_sends_one_push_and_classifies_it() {
    let server = fcm_mock().await;
    let dir = TempDir::new("push-test");
    let account = service_account_file(&dir.0, &server);
    let base = server.uri();
    let run = |token: &str, topic: &str| {
        tokio::process::Command::new(approvd_binary())
            .args([
                "push-test",
                "--provider",
                "fcm",
                "--topic",
                topic,
                "--token",
                token,
            ])
            .args(["--fcm-service-account-file", &account, "--fcm-app-ids", APP])
            .args(["--fcm-base-url", &base, "--fcm-allow-http", "true"])
            .output()
    };
    let output = run("push-test-token", APP).await.expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("through credential `default`"), "{stdout}");
    assert!(stdout.contains("delivered in "), "{stdout}");
    assert_eq!(pushes_to(&server, "push-test-token").await.len(), 1);
    let output = run("dead-token", APP).await.expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("gone"), "{stdout}");
    let output = run("push-test-token", "com.unknown.app")
        .await
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr)
        .contains("no configured credential serves FCM topic `com.unknown.app`"));
}
