//! The store as the relay uses it: any [`Store`] wrapped so that every operation is timed and
//! every failure counted by operation (`approvd_store_operation_duration_seconds`,
//! `approvd_store_errors_total`), and `approvd_store_up` follows the last outcome. One place, so
//! no caller can forget to count an error.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use approvd_proto::wire::TargetDelivery;
use approvd_proto::wire::{InboxEntry, MailboxEntry, Notice, PairingClaimed, SignedVerdict};
use approvd_proto::{Cid, DeviceId, NasId, PairingId};

use super::{
    Admitted, Bucket, CancelOutcome, ClaimOutcome, CreateOutcome, DecideOutcome, Nonce, Notifier,
    PairingSlot, PairingState, PairingStep, Rate, RateDecision, Reservation, StepOutcome, Store,
    StoreError, StoredChallenge, Topic, Watch,
};
use crate::metrics::Metrics;

/// A store whose operations are measured.
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: Metrics,
}

/// Every `operation` label (one per [`Store`] method that talks to the store).
const OPERATIONS: [&str; 24] = [
    "remember_nonce",
    "admit",
    "check_rate",
    "take_rate",
    "take_in_order",
    "reserve_targets",
    "create_pairing",
    "pairing",
    "claim_pairing",
    "advance_pairing",
    "create_challenge",
    "challenge",
    "record_deliveries",
    "decide",
    "cancel",
    "inbox",
    "drop_inbox_from",
    "set_mute",
    "muted_until",
    "post_notice",
    "mailbox",
    "ack_mailbox",
    "watch",
    "ping",
];

impl MeteredStore {
    /// Wrap `inner`; every operation's error counter starts at zero (alerts see 0, not nothing).
    pub fn new(inner: Arc<dyn Store>, metrics: Metrics) -> Self {
        for operation in OPERATIONS {
            metrics.store_errors.with_label_values(&[operation]);
        }
        Self { inner, metrics }
    }

    /// Run one operation, recording its latency and outcome under `operation`.
    async fn measure<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        debug_assert!(OPERATIONS.contains(&operation), "{operation} is listed");
        let started = Instant::now();
        let result = call.await;
        self.metrics
            .store_duration
            .with_label_values(&[operation])
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(_) => self.metrics.store_up.set(1),
            Err(error) => {
                self.metrics
                    .store_errors
                    .with_label_values(&[operation])
                    .inc();
                if matches!(error, StoreError::Unavailable(_)) {
                    self.metrics.store_up.set(0);
                }
            }
        }
        result
    }
}

#[async_trait::async_trait]
impl Store for MeteredStore {
    async fn remember_nonce(&self, nonce: &Nonce, ttl: Duration) -> Result<bool, StoreError> {
        self.measure("remember_nonce", self.inner.remember_nonce(nonce, ttl))
            .await
    }

    async fn admit(
        &self,
        nonce: &Nonce,
        nonce_ttl: Duration,
        bucket: &Bucket,
        rate: Rate,
        now_us: u64,
    ) -> Result<Admitted, StoreError> {
        self.measure(
            "admit",
            self.inner.admit(nonce, nonce_ttl, bucket, rate, now_us),
        )
        .await
    }

    async fn take_in_order(
        &self,
        buckets: &[(Bucket, Rate)],
        now_us: u64,
    ) -> Result<Option<(usize, RateDecision)>, StoreError> {
        self.measure("take_in_order", self.inner.take_in_order(buckets, now_us))
            .await
    }

    async fn reserve_targets(
        &self,
        nas_id: &NasId,
        devices: &[DeviceId],
        rate: Rate,
        now_us: u64,
    ) -> Result<Vec<Reservation>, StoreError> {
        self.measure(
            "reserve_targets",
            self.inner.reserve_targets(nas_id, devices, rate, now_us),
        )
        .await
    }

    fn round_trips(&self) -> Option<u64> {
        self.inner.round_trips()
    }

    async fn check_rate(
        &self,
        bucket: &Bucket,
        rate: Rate,
        now_us: u64,
    ) -> Result<RateDecision, StoreError> {
        self.measure("check_rate", self.inner.check_rate(bucket, rate, now_us))
            .await
    }

    async fn take_rate(
        &self,
        bucket: &Bucket,
        rate: Rate,
        now_us: u64,
    ) -> Result<RateDecision, StoreError> {
        self.measure("take_rate", self.inner.take_rate(bucket, rate, now_us))
            .await
    }

    async fn create_pairing(&self, slot: &PairingSlot, ttl: Duration) -> Result<bool, StoreError> {
        self.measure("create_pairing", self.inner.create_pairing(slot, ttl))
            .await
    }

    async fn pairing(&self, pairing_id: &PairingId) -> Result<Option<PairingState>, StoreError> {
        self.measure("pairing", self.inner.pairing(pairing_id))
            .await
    }

    async fn claim_pairing(
        &self,
        pairing_id: &PairingId,
        claimed: &PairingClaimed,
    ) -> Result<ClaimOutcome, StoreError> {
        self.measure(
            "claim_pairing",
            self.inner.claim_pairing(pairing_id, claimed),
        )
        .await
    }

    async fn advance_pairing(
        &self,
        pairing_id: &PairingId,
        step: &PairingStep,
    ) -> Result<StepOutcome, StoreError> {
        self.measure(
            "advance_pairing",
            self.inner.advance_pairing(pairing_id, step),
        )
        .await
    }

    async fn create_challenge(
        &self,
        challenge: &StoredChallenge,
        ttl: Duration,
    ) -> Result<CreateOutcome, StoreError> {
        self.measure(
            "create_challenge",
            self.inner.create_challenge(challenge, ttl),
        )
        .await
    }

    async fn challenge(&self, cid: &Cid) -> Result<Option<StoredChallenge>, StoreError> {
        self.measure("challenge", self.inner.challenge(cid)).await
    }

    async fn record_deliveries(
        &self,
        cid: &Cid,
        deliveries: &[TargetDelivery],
    ) -> Result<(), StoreError> {
        self.measure(
            "record_deliveries",
            self.inner.record_deliveries(cid, deliveries),
        )
        .await
    }

    async fn decide(
        &self,
        cid: &Cid,
        verdict: &SignedVerdict,
    ) -> Result<DecideOutcome, StoreError> {
        self.measure("decide", self.inner.decide(cid, verdict))
            .await
    }

    async fn cancel(&self, cid: &Cid) -> Result<CancelOutcome, StoreError> {
        self.measure("cancel", self.inner.cancel(cid)).await
    }

    async fn inbox(&self, device_id: &DeviceId, now: u64) -> Result<Vec<InboxEntry>, StoreError> {
        self.measure("inbox", self.inner.inbox(device_id, now))
            .await
    }

    async fn drop_inbox_from(
        &self,
        device_id: &DeviceId,
        nas_id: &NasId,
    ) -> Result<(), StoreError> {
        self.measure(
            "drop_inbox_from",
            self.inner.drop_inbox_from(device_id, nas_id),
        )
        .await
    }

    async fn set_mute(
        &self,
        nas_id: &NasId,
        device_id: &DeviceId,
        until: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.measure(
            "set_mute",
            self.inner.set_mute(nas_id, device_id, until, ttl),
        )
        .await
    }

    async fn muted_until(
        &self,
        nas_id: &NasId,
        device_id: &DeviceId,
    ) -> Result<Option<u64>, StoreError> {
        self.measure("muted_until", self.inner.muted_until(nas_id, device_id))
            .await
    }

    async fn post_notice(
        &self,
        nas_id: &NasId,
        notice: &Notice,
        at: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.measure(
            "post_notice",
            self.inner.post_notice(nas_id, notice, at, ttl),
        )
        .await
    }

    async fn mailbox(&self, nas_id: &NasId, limit: usize) -> Result<Vec<MailboxEntry>, StoreError> {
        self.measure("mailbox", self.inner.mailbox(nas_id, limit))
            .await
    }

    async fn ack_mailbox(&self, nas_id: &NasId, ids: &[String]) -> Result<(), StoreError> {
        self.measure("ack_mailbox", self.inner.ack_mailbox(nas_id, ids))
            .await
    }

    async fn watch(&self, topic: Topic) -> Result<Watch, StoreError> {
        self.measure("watch", self.inner.watch(topic)).await
    }

    fn notifier(&self) -> &Arc<Notifier> {
        self.inner.notifier()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.measure("ping", self.inner.ping()).await
    }
}
