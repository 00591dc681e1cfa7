//! The relay's own hot paths besides signature checks: push handles (minted at pairing,
//! opened for every target of every challenge), the memory store's challenge lifecycle
//! (create with an inbox entry, then the first verdict), and what a Web Push costs beyond an
//! FCM push (the message body; for Web Push its RFC 8291 encryption: one P-256 ECDH, two
//! HKDFs, AES-128-GCM; and the cached VAPID header). `cargo bench -p approvd-relay`.

use std::hint::black_box;
use std::time::Duration;

use approvd_proto::ids::{Digest, PublicKey, Sig};
use approvd_proto::wire::{PushProvider, PushRegistration, Sealed, SignedVerdict};
use approvd_proto::{Cid, Decision, DeviceId, NasId, Verdict};
use approvd_relay::push_handle::{HandleContents, HandleKeys};
use approvd_relay::store::{ChallengeState, MemoryStore, Store, StoredChallenge, StoredTarget};
use criterion::{criterion_group, criterion_main, Criterion};

const NOW: u64 = 1_800_000_000;

fn handles(c: &mut Criterion) {
    let keys = HandleKeys::parse("bench", &HandleKeys::generate_file_text()).expect("keys");
    let contents = HandleContents {
        device_id: DeviceId(PublicKey::from(&approvd_proto::generate_signing_key())),
        nas_id: NasId(PublicKey::from(&approvd_proto::generate_signing_key())),
        sig_key: PublicKey::from(&approvd_proto::generate_signing_key()),
        push: Some(PushRegistration {
            provider: PushProvider::Fcm,
            token: "f".repeat(152),
            topic: "com.example.approve".to_owned(),
            p256dh: None,
            auth: None,
        }),
        minted_at: NOW,
    };
    let handle = keys.mint(&contents);
    c.bench_function("push handle: seal (mint)", |b| {
        b.iter(|| keys.mint(black_box(&contents)))
    });
    c.bench_function("push handle: open", |b| {
        b.iter(|| keys.open(black_box(&handle), NOW).expect("opens"))
    });
}

fn challenge(nas_id: NasId, device_id: DeviceId) -> StoredChallenge {
    StoredChallenge {
        cid: Cid::random(),
        nas_id,
        created: NOW,
        expires: NOW + 60,
        number_matching: true,
        body_hash: Digest::of(b"body"),
        targets: vec![StoredTarget {
            device_id,
            sig_key: device_id.0,
            challenge_hash: Digest::of(b"challenge"),
            sealed: Sealed(vec![7; 600]),
            sig: Sig([1; 64]),
            in_inbox: true,
            push_handle: None,
        }],
        deliveries: Vec::new(),
        state: ChallengeState::Pending,
    }
}

fn memory_store(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = MemoryStore::new();
    let nas_id = NasId(PublicKey::from(&approvd_proto::generate_signing_key()));
    let device_id = DeviceId(PublicKey::from(&approvd_proto::generate_signing_key()));
    c.bench_function("memory store: create challenge, then decide it", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let stored = challenge(nas_id, device_id);
                store
                    .create_challenge(black_box(&stored), Duration::from_secs(90))
                    .await
                    .expect("create");
                let verdict = SignedVerdict {
                    verdict: Verdict {
                        cid: stored.cid,
                        nas_id,
                        device_id,
                        challenge_hash: Digest::of(b"challenge"),
                        decision: Decision::Approve,
                        number: Some("123".to_owned()),
                        user_verified: false,
                        decided_at: NOW,
                    },
                    sig: Sig([2; 64]),
                };
                store.decide(&stored.cid, &verdict).await.expect("decide")
            })
        })
    });
}

fn push_bodies(c: &mut Criterion) {
    use approvd_relay::push::webpush::{self, EndpointPolicy, Subscription, Vapid};
    use approvd_relay::push::{PushKind, PushMessage};
    let message = PushMessage {
        cid: Cid::random(),
        expires: NOW + 60,
        kind: PushKind::Alert,
    };
    let fcm = PushRegistration {
        provider: PushProvider::Fcm,
        token: "f".repeat(152),
        topic: "com.example.approve".to_owned(),
        p256dh: None,
        auth: None,
    };
    c.bench_function("fcm: message body", |b| {
        b.iter(|| approvd_relay::push::fcm::FcmSender::message_body(&fcm, &message, NOW))
    });
    let browser = p256::SecretKey::from_slice(&[9; 32]).expect("key");
    let p256dh = {
        use p256::elliptic_curve::sec1::ToEncodedPoint as _;
        approvd_proto::ids::encode_b64(browser.public_key().to_encoded_point(false).as_bytes())
    };
    let subscription = Subscription::parse(
        "https://fcm.googleapis.com/fcm/send/abc:def",
        &p256dh,
        &approvd_proto::ids::encode_b64(&[1; 16]),
        &EndpointPolicy::default(),
    )
    .expect("subscription");
    let plaintext = message.data().to_string();
    c.bench_function(
        "web push: encrypt one push (ECDH, HKDF, AES-128-GCM)",
        |b| b.iter(|| webpush::encrypt(black_box(plaintext.as_bytes()), &subscription)),
    );
    let vapid = {
        use p256::pkcs8::EncodePrivateKey as _;
        let pem = p256::SecretKey::from_slice(&[7; 32])
            .expect("key")
            .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
            .expect("pem");
        Vapid::from_pem(pem.as_bytes(), "mailto:ops@example.com").expect("vapid")
    };
    c.bench_function("web push: VAPID header (cached token)", |b| {
        b.iter(|| {
            vapid
                .authorization("https://fcm.googleapis.com", NOW)
                .expect("header")
        })
    });
}

criterion_group!(benches, handles, memory_store, push_bodies);
criterion_main!(benches);
