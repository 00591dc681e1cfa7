//! Correctly signed requests with randomly mutated bodies and queries, sent to every endpoint of
//! a real relay: every answer is a 2xx, or a 4xx with a problem+json body — never a 5xx, never a
//! dropped connection. (Deterministic seed, so a failure reproduces.)

use std::time::Duration;

use approvd_client::RelayClient;
use approvd_proto::{Decision, SignedMessage as _};
use approvd_tests::{context, pair, RelayProcess};

/// xorshift64*: a tiny deterministic generator (no dependency, reproducible).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SNIPPETS: &[&str] = &[
    "null",
    "true",
    "-1",
    "1e308",
    "18446744073709551616",
    "\"\"",
    "\"AAAA\"",
    "[]",
    "{}",
    "\"\\u0000\"",
    "\"💥\"",
    ",",
    "}",
    "\"x\":1",
    "0.5",
    "\"AAAAAAAAAAAAAAAAAAAAAA\"",
];

fn mutate(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let mut body = valid.to_vec();
    for _ in 0..=rng.below(3) {
        match rng.below(5) {
            0 if !body.is_empty() => {
                let at = rng.below(body.len());
                body[at] = (rng.next() & 0x7f) as u8;
            }
            1 if !body.is_empty() => {
                let at = rng.below(body.len());
                body.truncate(at);
            }
            2 => {
                let at = rng.below(body.len() + 1);
                let snippet = SNIPPETS[rng.below(SNIPPETS.len())].as_bytes();
                body.splice(at..at, snippet.iter().copied());
            }
            3 => {
                // Replace one JSON value (after a colon) with a snippet.
                let colons: Vec<usize> = body
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b':')
                    .map(|(i, _)| i)
                    .collect();
                if let Some(&colon) = colons.get(rng.below(colons.len())) {
                    let end = body[colon + 1..]
                        .iter()
                        .position(|b| *b == b',' || *b == b'}')
                        .map_or(body.len(), |offset| colon + 1 + offset);
                    let snippet = SNIPPETS[rng.below(SNIPPETS.len())].as_bytes();
                    body.splice(colon + 1..end, snippet.iter().copied());
                }
            }
            _ => {
                let at = rng.below(body.len() + 1);
                body.insert(at, (rng.next() & 0xff) as u8);
            }
        }
    }
    body
}

async fn check(
    client: &RelayClient,
    method: &str,
    path: &str,
    query: &str,
    body: Option<Vec<u8>>,
) -> u16 {
    let shown = body
        .as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned());
    let response = client
        .send(client.prepare(method, path, query, body))
        .await
        .unwrap_or_else(|error| {
            panic!("{method} {path}?{query} {shown:?}: connection failed: {error}")
        });
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        status < 500,
        "{method} {path}?{query} {shown:?} -> {status}"
    );
    if status >= 400 {
        assert_eq!(
            content_type, "application/problem+json",
            "{method} {path} {shown:?} -> {status}"
        );
        let problem: approvd_proto::wire::Problem = response.json().await.expect("problem body");
        assert!(!problem.detail.is_empty());
    }
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_signed_requests_never_cause_a_server_error() {
    let relay = RelayProcess::start(&[
        "--rate-requests-per-caller",
        "1000000",
        "--rate-challenges-per-device",
        "1000000",
        "--rate-auth-failures-per-ip",
        "1000000",
    ]);
    let nas = relay.nas();
    let (phone, device) = pair(&nas, "phone", None).await;
    let uri = nas
        .start_pairing("nas", "alice", Duration::from_secs(120))
        .await
        .expect("slot");
    let (request, _) = nas
        .build_challenge(
            std::slice::from_ref(&device),
            &context("fuzz"),
            true,
            Duration::from_secs(60),
        )
        .expect("build");
    let sent = nas
        .request_approval(
            std::slice::from_ref(&device),
            &context("fuzz"),
            true,
            Duration::from_secs(60),
        )
        .await
        .expect("challenge");
    let received = phone
        .inbox(Duration::from_secs(5))
        .await
        .expect("inbox")
        .remove(0);
    let verdict = phone.answer(&received, Decision::Approve, sent.number.as_deref());
    let mute = {
        let mute = approvd_proto::Mute {
            nas_id: nas.nas_id(),
            device_id: phone.device_id(),
            until: approvd_client::transport::unix_now() + 60,
            muted_at: approvd_client::transport::unix_now(),
        };
        approvd_proto::wire::SignedMute {
            sig: mute.sign(phone.sig_key()),
            mute,
            push_handle: phone.push_handle().clone(),
        }
    };
    let json = |value: &dyn erased::Json| value.to_vec();
    let pairing_path = format!("/v1/pairings/{}", uri.pairing_id);
    let verdict_path = format!("/v1/challenges/{}/verdict", sent.cid);
    let nas_posts: Vec<(String, Vec<u8>)> = vec![
        ("/v1/pairings".into(), json(&approvd_proto::wire::CreatePairingRequest { pairing_id: approvd_proto::PairingId::random(), ttl_secs: 60, claim_verifier: approvd_proto::Digest([0; 32]) })),
        ("/v1/challenges".into(), json(&request)),
        (format!("{pairing_path}/confirm"), br#"{"confirm":{"pairing_id":"AAAAAAAAAAAAAAAAAAAAAA","nas_id":"AAAA","device_id":"AAAA","claim_hash":"AAAA","confirmed_at":1},"sig":"AAAA"}"#.to_vec()),
        ("/v1/mailbox/ack".into(), br#"{"ids":["1","2"]}"#.to_vec()),
    ];
    let phone_posts: Vec<(String, Vec<u8>)> = vec![
        (verdict_path.clone(), json(&verdict)),
        ("/v1/devices/mute".into(), json(&mute)),
        ("/v1/devices/push".into(), json(&approvd_proto::wire::RefreshPushRequest { push_handle: phone.push_handle().clone(), push: Some(approvd_tests::push_registration()) })),
        ("/v1/devices/unpair".into(), br#"{"unpair":{"nas_id":"AAAA","device_id":"AAAA","unpaired_at":1},"sig":"AAAA","push_handle":"AAAA"}"#.to_vec()),
        (format!("{pairing_path}/claim"), br#"{"claim":{},"mac":"AAAA","sig":"AAAA"}"#.to_vec()),
    ];
    let mut rng = Rng(0x5eed_0fa9_9e0d);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for _ in 0..60 {
        for (path, valid) in &nas_posts {
            *statuses
                .entry(
                    check(
                        nas.client(),
                        "POST",
                        path,
                        "",
                        Some(mutate(&mut rng, valid)),
                    )
                    .await,
                )
                .or_default() += 1;
        }
        for (path, valid) in &phone_posts {
            *statuses
                .entry(
                    check(
                        phone.client(),
                        "POST",
                        path,
                        "",
                        Some(mutate(&mut rng, valid)),
                    )
                    .await,
                )
                .or_default() += 1;
        }
        let query = String::from_utf8_lossy(&mutate(&mut rng, b"wait=0")).replace(['#', ' '], "");
        let query: String = query.chars().filter(|c| c.is_ascii_graphic()).collect();
        for path in ["/v1/inbox", "/v1/mailbox"] {
            let client = if path == "/v1/inbox" {
                phone.client()
            } else {
                nas.client()
            };
            check(client, "GET", path, &query, None).await;
        }
        check(nas.client(), "GET", &verdict_path, &query, None).await;
        check(
            nas.client(),
            "GET",
            &format!("{pairing_path}/claim"),
            &query,
            None,
        )
        .await;
    }
    // The requests reached the handlers: correctly signed, so no 401; some bodies still parse.
    assert!(!statuses.contains_key(&401), "{statuses:?}");
    assert!(
        statuses.get(&400).copied().unwrap_or(0) > 100,
        "{statuses:?}"
    );
    assert!(
        statuses.keys().any(|status| *status != 400),
        "only 400s: {statuses:?}"
    );
    println!("statuses: {statuses:?}");
}

/// Object-safe JSON serialization for a heterogeneous list.
mod erased {
    pub trait Json {
        fn to_vec(&self) -> Vec<u8>;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_vec(&self) -> Vec<u8> {
            serde_json::to_vec(self).expect("serializes")
        }
    }
}
