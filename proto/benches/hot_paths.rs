//! The protocol's hot paths, as the relay and the SDKs run them per approval: a request
//! signature's verification (the relay, four times per approval), a challenge's signing (the
//! NAS) and verification (relay and phone), and the login context's HPKE seal (NAS) and open
//! (phone). `cargo bench -p approvd-proto`; BENCHMARKS.md quotes the medians.

use std::hint::black_box;

use approvd_proto::context::{self, ContextBinding, LoginContext, LoginKind, SealSecret};
use approvd_proto::httpsig::{self, IncomingRequest, RequestContext, RequestTarget};
use approvd_proto::ids::{Digest, PublicKey};
use approvd_proto::{Challenge, Cid, DeviceId, NasId, SignedMessage as _};
use criterion::{criterion_group, criterion_main, Criterion};

const NOW: u64 = 1_800_000_000;

fn request_signature(c: &mut Criterion) {
    let key = approvd_proto::generate_signing_key();
    let body = br#"{"cid":"AAAAAAAAAAAAAAAAAAAAAA","verdict":"..."}"#.to_vec();
    let target = RequestTarget {
        method: "POST",
        path: "/v1/challenges/AAAAAAAAAAAAAAAAAAAAAA/verdict",
        query: "",
    };
    let signed = httpsig::sign_request(&key, &target, Some(&body), NOW, &httpsig::new_nonce());
    let request = IncomingRequest {
        target,
        context: RequestContext::NONE,
        signature_input: Some(&signed.signature_input),
        signature: Some(&signed.signature),
        content_digest: signed.content_digest.as_deref(),
        body: &body,
    };
    c.bench_function("request signature: sign", |b| {
        b.iter(|| {
            httpsig::sign_request(
                &key,
                &target,
                Some(black_box(&body)),
                NOW,
                "AAAAAAAAAAAAAAAAAAAAAA",
            )
        })
    });
    c.bench_function(
        "request signature: verify (parse, digest, verify_strict)",
        |b| b.iter(|| httpsig::verify_request(black_box(&request), NOW, 60).expect("verifies")),
    );
    let public = PublicKey::from(&key);
    let sig = approvd_proto::ids::Sig(ed25519_dalek::Signer::sign(&key, &body).to_bytes());
    c.bench_function(
        "ed25519 verify_strict alone (the overhead factor's unit)",
        |b| {
            b.iter(|| {
                approvd_proto::signed::verify_strict(&public, black_box(&body), &sig)
                    .expect("verifies")
            })
        },
    );
    c.bench_function("public key parse (cached after the first)", |b| {
        let bytes = *public.as_bytes();
        b.iter(|| PublicKey::from_bytes("key", black_box(&bytes)).expect("valid"))
    });
}

fn challenge(c: &mut Criterion) {
    let nas_key = approvd_proto::generate_signing_key();
    let challenge = Challenge {
        cid: Cid::random(),
        nas_id: NasId(PublicKey::from(&nas_key)),
        device_id: DeviceId(PublicKey::from(&approvd_proto::generate_signing_key())),
        created: NOW,
        expires: NOW + 60,
        number_matching: true,
        context_hash: Digest::of(b"sealed context"),
    };
    let sig = challenge.sign(&nas_key);
    c.bench_function("challenge: build and sign", |b| {
        b.iter(|| black_box(&challenge).clone().sign(&nas_key))
    });
    c.bench_function("challenge: verify", |b| {
        b.iter(|| {
            black_box(&challenge)
                .verify(&challenge.nas_id.0, &sig)
                .expect("verifies")
        })
    });
}

fn hpke(c: &mut Criterion) {
    let secret = SealSecret::generate();
    let recipient = secret.public_key();
    let login = LoginContext {
        user: "alice".to_owned(),
        service: "DSM".to_owned(),
        nas_label: "home-nas".to_owned(),
        client_ip: Some("198.51.100.23".to_owned()),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".to_owned()),
        location: Some("Berlin, DE".to_owned()),
        kind: LoginKind::Login,
        action: None,
        time: NOW,
    };
    let binding = ContextBinding {
        cid: Cid::random(),
        nas_id: NasId(PublicKey::from(&approvd_proto::generate_signing_key())),
        device_id: DeviceId(PublicKey::from(&approvd_proto::generate_signing_key())),
        created: NOW,
        expires: NOW + 60,
        number_matching: true,
    };
    let sealed = context::seal(&login, &binding, &recipient).expect("seals");
    c.bench_function("context: HPKE seal (NAS)", |b| {
        b.iter(|| context::seal(black_box(&login), &binding, &recipient).expect("seals"))
    });
    c.bench_function("context: HPKE open (phone)", |b| {
        b.iter(|| context::open(black_box(&sealed), &binding, &secret).expect("opens"))
    });
}

criterion_group!(benches, request_signature, challenge, hpke);
criterion_main!(benches);
