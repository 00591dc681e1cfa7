//! Defects found by attacking the relay and by implementing PROTOCOL.md from scratch, each
//! pinned by a test: bounded metric labels, one `Signature` line, client IPs behind proxies that
//! append `X-Forwarded-For` lines, `Allow` on 405, store failures counted.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use approvd_client::RelayClient;
use approvd_relay::http::routes::ROUTES;
use approvd_tests::RelayProcess;

/// Send raw bytes on a new connection and return everything the relay answers until it closes
/// the connection or 5 s pass.
fn raw_exchange(relay: &RelayProcess, request: &[u8]) -> String {
    let address = relay.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(request).expect("write");
    let mut answer = Vec::new();
    let mut buffer = [0; 4096];
    while let Ok(read) = stream.read(&mut buffer) {
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
        if answer.windows(4).any(|window| window == b"\r\n\r\n") && answer.ends_with(b"}") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn client_chosen_methods_do_not_become_metric_labels() {
    let relay = RelayProcess::start(&[]);
    let long_method = "X".repeat(2000);
    for method in ["BREW", "PROPFIND", long_method.as_str()] {
        let request = format!("{method} /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let answer = raw_exchange(&relay, request.as_bytes());
        assert!(
            answer.starts_with("HTTP/1.1 4"),
            "{method:.20}: {answer:.80}"
        );
    }
    let metrics = relay.get("/metrics").await.text().await.expect("text");
    assert!(
        !metrics.contains("BREW") && !metrics.contains("PROPFIND") && !metrics.contains("XXXX")
    );
    assert!(
        metrics.contains("method=\"other\""),
        "unknown methods are counted as other"
    );
    let longest = metrics.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 300, "a metric line of {longest} characters");
}

#[tokio::test]
async fn a_second_signature_line_is_refused() {
    let relay = RelayProcess::start(&[]);
    let client =
        RelayClient::new(&relay.url, approvd_proto::generate_signing_key()).expect("client");
    let valid = client.prepare("GET", "/v1/inbox", "", None);
    let status = client.send(valid).await.expect("sent").status().as_u16();
    assert_eq!(status, 204, "the request alone is valid");
    let mut doubled = client.prepare("GET", "/v1/inbox", "", None);
    doubled
        .headers
        .push(("Signature".to_owned(), "sig2=:AAAA:".to_owned()));
    let response = client.send(doubled).await.expect("sent");
    assert_eq!(response.status().as_u16(), 401);
    let problem: approvd_proto::wire::Problem = response.json().await.expect("problem");
    assert_eq!(problem.field.as_deref(), Some("signature"));
    assert!(
        problem.detail.contains("must appear once"),
        "{}",
        problem.detail
    );
}

#[tokio::test]
async fn behind_a_proxy_that_appends_a_line_the_forged_first_line_is_ignored() {
    let relay = RelayProcess::start(&[
        "--trust-forwarded-for",
        "true",
        "--rate-auth-failures-per-ip",
        "3",
    ]);
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for attempt in 0..5 {
        // The client forges a fresh first line each time; the proxy appends the real address.
        let status = http
            .get(format!("{}/v1/inbox", relay.url))
            .header("X-Forwarded-For", format!("198.51.100.{attempt}"))
            .header("X-Forwarded-For", "203.0.113.9")
            .send()
            .await
            .expect("sent")
            .status()
            .as_u16();
        statuses.push(status);
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    // Another real client address (one line, comma-separated) is not affected.
    let status = http
        .get(format!("{}/v1/inbox", relay.url))
        .header("X-Forwarded-For", "203.0.113.9, 192.0.2.44")
        .send()
        .await
        .expect("sent")
        .status()
        .as_u16();
    assert_eq!(status, 401);
}

#[tokio::test]
async fn every_405_says_which_methods_are_allowed() {
    let relay = RelayProcess::start(&[]);
    let http = reqwest::Client::new();
    let mut checked = 0;
    for (_, path) in ROUTES {
        let allowed: Vec<&str> = ROUTES
            .iter()
            .filter(|(_, route)| route == path)
            .map(|(method, _)| *method)
            .collect();
        let url = format!(
            "{}{}",
            relay.url,
            path.replace("{pairing_id}", "AAAAAAAAAAAAAAAAAAAAAA")
                .replace("{cid}", "AAAAAAAAAAAAAAAAAAAAAA")
        );
        let response = http.put(url).send().await.expect("sent");
        assert_eq!(response.status().as_u16(), 405, "{path}");
        let allow = response
            .headers()
            .get("allow")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(allow, allowed.join(", "), "{path}");
        checked += 1;
    }
    assert_eq!(checked, ROUTES.len());
}

#[tokio::test]
async fn problems_point_at_the_offending_field() {
    let relay = RelayProcess::start(&[]);
    let client =
        RelayClient::new(&relay.url, approvd_proto::generate_signing_key()).expect("client");
    let problem_of = |response: reqwest::Response| async move {
        assert_eq!(response.status().as_u16(), 400);
        response
            .json::<approvd_proto::wire::Problem>()
            .await
            .expect("problem")
    };
    // A bad key deep inside a claim names its path, not a generic `key`.
    let valid_key = approvd_proto::PublicKey::from(&approvd_proto::generate_signing_key());
    let claim = serde_json::json!({
        "claim": {
            "pairing_id": "AAAAAAAAAAAAAAAAAAAAAA",
            "nas_id": valid_key,
            "device_id": valid_key,
            "sig_key": "AAAA",
            "seal_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "device_info": approvd_proto::ids::encode_b64(
                &[0; approvd_proto::pairing::SEALED_DEVICE_INFO]
            ),
            "claimed_at": 1
        },
        "claim_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "mac": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "sig": "A".repeat(86)
    });
    let prepared = client.prepare(
        "POST",
        "/v1/pairings/AAAAAAAAAAAAAAAAAAAAAA/claim",
        "",
        Some(claim.to_string().into_bytes()),
    );
    let problem = problem_of(client.send(prepared).await.expect("sent")).await;
    assert_eq!(
        problem.type_uri,
        format!("{}invalid-field", approvd_proto::wire::PROBLEM_TYPE_PREFIX)
    );
    assert_eq!(problem.field.as_deref(), Some("claim.sig_key"));
    assert!(
        problem.detail.starts_with("`claim.sig_key`"),
        "{}",
        problem.detail
    );

    // Too many acknowledgements is a count, not a length in bytes.
    let ids: Vec<String> = (0..101).map(|n| format!("{n}-0")).collect();
    let body = serde_json::json!({ "ids": ids }).to_string().into_bytes();
    let prepared = client.prepare("POST", "/v1/mailbox/ack", "", Some(body));
    let problem = problem_of(client.send(prepared).await.expect("sent")).await;
    assert_eq!(problem.field.as_deref(), Some("ids"));
    assert!(
        problem.detail.contains("more than 100 entries"),
        "{}",
        problem.detail
    );
}

/// The signature parameters `prepared` was signed with.
fn signed_params(prepared: &approvd_client::Prepared) -> approvd_proto::httpsig::SignatureParams {
    let input = prepared
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("signature-input"))
        .map(|(_, value)| value.clone())
        .expect("signed");
    approvd_proto::httpsig::parse_signature_input(&input)
        .expect("parses")
        .1
}

/// Swap `prepared`'s signature headers for `headers`.
fn replace_signature(
    prepared: &mut approvd_client::Prepared,
    headers: approvd_proto::httpsig::SignedHeaders,
) {
    prepared.headers.retain(|(name, _)| {
        !name.eq_ignore_ascii_case("signature-input") && !name.eq_ignore_ascii_case("signature")
    });
    prepared
        .headers
        .push(("Signature-Input".to_owned(), headers.signature_input));
    prepared
        .headers
        .push(("Signature".to_owned(), headers.signature));
}

#[tokio::test]
async fn signature_parameters_in_another_order_are_accepted() {
    use approvd_proto::httpsig::{self, Param, RequestTarget};
    let relay = RelayProcess::start(&[]);
    let key = approvd_proto::generate_signing_key();
    let client = RelayClient::new(&relay.url, key.clone()).expect("client");
    let mut prepared = client.prepare("GET", "/v1/inbox", "", None);
    let mut params = signed_params(&prepared);
    params.order = vec![
        Param::KeyId,
        Param::Alg,
        Param::Tag,
        Param::Created,
        Param::Expires,
        Param::Nonce,
    ];
    let target = RequestTarget {
        method: "GET",
        path: "/v1/inbox",
        query: "",
    };
    let headers =
        httpsig::sign_with_params(&key, &target, &httpsig::RequestContext::NONE, None, &params)
            .expect("the profile's components resolve");
    replace_signature(&mut prepared, headers);
    let status = client.send(prepared).await.expect("sent").status().as_u16();
    assert_eq!(
        status, 204,
        "keyid;alg;tag;created;expires;nonce is accepted"
    );
}

/// A connection from `source` (a loopback address) that sends a request head announcing a
/// 1000-byte body, then one byte, then nothing.
fn stalled_body(relay: &RelayProcess, source: [u8; 4]) -> std::io::Result<std::net::TcpStream> {
    stalled_with(
        relay,
        source,
        b"POST /v1/pairings HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{",
    )
}

/// The ways a request body can stall: a declared length never reached, a chunked body with no
/// chunk, and a chunked body stopped inside a chunk.
const STALLS: [(&str, &[u8]); 3] = [
    (
        "Content-Length",
        b"POST /v1/pairings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
    ),
    (
        "chunked, no chunk",
        b"POST /v1/pairings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    ),
    (
        "chunked, mid-chunk",
        b"POST /v1/pairings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"ttl",
    ),
];

/// A connection from `source` that sends `head` (a request and the start of its body) and
/// then nothing.
fn stalled_with(
    relay: &RelayProcess,
    source: [u8; 4],
    head: &[u8],
) -> std::io::Result<std::net::TcpStream> {
    let address: std::net::SocketAddr = relay
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("relay address");
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&std::net::SocketAddr::from((source, 0)).into())?;
    socket.connect(&address.into())?;
    let mut stream: std::net::TcpStream = socket.into();
    stream.write_all(head)?;
    Ok(stream)
}

/// One `/healthz` probe from 127.0.0.1 on a fresh connection, with a 2 s budget.
fn probe_health(relay: &RelayProcess) -> bool {
    let answer = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                raw_exchange_within(
                    relay,
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    Duration::from_secs(2),
                )
            })
            .join()
            .unwrap_or_default()
    });
    answer.starts_with("HTTP/1.1 200")
}

fn raw_exchange_within(relay: &RelayProcess, request: &[u8], timeout: Duration) -> String {
    let address = relay.url.trim_start_matches("http://");
    let Ok(mut stream) =
        std::net::TcpStream::connect_timeout(&address.parse().expect("relay address"), timeout)
    else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(timeout));
    if stream.write_all(request).is_err() {
        return String::new();
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn a_body_that_never_arrives_gets_408_and_its_connection_closed() {
    // D1: a stalled chunked body was answered 408 but its connection stayed open (200 s and
    // more), so chunked stalls could hold every connection slot. Every framing now ends the
    // same way: the 408, then the end of the stream.
    let relay = RelayProcess::start(&["--request-timeout-secs", "1"]);
    for (framing, head) in STALLS {
        let mut stalled = stalled_with(&relay, [127, 0, 0, 1], head).expect("connect");
        stalled
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        let read = stalled.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{framing}: {answer}");
        assert!(
            answer.contains("urn:approvd:problem:request-timeout"),
            "{framing}: {answer}"
        );
        assert!(
            read.is_ok(),
            "{framing}: the connection is closed (EOF), not left open: {read:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{framing}: answered and closed after the 1 s deadline, not at the client's \
             timeout: {:?}",
            started.elapsed()
        );
    }
}

/// 300 connections that stall mid-body from one address, against a relay allowed only 256 file
/// descriptors: the per-IP cap closes all but 32 at once, and `/healthz` from another address
/// answers throughout; the stalled ones get 408 at the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_cannot_exhaust_file_descriptors() {
    let relay = RelayProcess::start_with_fd_limit(
        256,
        &[
            "--request-timeout-secs",
            "3",
            "--max-connections-per-ip",
            "32",
        ],
    );
    let attacker = [127, 0, 0, 2];
    let stalled: Vec<std::net::TcpStream> = (0..300)
        .filter_map(|_| stalled_body(&relay, attacker).ok())
        .collect();
    assert!(stalled.len() >= 250, "only {} connected", stalled.len());
    let mut answered = 0;
    for _ in 0..12 {
        answered += usize::from(tokio::task::block_in_place(|| probe_health(&relay)));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        answered, 12,
        "every health probe answered while the sockets are held"
    );
    let refused = relay
        .metric("approvd_connections_refused_total")
        .await
        .unwrap_or(0.0);
    assert!(
        refused >= 250.0,
        "connections over the cap were closed: {refused}"
    );
    drop(stalled);
    let log = relay.log();
    assert!(!log.contains("Too many open files"), "{log}");
}

/// D1 at the scale of the report: 300 stalled bodies of every framing (most chunked) from 10
/// addresses, each under the per-IP cap, against a relay allowed 256 file descriptors. Before,
/// the chunked ones stayed open after their 408 and `/healthz` failed for the whole minute.
/// Now every stalled connection sees the 408 and then the end of the stream, and `/healthz`
/// answers again at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_chunked_bodies_from_many_addresses_are_closed_after_their_408() {
    let relay = RelayProcess::start_with_fd_limit(
        256,
        &[
            "--request-timeout-secs",
            "2",
            "--max-connections-per-ip",
            "32",
        ],
    );
    let mut stalled: Vec<(&str, std::net::TcpStream)> = Vec::new();
    for n in 0..300usize {
        let (framing, head) = STALLS[n % 3];
        let address = u8::try_from(n % 10 + 1).expect("1 to 10");
        if let Ok(stream) = stalled_with(&relay, [127, 0, 1, address], head) {
            stalled.push((framing, stream));
        }
    }
    assert!(stalled.len() >= 200, "only {} connected", stalled.len());
    let outcomes = tokio::task::block_in_place(|| {
        stalled
            .into_iter()
            .map(|(framing, mut stream)| {
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                let mut answer = Vec::new();
                let read = stream.read_to_end(&mut answer);
                (framing, read.is_ok(), answer)
            })
            .collect::<Vec<_>>()
    });
    let left_open: Vec<_> = outcomes
        .iter()
        .filter(|(_, closed, _)| !closed)
        .map(|(framing, _, _)| *framing)
        .collect();
    assert!(
        left_open.is_empty(),
        "left open after the deadline: {left_open:?}"
    );
    let timed_out = outcomes
        .iter()
        .filter(|(_, _, answer)| answer.starts_with(b"HTTP/1.1 408"))
        .count();
    assert!(timed_out >= 200, "{timed_out} of them got their 408");
    assert!(
        tokio::task::block_in_place(|| probe_health(&relay)),
        "/healthz answers once the stalls are closed"
    );
}

/// Junk that the HTTP parser refuses is answered 400/431 with a problem document, counted, and
/// not logged line by line.
#[tokio::test]
async fn malformed_requests_get_problems_and_are_counted_not_logged() {
    let relay = RelayProcess::start(&[]);
    let junk: [&[u8]; 5] = [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/0.9\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad\0Header: y\r\n\r\n",
        b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n folded: header\r\n\r\n",
    ];
    for request in junk {
        let answer = raw_exchange_within(&relay, request, Duration::from_secs(5));
        assert!(
            answer.starts_with("HTTP/1.1 400 ")
                && answer.contains("content-type: application/problem+json")
                && answer.contains("\"type\":\"urn:approvd:problem:malformed-request\""),
            "{request:?} → {answer}"
        );
    }
    let mut huge = b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec();
    for n in 0..20_000 {
        huge.extend_from_slice(format!("X-Filler-{n}: {}\r\n", "y".repeat(40)).as_bytes());
    }
    huge.extend_from_slice(b"\r\n");
    let answer = raw_exchange_within(&relay, &huge, Duration::from_secs(5));
    assert!(
        answer.starts_with("HTTP/1.1 431 ")
            && answer.contains("\"type\":\"urn:approvd:problem:headers-too-large\""),
        "a 1 MB header block → {answer}"
    );
    // The limits PROTOCOL.md §10 states: 96 header fields and a 128 KiB head.
    let with_fields = |fields: usize, value: usize| {
        let mut head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec();
        for n in 1..fields {
            head.extend_from_slice(format!("X-F{n}: {}\r\n", "y".repeat(value)).as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        head
    };
    for (fields, value, status) in [
        (96, 10, "200"),
        (97, 10, "431"),
        (2, 100 * 1024, "200"),
        (2, 200 * 1024, "431"),
    ] {
        let answer =
            raw_exchange_within(&relay, &with_fields(fields, value), Duration::from_secs(5));
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{fields} fields of {value} bytes → {answer}"
        );
    }
    let counted = relay
        .metric("approvd_http_malformed_requests_total")
        .await
        .unwrap_or(0.0);
    assert!(counted >= 3.0, "counted {counted}");
    let log = relay.log();
    assert!(
        !log.contains("stream error") && !log.contains("ERROR"),
        "junk requests are not logged as errors:\n{log}"
    );
}

/// A slot's `claim_verifier` (any 32 bytes will do where nothing claims the slot).
const VERIFIER: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// Bodies at and just past the bounds the served OpenAPI document states: the relay accepts
/// exactly what the document allows.
#[tokio::test]
async fn the_relay_accepts_exactly_what_its_openapi_document_allows() {
    let relay = RelayProcess::start(&["--rate-requests-per-caller", "1000"]);
    let document: serde_json::Value = relay.get("/openapi.json").await.json().await.expect("json");
    let schemas = &document["components"]["schemas"];
    let bound = |schema: &str, property: &str, keyword: &str| {
        schemas[schema]["properties"][property][keyword]
            .as_u64()
            .unwrap_or_else(|| panic!("{schema}.{property}.{keyword} in the document"))
    };
    let pattern = |schema: &str| {
        regex::Regex::new(schemas[schema]["pattern"].as_str().expect("pattern")).expect("regex")
    };
    let client =
        RelayClient::new(&relay.url, approvd_proto::generate_signing_key()).expect("client");
    let post = |path: &'static str, body: serde_json::Value| {
        let prepared = client.prepare("POST", path, "", Some(body.to_string().into_bytes()));
        async { client.send(prepared).await.expect("sent").status().as_u16() }
    };

    // ttl_secs: the document's minimum and maximum, and one past each.
    let (low, high) = (
        bound("CreatePairingRequest", "ttl_secs", "minimum"),
        bound("CreatePairingRequest", "ttl_secs", "maximum"),
    );
    for ttl in [low - 1, low, high, high + 1] {
        let id = approvd_proto::PairingId::random().to_string();
        let allowed = (low..=high).contains(&ttl);
        let status = post(
            "/v1/pairings",
            serde_json::json!({"pairing_id": id, "ttl_secs": ttl, "claim_verifier": VERIFIER}),
        )
        .await;
        assert_eq!(status == 201, allowed, "ttl_secs {ttl}: {status}");
    }
    // The document says `"type": "integer"`, which JSON Schema holds `60.0` to be; a fraction,
    // a negative number or a string is not.
    assert_eq!(
        schemas["CreatePairingRequest"]["properties"]["ttl_secs"]["format"],
        "uint64"
    );
    for (ttl, allowed) in [
        ("60.0", true),
        ("60.5", false),
        ("-60", false),
        ("\"60\"", false),
    ] {
        let id = approvd_proto::PairingId::random().to_string();
        let body: serde_json::Value = serde_json::from_str(&format!(
            r#"{{"pairing_id":"{id}","ttl_secs":{ttl},"claim_verifier":"{VERIFIER}"}}"#
        ))
        .expect("json");
        let status = post("/v1/pairings", body).await;
        assert_eq!(status == 201, allowed, "ttl_secs {ttl}: {status}");
    }

    // pairing_id: every last character, so every value of the unused trailing bits.
    let ids = pattern("PairingId");
    let stem = approvd_proto::PairingId::random().to_string()[..21].to_owned();
    for last in "AQgwBRhxZ_-9".chars() {
        let id = format!("{stem}{last}");
        let status = post(
            "/v1/pairings",
            serde_json::json!({"pairing_id": id, "ttl_secs": 60, "claim_verifier": VERIFIER}),
        )
        .await;
        assert_eq!(
            status == 201,
            ids.is_match(&id),
            "pairing_id {id}: {status}"
        );
    }

    // Acknowledgements: up to maxItems.
    let most = bound("MailboxAck", "ids", "maxItems") as usize;
    for count in [most, most + 1] {
        let ids: Vec<String> = (0..count).map(|n| format!("{n}-0")).collect();
        let status = post("/v1/mailbox/ack", serde_json::json!({ "ids": ids })).await;
        assert_eq!(status == 204, count <= most, "{count} ids: {status}");
    }

    // Targets: between minItems and maxItems (the relay reads the count before any handle).
    let (fewest, most) = (
        bound("CreateChallengeRequest", "targets", "minItems") as usize,
        bound("CreateChallengeRequest", "targets", "maxItems") as usize,
    );
    for count in [fewest - 1, most + 1] {
        let target = serde_json::json!({
            "device_id": approvd_proto::PublicKey::from(&approvd_proto::generate_signing_key()),
            "push_handle": "AAAA",
            "sealed": "AAAA",
            "sig": "A".repeat(86),
        });
        let now = approvd_client::transport::unix_now();
        let body = serde_json::json!({
            "cid": approvd_proto::Cid::random(),
            "created": now,
            "expires": now + 60,
            "number_matching": false,
            "targets": vec![target; count],
        });
        let status = post("/v1/challenges", body).await;
        assert_eq!(status, 400, "{count} targets");
    }
}

/// A GET /v1/inbox signed over the profile's components plus `@target-uri` as
/// `https://relay.example/v1/inbox`, sent with `forwarded` headers; the relay's status.
async fn inbox_signed_over_target_uri(relay: &RelayProcess, forwarded: &[(&str, &str)]) -> u16 {
    use approvd_proto::httpsig::{self, RequestContext, RequestTarget};
    let key = approvd_proto::generate_signing_key();
    let client = RelayClient::new(&relay.url, key.clone()).expect("client");
    let mut prepared = client.prepare("GET", "/v1/inbox", "", None);
    let mut params = signed_params(&prepared);
    params.components.push("@target-uri".to_owned());
    let target = RequestTarget {
        method: "GET",
        path: "/v1/inbox",
        query: "",
    };
    let as_the_client_saw_it = RequestContext {
        scheme: Some("https"),
        authority: Some("relay.example"),
        fields: &[],
    };
    let headers = httpsig::sign_with_params(&key, &target, &as_the_client_saw_it, None, &params)
        .expect("resolves");
    replace_signature(&mut prepared, headers);
    for (name, value) in forwarded {
        prepared
            .headers
            .push(((*name).to_owned(), (*value).to_owned()));
    }
    client.send(prepared).await.expect("sent").status().as_u16()
}

#[tokio::test]
async fn a_covered_target_uri_is_the_one_the_trusted_proxy_reports() {
    let proxied = [
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "relay.example"),
    ];
    let behind_proxy = RelayProcess::start(&["--trust-forwarded-for", "true"]);
    assert_eq!(
        inbox_signed_over_target_uri(&behind_proxy, &proxied).await,
        204,
        "the URL the client signed is the one the proxy reports"
    );
    assert_eq!(
        inbox_signed_over_target_uri(&behind_proxy, &[]).await,
        401,
        "without the proxy's headers the relay resolves http://127.0.0.1:<port>/v1/inbox"
    );
    let direct = RelayProcess::start(&[]);
    assert_eq!(
        inbox_signed_over_target_uri(&direct, &proxied).await,
        401,
        "a relay that does not trust forwarded headers does not let a client choose its URL"
    );
}

#[test]
fn a_request_head_that_never_ends_gets_a_408_problem() {
    let relay = RelayProcess::start(&["--request-timeout-secs", "1"]);
    let answer = raw_exchange_within(
        &relay,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(5),
    );
    assert!(
        answer.starts_with("HTTP/1.1 408 ")
            && answer.contains("\"type\":\"urn:approvd:problem:request-timeout\""),
        "{answer}"
    );
}
