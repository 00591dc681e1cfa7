//! The store conformance suite: the [`Store`] contract as executable checks, written once and
//! run unchanged against every implementation — the embedded memory store, a real standalone
//! `redis-server` and a real 3-master Redis Cluster, each also TLS-only with a private CA and
//! client certificates (one server or cluster of each kind per test run, shared by the checks:
//! they use fresh ids). Real time is used (TTLs of about a second) so the
//! same checks run against an external store.

use std::sync::Arc;
use std::time::Duration;

use approvd_proto::ids::{Digest, PublicKey, Sig};
use approvd_proto::wire::{
    ClaimMac, Delivery, Notice, PairingAcceptance, PairingClaimed, PairingConfirmation, PushHandle,
    Sealed, SealedCodeSecret, SignedVerdict, TargetDelivery,
};
use approvd_proto::{Cid, DeviceId, NasId, PairingId, SignedMessage as _};

use approvd_relay::store::{
    Bucket, CancelOutcome, ChallengeState, ClaimOutcome, CreateOutcome, DecideOutcome, MemoryStore,
    Nonce, PairingSlot, PairingStep, Rate, RedisOptions, RedisStore, RedisTarget, RedisTls,
    StepOutcome, Store, StoredChallenge, StoredTarget, Topic, Watch, MAILBOX_CAP,
};
use approvd_tests::redis::{RedisCluster, RedisServer};
use approvd_tests::tls::TestPki;

const SHORT: Duration = Duration::from_secs(1);
const LONG: Duration = Duration::from_secs(60);
const PAST_SHORT: Duration = Duration::from_millis(1600);

fn new_key() -> PublicKey {
    PublicKey::from(&approvd_proto::generate_signing_key())
}

fn new_device() -> DeviceId {
    DeviceId(new_key())
}

fn new_nas() -> NasId {
    NasId(new_key())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn target(device_id: DeviceId, in_inbox: bool) -> StoredTarget {
    StoredTarget {
        device_id,
        sig_key: new_key(),
        challenge_hash: Digest::of(device_id.as_bytes()),
        sealed: Sealed(vec![7; 304]),
        sig: Sig([1; 64]),
        in_inbox,
        push_handle: None,
    }
}

/// A pending challenge from `nas_id` to `devices` (all in the inbox).
fn sample_challenge(nas_id: NasId, devices: &[DeviceId]) -> StoredChallenge {
    let created = now();
    StoredChallenge {
        cid: Cid::random(),
        nas_id,
        created,
        expires: created + 60,
        number_matching: false,
        body_hash: Digest([3; 32]),
        targets: devices.iter().map(|device| target(*device, true)).collect(),
        deliveries: devices
            .iter()
            .map(|device| TargetDelivery {
                device_id: *device,
                delivery: Delivery::Pending,
            })
            .collect(),
        state: ChallengeState::Pending,
    }
}

fn sample_verdict(challenge: &StoredChallenge, device_id: DeviceId) -> SignedVerdict {
    let key = approvd_proto::generate_signing_key();
    let verdict = approvd_proto::Verdict {
        cid: challenge.cid,
        nas_id: challenge.nas_id,
        device_id,
        challenge_hash: Digest([5; 32]),
        decision: approvd_proto::Decision::Approve,
        number: None,
        user_verified: false,
        decided_at: now(),
    };
    SignedVerdict {
        sig: verdict.sign(&key),
        verdict,
    }
}

fn sample_claim(pairing_id: PairingId, nas_id: NasId) -> PairingClaimed {
    let key = approvd_proto::generate_signing_key();
    let claim = approvd_proto::PairClaim {
        pairing_id,
        nas_id,
        device_id: new_device(),
        sig_key: PublicKey::from(&key),
        seal_key: approvd_proto::SealKey([9; 32]),
        device_info: approvd_proto::pairing::SealedDeviceInfo(
            [7; approvd_proto::pairing::SEALED_DEVICE_INFO],
        ),
        claimed_at: now(),
    };
    PairingClaimed {
        sig: claim.sign(&key),
        claim,
        mac: ClaimMac([0; 32]),
        push_handle: PushHandle(vec![1; 60]),
    }
}

async fn expect_woken(watch: &mut Watch) {
    tokio::time::timeout(Duration::from_secs(5), watch.changed())
        .await
        .unwrap_or_else(|_| panic!("waiter on {} was not woken", watch.topic()));
}

async fn expect_quiet(watch: &mut Watch) {
    assert!(
        tokio::time::timeout(Duration::from_millis(200), watch.changed())
            .await
            .is_err(),
        "waiter on {} woken without a write",
        watch.topic()
    );
}

async fn nonce_is_remembered_once_until_it_expires(store: &dyn Store) {
    let nonce = Nonce {
        key: new_key(),
        nonce: Cid::random().to_string(),
    };
    assert!(store.remember_nonce(&nonce, SHORT).await.expect("store"));
    assert!(!store.remember_nonce(&nonce, SHORT).await.expect("store"));
    let other_key = Nonce {
        key: new_key(),
        ..nonce.clone()
    };
    assert!(
        store
            .remember_nonce(&other_key, SHORT)
            .await
            .expect("store"),
        "nonces are per signing key"
    );
    tokio::time::sleep(PAST_SHORT).await;
    assert!(
        store.remember_nonce(&nonce, SHORT).await.expect("store"),
        "expired"
    );
}

async fn rate_limit_allows_a_burst_then_denies_with_retry_after(store: &dyn Store) {
    let key = Bucket::Caller(new_key());
    let rate = Rate { per_minute: 3 };
    let now_us = now() * 1_000_000;
    assert!(
        store
            .check_rate(&key, rate, now_us)
            .await
            .expect("store")
            .allowed
    );
    for _ in 0..3 {
        assert!(
            store
                .take_rate(&key, rate, now_us)
                .await
                .expect("store")
                .allowed
        );
    }
    let denied = store.take_rate(&key, rate, now_us).await.expect("store");
    assert!(!denied.allowed);
    assert_eq!(denied.retry_after_ms, 20_000);
    assert!(
        !store
            .check_rate(&key, rate, now_us)
            .await
            .expect("store")
            .allowed
    );
    let later = store
        .take_rate(&key, rate, now_us + 20_000_000)
        .await
        .expect("store");
    assert!(later.allowed);
}

async fn pairing_first_claim_wins_then_acceptance_then_confirmation(store: &dyn Store) {
    let nas_id = new_nas();
    let slot = PairingSlot {
        pairing_id: PairingId::random(),
        nas_id,
        expires_at: now() + 60,
        claim_verifier: approvd_proto::Digest([3; 32]),
    };
    let id = slot.pairing_id;
    assert!(store.create_pairing(&slot, LONG).await.expect("store"));
    assert!(
        !store.create_pairing(&slot, LONG).await.expect("store"),
        "duplicate id"
    );
    let state = store.pairing(&id).await.expect("store").expect("exists");
    assert_eq!(state.slot, slot);
    assert!(state.claimed.is_none() && state.confirmation.is_none());

    let claimed = sample_claim(id, nas_id);
    let accept = PairingStep::Accept(PairingAcceptance {
        accept: approvd_proto::PairAccept {
            pairing_id: id,
            nas_id,
            device_id: claimed.claim.device_id,
            claim_hash: claimed.claim.hash(),
            accepted_at: now(),
        },
        sig: Sig([3; 64]),
    });
    let confirm = PairingStep::Confirm(PairingConfirmation {
        confirm: approvd_proto::PairConfirm {
            pairing_id: id,
            nas_id,
            device_id: claimed.claim.device_id,
            claim_hash: claimed.claim.hash(),
            code_secret_hash: approvd_proto::Digest([4; 32]),
            confirmed_at: now(),
        },
        sig: Sig([2; 64]),
        code_secret: SealedCodeSecret([5; 80]),
    });
    let advance = |step| async move { store.advance_pairing(&id, step).await.expect("store") };
    assert_eq!(
        advance(&accept).await,
        StepOutcome::NotReady,
        "nothing claimed"
    );
    let mut watch = store.watch(Topic::Pairing(id)).await.expect("store");
    assert_eq!(
        store.claim_pairing(&id, &claimed).await.expect("store"),
        ClaimOutcome::Stored
    );
    expect_woken(&mut watch).await;
    let other = sample_claim(id, nas_id);
    assert_eq!(
        store.claim_pairing(&id, &other).await.expect("store"),
        ClaimOutcome::AlreadyClaimed
    );
    assert_eq!(
        store
            .pairing(&id)
            .await
            .expect("store")
            .expect("exists")
            .claimed,
        Some(claimed)
    );
    assert_eq!(
        advance(&confirm).await,
        StepOutcome::NotReady,
        "nothing accepted"
    );
    assert_eq!(advance(&accept).await, StepOutcome::Stored);
    expect_woken(&mut watch).await;
    assert_eq!(advance(&accept).await, StepOutcome::AlreadyDone);
    assert_eq!(advance(&confirm).await, StepOutcome::Stored);
    expect_woken(&mut watch).await;
    assert_eq!(advance(&confirm).await, StepOutcome::AlreadyDone);
    let state = store.pairing(&id).await.expect("store").expect("exists");
    assert_eq!(
        (
            state.acceptance.map(PairingStep::Accept),
            state.confirmation.map(PairingStep::Confirm)
        ),
        (Some(accept.clone()), Some(confirm.clone()))
    );
    let missing = PairingId::random();
    assert_eq!(
        store
            .claim_pairing(&missing, &sample_claim(missing, nas_id))
            .await
            .expect("store"),
        ClaimOutcome::Missing
    );
    assert_eq!(
        store
            .advance_pairing(&missing, &confirm)
            .await
            .expect("store"),
        StepOutcome::Missing
    );
}

async fn pairing_slot_expires(store: &dyn Store) {
    let slot = PairingSlot {
        pairing_id: PairingId::random(),
        nas_id: new_nas(),
        expires_at: now() + 1,
        claim_verifier: approvd_proto::Digest([3; 32]),
    };
    assert!(store.create_pairing(&slot, SHORT).await.expect("store"));
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(store.pairing(&slot.pairing_id).await.expect("store"), None);
    assert!(
        store.create_pairing(&slot, SHORT).await.expect("store"),
        "id free again"
    );
}

async fn challenge_create_is_exclusive_and_fills_inboxes(store: &dyn Store) {
    let nas_id = new_nas();
    let (phone_a, phone_b, limited) = (new_device(), new_device(), new_device());
    let mut challenge = sample_challenge(nas_id, &[phone_a, phone_b]);
    challenge.targets.push(target(limited, false));
    let mut watch_a = store.watch(Topic::Inbox(phone_a)).await.expect("store");
    let mut watch_limited = store.watch(Topic::Inbox(limited)).await.expect("store");
    assert_eq!(
        store
            .create_challenge(&challenge, LONG)
            .await
            .expect("store"),
        CreateOutcome::Created
    );
    expect_woken(&mut watch_a).await;
    expect_quiet(&mut watch_limited).await;
    assert_eq!(
        store.challenge(&challenge.cid).await.expect("store"),
        Some(challenge.clone())
    );
    let inbox = store.inbox(&phone_b, now()).await.expect("store");
    assert_eq!(inbox, vec![challenge.inbox_entry(&challenge.targets[1])]);
    assert!(store
        .inbox(&limited, now())
        .await
        .expect("store")
        .is_empty());

    let mut second = sample_challenge(nas_id, &[phone_a]);
    second.cid = challenge.cid;
    assert_eq!(
        store.create_challenge(&second, LONG).await.expect("store"),
        CreateOutcome::Exists(Box::new(challenge.clone()))
    );
    assert_eq!(
        store.inbox(&phone_a, now()).await.expect("store").len(),
        1,
        "nothing written"
    );

    let deliveries = vec![TargetDelivery {
        device_id: phone_a,
        delivery: Delivery::Pushed,
    }];
    store
        .record_deliveries(&challenge.cid, &deliveries)
        .await
        .expect("store");
    let stored = store
        .challenge(&challenge.cid)
        .await
        .expect("store")
        .expect("exists");
    assert_eq!(stored.deliveries, deliveries);
}

async fn inbox_is_oldest_first_and_hides_expired_challenges(store: &dyn Store) {
    let nas_id = new_nas();
    let phone = new_device();
    let mut newer = sample_challenge(nas_id, &[phone]);
    newer.created += 5;
    let older = sample_challenge(nas_id, &[phone]);
    let mut expired = sample_challenge(nas_id, &[phone]);
    expired.created -= 100;
    expired.expires = now() - 1;
    for challenge in [&newer, &older, &expired] {
        store
            .create_challenge(challenge, LONG)
            .await
            .expect("store");
    }
    let cids: Vec<Cid> = store
        .inbox(&phone, now())
        .await
        .expect("store")
        .into_iter()
        .map(|entry| entry.cid)
        .collect();
    assert_eq!(cids, vec![older.cid, newer.cid]);
    store
        .drop_inbox_from(&phone, &new_nas())
        .await
        .expect("store");
    assert_eq!(
        store.inbox(&phone, now()).await.expect("store").len(),
        2,
        "other NAS: kept"
    );
    store.drop_inbox_from(&phone, &nas_id).await.expect("store");
    assert!(store.inbox(&phone, now()).await.expect("store").is_empty());
}

async fn first_verdict_wins_under_concurrency(store: Arc<dyn Store>) {
    let nas_id = new_nas();
    let phones: Vec<DeviceId> = (0..8).map(|_| new_device()).collect();
    let challenge = sample_challenge(nas_id, &phones);
    store
        .create_challenge(&challenge, LONG)
        .await
        .expect("store");
    let mut watch = store
        .watch(Topic::Challenge(challenge.cid))
        .await
        .expect("store");
    let tasks: Vec<_> = phones
        .iter()
        .map(|phone| {
            let store = Arc::clone(&store);
            let verdict = sample_verdict(&challenge, *phone);
            tokio::spawn(
                async move { (store.decide(&verdict.verdict.cid, &verdict).await, verdict) },
            )
        })
        .collect();
    let mut accepted = Vec::new();
    for task in tasks {
        let (outcome, verdict) = task.await.expect("task");
        match outcome.expect("store") {
            DecideOutcome::Accepted => accepted.push(verdict),
            DecideOutcome::AlreadyDecided => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(accepted.len(), 1, "exactly one verdict wins");
    expect_woken(&mut watch).await;
    let stored = store
        .challenge(&challenge.cid)
        .await
        .expect("store")
        .expect("exists");
    assert_eq!(
        stored.state,
        ChallengeState::Decided {
            verdict: Box::new(accepted[0].clone())
        }
    );
    for phone in &phones {
        assert!(
            store.inbox(phone, now()).await.expect("store").is_empty(),
            "removed from inboxes"
        );
    }
    assert_eq!(
        store.cancel(&challenge.cid).await.expect("store"),
        CancelOutcome::AlreadyDecided
    );
}

async fn cancel_is_final(store: &dyn Store) {
    let phone = new_device();
    let challenge = sample_challenge(new_nas(), &[phone]);
    store
        .create_challenge(&challenge, LONG)
        .await
        .expect("store");
    let mut watch = store
        .watch(Topic::Challenge(challenge.cid))
        .await
        .expect("store");
    assert_eq!(
        store.cancel(&challenge.cid).await.expect("store"),
        CancelOutcome::Cancelled
    );
    expect_woken(&mut watch).await;
    assert!(store.inbox(&phone, now()).await.expect("store").is_empty());
    assert_eq!(
        store.cancel(&challenge.cid).await.expect("store"),
        CancelOutcome::AlreadyCancelled
    );
    let verdict = sample_verdict(&challenge, phone);
    assert_eq!(
        store.decide(&challenge.cid, &verdict).await.expect("store"),
        DecideOutcome::Cancelled
    );
    let missing = Cid::random();
    assert_eq!(
        store.cancel(&missing).await.expect("store"),
        CancelOutcome::Missing
    );
    assert_eq!(
        store.decide(&missing, &verdict).await.expect("store"),
        DecideOutcome::Missing
    );
}

async fn challenge_and_inbox_expire_with_their_ttl(store: &dyn Store) {
    let phone = new_device();
    let challenge = sample_challenge(new_nas(), &[phone]);
    store
        .create_challenge(&challenge, SHORT)
        .await
        .expect("store");
    assert!(store
        .challenge(&challenge.cid)
        .await
        .expect("store")
        .is_some());
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(store.challenge(&challenge.cid).await.expect("store"), None);
    assert!(store.inbox(&phone, now()).await.expect("store").is_empty());
    assert_eq!(
        store.cancel(&challenge.cid).await.expect("store"),
        CancelOutcome::Missing
    );
}

async fn mutes_hold_until_their_ttl(store: &dyn Store) {
    let (nas_id, phone) = (new_nas(), new_device());
    assert_eq!(
        store.muted_until(&nas_id, &phone).await.expect("store"),
        None
    );
    store
        .set_mute(&nas_id, &phone, now() + 1, SHORT)
        .await
        .expect("store");
    assert_eq!(
        store.muted_until(&nas_id, &phone).await.expect("store"),
        Some(now() + 1)
    );
    assert_eq!(
        store.muted_until(&new_nas(), &phone).await.expect("store"),
        None
    );
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(
        store.muted_until(&nas_id, &phone).await.expect("store"),
        None
    );
}

async fn mailbox_keeps_order_and_acks_remove(store: &dyn Store) {
    let nas_id = new_nas();
    let mut watch = store.watch(Topic::Mailbox(nas_id)).await.expect("store");
    let notices: Vec<Notice> = (0..3)
        .map(|_| Notice::PushGone {
            device_id: new_device(),
        })
        .collect();
    for (index, notice) in notices.iter().enumerate() {
        store
            .post_notice(&nas_id, notice, 100 + index as u64, LONG)
            .await
            .expect("store");
    }
    expect_woken(&mut watch).await;
    let entries = store.mailbox(&nas_id, 10).await.expect("store");
    let got: Vec<Notice> = entries.iter().map(|entry| entry.notice.clone()).collect();
    assert_eq!(got, notices);
    let mut ids: Vec<&String> = entries.iter().map(|entry| &entry.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "ids are distinct");
    store
        .ack_mailbox(&nas_id, &[entries[0].id.clone(), "unknown".into()])
        .await
        .expect("store");
    assert_eq!(
        store.mailbox(&nas_id, 10).await.expect("store"),
        entries[1..].to_vec()
    );
    assert!(store
        .mailbox(&new_nas(), 10)
        .await
        .expect("store")
        .is_empty());
}

async fn mailbox_keeps_the_newest_notice_per_kind_and_device_and_is_capped(store: &dyn Store) {
    let nas_id = new_nas();
    let (phone, other) = (new_device(), new_device());
    let refreshed = |byte: u8, device_id: DeviceId| Notice::HandleRefreshed {
        device_id,
        push_handle: PushHandle(vec![byte; 60]),
    };
    for byte in 1..=5 {
        store
            .post_notice(&nas_id, &refreshed(byte, phone), 100, LONG)
            .await
            .expect("store");
    }
    let gone = Notice::PushGone { device_id: phone };
    store
        .post_notice(&nas_id, &gone, 101, LONG)
        .await
        .expect("store");
    store
        .post_notice(&nas_id, &refreshed(9, other), 102, LONG)
        .await
        .expect("store");
    let got: Vec<Notice> = store
        .mailbox(&nas_id, 10)
        .await
        .expect("store")
        .into_iter()
        .map(|entry| entry.notice)
        .collect();
    assert_eq!(got, vec![refreshed(5, phone), gone, refreshed(9, other)]);
    assert_eq!(store.mailbox(&nas_id, 2).await.expect("store").len(), 2);

    let crowded = new_nas();
    let devices: Vec<DeviceId> = (0..MAILBOX_CAP + 5).map(|_| new_device()).collect();
    for device_id in &devices {
        let notice = Notice::PushGone {
            device_id: *device_id,
        };
        store
            .post_notice(&crowded, &notice, 100, LONG)
            .await
            .expect("store");
    }
    let kept = store
        .mailbox(&crowded, 2 * MAILBOX_CAP)
        .await
        .expect("store");
    assert_eq!(kept.len(), MAILBOX_CAP);
    assert_eq!(
        kept[0].notice,
        Notice::PushGone {
            device_id: devices[5]
        },
        "the oldest went first"
    );
}

async fn watches_are_per_topic_and_dropped_watches_unregister(store: &dyn Store) {
    let phone = new_device();
    let before = store.notifier().waiters();
    let mut mine = store.watch(Topic::Inbox(phone)).await.expect("store");
    let other = store
        .watch(Topic::Inbox(new_device()))
        .await
        .expect("store");
    assert_eq!(store.notifier().waiters(), before + 2);
    let challenge = sample_challenge(new_nas(), &[new_device()]);
    store
        .create_challenge(&challenge, LONG)
        .await
        .expect("store");
    expect_quiet(&mut mine).await;
    drop(other);
    drop(mine);
    assert_eq!(store.notifier().waiters(), before);
    store.ping().await.expect("reachable");
}

fn standalone() -> &'static RedisServer {
    static SERVER: std::sync::OnceLock<RedisServer> = std::sync::OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

fn cluster() -> &'static RedisCluster {
    static CLUSTER: std::sync::OnceLock<RedisCluster> = std::sync::OnceLock::new();
    CLUSTER.get_or_init(RedisCluster::start)
}

fn pki() -> &'static Arc<TestPki> {
    static PKI: std::sync::OnceLock<Arc<TestPki>> = std::sync::OnceLock::new();
    PKI.get_or_init(|| Arc::new(TestPki::new()))
}

fn tls_standalone() -> &'static RedisServer {
    static SERVER: std::sync::OnceLock<RedisServer> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| RedisServer::start_tls(Arc::clone(pki())))
}

fn tls_cluster() -> &'static RedisCluster {
    static CLUSTER: std::sync::OnceLock<RedisCluster> = std::sync::OnceLock::new();
    CLUSTER.get_or_init(|| RedisCluster::start_tls(Arc::clone(pki())))
}

/// TLS with the test CA and the relay's client certificate.
fn tls_options(enabled: bool) -> RedisOptions {
    let pki = pki();
    RedisOptions {
        tls: RedisTls {
            enabled,
            ca_file: Some(pki.ca.clone()),
            client_cert: Some((pki.client_cert.clone(), pki.client_key.clone())),
            insecure: false,
        },
        ..RedisOptions::default()
    }
}

/// A store of each kind: a fresh memory store, or a connection to the shared servers.
async fn connect(kind: &str) -> Arc<dyn Store> {
    let (target, options) = match kind {
        "memory" => return Arc::new(MemoryStore::new()),
        "standalone" => (
            RedisTarget::Standalone(standalone().url()),
            RedisOptions::default(),
        ),
        "cluster" => (
            RedisTarget::Cluster(cluster().seeds()),
            RedisOptions::default(),
        ),
        "tls_standalone" => (
            RedisTarget::Standalone(tls_standalone().url()),
            tls_options(false),
        ),
        "tls_cluster" => (
            RedisTarget::Cluster(tls_cluster().seeds()),
            tls_options(true),
        ),
        other => panic!("unknown store kind {other}"),
    };
    Arc::new(
        RedisStore::connect_with(&target, &options, Duration::from_secs(2))
            .await
            .expect("connect"),
    )
}

/// One `#[tokio::test]` per check and store kind, named `<kind>::<check>`.
macro_rules! conformance {
    ($($kind:ident),*) => {$(
        mod $kind {
            use super::*;

            macro_rules! check {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        super::$name(&*connect(stringify!($kind)).await).await;
                    }
                };
            }

            check!(nonce_is_remembered_once_until_it_expires);
            check!(rate_limit_allows_a_burst_then_denies_with_retry_after);
            check!(pairing_first_claim_wins_then_acceptance_then_confirmation);
            check!(pairing_slot_expires);
            check!(challenge_create_is_exclusive_and_fills_inboxes);
            check!(inbox_is_oldest_first_and_hides_expired_challenges);
            check!(cancel_is_final);
            check!(challenge_and_inbox_expire_with_their_ttl);
            check!(mutes_hold_until_their_ttl);
            check!(mailbox_keeps_order_and_acks_remove);
            check!(mailbox_keeps_the_newest_notice_per_kind_and_device_and_is_capped);
            check!(watches_are_per_topic_and_dropped_watches_unregister);

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn first_verdict_wins_under_concurrency() {
                let store = connect(stringify!($kind)).await;
                for _ in 0..20 {
                    super::first_verdict_wins_under_concurrency(Arc::clone(&store)).await;
                }
            }
        }
    )*};
}

conformance!(memory, standalone, cluster, tls_standalone, tls_cluster);
