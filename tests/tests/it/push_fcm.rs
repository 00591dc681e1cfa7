//! The FCM HTTP v1 sender against a real HTTP mock (wiremock): OAuth token fetch, caching and
//! refresh, the exact message body, and every classified answer with retries on a shortened
//! clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use approvd_proto::wire::{PushProvider, PushRegistration};
use approvd_relay::push::fcm::FcmSender;
use approvd_relay::push::retry::RetryPolicy;
use approvd_relay::push::{PushKind, PushMessage, PushResult, PushSender};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SEND_PATH: &str = "/v1/projects/approvd-test/messages:send";

fn account_json(token_uri: &str) -> String {
    let text = include_str!("fixtures/fcm-service-account.json");
    let mut value: serde_json::Value = serde_json::from_str(text).expect("fixture");
    value["token_uri"] = serde_json::json!(token_uri);
    value.to_string()
}

fn sender(server: &MockServer, timeout: Duration, max_tries: u32) -> FcmSender {
    FcmSender::new(
        &account_json(&format!("{}/token", server.uri())),
        &server.uri(),
        true,
        timeout,
        RetryPolicy {
            max_tries,
            base_delay: Duration::from_millis(100),
            time_scale: 0.05,
            retries: None,
        },
    )
    .expect("sender")
}

async fn token_endpoint(server: &MockServer, token: &str, expires_in: u64) {
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": token, "expires_in": expires_in, "token_type": "Bearer"
        })))
        .mount(server)
        .await;
}

fn registration() -> PushRegistration {
    PushRegistration {
        provider: PushProvider::Fcm,
        token: "fcm-token-123".into(),
        topic: "dev.approvd.app".into(),
        p256dh: None,
        auth: None,
    }
}

fn message() -> PushMessage {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    PushMessage {
        cid: approvd_proto::Cid([7; 16]),
        expires: now + 60,
        kind: PushKind::Alert,
    }
}

async fn requests_to(server: &MockServer, wanted: &str) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|request| request.url.path() == wanted)
        .collect()
}

fn fcm_error(status: u16, code: &str, field: Option<&str>) -> ResponseTemplate {
    let mut details = vec![
        serde_json::json!({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}),
    ];
    if let Some(field) = field {
        details.push(serde_json::json!({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": field, "description": "invalid"}]}));
    }
    ResponseTemplate::new(status).set_body_json(serde_json::json!({"error": {"code": status, "message": "m", "status": code, "details": details}}))
}

#[tokio::test]
async fn one_token_serves_many_sends_and_the_body_is_data_only() {
    let server = MockServer::start().await;
    token_endpoint(&server, "t1", 3600).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .and(header("authorization", "Bearer t1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"name": "projects/approvd-test/messages/1"})),
        )
        .mount(&server)
        .await;
    let sender = Arc::new(sender(&server, Duration::from_secs(5), 3));
    let sends: Vec<_> = (0..10)
        .map(|_| {
            let sender = Arc::clone(&sender);
            tokio::spawn(async move { sender.send(&registration(), &message()).await })
        })
        .collect();
    for send in sends {
        assert_eq!(send.await.expect("join"), PushResult::Delivered);
    }
    assert_eq!(
        requests_to(&server, "/token").await.len(),
        1,
        "one token request, under concurrency too"
    );
    let token_request = &requests_to(&server, "/token").await[0];
    let form = String::from_utf8_lossy(&token_request.body);
    assert!(
        form.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer")
            && form.contains("assertion="),
        "{form}"
    );
    let sent = requests_to(&server, SEND_PATH).await;
    assert_eq!(sent.len(), 10);
    let body: serde_json::Value = serde_json::from_slice(&sent[0].body).expect("json");
    let cid = approvd_proto::Cid([7; 16]).to_string();
    let ttl = body["message"]["android"]["ttl"]
        .as_str()
        .expect("ttl")
        .to_owned();
    assert!(ttl == "60s" || ttl == "59s", "{ttl}");
    assert_eq!(
        body,
        serde_json::json!({"message": {
            "token": "fcm-token-123",
            "data": {"v": "1", "cid": cid},
            "android": {"priority": "HIGH", "ttl": ttl, "collapse_key": cid},
        }})
    );
}

/// Ten sends meet one revoked token: the first to hear 401 fetches a fresh one, and the
/// others' 401s (for the old token) must not discard it (issue 27: the cache was emptied
/// whatever it held, so a valid token was thrown away and fetched again).
#[tokio::test]
async fn concurrent_401s_for_one_revoked_token_fetch_one_fresh_token() {
    let server = MockServer::start().await;
    for (token, priority) in [("revoked", 1), ("fresh", 2)] {
        let mock = Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": token, "expires_in": 3600, "token_type": "Bearer"
            })))
            .with_priority(priority);
        let mock = if token == "revoked" {
            mock.up_to_n_times(1)
        } else {
            mock
        };
        mock.mount(&server).await;
    }
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .and(header("authorization", "Bearer revoked"))
        .respond_with(ResponseTemplate::new(401).set_delay(Duration::from_millis(50)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .and(header("authorization", "Bearer fresh"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let sender = Arc::new(self::sender(&server, Duration::from_secs(5), 1));
    let sends: Vec<_> = (0..10)
        .map(|_| {
            let sender = sender.clone();
            tokio::spawn(async move { sender.send(&registration(), &message()).await })
        })
        .collect();
    for send in sends {
        assert_eq!(send.await.expect("send"), PushResult::Delivered);
    }
    assert_eq!(
        requests_to(&server, "/token").await.len(),
        2,
        "the revoked token and one fresh token"
    );
}

#[tokio::test]
async fn the_token_is_refreshed_before_expiry_and_after_a_401() {
    let server = MockServer::start().await;
    token_endpoint(&server, "t1", 301).await; // cached for 1 s (refreshed 5 min before expiry)
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let sender = sender(&server, Duration::from_secs(5), 3);
    assert_eq!(
        sender.send(&registration(), &message()).await,
        PushResult::Delivered
    );
    assert_eq!(
        sender.send(&registration(), &message()).await,
        PushResult::Delivered
    );
    assert_eq!(requests_to(&server, "/token").await.len(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        sender.send(&registration(), &message()).await,
        PushResult::Delivered
    );
    assert_eq!(
        requests_to(&server, "/token").await.len(),
        2,
        "refreshed after its cache time"
    );

    let server = MockServer::start().await;
    token_endpoint(&server, "t1", 3600).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(ResponseTemplate::new(401))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    // One try is enough: the refresh after a 401 is part of the try, not another one.
    let sender = self::sender(&server, Duration::from_secs(5), 1);
    assert_eq!(
        sender.send(&registration(), &message()).await,
        PushResult::Delivered
    );
    assert_eq!(
        requests_to(&server, "/token").await.len(),
        2,
        "a 401 forces a new token"
    );

    let server = MockServer::start().await;
    token_endpoint(&server, "t1", 3600).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let sender = self::sender(&server, Duration::from_secs(5), 4);
    let result = sender.send(&registration(), &message()).await;
    assert!(
        matches!(result, PushResult::Failed { alarm: true, .. }),
        "two 401s are a credentials alarm: {result:?}"
    );
}

#[tokio::test]
async fn answers_are_classified() {
    let cases: Vec<(ResponseTemplate, &str)> = vec![
        (fcm_error(404, "UNREGISTERED", None), "gone"),
        (
            fcm_error(400, "INVALID_ARGUMENT", Some("message.token")),
            "gone",
        ),
        (
            fcm_error(400, "INVALID_ARGUMENT", Some("message.android.ttl")),
            "failed",
        ),
        (fcm_error(403, "SENDER_ID_MISMATCH", None), "gone"),
        (fcm_error(403, "PERMISSION_DENIED", None), "alarm"),
    ];
    for (answer, expected) in cases {
        let server = MockServer::start().await;
        token_endpoint(&server, "t1", 3600).await;
        Mock::given(method("POST"))
            .and(path(SEND_PATH))
            .respond_with(answer)
            .mount(&server)
            .await;
        let result = sender(&server, Duration::from_secs(5), 3)
            .send(&registration(), &message())
            .await;
        let got = match result {
            PushResult::Gone => "gone",
            PushResult::Failed { alarm: true, .. } => "alarm",
            PushResult::Failed { alarm: false, .. } => "failed",
            PushResult::Delivered => "delivered",
            PushResult::Logged => "logged",
        };
        assert_eq!(got, expected);
        assert_eq!(
            requests_to(&server, SEND_PATH).await.len(),
            1,
            "final answers are not retried"
        );
    }
}

#[tokio::test]
async fn throttling_honours_retry_after_and_unavailability_gives_up() {
    let server = MockServer::start().await;
    token_endpoint(&server, "t1", 3600).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(fcm_error(429, "QUOTA_EXCEEDED", None).insert_header("retry-after", "4"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let started = Instant::now();
    assert_eq!(
        sender(&server, Duration::from_secs(5), 3)
            .send(&registration(), &message())
            .await,
        PushResult::Delivered
    );
    // Retry-After 4 s on a clock shortened 20×: at least 200 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    let sent = requests_to(&server, SEND_PATH).await;
    assert_eq!(sent.len(), 2);

    let server = MockServer::start().await;
    token_endpoint(&server, "t1", 3600).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let result = sender(&server, Duration::from_secs(5), 3)
        .send(&registration(), &message())
        .await;
    assert!(
        matches!(result, PushResult::Failed { alarm: false, .. }),
        "{result:?}"
    );
    assert_eq!(
        requests_to(&server, SEND_PATH).await.len(),
        3,
        "bounded tries"
    );
}

#[tokio::test]
async fn a_dismissal_is_data_only_with_normal_priority() {
    let server = MockServer::start().await;
    token_endpoint(&server, "t1", 3600).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let dismissal = PushMessage {
        kind: PushKind::Dismiss,
        ..message()
    };
    assert_eq!(
        sender(&server, Duration::from_secs(5), 3)
            .send(&registration(), &dismissal)
            .await,
        PushResult::Delivered
    );
    let body: serde_json::Value =
        serde_json::from_slice(&requests_to(&server, SEND_PATH).await[0].body).expect("json");
    let cid = approvd_proto::Cid([7; 16]).to_string();
    assert_eq!(
        body["message"]["data"],
        serde_json::json!({"v": "1", "cid": cid, "dismiss": "1"})
    );
    assert_eq!(body["message"]["android"]["priority"], "NORMAL");
}

#[tokio::test]
async fn the_request_timeout_is_honoured() {
    let server = MockServer::start().await;
    token_endpoint(&server, "t1", 3600).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let started = Instant::now();
    let result = sender(&server, Duration::from_millis(200), 2)
        .send(&registration(), &message())
        .await;
    assert!(matches!(result, PushResult::Failed { .. }), "{result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "timed out, not waited: {:?}",
        started.elapsed()
    );
}

#[test]
fn plain_http_needs_explicit_permission() {
    let error = FcmSender::new(
        &account_json("http://127.0.0.1:1/token"),
        "http://127.0.0.1:1",
        false,
        Duration::from_secs(1),
        RetryPolicy::default(),
    )
    .expect_err("refused");
    assert!(error.to_string().contains("not https"), "{error}");
    let error = FcmSender::new(
        "{}",
        "https://fcm.googleapis.com",
        false,
        Duration::from_secs(1),
        RetryPolicy::default(),
    )
    .expect_err("refused");
    assert!(error.to_string().contains("service account"), "{error}");
}

/// L3 (issue 27): the downstream never follows an upstream's redirect — not to another port,
/// not to plain http: the redirect target sees nothing (no forwarding token, no push token),
/// and the downstream reports a configuration alarm naming the option to fix.
#[tokio::test]
async fn a_downstream_never_follows_an_upstreams_redirect() {
    use approvd_relay::push::upstream::UpstreamSender;
    let elsewhere = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"result": "delivered"})),
        )
        .mount(&elsewhere)
        .await;
    let upstream = MockServer::start().await;
    for status in [301, 307, 308] {
        upstream.reset().await;
        Mock::given(method("POST"))
            .and(path("/v1/push/forward"))
            .respond_with(ResponseTemplate::new(status).insert_header(
                "location",
                format!("{}/v1/push/forward", elsewhere.uri()).as_str(),
            ))
            .mount(&upstream)
            .await;
        let sender = UpstreamSender::new(
            &upstream.uri(),
            approvd_relay::push::upstream::TokenSource::inline("forward.jwt.secret")
                .expect("token"),
            approvd_proto::generate_signing_key(),
            Duration::from_secs(5),
        )
        .expect("sender");
        let result = sender.send(&registration(), &message()).await;
        match &result {
            PushResult::Failed {
                reason,
                alarm: true,
            } => {
                assert!(
                    reason.contains("never followed") && reason.contains("--push-upstream"),
                    "{reason}"
                );
            }
            other => panic!("{status}: expected a configuration alarm, got {other:?}"),
        }
        assert_eq!(requests_to(&upstream, "/v1/push/forward").await.len(), 1);
    }
    assert!(
        elsewhere
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "the redirect target was reached"
    );
}
