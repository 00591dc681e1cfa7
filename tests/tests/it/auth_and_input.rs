//! Every `/v1` endpoint refuses unsigned, wrongly signed, expired, replayed, tampered and
//! oversized requests with the right status and a problem+json body; malformed bodies and
//! queries get 400 naming the problem. Nothing answers 500.

use approvd_client::transport::unix_now;
use approvd_client::{Prepared, RelayClient};
use approvd_proto::wire::Problem;
use approvd_relay::http::routes::ROUTES;
use approvd_tests::RelayProcess;

/// The `/v1` routes with their path parameters filled with random ids.
/// The relay-to-relay route: a forwarding token bound to the signing key, and off unless
/// configured (its refusals are tested in `forwarding.rs`).
const FORWARD: &str = "/v1/push/forward";
/// The relay's VAPID public key: public, and off (404) without Web Push.
const WEBPUSH_KEY: &str = "/v1/push/webpush";

/// Every signed route, with random path ids.
fn api_routes() -> Vec<(&'static str, String)> {
    ROUTES
        .iter()
        .filter(|(_, path)| path.starts_with("/v1/") && *path != FORWARD && *path != WEBPUSH_KEY)
        .map(|(method, path)| {
            let path = path
                .replace(
                    "{pairing_id}",
                    &approvd_proto::PairingId::random().to_string(),
                )
                .replace("{cid}", &approvd_proto::Cid::random().to_string());
            (*method, path)
        })
        .collect()
}

fn body_for(method: &str) -> Option<Vec<u8>> {
    (method == "POST").then(|| b"{}".to_vec())
}

fn client(relay: &RelayProcess) -> RelayClient {
    RelayClient::new(&relay.url, approvd_proto::generate_signing_key()).expect("client")
}

/// Send and return (status, problem).
async fn send(client: &RelayClient, prepared: Prepared) -> (u16, Problem) {
    let response = client.send(prepared).await.expect("sent");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.text().await.expect("body");
    assert_eq!(
        content_type, "application/problem+json",
        "status {status}: {text}"
    );
    let problem: Problem =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not a problem: {text}"));
    assert_eq!(problem.status, status);
    (status, problem)
}

fn name(problem: &Problem) -> &str {
    problem
        .type_uri
        .strip_prefix("urn:approvd:problem:")
        .unwrap_or(&problem.type_uri)
}

/// `label=:base64:` with the first signature byte flipped.
fn flip_signature_byte(header: &str) -> String {
    use base64::Engine as _;
    let (label, value) = header.split_once('=').expect("label=value");
    let engine = base64::engine::general_purpose::STANDARD;
    let mut bytes = engine.decode(value.trim_matches(':')).expect("base64");
    bytes[0] ^= 1;
    format!("{label}=:{}:", engine.encode(bytes))
}

fn set_header(prepared: &mut Prepared, header: &str, value: String) {
    prepared
        .headers
        .retain(|(name, _)| !name.eq_ignore_ascii_case(header));
    prepared.headers.push((header.to_owned(), value));
}

#[tokio::test]
async fn every_endpoint_refuses_bad_authentication() {
    let relay = RelayProcess::start(&["--rate-auth-failures-per-ip", "10000"]);
    let client = client(&relay);
    for (method, path) in api_routes() {
        let what = format!("{method} {path}");

        let mut unsigned = client.prepare(method, &path, "", body_for(method));
        unsigned
            .headers
            .retain(|(name, _)| name != "Signature-Input" && name != "Signature");
        let (status, problem) = send(&client, unsigned).await;
        assert_eq!(
            (status, name(&problem)),
            (401, "unauthenticated"),
            "{what}: unsigned"
        );
        assert_eq!(problem.field.as_deref(), Some("Signature-Input"), "{what}");

        let mut bad_sig = client.prepare(method, &path, "", body_for(method));
        let signature = bad_sig
            .headers
            .iter()
            .find(|(name, _)| name == "Signature")
            .expect("sig")
            .1
            .clone();
        set_header(&mut bad_sig, "Signature", flip_signature_byte(&signature));
        let (status, problem) = send(&client, bad_sig).await;
        assert_eq!(
            (status, problem.detail.as_str()),
            (401, "signature does not verify"),
            "{what}: bad signature"
        );

        let skewed = client.prepare_at(method, &path, "", body_for(method), unix_now() - 3600);
        let (status, problem) = send(&client, skewed).await;
        assert_eq!(
            (status, name(&problem)),
            (401, "unauthenticated"),
            "{what}: skew"
        );
        assert!(
            problem.detail.contains("away from the relay clock"),
            "{what}: {}",
            problem.detail
        );

        let stale = client.prepare_at(method, &path, "", body_for(method), unix_now() - 90);
        let (status, _) = send(&client, stale).await;
        assert_eq!(status, 401, "{what}: expired signature");

        let replayed = client.prepare(method, &path, "", body_for(method));
        let first = client
            .send(replayed.clone())
            .await
            .expect("sent")
            .status()
            .as_u16();
        assert_ne!(first, 401, "{what}: the first use is authenticated");
        let (status, problem) = send(&client, replayed).await;
        assert_eq!(
            (status, name(&problem)),
            (401, "replayed-nonce"),
            "{what}: replay"
        );

        let mut other_path = client.prepare(method, &path, "", body_for(method));
        other_path.path = format!("{path}x");
        let (status, _) = send(&client, other_path).await;
        assert!(
            status == 401 || status == 404,
            "{what}: signed for another path -> {status}"
        );

        let mut bad_keyid = client.prepare(method, &path, "", body_for(method));
        let key = client.public_key().to_string();
        let input = bad_keyid
            .headers
            .iter()
            .find(|(name, _)| name == "Signature-Input")
            .expect("input")
            .1
            .replace(&key, "not-a-key");
        set_header(&mut bad_keyid, "Signature-Input", input);
        let (status, problem) = send(&client, bad_keyid).await;
        assert_eq!(status, 401, "{what}: unknown keyid form");
        assert!(
            problem.detail.contains("keyid"),
            "{what}: {}",
            problem.detail
        );

        let mut big = client.prepare(method, &path, "", Some(vec![b' '; 70 * 1024]));
        big.headers.retain(|(name, _)| name != "Content-Digest");
        let (status, problem) = send(&client, big).await;
        assert_eq!(
            (status, name(&problem)),
            (413, "body-too-large"),
            "{what}: oversized"
        );
    }
}

#[tokio::test]
async fn a_body_changed_after_signing_is_refused() {
    let relay = RelayProcess::start(&[]);
    let client = client(&relay);
    let mut tampered = client.prepare(
        "POST",
        "/v1/pairings",
        "",
        Some(br#"{"pairing_id":"AAAAAAAAAAAAAAAAAAAAAA","ttl_secs":60,"claim_verifier":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#.to_vec()),
    );
    tampered.body = br#"{"pairing_id":"AAAAAAAAAAAAAAAAAAAAAA","ttl_secs":600,"claim_verifier":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#.to_vec();
    let (status, problem) = send(&client, tampered).await;
    assert_eq!(status, 401);
    assert!(
        problem.detail.contains("Content-Digest"),
        "{}",
        problem.detail
    );
    let mut no_digest = client.prepare("POST", "/v1/pairings", "", Some(b"{}".to_vec()));
    no_digest
        .headers
        .retain(|(name, _)| name != "Content-Digest");
    let (status, _) = send(&client, no_digest).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn repeated_auth_failures_from_one_ip_get_429_but_signed_requests_from_it_pass() {
    let relay = RelayProcess::start(&["--rate-auth-failures-per-ip", "3"]);
    let client = client(&relay);
    for _ in 0..3 {
        let stale = client.prepare_at("GET", "/v1/inbox", "", None, unix_now() - 3600);
        assert_eq!(send(&client, stale).await.0, 401);
    }
    let stale = client.prepare_at("GET", "/v1/inbox", "", None, unix_now() - 3600);
    let response = client.send(stale).await.expect("sent");
    assert_eq!(
        response.status().as_u16(),
        429,
        "more junk from that IP waits"
    );
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Another phone behind the same address (a carrier NAT) is not locked out by that.
    let neighbour =
        RelayClient::new(&relay.url, approvd_proto::generate_signing_key()).expect("client");
    let response = neighbour
        .send(neighbour.prepare("GET", "/v1/inbox", "", None))
        .await
        .expect("sent");
    assert_eq!(
        response.status().as_u16(),
        204,
        "a validly signed request is judged on its own key"
    );
}

#[tokio::test]
async fn malformed_bodies_name_what_is_wrong() {
    let relay = RelayProcess::start(&[]);
    let client = client(&relay);
    let cases: Vec<(&str, &str, &[u8], &str)> = vec![
        ("/v1/pairings", "not JSON", b"{", "invalid-body"),
        (
            "/v1/pairings",
            "wrong type",
            br#"{"pairing_id":"AAAAAAAAAAAAAAAAAAAAAA","ttl_secs":"soon","claim_verifier":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
            "invalid-body",
        ),
        (
            "/v1/pairings",
            "missing field",
            br#"{"ttl_secs":60,"claim_verifier":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
            "invalid-body",
        ),
        (
            "/v1/pairings",
            "unknown field",
            br#"{"pairing_id":"AAAAAAAAAAAAAAAAAAAAAA","ttl_secs":60,"claim_verifier":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","x":1}"#,
            "invalid-body",
        ),
        (
            "/v1/pairings",
            "bad base64",
            br#"{"pairing_id":"!!","ttl_secs":60,"claim_verifier":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
            "invalid-field",
        ),
        (
            "/v1/pairings",
            "out of range",
            br#"{"pairing_id":"AAAAAAAAAAAAAAAAAAAAAA","ttl_secs":601,"claim_verifier":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
            "invalid-field",
        ),
        ("/v1/challenges", "empty object", b"{}", "invalid-body"),
        (
            "/v1/mailbox/ack",
            "wrong type",
            br#"{"ids":"x"}"#,
            "invalid-body",
        ),
    ];
    for (path, what, body, expected) in cases {
        let (status, problem) = send(
            &client,
            client.prepare("POST", path, "", Some(body.to_vec())),
        )
        .await;
        assert_eq!(
            (status, name(&problem)),
            (400, expected),
            "{path} {what}: {}",
            problem.detail
        );
        match what {
            "wrong type" => assert!(
                problem.detail.contains("invalid type"),
                "{}",
                problem.detail
            ),
            "missing field" => assert!(
                problem.detail.contains("missing field `pairing_id`"),
                "{}",
                problem.detail
            ),
            "unknown field" => assert!(
                problem.detail.contains("unknown field `x`"),
                "{}",
                problem.detail
            ),
            "bad base64" => assert_eq!(problem.field.as_deref(), Some("pairing_id")),
            "out of range" => assert_eq!(problem.field.as_deref(), Some("ttl_secs")),
            _ => {}
        }
    }
    let (status, problem) = send(
        &client,
        client.prepare("GET", "/v1/inbox", "wait=soon", None),
    )
    .await;
    assert_eq!((status, problem.field.as_deref()), (400, Some("wait")));
    let (status, problem) = send(&client, client.prepare("GET", "/v1/inbox", "wiat=1", None)).await;
    assert_eq!((status, problem.field.as_deref()), (400, Some("query")));
    let (status, problem) = send(
        &client,
        client.prepare("GET", "/v1/inbox", "", Some(b"{}".to_vec())),
    )
    .await;
    assert_eq!((status, name(&problem)), (400, "invalid-body"));
    let (status, problem) = send(
        &client,
        client.prepare("DELETE", "/v1/challenges/short", "", None),
    )
    .await;
    assert_eq!((status, problem.field.as_deref()), (400, Some("cid")));
    let (status, problem) = send(
        &client,
        client.prepare("GET", "/v1/pairings/%FF/claim", "", None),
    )
    .await;
    assert_eq!(
        (status, problem.field.as_deref()),
        (400, Some("pairing_id"))
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let relay = RelayProcess::start(&[]);
    let response = relay.get("/v2/anything").await;
    assert_eq!(response.status().as_u16(), 404);
    let problem: Problem = response.json().await.expect("problem");
    assert_eq!(problem.type_uri, "urn:approvd:problem:no-route");
    let response = reqwest::Client::new()
        .put(format!("{}/v1/inbox", relay.url))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 405);
    // Every documented route exists: unsigned /v1 calls get 401, operations answer, and push
    // forwarding and Web Push are off by default.
    for (method, path) in ROUTES {
        let path = path
            .replace("{pairing_id}", "AAAAAAAAAAAAAAAAAAAAAA")
            .replace("{cid}", "AAAAAAAAAAAAAAAAAAAAAA");
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let status = reqwest::Client::new()
            .request(method.clone(), format!("{}{path}", relay.url))
            .send()
            .await
            .expect("sent")
            .status()
            .as_u16();
        let expected = if path == FORWARD || path == WEBPUSH_KEY {
            404
        } else if path.starts_with("/v1/") {
            401
        } else {
            200
        };
        assert_eq!(status, expected, "{method} {path}");
    }
}
