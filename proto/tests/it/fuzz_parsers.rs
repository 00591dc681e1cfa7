//! Random bytes and strings into every parser: each returns `Ok` or a typed `Err`, never panics.
//! (A property test, not coverage-guided fuzzing; it runs in CI every time.)

use approvd_proto::context::{self, SealSecret};
use approvd_proto::httpsig::{self, IncomingRequest, RequestContext, RequestTarget};
use approvd_proto::pairing::PairingUri;
use approvd_proto::vectors::{Examples, NOW};
use approvd_proto::wire;
use approvd_proto::{signed, Cid, DeviceId, NasId, PairingId, PublicKey};
use proptest::prelude::*;

/// Strings biased towards the syntax these parsers look for.
fn syntaxy() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,200}",
        "[a-z0-9=;:(),\" @*./_-]{0,200}",
        "[A-Za-z0-9_=&%?:/.-]{0,300}",
    ]
}

/// A valid string with a few random edits, to reach deep parser states.
fn mutated(valid: String) -> impl Strategy<Value = String> {
    prop::collection::vec((any::<prop::sample::Index>(), any::<char>(), 0u8..3), 0..4).prop_map(
        move |edits| {
            let mut chars: Vec<char> = valid.chars().collect();
            for (index, replacement, op) in edits {
                if chars.is_empty() {
                    break;
                }
                let at = index.index(chars.len());
                match op {
                    0 => chars[at] = replacement,
                    1 => {
                        chars.remove(at);
                    }
                    _ => chars.insert(at, replacement),
                }
            }
            chars.into_iter().collect()
        },
    )
}

fn valid_request_headers() -> (String, String, String) {
    let headers = httpsig::sign_request(
        &approvd_proto::vectors::Keys::fixed().nas,
        &RequestTarget {
            method: "POST",
            path: "/v1/challenges",
            query: "",
        },
        Some(b"{}"),
        NOW,
        "AAECAwQFBgcICQoLDA0ODw",
    );
    (
        headers.signature_input,
        headers.signature,
        headers.content_digest.unwrap_or_default(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ids_and_keys_never_panic(text in syntaxy()) {
        let _ = Cid::parse(&text);
        let _ = PairingId::parse(&text);
        let _ = NasId::parse(&text);
        let _ = DeviceId::parse(&text);
        let _ = PublicKey::parse("key", &text);
        let _ = wire::PushHandle::parse(&text);
        let _ = wire::Sealed::parse(&text);
    }

    #[test]
    fn pairing_uri_never_panics(text in syntaxy(), now in any::<u64>()) {
        let _ = PairingUri::parse(&text, now);
        let _ = PairingUri::parse(&format!("approvd://pair?{text}"), now);
    }

    #[test]
    fn mutated_pairing_uri_never_panics(text in mutated(Examples::fixed().pairing_uri.to_uri())) {
        let _ = PairingUri::parse(&text, NOW);
    }

    #[test]
    fn signature_headers_never_panic(
        input in syntaxy(),
        signature in syntaxy(),
        digest in syntaxy(),
        body in prop::collection::vec(any::<u8>(), 0..64),
        now in any::<u64>(),
    ) {
        let _ = httpsig::parse_signature_input(&input);
        let _ = httpsig::parse_signature(&signature);
        let _ = httpsig::check_content_digest(&digest, &body);
        let request = IncomingRequest {
            target: RequestTarget { method: "POST", path: "/v1/x", query: "" },
            context: RequestContext::NONE,
            signature_input: Some(&input),
            signature: Some(&signature),
            content_digest: Some(&digest),
            body: &body,
        };
        let _ = httpsig::verify_request(&request, now, 60);
    }

    #[test]
    fn mutated_signature_headers_never_panic(
        input in mutated(valid_request_headers().0),
        signature in mutated(valid_request_headers().1),
        digest in mutated(valid_request_headers().2),
        now in any::<u64>(),
    ) {
        let request = IncomingRequest {
            target: RequestTarget { method: "POST", path: "/v1/challenges", query: "" },
            context: RequestContext::NONE,
            signature_input: Some(&input),
            signature: Some(&signature),
            content_digest: Some(&digest),
            body: b"{}",
        };
        let _ = httpsig::verify_request(&request, now, u64::MAX);
    }

    #[test]
    fn sealed_context_and_signed_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let examples = Examples::fixed();
        let _ = context::open(&bytes, &examples.binding, &SealSecret::from_bytes([7; 32]));
        let _ = signed::decode(&bytes);
        let mut prefixed = b"approvd/v1/verdict\x00".to_vec();
        prefixed.extend_from_slice(&bytes);
        let _ = signed::decode(&prefixed);
    }

    #[test]
    fn every_wire_body_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), text in syntaxy()) {
        fn all(input: &[u8]) {
            let _ = serde_json::from_slice::<wire::CreatePairingRequest>(input);
            let _ = serde_json::from_slice::<wire::ClaimRequest>(input);
            let _ = serde_json::from_slice::<wire::PairingClaimed>(input);
            let _ = serde_json::from_slice::<wire::PairingConfirmation>(input);
            let _ = serde_json::from_slice::<wire::CreateChallengeRequest>(input);
            let _ = serde_json::from_slice::<wire::ChallengeCreated>(input);
            let _ = serde_json::from_slice::<wire::Inbox>(input);
            let _ = serde_json::from_slice::<wire::SignedVerdict>(input);
            let _ = serde_json::from_slice::<wire::RefreshPushRequest>(input);
            let _ = serde_json::from_slice::<wire::SignedMute>(input);
            let _ = serde_json::from_slice::<wire::SignedUnpair>(input);
            let _ = serde_json::from_slice::<wire::Mailbox>(input);
            let _ = serde_json::from_slice::<wire::MailboxAck>(input);
            let _ = serde_json::from_slice::<context::LoginContext>(input);
        }
        all(&bytes);
        all(text.as_bytes());
    }
}
