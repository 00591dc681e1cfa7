//! What each fuzz target runs: one function per decoder that bytes from the network or a QR
//! code reach, called the way the relay or the SDK calls it, with the checks that follow a
//! successful decode. None may panic, whatever the input. `fuzz/fuzz_targets/*.rs` hands
//! libFuzzer's inputs to these; `tests/corpus.rs` replays the committed corpus through them in
//! the normal test run.

use std::sync::OnceLock;

use approvd_proto::context::{self, ContextBinding, SealSecret};
use approvd_proto::httpsig::{self, IncomingRequest, RequestContext, RequestTarget};
use approvd_proto::pairing::{self, PairingUri};
use approvd_proto::signed::SignedMessage as _;
use approvd_proto::vectors::Examples;
use approvd_proto::wire::{self, Notice, PushHandle, Validate};
use approvd_relay::http::auth::{BodyKind, Json};
use approvd_relay::push_handle::HandleKeys;

/// What a fuzz target runs on one input.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory and fuzz target.
pub const TARGETS: &[(&str, Target)] = &[
    ("pairing_uri", pairing_uri),
    ("http_signature", http_signature),
    ("relay_body", relay_body),
    ("sdk_answer", sdk_answer),
    ("push_handle", push_handle),
    ("sealed", sealed),
    ("agent_body", agent_body),
];

/// The fixed keys and messages of the test vectors (PROTOCOL.md §12).
fn examples() -> &'static Examples {
    static EXAMPLES: OnceLock<Examples> = OnceLock::new();
    EXAMPLES.get_or_init(Examples::fixed)
}

/// The unix time the vectors are made at, so their signatures and URIs are current.
const NOW: u64 = 1_767_225_900;

/// A pairing QR code (`approvd://pair?…`), as the phone parses it. What parses, a NAS prints
/// either as a URI that parses back to the same values, or not at all (too long once
/// percent-encoded: `checked_uri` refuses).
pub fn pairing_uri(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(uri) = PairingUri::parse(text, NOW) {
        match uri.checked_uri() {
            Ok(printed) => {
                let again = PairingUri::parse(&printed, NOW).expect("a checked URI parses");
                assert_eq!(again, uri);
            }
            Err(error) => assert!(uri.to_uri().len() > pairing::MAX_URI, "{error}"),
        }
    }
}

/// The request-signature headers and body, as the relay verifies them: fields separated by
/// 0xff — method, path, query, `Signature-Input`, `Signature`, `Content-Digest`, one extra
/// header `name: value`, body.
pub fn http_signature(data: &[u8]) {
    let mut parts = data.splitn(8, |byte| *byte == 0xff);
    let mut text = || {
        parts
            .next()
            .map(|part| String::from_utf8_lossy(part).into_owned())
    };
    let (method, path, query) = (text(), text(), text());
    let (input, signature, digest, field) = (text(), text(), text(), text());
    let body = data
        .splitn(8, |byte| *byte == 0xff)
        .nth(7)
        .unwrap_or_default();
    let field = field.unwrap_or_default();
    let fields: Vec<(&str, &str)> = field
        .split_once(':')
        .map(|(name, value)| vec![(name, value)])
        .unwrap_or_default();
    let request = IncomingRequest {
        target: RequestTarget {
            method: method.as_deref().unwrap_or("GET"),
            path: path.as_deref().unwrap_or("/"),
            query: query.as_deref().unwrap_or(""),
        },
        context: RequestContext {
            scheme: Some("https"),
            authority: Some("relay.example.com"),
            fields: &fields,
        },
        signature_input: input.as_deref(),
        signature: signature.as_deref(),
        content_digest: digest.as_deref(),
        body,
    };
    let _ = httpsig::verify_request(&request, NOW, 60);
}

/// Parse `bytes` as the relay parses a body of type `T` (JSON, then the type's limits), and
/// build the problem it would answer.
fn relay_parse<T: serde::de::DeserializeOwned + Validate + 'static>(bytes: &[u8]) -> bool {
    match <Json<T> as BodyKind>::parse(bytes) {
        Ok(_) => true,
        Err(error) => {
            let problem = error.problem();
            assert!((400..500).contains(&problem.status), "{problem:?}");
            false
        }
    }
}

/// Every request body the relay accepts: the first byte picks the endpoint, the rest is the
/// body.
pub fn relay_body(data: &[u8]) {
    relay_body_parses(data);
}

/// [`relay_body`], saying whether the relay accepted the body.
pub fn relay_body_parses(data: &[u8]) -> bool {
    let Some((which, body)) = data.split_first() else {
        return false;
    };
    match which % 11 {
        0 => relay_parse::<wire::CreatePairingRequest>(body),
        1 => relay_parse::<wire::ClaimRequest>(body),
        2 => relay_parse::<wire::PairingAcceptance>(body),
        3 => relay_parse::<wire::PairingConfirmation>(body),
        4 => relay_parse::<wire::CreateChallengeRequest>(body),
        5 => relay_parse::<wire::SignedVerdict>(body),
        6 => relay_parse::<wire::RefreshPushRequest>(body),
        7 => relay_parse::<wire::SignedMute>(body),
        8 => relay_parse::<wire::SignedUnpair>(body),
        9 => relay_parse::<wire::MailboxAck>(body),
        _ => relay_parse::<wire::ForwardPushRequest>(body),
    }
}

/// Every answer the SDK decodes, with the checks it then makes against the vectors' keys:
/// the first byte picks the answer, the rest is its body.
pub fn sdk_answer(data: &[u8]) {
    let Some((which, body)) = data.split_first() else {
        return;
    };
    let examples = examples();
    let nas = approvd_proto::ids::PublicKey::from(&examples.keys.nas);
    let device_sig = approvd_proto::ids::PublicKey::from(&examples.keys.device_sig);
    let device_id = examples.claim.device_id;
    match which % 10 {
        0 => {
            if let Ok(claimed) = serde_json::from_slice::<wire::PairingClaimed>(body) {
                let claim = &claimed.claim;
                let secret = &examples.pairing_uri.secret;
                let _ = pairing::verify_claim_mac(secret, claim, &claimed.mac.0);
                let _ = claim.verify(&claim.sig_key, &claimed.sig);
                let _ = wire::validate_claim(claim);
                let _ = pairing::open_device_info(secret, claim);
                let _ = pairing::sas(secret, claim);
            }
        }
        1 => {
            if let Ok(acceptance) = serde_json::from_slice::<wire::PairingAcceptance>(body) {
                let _ = acceptance.accept.verify(&nas, &acceptance.sig);
            }
        }
        2 => {
            if let Ok(confirmation) = serde_json::from_slice::<wire::PairingConfirmation>(body) {
                let _ = confirmation.confirm.verify(&nas, &confirmation.sig);
                let _ = approvd_proto::totp::open_code_secret(
                    &confirmation.code_secret.0,
                    &examples.code_binding,
                    &examples.keys.device_seal,
                );
            }
        }
        3 => {
            if let Ok(inbox) = serde_json::from_slice::<wire::Inbox>(body) {
                for entry in inbox.entries {
                    let _ = entry.challenge(device_id).verify(&nas, &entry.sig);
                    let binding = ContextBinding {
                        cid: entry.cid,
                        nas_id: entry.nas_id,
                        device_id,
                        created: entry.created,
                        expires: entry.expires,
                        number_matching: entry.number_matching,
                    };
                    let _ = context::open(&entry.sealed.0, &binding, &examples.keys.device_seal);
                }
            }
        }
        4 => {
            if let Ok(signed) = serde_json::from_slice::<wire::SignedVerdict>(body) {
                let _ = signed.verdict.verify(&device_sig, &signed.sig);
            }
        }
        5 => {
            if let Ok(mailbox) = serde_json::from_slice::<wire::Mailbox>(body) {
                for entry in mailbox.entries {
                    let _ = entry.notice.coalescing_key();
                    match entry.notice {
                        Notice::Unpaired { unpair, sig } => {
                            let _ = unpair.verify(&device_sig, &sig);
                        }
                        Notice::Muted { mute, sig } => {
                            let _ = mute.verify(&device_sig, &sig);
                        }
                        Notice::HandleRefreshed { .. } | Notice::PushGone { .. } => {}
                    }
                }
            }
        }
        6 => {
            let _ = serde_json::from_slice::<wire::ChallengeCreated>(body);
        }
        7 => {
            let _ = serde_json::from_slice::<wire::HandleIssued>(body);
        }
        8 => {
            let _ = serde_json::from_slice::<wire::Problem>(body);
        }
        _ => {
            let _ = serde_json::from_slice::<wire::ForwardPushResponse>(body);
        }
    }
}

/// The relay's handle keys for [`push_handle`]: a current key and a retired one.
fn handle_keys() -> &'static HandleKeys {
    static KEYS: OnceLock<HandleKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        HandleKeys::parse(
            "fuzz",
            "7 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n\
             6 HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4 accept-until=1767225000\n",
        )
        .expect("fuzz handle keys")
    })
}

/// A push handle as the relay opens it: the bytes as base64url text (as it arrives in JSON),
/// and the bytes as the handle itself.
pub fn push_handle(data: &[u8]) {
    let keys = handle_keys();
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(handle) = PushHandle::parse(text) {
            let _ = keys.open(&handle, NOW);
        }
    }
    let _ = keys.open(&PushHandle(data.to_vec()), NOW);
}

/// Sealed blobs a phone opens: a login context, an offline-code secret, a claim's device
/// name (the NAS opens that one with the QR code's secret).
pub fn sealed(data: &[u8]) {
    let examples = examples();
    let secret: &SealSecret = &examples.keys.device_seal;
    let _ = context::open(data, &examples.binding, secret);
    let _ = approvd_proto::totp::open_code_secret(data, &examples.code_binding, secret);
    if let Ok(bytes) = <[u8; pairing::SEALED_DEVICE_INFO]>::try_from(data) {
        let claim = approvd_proto::signed::PairClaim {
            device_info: pairing::SealedDeviceInfo(bytes),
            ..examples.claim.clone()
        };
        let _ = pairing::open_device_info(&examples.pairing_uri.secret, &claim);
    }
}

/// The agent's local API bodies (`approvd agent`): the first byte picks the endpoint. An
/// approval request becomes the login context the phones see, which is then checked and
/// sealed as the agent would.
pub fn agent_body(data: &[u8]) {
    use approvd_agent::api::{ApprovalRequest, CodeRequest, PairingRequest};
    let Some((which, body)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            if let Ok(request) = serde_json::from_slice::<ApprovalRequest>(body) {
                let context = request.login_context("home-nas", NOW);
                let _ = request.number_matching(&context);
                assert!((1..=120).contains(&request.lifetime().as_secs()));
                let examples = examples();
                let _ = context::seal(
                    &context,
                    &examples.binding,
                    &examples.keys.device_seal.public_key(),
                );
            }
        }
        1 => {
            let _ = serde_json::from_slice::<CodeRequest>(body);
        }
        _ => {
            if let Ok(request) = serde_json::from_slice::<PairingRequest>(body) {
                assert!((1..=600).contains(&request.ttl().as_secs()));
            }
        }
    }
}

/// One well-formed input per decoder path, built from the test vectors: the seed corpus
/// (`fuzz/corpus/<target>/`, kept in step by `tests/corpus.rs`), from which the fuzzer mutates.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    use approvd_proto::ids::encode_b64;
    use serde_json::json;
    let examples = examples();
    let keys = &examples.keys;
    let json = |value: serde_json::Value| value.to_string().into_bytes();
    let tagged = |which: u8, value: serde_json::Value| {
        let mut bytes = vec![which];
        bytes.extend(value.to_string().into_bytes());
        bytes
    };
    let claim = &examples.claim;
    let claim_sig = claim.sign(&keys.device_sig);
    let secret = &examples.pairing_uri.secret;
    let mac = encode_b64(&pairing::claim_mac(secret, claim));
    let handle = handle_keys().mint(&approvd_relay::push_handle::HandleContents {
        device_id: claim.device_id,
        nas_id: claim.nas_id,
        sig_key: claim.sig_key,
        push: Some(wire::PushRegistration {
            provider: wire::PushProvider::Fcm,
            token: "fcm-token".to_owned(),
            topic: "com.example.approve".to_owned(),
            p256dh: None,
            auth: None,
        }),
        minted_at: NOW,
    });
    let handle_text = encode_b64(&handle.0);
    let acceptance = json!({"accept": examples.accept, "sig": examples.accept.sign(&keys.nas)});
    let confirmation = json!({
        "confirm": examples.confirm,
        "sig": examples.confirm.sign(&keys.nas),
        "code_secret": encode_b64(&examples.sealed_code_secret),
    });
    let verdict =
        json!({"verdict": examples.verdict, "sig": examples.verdict.sign(&keys.device_sig)});
    let mute = json!({"mute": examples.mute, "sig": examples.mute.sign(&keys.device_sig), "push_handle": handle_text});
    let unpair = json!({"unpair": examples.unpair, "sig": examples.unpair.sign(&keys.device_sig), "push_handle": handle_text});
    let challenge = &examples.challenge;
    let entry = json!({
        "cid": challenge.cid, "nas_id": challenge.nas_id, "created": challenge.created,
        "expires": challenge.expires, "number_matching": challenge.number_matching,
        "sealed": encode_b64(&examples.sealed), "sig": challenge.sign(&keys.nas),
    });
    let push = json!({"provider": "fcm", "token": "fcm-token", "topic": "com.example.approve"});
    let body = json!({"pairing_id": claim.pairing_id, "ttl_secs": 300}).to_string();
    let signed = httpsig::sign_request(
        &keys.nas,
        &RequestTarget {
            method: "POST",
            path: "/v1/pairings",
            query: "",
        },
        Some(body.as_bytes()),
        NOW,
        "bm9uY2UtZm9yLWZ1enppbmc",
    );
    let mut request = Vec::new();
    for part in [
        "POST",
        "/v1/pairings",
        "",
        &signed.signature_input,
        &signed.signature,
        signed.content_digest.as_deref().unwrap_or_default(),
        "date: Thu, 01 Jan 2026 00:05:00 GMT",
        &body,
    ] {
        if !request.is_empty() {
            request.push(0xff);
        }
        request.extend_from_slice(part.as_bytes());
    }
    vec![
        ("pairing_uri", examples.pairing_uri.to_uri().into_bytes()),
        ("http_signature", request),
        ("relay_body", tagged(0, json!({"pairing_id": claim.pairing_id, "ttl_secs": 300, "claim_verifier": secret.claim_verifier()}))),
        ("relay_body", tagged(1, json!({"claim": claim, "claim_key": secret.relay_claim_key(), "mac": mac, "sig": claim_sig, "push": push}))),
        ("relay_body", tagged(2, acceptance.clone())),
        ("relay_body", tagged(3, confirmation.clone())),
        (
            "relay_body",
            tagged(4, json!({
                "cid": challenge.cid, "created": challenge.created, "expires": challenge.expires,
                "number_matching": true,
                "targets": [{"device_id": claim.device_id, "push_handle": handle_text,
                             "sig": challenge.sign(&keys.nas), "sealed": encode_b64(&examples.sealed)}],
            })),
        ),
        ("relay_body", tagged(5, verdict.clone())),
        ("relay_body", tagged(6, json!({"push_handle": handle_text, "push": push}))),
        ("relay_body", tagged(7, mute.clone())),
        ("relay_body", tagged(8, unpair.clone())),
        ("relay_body", tagged(9, json!({"ids": ["1767225900000-0"]}))),
        (
            "relay_body",
            tagged(10, json!({"push": push, "cid": challenge.cid, "expires": NOW + 60, "kind": "alert"})),
        ),
        (
            "sdk_answer",
            tagged(0, json!({"claim": claim, "mac": mac, "sig": claim_sig, "push_handle": handle_text})),
        ),
        ("sdk_answer", tagged(1, acceptance)),
        ("sdk_answer", tagged(2, confirmation)),
        ("sdk_answer", tagged(3, json!({"entries": [entry]}))),
        ("sdk_answer", tagged(4, verdict)),
        (
            "sdk_answer",
            tagged(5, json!({"entries": [
                {"id": "1-0", "at": NOW, "notice": {"kind": "unpaired", "unpair": examples.unpair, "sig": examples.unpair.sign(&keys.device_sig)}},
                {"id": "2-0", "at": NOW, "notice": {"kind": "muted", "mute": examples.mute, "sig": examples.mute.sign(&keys.device_sig)}},
                {"id": "3-0", "at": NOW, "notice": {"kind": "push_gone", "device_id": claim.device_id}},
                {"id": "4-0", "at": NOW, "notice": {"kind": "handle_refreshed", "device_id": claim.device_id, "push_handle": handle_text}},
            ], "more": true})),
        ),
        (
            "sdk_answer",
            tagged(6, json!({"cid": challenge.cid, "expires": challenge.expires, "deliveries": [{"device_id": claim.device_id, "delivery": "pushed"}]})),
        ),
        ("sdk_answer", tagged(7, json!({"push_handle": handle_text}))),
        (
            "sdk_answer",
            tagged(8, json!({"type": "urn:approvd:problem:not-found", "title": "Not found", "status": 404, "detail": "no such pairing", "field": "pairing_id"})),
        ),
        ("sdk_answer", tagged(9, json!({"result": "failed", "reason": "throttled"}))),
        ("push_handle", handle_text.into_bytes()),
        ("push_handle", handle.0.clone()),
        ("sealed", examples.sealed.clone()),
        ("sealed", examples.sealed_code_secret.clone()),
        ("sealed", claim.device_info.0.to_vec()),
    ]
    .into_iter()
    .chain([
        ("relay_body", json(json!({}))),
        (
            "agent_body",
            tagged(0, json!({"user": "alice", "service": "ssh", "client_ip": "198.51.100.7", "user_agent": "OpenSSH_9.6", "location": "Berlin, DE", "lifetime_secs": 60, "devices": []})),
        ),
        (
            "agent_body",
            tagged(0, json!({"user": "alice", "kind": "action", "action": "Delete the backup share", "number_matching": true})),
        ),
        ("agent_body", tagged(1, json!({"code": "123456"}))),
        ("agent_body", tagged(2, json!({"user": "alice", "ttl_secs": 300}))),
    ])
    .collect()
}
