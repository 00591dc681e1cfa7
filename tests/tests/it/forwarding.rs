//! Push forwarding between two real relays: a self-hosted (downstream) relay without credentials
//! forwards its pushes to an upstream relay whose FCM credentials point at a local HTTP mock;
//! the push arrives with nothing but `{v, cid}`, a dead token flows back into the downstream
//! NAS's mailbox, and the upstream's endpoint refuses what it should (off by default, missing,
//! foreign, expired, misnamed, unbound or revoked tokens, requests not signed by the token's
//! key or sent again, malformed, oversized or stale bodies) and rate-limits each downstream on
//! its own. A renewed token file is read again without a restart.

use std::process::Command;
use std::time::Duration;

use approvd_proto::wire::{Delivery, Problem};
use approvd_tests::{approvd_binary, context, ed25519_pems, pair, RelayProcess, TempDir};

use crate::push::{fcm, fcm_mock, fcm_relay, pushes_to, start_error, APP};

/// An operator key pair in `dir`: (private key file, public key file).
fn operator_keys(dir: &TempDir, name: &str) -> (String, String) {
    let (private, public) = ed25519_pems(&approvd_proto::generate_signing_key());
    let private_path = dir.0.join(format!("{name}.pem"));
    let public_path = dir.0.join(format!("{name}.pub.pem"));
    std::fs::write(&private_path, private).expect("write");
    std::fs::write(&public_path, public).expect("write");
    (
        private_path.display().to_string(),
        public_path.display().to_string(),
    )
}

/// `approvd token --purpose forward --key-file <key> --sub <sub> --bind-key <public key>`:
/// the token the upstream's operator hands out for the downstream whose key is `bind_key`.
fn mint(key_file: &str, sub: &str, bind_key: &str) -> String {
    let output = Command::new(approvd_binary())
        .args([
            "token",
            "--purpose",
            "forward",
            "--key-file",
            key_file,
            "--sub",
            sub,
            "--bind-key",
            bind_key,
            "--valid-days",
            "1",
        ])
        .output()
        .expect("run approvd token");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// A JWT signed with `key_file`'s key but with arbitrary claims and `typ` header.
fn token_with(key_file: &str, typ: &str, claims: serde_json::Value) -> String {
    let pem = std::fs::read(key_file).expect("key");
    let key = jsonwebtoken::EncodingKey::from_ed_pem(&pem).expect("key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.typ = Some(typ.to_owned());
    jsonwebtoken::encode(&header, &claims, &key).expect("jwt")
}

const FORWARD_TYP: &str = "approvd-forward+jwt";

/// A token's claims, read without verifying (as an operator would with a JWT decoder).
fn claims_of(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("payload");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&json).expect("claims")
}

/// The Ed25519 private key in a PEM file written by [`operator_keys`].
fn signing_key(pem_file: &str) -> ed25519_dalek::SigningKey {
    let pem = std::fs::read(pem_file).expect("key");
    approvd_relay::push::upstream::signing_key_from_pem(&pem).expect("ed25519")
}

#[tokio::test]
async fn a_self_hosted_relay_pushes_through_its_upstream_and_learns_dead_tokens() {
    let server = fcm_mock().await;
    let keys = TempDir::new("forward-keys");
    let (private, public) = operator_keys(&keys, "operator");
    let (upstream, _dir) = fcm_relay(&server, &["--push-forward-key-file", &public]);
    // The downstream's own key, which the upstream's operator binds the token to.
    let (signing, signing_public) = operator_keys(&keys, "home-relay-alice");
    let token_file = keys.0.join("forward.jwt");
    std::fs::write(
        &token_file,
        mint(&private, "home-relay-alice", &signing_public),
    )
    .expect("write");
    let downstream = RelayProcess::start(&[
        "--push-upstream",
        &upstream.url,
        "--push-upstream-token-file",
        token_file.to_str().expect("utf-8"),
        "--push-upstream-key-file",
        &signing,
    ]);

    let nas = downstream.nas();
    let (phone, device) = pair(&nas, "android", Some(fcm("live-device-token", APP))).await;
    let (_dead, dead_device) = pair(&nas, "old android", Some(fcm("dead-token", APP))).await;
    let (_other, unknown_app) = pair(
        &nas,
        "other app",
        Some(fcm("other-token", "com.unknown.app")),
    )
    .await;
    let devices = [device.clone(), dead_device.clone(), unknown_app.clone()];
    let login = context("alice-forwarded");
    let sent = nas
        .request_approval(&devices, &login, false, Duration::from_secs(60))
        .await
        .expect("challenge");
    let deliveries = approvd_tests::deliveries(&sent);
    assert_eq!(
        deliveries,
        vec![Delivery::Pushed, Delivery::Gone, Delivery::Failed],
        "{}",
        downstream.log()
    );
    // The upstream pushed through its FCM credential: `{v, cid}` and nothing else.
    assert_eq!(
        pushes_to(&server, "live-device-token").await,
        vec![serde_json::json!({"v": "1", "cid": sent.cid.to_string()})]
    );
    for request in server.received_requests().await.expect("recorded") {
        let body = String::from_utf8_lossy(&request.body);
        assert!(!body.contains("alice-forwarded"), "the context reached FCM");
    }
    for log in [upstream.log(), downstream.log()] {
        for secret in ["alice-forwarded", "live-device-token", "dead-token"] {
            assert!(!log.contains(secret), "a relay logged {secret}");
        }
    }
    // The phone reads the challenge from its own relay.
    let received = phone.inbox(Duration::from_secs(5)).await.expect("inbox");
    assert_eq!(received[0].context.user, "alice-forwarded");
    // The dead token, learned upstream, reaches the downstream NAS's mailbox.
    approvd_tests::assert_push_gone_reaches_the_nas(&nas, &devices, dead_device.device_id).await;
    // Both relays count what happened, each under its own credential.
    for (relay, series, count) in [
        (
            &downstream,
            "approvd_push_total{credential=\"upstream\",provider=\"upstream\",result=\"delivered\"}",
            1.0,
        ),
        (
            &downstream,
            "approvd_push_total{credential=\"upstream\",provider=\"upstream\",result=\"gone\"}",
            1.0,
        ),
        (
            &downstream,
            "approvd_push_total{credential=\"upstream\",provider=\"upstream\",result=\"failed_config\"}",
            1.0,
        ),
        (
            &upstream,
            "approvd_push_total{credential=\"default\",provider=\"fcm\",result=\"delivered\"}",
            1.0,
        ),
        (
            &upstream,
            "approvd_push_total{credential=\"none\",provider=\"none\",result=\"failed_config\"}",
            1.0,
        ),
    ] {
        assert_eq!(relay.metric(series).await, Some(count), "{series}");
    }
    // `push-test` through the upstream: the operator's first check of a forwarding setup.
    let output = Command::new(approvd_binary())
        .args([
            "push-test",
            "--provider",
            "fcm",
            "--topic",
            APP,
            "--token",
            "push-test-token",
            "--push-upstream",
            &upstream.url,
            "--push-upstream-token-file",
            token_file.to_str().expect("utf-8"),
            "--push-upstream-key-file",
            &signing,
        ])
        .env_remove("APPROVD_CONFIG")
        .output()
        .expect("push-test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("upstream") && stdout.contains("delivered"),
        "{stdout}"
    );
    assert_eq!(pushes_to(&server, "push-test-token").await.len(), 1);
}

#[tokio::test]
async fn a_refused_or_unreachable_upstream_is_reported_not_hidden() {
    let server = fcm_mock().await;
    let keys = TempDir::new("forward-refused");
    let (private, public) = operator_keys(&keys, "operator");
    let (stranger, _) = operator_keys(&keys, "stranger");
    let (signing, signing_public) = operator_keys(&keys, "home");
    let (upstream, _dir) = fcm_relay(&server, &["--push-forward-key-file", &public]);
    let token_file = keys.0.join("foreign.jwt");
    std::fs::write(&token_file, mint(&stranger, "home", &signing_public)).expect("write");
    // A token the upstream did not issue: a configuration alarm on the downstream.
    let refused = RelayProcess::start(&[
        "--push-upstream",
        &upstream.url,
        "--push-upstream-token-file",
        token_file.to_str().expect("utf-8"),
        "--push-upstream-key-file",
        &signing,
    ]);
    // An upstream that is not there: a plain failure (it may come back).
    let closed = format!("http://127.0.0.1:{}", approvd_tests::redis::free_port());
    let unreachable = RelayProcess::start(&[
        "--push-upstream",
        &closed,
        "--push-upstream-token-file",
        token_file.to_str().expect("utf-8"),
        "--push-upstream-key-file",
        &signing,
    ]);
    for (relay, result) in [(&refused, "failed_config"), (&unreachable, "failed")] {
        let nas = relay.nas();
        let (_phone, device) = pair(&nas, "android", Some(fcm("live-device-token", APP))).await;
        let sent = nas
            .request_approval(&[device], &context("bob"), false, Duration::from_secs(60))
            .await
            .expect("challenge");
        assert_eq!(sent.report.deliveries[0].delivery, Delivery::Failed);
        let series = format!(
            "approvd_push_total{{credential=\"upstream\",provider=\"upstream\",result=\"{result}\"}}"
        );
        assert_eq!(relay.metric(&series).await, Some(1.0), "{}", relay.log());
    }
    assert!(pushes_to(&server, "live-device-token").await.is_empty());
    assert!(refused.log().contains("upstream relay answered 403"));

    // The operator renews: a token the upstream did issue replaces the file, and the running
    // downstream uses it for its next push (N-13: short-lived tokens need no restart).
    std::fs::write(&token_file, mint(&private, "home", &signing_public)).expect("write");
    let nas = refused.nas();
    let (_phone, device) = pair(&nas, "android", Some(fcm("renewed-token", APP))).await;
    let sent = nas
        .request_approval(&[device], &context("bob"), false, Duration::from_secs(60))
        .await
        .expect("challenge");
    assert_eq!(
        sent.report.deliveries[0].delivery,
        Delivery::Pushed,
        "{}",
        refused.log()
    );
    assert_eq!(pushes_to(&server, "renewed-token").await.len(), 1);
    assert!(refused.log().contains("file changed, read again"));
}

/// The RFC 9421 headers of a forwarding request with `body`, signed now by `key`.
fn signed_by(key: &ed25519_dalek::SigningKey, body: &[u8]) -> Vec<(&'static str, String)> {
    use approvd_proto::httpsig;
    let signed = httpsig::sign_request(
        key,
        &httpsig::RequestTarget {
            method: "POST",
            path: "/v1/push/forward",
            query: "",
        },
        Some(body),
        approvd_client::transport::unix_now(),
        &httpsig::new_nonce(),
    );
    vec![
        ("signature-input", signed.signature_input),
        ("signature", signed.signature),
        ("content-digest", signed.content_digest.expect("digest")),
    ]
}

/// POST a forwarding request to `relay` with `bearer`, signed by `key` (when given); the
/// status and, for errors, the problem.
async fn forward(
    relay: &RelayProcess,
    bearer: Option<&str>,
    key: Option<&ed25519_dalek::SigningKey>,
    body: Vec<u8>,
) -> (u16, Option<Problem>, serde_json::Value) {
    let headers = key.map(|key| signed_by(key, &body)).unwrap_or_default();
    send_forward(relay, bearer, &headers, body).await
}

/// POST a forwarding request with these signature headers (sent again to test replays).
async fn send_forward(
    relay: &RelayProcess,
    bearer: Option<&str>,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
) -> (u16, Option<Problem>, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/v1/push/forward", relay.url))
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    if let Some(bearer) = bearer {
        request = request.header("authorization", format!("Bearer {bearer}"));
    }
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    let problem = serde_json::from_slice::<Problem>(&bytes).ok();
    let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, problem, value)
}

fn push_body(token: &str, expires: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "push": {"provider": "fcm", "token": token, "topic": APP},
        "cid": approvd_proto::Cid::random().to_string(),
        "expires": expires,
        "kind": "alert",
    }))
    .expect("json")
}

#[tokio::test]
async fn the_forwarding_endpoint_admits_only_its_downstreams_within_their_budget() {
    let server = fcm_mock().await;
    let keys = TempDir::new("forward-endpoint");
    let (private, public) = operator_keys(&keys, "operator");
    let (stranger, _) = operator_keys(&keys, "stranger");
    // Downstream "home-a"'s own key, which its tokens are bound to, and another relay's.
    let (home_a, home_a_public) = operator_keys(&keys, "home-a");
    let (thief, thief_public) = operator_keys(&keys, "thief");
    let (home_a, thief) = (signing_key(&home_a), signing_key(&thief));
    let jkt = approvd_proto::ids::PublicKey::from(&home_a).jwk_thumbprint();
    let revoked_file = keys.0.join("revoked");
    std::fs::write(&revoked_file, "# revoked forwarding tokens\n").expect("write");
    let now = approvd_client::transport::unix_now();

    // Off by default: a relay without --push-forward-key-file has no such endpoint.
    let plain = RelayProcess::start(&[]);
    let (status, problem, _) = forward(
        &plain,
        Some(&mint(&private, "home", &home_a_public)),
        Some(&home_a),
        push_body("t", now + 60),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        problem.expect("problem").type_uri,
        "urn:approvd:problem:no-route"
    );
    let listed = |document: serde_json::Value| document["paths"].get("/v1/push/forward").is_some();
    let document = plain.get("/openapi.json").await.json().await.expect("json");
    assert!(
        !listed(document),
        "a relay without forwarding does not document it"
    );

    let (upstream, _dir) = fcm_relay(
        &server,
        &[
            "--push-forward-key-file",
            &public,
            "--rate-forwards-per-downstream",
            "3",
            "--revoked-tokens-file",
            revoked_file.to_str().expect("utf-8"),
        ],
    );
    let document = upstream
        .get("/openapi.json")
        .await
        .json()
        .await
        .expect("json");
    assert!(
        listed(document),
        "a forwarding relay documents its endpoint"
    );
    let good = mint(&private, "home-a", &home_a_public);
    let claims = claims_of(&good);
    assert_eq!(claims["cnf"]["jkt"], jkt.as_str(), "{claims}");
    // A forwarding token's claims with `changes` applied (`null` removes a claim).
    let with = |changes: serde_json::Value| {
        let mut claims = serde_json::json!({
            "sub": "home-a", "aud": "approvd-forward", "jti": "hand-made",
            "cnf": {"jkt": jkt}, "exp": now + 600,
        });
        for (name, value) in changes.as_object().expect("object") {
            if value.is_null() {
                claims.as_object_mut().expect("object").remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    };
    let home_a = &home_a;
    // (what, bearer token, signing key, body, status, problem)
    type Case<'k> = (
        &'static str,
        Option<String>,
        Option<&'k ed25519_dalek::SigningKey>,
        Vec<u8>,
        u16,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        ("no token", None, Some(home_a), push_body("t", now + 60), 401, "admission-required"),
        (
            "another operator's token",
            Some(mint(&stranger, "home-a", &home_a_public)),
            Some(home_a),
            push_body("t", now + 60),
            403,
            "admission-denied",
        ),
        (
            "an expired token",
            Some(token_with(&private, FORWARD_TYP, with(serde_json::json!({"exp": now - 3600})))),
            Some(home_a),
            push_body("t", now + 60),
            403,
            "admission-denied",
        ),
        (
            "a sub that cannot name a downstream",
            Some(token_with(&private, FORWARD_TYP, with(serde_json::json!({"sub": "a:b{c}"})))),
            Some(home_a),
            push_body("t", now + 60),
            403,
            "admission-denied",
        ),
        // N-5: a NAS's admission token, signed by the same operator key, is not a forwarding
        // token; nor is one without the forwarding audience or `typ`.
        (
            "an admission token",
            Some(token_with(&private, "approvd-admission+jwt", with(serde_json::json!({"aud": "approvd-admission"})))),
            Some(home_a),
            push_body("t", now + 60),
            403,
            "admission-denied",
        ),
        (
            "a token without `aud`",
            Some(token_with(&private, FORWARD_TYP, with(serde_json::json!({"aud": null})))),
            Some(home_a),
            push_body("t", now + 60),
            403,
            "admission-denied",
        ),
        (
            "the forwarding `aud` under a plain `typ`",
            Some(token_with(&private, "JWT", with(serde_json::json!({})))),
            Some(home_a),
            push_body("t", now + 60),
            403,
            "admission-denied",
        ),
        // L6: `nbf` is honoured and `exp` is bounded (N-13: 90 days for forwarding tokens).
        (
            "a token valid from tomorrow",
            Some(token_with(&private, FORWARD_TYP, with(serde_json::json!({"nbf": now + 86_400, "exp": now + 2 * 86_400})))),
            Some(home_a),
            push_body("t", now + 60),
            403,
            "admission-denied",
        ),
        (
            "a token valid for a year",
            Some(token_with(&private, FORWARD_TYP, with(serde_json::json!({"exp": now + 365 * 86_400})))),
            Some(home_a),
            push_body("t", now + 60),
            403,
            "admission-denied",
        ),
        // N-13: a token is bound to a key, has an id, and the request is signed by that key.
        (
            "a bearer token bound to no key",
            Some(token_with(&private, FORWARD_TYP, with(serde_json::json!({"cnf": null})))),
            Some(home_a),
            push_body("t", now + 60),
            403,
            "admission-denied",
        ),
        (
            "a token without `jti`",
            Some(token_with(&private, FORWARD_TYP, with(serde_json::json!({"jti": null})))),
            Some(home_a),
            push_body("t", now + 60),
            403,
            "admission-denied",
        ),
        ("a good token, unsigned", Some(good.clone()), None, push_body("t", now + 60), 401, "unauthenticated"),
        (
            "a good token stolen by a relay with another key",
            Some(good.clone()),
            Some(&thief),
            push_body("t", now + 60),
            403,
            "admission-denied",
        ),
        (
            "the thief's own token, signed by home-a's key",
            Some(mint(&private, "home-a", &thief_public)),
            Some(home_a),
            push_body("t", now + 60),
            403,
            "admission-denied",
        ),
        (
            "a tampered token",
            Some(format!("{good}x")),
            Some(home_a),
            push_body("t", now + 60),
            403,
            "admission-denied",
        ),
        ("not JSON", Some(good.clone()), Some(home_a), b"{\"push\":".to_vec(), 400, "invalid-body"),
        (
            "an unknown field",
            Some(good.clone()),
            Some(home_a),
            serde_json::to_vec(&serde_json::json!({"push": {"provider": "fcm", "token": "t", "topic": APP}, "cid": approvd_proto::Cid::random().to_string(), "expires": now + 60, "kind": "alert", "context": "x"})).expect("json"),
            400,
            "invalid-body",
        ),
        (
            "a token with a space",
            Some(good.clone()),
            Some(home_a),
            push_body("t t", now + 60),
            400,
            "invalid-field",
        ),
        (
            "an oversized body",
            Some(good.clone()),
            Some(home_a),
            vec![b' '; 65 * 1024],
            413,
            "body-too-large",
        ),
    ];
    for (what, bearer, key, body, status, problem) in cases {
        let (got, got_problem, _) = forward(&upstream, bearer.as_deref(), key, body).await;
        assert_eq!(got, status, "{what}");
        let got_problem = got_problem.expect("problem");
        assert_eq!(
            got_problem.type_uri,
            format!("urn:approvd:problem:{problem}"),
            "{what}: {}",
            got_problem.detail
        );
    }
    // Refused tokens count as failed authentications.
    assert!(
        upstream
            .metric("approvd_auth_failures_total{reason=\"bad_token\"}")
            .await
            .unwrap_or(0.0)
            >= 4.0
    );
    // A push for a challenge long over, or one no challenge could last until, is refused; both
    // still count against the downstream's budget (3 per minute).
    for (expires, what) in [(now - 3600, "passed"), (now + 3600, "more than")] {
        let (status, problem, _) = forward(
            &upstream,
            Some(&good),
            Some(home_a),
            push_body("t", expires),
        )
        .await;
        let problem = problem.expect("problem");
        assert_eq!(status, 400);
        assert_eq!(problem.field.as_deref(), Some("expires"));
        assert!(problem.detail.contains(what), "{}", problem.detail);
    }
    // The third request this minute is pushed. Sent again as it was (captured on the wire or
    // in a log), it is refused: its nonce was used. Signed afresh it is over the budget.
    let body = push_body("budget-token", now + 60);
    let captured = signed_by(home_a, &body);
    let (status, _, answer) = send_forward(&upstream, Some(&good), &captured, body.clone()).await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (200, Some("delivered"))
    );
    let (status, problem, _) = send_forward(&upstream, Some(&good), &captured, body.clone()).await;
    assert_eq!(status, 401);
    assert_eq!(
        problem.expect("problem").type_uri,
        "urn:approvd:problem:replayed-nonce"
    );
    let (status, problem, _) = forward(&upstream, Some(&good), Some(home_a), body).await;
    assert_eq!(status, 429);
    assert_eq!(
        problem.expect("problem").type_uri,
        "urn:approvd:problem:rate-limited"
    );
    // Another downstream has its own budget; a dead token is classified `gone`.
    let (home_b, home_b_public) = operator_keys(&keys, "home-b");
    let home_b = signing_key(&home_b);
    let other = mint(&private, "home-b", &home_b_public);
    let (status, _, answer) = forward(
        &upstream,
        Some(&other),
        Some(&home_b),
        push_body("dead-token", now + 60),
    )
    .await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("gone")));
    let (status, _, answer) = forward(
        &upstream,
        Some(&other),
        Some(&home_b),
        serde_json::to_vec(&serde_json::json!({
            "push": {"provider": "apns", "token": "00ff", "topic": "com.unknown.app"},
            "cid": approvd_proto::Cid::random().to_string(),
            "expires": now + 60,
            "kind": "dismiss",
        }))
        .expect("json"),
    )
    .await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (200, Some("failed_config")),
        "{answer}"
    );
    assert_eq!(pushes_to(&server, "budget-token").await.len(), 1);

    // The operator revokes home-b's token by its `jti`: refused within seconds, no restart.
    let jti = claims_of(&other)["jti"].as_str().expect("jti").to_owned();
    std::fs::write(&revoked_file, format!("{jti}  # home-b, key lost\n")).expect("write");
    approvd_tests::eventually(
        "the revocation applies",
        Duration::from_secs(10),
        || async {
            let (status, problem, _) = forward(
                &upstream,
                Some(&other),
                Some(&home_b),
                push_body("after-revocation", now + 60),
            )
            .await;
            status == 403 && problem.is_some_and(|problem| problem.detail.contains("revoked"))
        },
    )
    .await;
    assert!(pushes_to(&server, "after-revocation").await.len() <= 1);
    assert_eq!(upstream.get("/healthz").await.status().as_u16(), 200);
}

#[test]
fn a_forwarding_setup_that_cannot_work_stops_startup_naming_the_option() {
    let dir = TempDir::new("forward-config");
    let garbage = dir.0.join("garbage");
    std::fs::write(&garbage, "not a token\n").expect("write");
    let garbage = garbage.display().to_string();
    for (args, expected) in [
        (
            vec!["--push-upstream", "https://push.example.com"],
            "--push-upstream: needs --push-upstream-token-file",
        ),
        (
            vec![
                "--push-upstream",
                "https://push.example.com",
                "--push-upstream-token-file",
                garbage.as_str(),
            ],
            "--push-upstream: needs --push-upstream-key-file",
        ),
        (
            vec!["--push-upstream-key-file", garbage.as_str()],
            "--push-upstream-key-file: signs forwarded pushes, which needs --push-upstream",
        ),
        (
            vec![
                "--push-upstream",
                "https://push.example.com",
                "--push-upstream-token-file",
                garbage.as_str(),
                "--push-upstream-key-file",
                garbage.as_str(),
            ],
            "--push-upstream-token-file: not a JWT",
        ),
        (
            vec!["--revoked-tokens-file", garbage.as_str()],
            "--revoked-tokens-file: ",
        ),
        (
            vec!["--push-upstream-token-file", garbage.as_str()],
            "--push-upstream-token-file: a forwarding token needs --push-upstream",
        ),
        (
            vec![
                "--push-upstream",
                "http://push.example.com",
                "--push-upstream-token-file",
                garbage.as_str(),
                "--push-upstream-key-file",
                garbage.as_str(),
            ],
            "--push-upstream: `http://push.example.com`: use https://",
        ),
        (
            vec!["--push-forward-key-file", garbage.as_str()],
            "--push-forward-key-file: ",
        ),
    ] {
        let stderr = start_error(&args);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
