//! Web Push (RFC 8030, 8291, 8292) against a local mock push service that is not ours
//! (`tests/webpush/mock_push_service.py`: it verifies the VAPID token with `cryptography` and
//! decrypts with `http_ece`, as a browser would): a real relay with a VAPID key made by
//! `openssl` pushes `{v, cid}` to browser subscriptions; every answer row is driven (delivered,
//! gone → the NAS's mailbox, 429 → retried, 413 → not retried, a redirect → never followed);
//! and registrations the relay
//! could never push to safely (plain http, IP literals, hosts off the allow-list, names that
//! resolve inside) are refused with a 400 that says why, without a connection being made.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use approvd_proto::wire::{Delivery, PushProvider, PushRegistration};
use approvd_tests::tls::TestPki;
use approvd_tests::{context, pair, RelayProcess, TempDir};

/// The mock push service on `https://localhost:<port>`.
struct MockPushService {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for MockPushService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MockPushService {
    fn start(pki: &TestPki) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("webpush/mock_push_service.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(&pki.server_cert)
            .arg(&pki.server_key)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 (scripts/test installs http_ece)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("a listening line");
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the mock did not start: {line}"))
            .to_owned();
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).expect("ca")).expect("ca");
        Self {
            child,
            base: format!("https://localhost:{port}"),
            http: reqwest::Client::builder()
                .add_root_certificate(ca)
                .build()
                .expect("client"),
        }
    }

    /// A browser subscription whose pushes are answered with `answers`, then 201.
    async fn subscribe(&self, answers: &[u16], vapid_key: &str) -> PushRegistration {
        self.subscribe_redirecting(answers, None, vapid_key).await
    }

    /// [`MockPushService::subscribe`], a 3xx answer pointing at `location`.
    async fn subscribe_redirecting(
        &self,
        answers: &[u16],
        location: Option<&str>,
        vapid_key: &str,
    ) -> PushRegistration {
        let subscription: serde_json::Value = self
            .http
            .post(format!("{}/subscriptions", self.base))
            .json(&serde_json::json!({ "answers": answers, "location": location }))
            .send()
            .await
            .expect("subscribe")
            .json()
            .await
            .expect("json");
        PushRegistration {
            provider: PushProvider::Webpush,
            token: subscription["endpoint"]
                .as_str()
                .expect("endpoint")
                .to_owned(),
            topic: vapid_key.to_owned(),
            p256dh: subscription["keys"]["p256dh"].as_str().map(str::to_owned),
            auth: subscription["keys"]["auth"].as_str().map(str::to_owned),
        }
    }

    async fn received(&self) -> Vec<serde_json::Value> {
        self.http
            .get(format!("{}/received", self.base))
            .send()
            .await
            .expect("received")
            .json()
            .await
            .expect("json")
    }

    async fn connections(&self) -> u64 {
        self.http
            .get(format!("{}/connections", self.base))
            .send()
            .await
            .expect("connections")
            .json()
            .await
            .expect("json")
    }
}

/// A VAPID key made as docs/operations.md says.
fn vapid_key(dir: &TempDir) -> String {
    let path = dir.0.join("vapid.pem");
    if path.exists() {
        return path.display().to_string();
    }
    let output = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&path)
        .output()
        .expect("openssl");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    path.display().to_string()
}

fn webpush_relay(dir: &TempDir, pki: &TestPki, extra: &[&str]) -> RelayProcess {
    let key = vapid_key(dir);
    let ca = pki.ca.display().to_string();
    let mut args = vec![
        "--webpush-vapid-key-file",
        key.as_str(),
        "--webpush-subject",
        "mailto:ops@example.com",
        "--webpush-ca-file",
        ca.as_str(),
    ];
    args.extend_from_slice(extra);
    RelayProcess::start(&args)
}

async fn public_key(relay: &RelayProcess) -> String {
    let response = relay.get("/v1/push/webpush").await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .and_then(|value| value.to_str().ok()),
        Some("public, max-age=3600")
    );
    let answer: serde_json::Value = response.json().await.expect("json");
    answer["vapid_public_key"]
        .as_str()
        .expect("vapid_public_key")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_pushes_encrypted_v_and_cid_to_browsers_and_classifies_every_answer() {
    let pki = TestPki::new();
    let mock = MockPushService::start(&pki);
    let dir = TempDir::new("webpush");
    let relay = webpush_relay(
        &dir,
        &pki,
        &[
            "--webpush-allowed-hosts",
            "localhost",
            "--webpush-allow-private",
            "true",
        ],
    );
    let key = public_key(&relay).await;
    let nas = relay.nas();
    let (phone, live) = pair(&nas, "chrome", Some(mock.subscribe(&[], &key).await)).await;
    let (_, gone) = pair(
        &nas,
        "uninstalled",
        Some(mock.subscribe(&[410], &key).await),
    )
    .await;
    let (_, throttled) = pair(&nas, "busy", Some(mock.subscribe(&[429], &key).await)).await;
    let (_, too_large) = pair(&nas, "small", Some(mock.subscribe(&[413], &key).await)).await;
    // A push service that redirects the relay elsewhere (here: to another subscription).
    let elsewhere = mock.subscribe(&[], &key).await;
    let redirect = mock
        .subscribe_redirecting(&[307], Some(&elsewhere.token), &key)
        .await;
    let (_, redirecting) = pair(&nas, "redirecting", Some(redirect)).await;
    let devices = [
        live.clone(),
        gone.clone(),
        throttled.clone(),
        too_large.clone(),
        redirecting.clone(),
    ];
    let sent = nas
        .request_approval(&devices, &context("alice"), true, Duration::from_secs(60))
        .await
        .expect("challenge");
    let deliveries = approvd_tests::deliveries(&sent);
    assert_eq!(
        deliveries,
        vec![
            Delivery::Pushed,
            Delivery::Gone,
            Delivery::Pushed,
            Delivery::Failed,
            Delivery::Failed,
        ],
        "{}",
        relay.log()
    );

    // What the push service got: VAPID for its own origin, and a body the browser opens to
    // exactly {v, cid}; TTL within the challenge's life, high urgency, the cid as topic.
    let received = mock.received().await;
    let expected = serde_json::json!({"v": 1, "cid": sent.cid.to_string()});
    assert_eq!(received.len(), 6, "{received:#?}"); // the 429 was tried again
    let elsewhere_id = elsewhere.token.rsplit('/').next().expect("id");
    assert!(
        received.iter().all(|push| push["id"] != elsewhere_id),
        "the relay followed a redirect"
    );
    for push in &received {
        assert_eq!(push["errors"], serde_json::json!([]), "{push}");
        let plaintext: serde_json::Value =
            serde_json::from_str(push["plaintext"].as_str().expect("plaintext")).expect("json");
        assert_eq!(plaintext, expected);
        assert_eq!(push["vapid"]["aud"], mock.base.as_str());
        assert_eq!(push["vapid"]["sub"], "mailto:ops@example.com");
        assert_eq!(push["vapid"]["k"], key.as_str());
        assert_eq!(push["content_encoding"], "aes128gcm");
        assert_eq!(push["urgency"], "high");
        assert_eq!(push["topic"], sent.cid.to_string().as_str());
        let ttl: u64 = push["ttl"].as_str().expect("ttl").parse().expect("number");
        assert!((1..=60).contains(&ttl), "{ttl}");
    }
    let statuses: Vec<u64> = received
        .iter()
        .map(|push| push["status"].as_u64().expect("status"))
        .collect();
    assert_eq!(
        statuses.iter().filter(|status| **status == 413).count(),
        1,
        "not retried"
    );
    assert_eq!(statuses.iter().filter(|status| **status == 429).count(), 1);
    assert_eq!(
        statuses.iter().filter(|status| **status == 307).count(),
        1,
        "a redirect is not retried"
    );
    // One VAPID token per origin, reused (one `exp` for all six pushes).
    let expiries: std::collections::HashSet<u64> = received
        .iter()
        .map(|push| push["vapid"]["exp"].as_u64().expect("exp"))
        .collect();
    assert_eq!(expiries.len(), 1, "{expiries:?}");

    // The dead subscription reaches the NAS as for APNs and FCM; the live one shows.
    approvd_tests::assert_push_gone_reaches_the_nas(&nas, &devices, gone.device_id).await;
    let shown = approvd_tests::only_request(&phone, Duration::from_secs(5)).await;
    assert_eq!(shown.entry.cid, sent.cid);

    // A cancel pushes a dismissal under the same topic, so it replaces the alert.
    nas.cancel(&sent.cid).await.expect("cancel");
    approvd_tests::eventually("the dismissal", Duration::from_secs(10), || async {
        mock.received().await.iter().any(|push| {
            push["urgency"] == "normal"
                && push["topic"] == sent.cid.to_string().as_str()
                && push["plaintext"]
                    .as_str()
                    .is_some_and(|text| text.contains("\"dismiss\":1"))
        })
    })
    .await;
    for (result, count) in [("delivered", 2.0), ("gone", 1.0), ("failed", 2.0)] {
        let series = format!(
            "approvd_push_total{{credential=\"webpush\",provider=\"webpush\",result=\"{result}\"}}"
        );
        assert!(
            relay.metric(&series).await.unwrap_or(0.0) >= count,
            "{series}"
        );
    }

    // `push-test` through the same options: the operator's first check of a Web Push setup.
    let checked = mock.subscribe(&[], &key).await;
    let subscription = serde_json::json!({
        "endpoint": checked.token,
        "keys": {"p256dh": checked.p256dh, "auth": checked.auth},
    })
    .to_string();
    let output = Command::new(approvd_tests::approvd_binary())
        .args([
            "push-test",
            "--provider",
            "webpush",
            "--subscription",
            &subscription,
            "--webpush-vapid-key-file",
            &vapid_key(&dir),
            "--webpush-subject",
            "mailto:ops@example.com",
            "--webpush-ca-file",
            &pki.ca.display().to_string(),
            "--webpush-allowed-hosts",
            "localhost",
            "--webpush-allow-private",
            "true",
        ])
        .env_remove("APPROVD_CONFIG")
        .output()
        .expect("push-test");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        said.contains("webpush") && said.contains("delivered"),
        "{said}"
    );
    let checked_id = checked.token.rsplit('/').next().expect("id");
    assert_eq!(
        mock.received()
            .await
            .iter()
            .filter(|push| push["id"] == checked_id && push["errors"] == serde_json::json!([]))
            .count(),
        1
    );

    let log = relay.log();
    let endpoint_path = format!("{}/push/", mock.base);
    let leaked: Vec<&str> = log
        .lines()
        .filter(|line| {
            line.contains(&endpoint_path) || line.contains("/push/") && !line.contains("/v1/push/")
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "an endpoint reached the log: {leaked:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_the_relay_must_not_push_to_are_refused_when_registered() {
    let pki = TestPki::new();
    let mock = MockPushService::start(&pki);
    let dir = TempDir::new("webpush-ssrf");
    // The default allow-list (the public push services) and no internal addresses.
    let strict = webpush_relay(&dir, &pki, &[]);
    // localhost allowed by name, but not where it points.
    let no_private = webpush_relay(&dir, &pki, &["--webpush-allowed-hosts", "localhost"]);
    let plain = RelayProcess::start(&[]);
    let key = public_key(&strict).await;
    let good = mock.subscribe(&[], &key).await;
    let before = mock.connections().await;

    let with_endpoint = |endpoint: &str| PushRegistration {
        token: endpoint.to_owned(),
        ..good.clone()
    };
    let port = mock.base.rsplit(':').next().expect("port").to_owned();
    let cases: Vec<(&RelayProcess, &str, PushRegistration, &str, &str)> = vec![
        (
            &strict,
            "plain http",
            with_endpoint(&format!("http://localhost:{port}/push/x")),
            "push.token",
            "https",
        ),
        (
            &strict,
            "an IP literal",
            with_endpoint(&format!("https://127.0.0.1:{port}/push/x")),
            "push.token",
            "IP address",
        ),
        (
            &strict,
            "metadata service",
            with_endpoint("https://169.254.169.254/latest/meta-data"),
            "push.token",
            "IP address",
        ),
        (
            &strict,
            "a host off the allow-list",
            good.clone(),
            "push.token",
            "not a push service this relay allows",
        ),
        (
            &no_private,
            "a name that resolves to loopback",
            good.clone(),
            "push.token",
            "internal addresses",
        ),
        (
            &strict,
            "another VAPID key",
            PushRegistration {
                topic: "B".repeat(87),
                ..good.clone()
            },
            "push.topic",
            "VAPID public key",
        ),
        (
            &strict,
            "a short p256dh",
            PushRegistration {
                p256dh: Some("BAAA".to_owned()),
                ..good.clone()
            },
            "push.p256dh",
            "p256dh",
        ),
        (
            &plain,
            "a relay without Web Push",
            good.clone(),
            "push.provider",
            "no Web Push",
        ),
    ];
    for (relay, what, registration, field, says) in cases {
        let (mut phone, _) = pair(&relay.nas(), "browser", None).await;
        let error = phone
            .refresh_push(Some(registration))
            .await
            .expect_err(what);
        let approvd_client::ClientError::Relay { status, problem } = &error else {
            panic!("{what}: {error}");
        };
        assert_eq!(*status, 400, "{what}");
        assert_eq!(
            problem.field.as_deref(),
            Some(field),
            "{what}: {}",
            problem.detail
        );
        assert!(problem.detail.contains(says), "{what}: {}", problem.detail);
    }
    // Nothing was sent anywhere: at most the test's own new connection to ask the mock.
    assert!(mock.connections().await <= before + 1);
    assert!(mock.received().await.is_empty());
}
