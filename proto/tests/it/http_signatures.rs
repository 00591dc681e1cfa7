//! The RFC 9421 request-signature profile: a signed request verifies; every way a request can be
//! wrong is refused with its own error.

use approvd_proto::httpsig::{
    self, IncomingRequest, RequestContext, RequestTarget, SignedHeaders, MAX_SKEW,
};
use approvd_proto::vectors::{Keys, NOW};
use approvd_proto::{HttpSigError, PublicKey};

const BODY: &[u8] = br#"{"ttl_secs":300}"#;
const NONCE: &str = "AAECAwQFBgcICQoLDA0ODw";

fn target() -> RequestTarget<'static> {
    RequestTarget {
        method: "POST",
        path: "/v1/pairings",
        query: "",
    }
}

fn signed(body: Option<&[u8]>) -> SignedHeaders {
    httpsig::sign_request(&Keys::fixed().nas, &target(), body, NOW, NONCE)
}

fn incoming<'a>(headers: &'a SignedHeaders, body: &'a [u8]) -> IncomingRequest<'a> {
    IncomingRequest {
        target: target(),
        context: RequestContext::NONE,
        signature_input: Some(&headers.signature_input),
        signature: Some(&headers.signature),
        content_digest: headers.content_digest.as_deref(),
        body,
    }
}

fn verify(
    request: &IncomingRequest<'_>,
) -> Result<approvd_proto::httpsig::VerifiedRequest, HttpSigError> {
    httpsig::verify_request(request, NOW + 1, MAX_SKEW)
}

#[test]
fn signed_request_verifies_and_names_its_key_and_nonce() {
    let headers = signed(Some(BODY));
    let verified = verify(&incoming(&headers, BODY)).expect("verifies");
    assert_eq!(verified.key, PublicKey::from(&Keys::fixed().nas));
    assert_eq!(verified.nonce, NONCE);
    assert_eq!(verified.expires, NOW + httpsig::DEFAULT_LIFETIME);
    let get = httpsig::sign_request(
        &Keys::fixed().device_api,
        &RequestTarget {
            method: "GET",
            path: "/v1/inbox",
            query: "wait=30",
        },
        None,
        NOW,
        NONCE,
    );
    let request = IncomingRequest {
        target: RequestTarget {
            method: "GET",
            path: "/v1/inbox",
            query: "wait=30",
        },
        context: RequestContext::NONE,
        signature_input: Some(&get.signature_input),
        signature: Some(&get.signature),
        content_digest: None,
        body: b"",
    };
    assert!(verify(&request).is_ok());
}

#[test]
fn changed_method_path_query_or_body_fail() {
    let headers = signed(Some(BODY));
    let mut request = incoming(&headers, BODY);
    request.target.method = "PUT";
    assert_eq!(verify(&request), Err(HttpSigError::BadSignature));
    let mut request = incoming(&headers, BODY);
    request.target.path = "/v1/pairings/other";
    assert_eq!(verify(&request), Err(HttpSigError::BadSignature));
    let mut request = incoming(&headers, BODY);
    request.target.query = "wait=1";
    assert_eq!(verify(&request), Err(HttpSigError::BadSignature));
    assert_eq!(
        verify(&incoming(&headers, br#"{"ttl_secs":600}"#)),
        Err(HttpSigError::DigestMismatch)
    );
    // A recomputed digest for the new body does not help: the digest is signed.
    let new_digest = httpsig::content_digest(br#"{"ttl_secs":600}"#);
    let mut request = incoming(&headers, br#"{"ttl_secs":600}"#);
    request.content_digest = Some(&new_digest);
    assert_eq!(verify(&request), Err(HttpSigError::BadSignature));
}

#[test]
fn flipped_signature_bytes_fail() {
    let headers = signed(Some(BODY));
    let (label, sig) = httpsig::parse_signature(&headers.signature).expect("parses");
    for index in 0..64 {
        let mut tampered = sig;
        tampered.0[index] ^= 1;
        use base64::Engine as _;
        let header = format!(
            "{label}=:{}:",
            base64::engine::general_purpose::STANDARD.encode(tampered.0)
        );
        let mut request = incoming(&headers, BODY);
        request.signature = Some(&header);
        assert_eq!(
            verify(&request),
            Err(HttpSigError::BadSignature),
            "byte {index}"
        );
    }
}

#[test]
fn clock_skew_and_expiry_are_enforced() {
    let headers = signed(Some(BODY));
    let request = incoming(&headers, BODY);
    // The signature lives DEFAULT_LIFETIME (60 s) from `created`, so the last good second is 59.
    assert!(httpsig::verify_request(&request, NOW + MAX_SKEW - 1, MAX_SKEW).is_ok());
    assert!(httpsig::verify_request(&request, NOW - MAX_SKEW, MAX_SKEW).is_ok());
    assert_eq!(
        httpsig::verify_request(&request, NOW + MAX_SKEW + 1, MAX_SKEW),
        Err(HttpSigError::Skew {
            skew: MAX_SKEW + 1,
            max_skew: MAX_SKEW
        })
    );
    assert_eq!(
        httpsig::verify_request(&request, NOW - MAX_SKEW - 1, MAX_SKEW),
        Err(HttpSigError::Skew {
            skew: MAX_SKEW + 1,
            max_skew: MAX_SKEW
        })
    );
    // A generous skew window still cannot outlive `expires`.
    assert_eq!(
        httpsig::verify_request(&request, NOW + httpsig::DEFAULT_LIFETIME, 3600),
        Err(HttpSigError::Expired)
    );
}

/// Re-sign a hand-edited `Signature-Input` so that only the edit is wrong.
fn resigned(signature_input: &str, body: Option<&[u8]>) -> SignedHeaders {
    use ed25519_dalek::Signer as _;
    let (label, params) = httpsig::parse_signature_input(signature_input).expect("parses");
    let digest = body.map(httpsig::content_digest);
    let base = httpsig::signature_base(&target(), digest.as_deref(), &params).expect("base");
    let sig = Keys::fixed().nas.sign(base.as_bytes());
    use base64::Engine as _;
    SignedHeaders {
        signature_input: format!("{label}={}", params.serialize()),
        signature: format!(
            "{label}=:{}:",
            base64::engine::general_purpose::STANDARD.encode(sig.to_bytes())
        ),
        content_digest: digest,
    }
}

#[test]
fn profile_violations_are_refused_even_when_correctly_signed() {
    let good = signed(Some(BODY)).signature_input;
    let cases: Vec<(String, HttpSigError)> = vec![
        (
            good.replace("\"ed25519\"", "\"rsa-pss-sha512\""),
            HttpSigError::Alg,
        ),
        (
            good.replace("\"approvd/v1\"", "\"other\""),
            HttpSigError::Tag,
        ),
        (good.replace(NONCE, "short"), HttpSigError::Nonce),
        (
            good.replace(NONCE, "AAECAwQFBgcICQoLDA0OD+"),
            HttpSigError::Nonce,
        ),
        (
            good.replace(" \"content-digest\"", ""),
            HttpSigError::MissingComponent("content-digest"),
        ),
        (
            good.replace("\"@query\" ", ""),
            HttpSigError::MissingComponent("@query"),
        ),
        (
            good.replace(
                &format!("expires={}", NOW + 60),
                &format!("expires={}", NOW + 301),
            ),
            HttpSigError::Lifetime { max: 300 },
        ),
        (
            good.replace(&format!("expires={}", NOW + 60), &format!("expires={NOW}")),
            HttpSigError::Lifetime { max: 300 },
        ),
    ];
    for (input, expected) in cases {
        let headers = resigned(&input, Some(BODY));
        assert_eq!(verify(&incoming(&headers, BODY)), Err(expected), "{input}");
    }
}

#[test]
fn malformed_headers_are_refused() {
    let good = signed(Some(BODY));
    let keyid = PublicKey::from(&Keys::fixed().nas).to_string();
    let parse_cases: Vec<(String, HttpSigError)> = vec![
        (
            good.signature_input.replace("sig1=", "Sig1="),
            malformed("Signature-Input", "expected a lower-case key"),
        ),
        (
            format!("{}, sig2=()", good.signature_input),
            HttpSigError::Label,
        ),
        (
            good.signature_input.replace(";tag=", ";foo=1;tag="),
            HttpSigError::UnknownParam("foo".into()),
        ),
        (
            good.signature_input.replace(";tag=", ";nonce=\"x\";tag="),
            malformed("Signature-Input", "a parameter appears twice"),
        ),
        (
            good.signature_input.replace(";alg=\"ed25519\"", ""),
            HttpSigError::MissingParam("alg"),
        ),
        (
            good.signature_input.replace("\"@path\"", "\"@authority\""),
            HttpSigError::MissingComponent("@path"),
        ),
        (
            good.signature_input.replace("\"@path\"", "\"@method\""),
            malformed("Signature-Input", "a component is covered twice"),
        ),
        (
            good.signature_input.replace("created=", "created=-"),
            malformed(
                "Signature-Input",
                "expected a non-negative integer of at most 15 digits",
            ),
        ),
        (
            good.signature_input
                .replace("created=", "created=9999999999999999"),
            malformed(
                "Signature-Input",
                "expected a non-negative integer of at most 15 digits",
            ),
        ),
        (
            good.signature_input.replace(&keyid, "not-a-key"),
            HttpSigError::KeyId(Box::new(approvd_proto::Error::Base64 { field: "keyid" })),
        ),
        (
            good.signature_input
                .replace(&keyid, "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            HttpSigError::KeyId(Box::new(approvd_proto::Error::WeakKey { field: "keyid" })),
        ),
        ("x".repeat(3000), malformed("Signature-Input", "too long")),
    ];
    for (input, expected) in parse_cases {
        let mut request = incoming(&good, BODY);
        request.signature_input = Some(&input);
        assert_eq!(verify(&request), Err(expected), "{input}");
    }
    let mut request = incoming(&good, BODY);
    let relabelled = good.signature.replacen("sig1=", "sig2=", 1);
    request.signature = Some(&relabelled);
    assert_eq!(verify(&request), Err(HttpSigError::Label));
    let mut request = incoming(&good, BODY);
    request.signature = Some("sig1=:AAAA:");
    assert_eq!(
        verify(&request),
        Err(malformed("Signature", "an Ed25519 signature is 64 bytes"))
    );
    let mut request = incoming(&good, BODY);
    request.signature = None;
    assert_eq!(
        verify(&request),
        Err(HttpSigError::MissingHeader("Signature"))
    );
    let mut request = incoming(&good, BODY);
    request.signature_input = None;
    assert_eq!(
        verify(&request),
        Err(HttpSigError::MissingHeader("Signature-Input"))
    );
}

fn malformed(header: &'static str, reason: &'static str) -> HttpSigError {
    HttpSigError::Malformed { header, reason }
}

#[test]
fn a_body_needs_a_signed_content_digest() {
    // Signed without a body, sent with one: the digest is not covered.
    let headers = signed(None);
    let digest = httpsig::content_digest(BODY);
    let mut request = incoming(&headers, BODY);
    request.content_digest = Some(&digest);
    assert_eq!(
        verify(&request),
        Err(HttpSigError::MissingComponent("content-digest"))
    );
    // Covered but header missing.
    let headers = signed(Some(BODY));
    let mut request = incoming(&headers, BODY);
    request.content_digest = None;
    assert_eq!(
        verify(&request),
        Err(HttpSigError::MissingHeader("Content-Digest"))
    );
}

#[test]
fn content_digest_parsing() {
    let digest = httpsig::content_digest(BODY);
    assert_eq!(httpsig::check_content_digest(&digest, BODY), Ok(()));
    // Other algorithms are ignored; sha-256 must be there.
    let both = format!("sha-512=:AAAA:, {digest}");
    assert_eq!(httpsig::check_content_digest(&both, BODY), Ok(()));
    assert_eq!(
        httpsig::check_content_digest("sha-512=:AAAA:", BODY),
        Err(HttpSigError::DigestAlgorithm)
    );
    assert_eq!(
        httpsig::check_content_digest(&format!("{digest}, {digest}"), BODY),
        Err(malformed("Content-Digest", "sha-256 appears twice"))
    );
    assert_eq!(
        httpsig::check_content_digest("sha-256=abc", BODY),
        Err(malformed("Content-Digest", "expected `:base64:`"))
    );
    assert_eq!(
        httpsig::check_content_digest(&httpsig::content_digest(b"other"), BODY),
        Err(HttpSigError::DigestMismatch)
    );
}

#[test]
fn whitespace_variations_allowed_by_rfc8941_still_verify() {
    let headers = signed(Some(BODY));
    let spaced = format!(
        "  {}",
        headers
            .signature_input
            .replace("(\"@method\"", "( \"@method\"")
    );
    let mut request = incoming(&headers, BODY);
    request.signature_input = Some(&spaced);
    assert!(
        verify(&request).is_ok(),
        "the base is built from parsed values, not raw text"
    );
}

#[test]
fn parameters_may_come_in_any_order_and_are_signed_as_received() {
    use httpsig::Param;
    let (_, mut params) =
        httpsig::parse_signature_input(&signed(Some(BODY)).signature_input).expect("parses");
    params.order = vec![
        Param::KeyId,
        Param::Alg,
        Param::Tag,
        Param::Created,
        Param::Expires,
        Param::Nonce,
    ];
    let reordered = httpsig::sign_with_params(
        &Keys::fixed().nas,
        &target(),
        &RequestContext::NONE,
        Some(BODY),
        &params,
    )
    .expect("resolves");
    assert!(
        reordered
            .signature_input
            .starts_with("sig1=(\"@method\" \"@path\" \"@query\" \"content-digest\");keyid="),
        "{}",
        reordered.signature_input
    );
    verify(&incoming(&reordered, BODY)).expect("another order verifies");

    // The order is part of what is signed: reordering after signing breaks the signature.
    let in_profile_order = signed(Some(BODY));
    let moved = SignedHeaders {
        signature_input: reordered.signature_input.clone(),
        ..in_profile_order
    };
    assert_eq!(
        verify(&incoming(&moved, BODY)).map(|_| ()),
        Err(HttpSigError::BadSignature)
    );
}

/// A request as a stock RFC 9421 signer sends it: `created` at NOW, covering the profile's
/// components plus `extra`, resolved from these headers and this address.
const FIELDS: &[(&str, &str)] = &[
    ("Host", "Relay.Example:443"),
    ("Date", "Thu, 01 Jan 2026 00:00:00 GMT"),
    ("Content-Type", "application/json"),
    ("X-Trace", "a"),
    ("x-trace", " b "),
];

fn context(fields: &[(&'static str, &'static str)]) -> RequestContext<'static> {
    RequestContext {
        scheme: Some("https"),
        authority: Some("Relay.Example:443"),
        fields: Vec::leak(fields.to_vec()),
    }
}

fn signed_covering(extra: &[&str], context: &RequestContext<'_>) -> SignedHeaders {
    let (_, mut params) =
        httpsig::parse_signature_input(&signed(Some(BODY)).signature_input).expect("parses");
    params
        .components
        .extend(extra.iter().map(|component| (*component).to_owned()));
    httpsig::sign_with_params(&Keys::fixed().nas, &target(), context, Some(BODY), &params)
        .expect("signs")
}

fn verify_in<'a>(
    headers: &'a SignedHeaders,
    context: RequestContext<'a>,
    now: u64,
) -> Result<httpsig::VerifiedRequest, HttpSigError> {
    let request = IncomingRequest {
        context,
        ..incoming(headers, BODY)
    };
    httpsig::verify_request(&request, now, MAX_SKEW)
}

#[test]
fn extra_covered_components_are_resolved_and_verified() {
    let sent = context(FIELDS);
    let extra = [
        "date",
        "content-type",
        "x-trace",
        "@authority",
        "@scheme",
        "@target-uri",
        "@request-target",
    ];
    let headers = signed_covering(&extra, &sent);
    verify_in(&headers, sent, NOW + 1).expect("verifies with what was signed");
    // The base holds each value as RFC 9421 §2 defines it.
    let (_, params) = httpsig::parse_signature_input(&headers.signature_input).expect("parses");
    let base =
        httpsig::signature_base_in(&target(), &sent, headers.content_digest.as_deref(), &params)
            .expect("base");
    for line in [
        "\"x-trace\": a, b\n",
        "\"@authority\": relay.example\n",
        "\"@scheme\": https\n",
        "\"@target-uri\": https://relay.example/v1/pairings\n",
        "\"@request-target\": /v1/pairings\n",
    ] {
        assert!(base.contains(line), "{line:?} in {base}");
    }
    // Each covered value is bound: change one and the signature no longer verifies.
    let changed_type = context(&[
        ("Date", "Thu, 01 Jan 2026 00:00:00 GMT"),
        ("Content-Type", "text/plain"),
        ("X-Trace", "a"),
        ("x-trace", " b "),
    ]);
    assert_eq!(
        verify_in(&headers, changed_type, NOW + 1),
        Err(HttpSigError::BadSignature)
    );
    let other_host = RequestContext {
        authority: Some("evil.example"),
        ..sent
    };
    assert_eq!(
        verify_in(&headers, other_host, NOW + 1),
        Err(HttpSigError::BadSignature)
    );
    let plain_http = RequestContext {
        scheme: Some("http"),
        ..sent
    };
    assert_eq!(
        verify_in(&headers, plain_http, NOW + 1),
        Err(HttpSigError::BadSignature)
    );
}

#[test]
fn a_covered_component_the_request_lacks_is_refused_by_name() {
    let headers = signed_covering(&["content-type"], &context(FIELDS));
    let without = context(&[("Date", "Thu, 01 Jan 2026 00:00:00 GMT")]);
    assert_eq!(
        verify_in(&headers, without, NOW + 1),
        Err(HttpSigError::MissingField("content-type".into()))
    );
    let authority = signed_covering(&["@authority"], &context(FIELDS));
    assert_eq!(
        verify_in(&authority, RequestContext::NONE, NOW + 1),
        Err(HttpSigError::MissingField("@authority".into()))
    );
}

#[test]
fn a_covered_date_must_be_within_the_skew_window() {
    let headers = signed_covering(&["date"], &context(FIELDS));
    // `created` is NOW and so is Date: fine within the window on either side.
    verify_in(&headers, context(FIELDS), NOW + MAX_SKEW - 1).expect("within the window");
    let stale = context(&[("Date", "Wed, 31 Dec 2025 23:58:00 GMT")]);
    let headers = signed_covering(&["date"], &stale);
    assert_eq!(
        verify_in(&headers, stale, NOW),
        Err(HttpSigError::DateSkew {
            skew: 120,
            max_skew: MAX_SKEW
        })
    );
    let garbled = context(&[("Date", "yesterday")]);
    let headers = signed_covering(&["date"], &garbled);
    assert_eq!(
        verify_in(&headers, garbled, NOW),
        Err(malformed("Date", "not an HTTP date (IMF-fixdate)"))
    );
}

#[test]
fn components_a_signature_may_not_cover_are_refused() {
    let good = signed(Some(BODY)).signature_input;
    let with = |component: &str| good.replace("\"@query\"", &format!("\"@query\" {component}"));
    for (component, error) in [
        (
            "\"signature\"",
            HttpSigError::UnsupportedComponent("signature".into()),
        ),
        (
            "\"signature-input\"",
            HttpSigError::UnsupportedComponent("signature-input".into()),
        ),
        (
            "\"Date\"",
            HttpSigError::UnsupportedComponent("Date".into()),
        ),
        (
            "\"@status\"",
            HttpSigError::UnsupportedComponent("@status".into()),
        ),
        (
            "\"@query-param\";name=\"a\"",
            HttpSigError::UnsupportedComponent("@query-param with parameters".into()),
        ),
        (
            "\"date\";sf",
            HttpSigError::UnsupportedComponent("date with parameters".into()),
        ),
        ("\"\"", HttpSigError::UnsupportedComponent(String::new())),
    ] {
        assert_eq!(
            httpsig::parse_signature_input(&with(component)).map(|_| ()),
            Err(error),
            "{component}"
        );
    }
    let many: Vec<String> = (0..13).map(|i| format!("\"x-{i}\"")).collect();
    assert_eq!(
        httpsig::parse_signature_input(&with(&many.join(" "))).map(|_| ()),
        Err(malformed("Signature-Input", "too many covered components"))
    );
    let twelve: Vec<String> = (0..12).map(|i| format!("\"x-{i}\"")).collect();
    assert!(httpsig::parse_signature_input(&with(&twelve.join(" "))).is_ok());
}
