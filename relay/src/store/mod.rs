//! The relay's state, behind the [`Store`] trait: pairing slots, challenges and their verdicts,
//! device inboxes, NAS mailboxes, mutes, the nonce replay cache and rate-limit buckets. Every
//! record has a time-to-live. Implementations must give identical semantics (the store
//! conformance suite in `tests/tests/it/store_conformance.rs` checks them): writes that decide something (first claim, first verdict,
//! cancel) are atomic, and every write that could satisfy a long-poll notifies its [`Topic`]
//! after the write.
//!
//! The store knows nothing of HTTP; handlers turn its outcomes into responses.

pub mod memory;
pub mod metered;
pub mod notify;
pub mod rate;
pub mod redis;

use std::time::Duration;

use approvd_proto::ids::{Digest, PublicKey, Sig};
use approvd_proto::wire::{
    InboxEntry, MailboxEntry, Notice, PairingAcceptance, PairingClaimed, PairingConfirmation,
    Sealed, SignedVerdict, TargetDelivery,
};
use approvd_proto::{Cid, DeviceId, NasId, PairingId};

pub use self::redis::{
    ConnectError, Password, RedisAuth, RedisOptions, RedisStore, RedisTarget, RedisTls,
};
pub use memory::MemoryStore;
pub use metered::MeteredStore;
pub use notify::{Notifier, Topic, Watch};
pub use rate::{gcra, Bucket, Limit, Rate, RateDecision};

/// Why the store could not answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// The backing store is unreachable or timed out; retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be decoded (a bug or a foreign writer).
    #[error("store data error: {0}")]
    Data(String),
}

/// Most notices a NAS's mailbox holds; past it the oldest are dropped. Coalescing keeps a
/// mailbox to a few entries per paired device, so only a NAS that never drains it reaches this.
pub const MAILBOX_CAP: usize = 500;

/// A request nonce as the replay cache keeps it: unique per signing key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nonce {
    /// The key that signed the request (`keyid`).
    pub key: PublicKey,
    /// The `nonce` parameter (16–64 base64url characters, checked by `httpsig`).
    pub nonce: String,
}

/// A registered pairing slot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PairingSlot {
    pub pairing_id: PairingId,
    pub nas_id: NasId,
    pub expires_at: u64,
    /// `SHA-256(k_relay)`: a claim must carry `k_relay` (N-15).
    pub claim_verifier: Digest,
}

/// A slot and what happened to it so far.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PairingState {
    pub slot: PairingSlot,
    pub claimed: Option<PairingClaimed>,
    pub acceptance: Option<PairingAcceptance>,
    pub confirmation: Option<PairingConfirmation>,
}

/// Outcome of [`Store::claim_pairing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    Stored,
    AlreadyClaimed,
    Missing,
}

/// What a slot's NAS adds after the claim, in this order: its acceptance of one claim (before
/// any code is shown), then its confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairingStep {
    Accept(PairingAcceptance),
    Confirm(PairingConfirmation),
}

/// Outcome of [`Store::advance_pairing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    Stored,
    /// This step was stored before (first one wins).
    AlreadyDone,
    /// The step before it is missing (no claim to accept, no acceptance to confirm).
    NotReady,
    Missing,
}

/// One target of a stored challenge.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredTarget {
    pub device_id: DeviceId,
    /// `D_sig` from the device's handle: verdicts must verify under it.
    pub sig_key: PublicKey,
    /// Hash of the `challenge` message for this device: verdicts must name it.
    pub challenge_hash: Digest,
    pub sealed: Sealed,
    pub sig: Sig,
    /// Whether an inbox entry was stored for it (false when rate-limited).
    pub in_inbox: bool,
    /// The device's handle when it has push (sealed; for the dismissal push after a verdict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_handle: Option<approvd_proto::wire::PushHandle>,
}

/// Where a challenge stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ChallengeState {
    Pending,
    Decided { verdict: Box<SignedVerdict> },
    Cancelled,
}

/// A challenge as the relay keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredChallenge {
    pub cid: Cid,
    pub nas_id: NasId,
    pub created: u64,
    pub expires: u64,
    pub number_matching: bool,
    /// SHA-256 of the create request body: an identical re-post is idempotent.
    pub body_hash: Digest,
    pub targets: Vec<StoredTarget>,
    /// The delivery report, updated as push results arrive.
    pub deliveries: Vec<TargetDelivery>,
    pub state: ChallengeState,
}

impl StoredChallenge {
    /// The inbox entry for one target.
    pub fn inbox_entry(&self, target: &StoredTarget) -> InboxEntry {
        InboxEntry {
            cid: self.cid,
            nas_id: self.nas_id,
            created: self.created,
            expires: self.expires,
            number_matching: self.number_matching,
            sealed: target.sealed.clone(),
            sig: target.sig,
        }
    }
}

/// Outcome of [`Store::create_challenge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// A challenge with this `cid` exists already (it is returned).
    Exists(Box<StoredChallenge>),
}

/// Outcome of [`Store::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecideOutcome {
    /// This verdict was the first: it is stored.
    Accepted,
    /// Another verdict was stored first.
    AlreadyDecided,
    Cancelled,
    Missing,
}

/// Outcome of [`Store::cancel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled,
    AlreadyCancelled,
    AlreadyDecided,
    Missing,
}

/// Outcome of [`Store::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// The nonce was seen before: a replay (no token was taken).
    Replayed,
    /// The nonce is new (now remembered); the caller's bucket said this.
    Fresh(RateDecision),
}

/// One target of a new challenge as [`Store::reserve_targets`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// The device's challenge bucket (a token was taken when allowed).
    pub rate: RateDecision,
    /// When allowed: the end of the device's mute of this NAS, if one is stored.
    pub muted_until: Option<u64>,
}

/// The relay's state. See the module documentation for the contract.
///
/// The composite operations (`admit`, `take_in_order`, `reserve_targets`) have default bodies
/// made of the single ones; a networked store overrides them to answer in one round trip.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Remember `nonce` for `ttl`. `false` when it was already remembered (a replay).
    async fn remember_nonce(&self, nonce: &Nonce, ttl: Duration) -> Result<bool, StoreError>;

    /// A signed request's admission: remember its nonce for `nonce_ttl` and, when it is new,
    /// take a token from `bucket` (the signing key's request budget, `nonce.key`'s).
    async fn admit(
        &self,
        nonce: &Nonce,
        nonce_ttl: Duration,
        bucket: &Bucket,
        rate: Rate,
        now_us: u64,
    ) -> Result<Admitted, StoreError> {
        if !self.remember_nonce(nonce, nonce_ttl).await? {
            return Ok(Admitted::Replayed);
        }
        Ok(Admitted::Fresh(self.take_rate(bucket, rate, now_us).await?))
    }

    /// Take a token from each bucket in order, stopping at the first that refuses (later ones
    /// are untouched): `None` when all allowed, else the refusing bucket's index and decision.
    async fn take_in_order(
        &self,
        buckets: &[(Bucket, Rate)],
        now_us: u64,
    ) -> Result<Option<(usize, RateDecision)>, StoreError> {
        for (index, (bucket, rate)) in buckets.iter().enumerate() {
            let decision = self.take_rate(bucket, *rate, now_us).await?;
            if !decision.allowed {
                return Ok(Some((index, decision)));
            }
        }
        Ok(None)
    }

    /// For each device a new challenge from `nas_id` targets: take a token from its challenge
    /// bucket at `rate` and, when allowed, read its mute of `nas_id`.
    async fn reserve_targets(
        &self,
        nas_id: &NasId,
        devices: &[DeviceId],
        rate: Rate,
        now_us: u64,
    ) -> Result<Vec<Reservation>, StoreError> {
        let mut reservations = Vec::with_capacity(devices.len());
        for device_id in devices {
            let rate = self
                .take_rate(&Bucket::DeviceChallenges(*device_id), rate, now_us)
                .await?;
            let muted_until = if rate.allowed {
                self.muted_until(nas_id, device_id).await?
            } else {
                None
            };
            reservations.push(Reservation { rate, muted_until });
        }
        Ok(reservations)
    }

    /// Requests sent to a networked store so far (each command, script or pipeline is one
    /// round trip); `None` for an in-process store.
    fn round_trips(&self) -> Option<u64> {
        None
    }

    /// Would one more request against `bucket` at `rate` be allowed at `now_us` (unix µs)?
    /// Consumes nothing.
    async fn check_rate(
        &self,
        bucket: &Bucket,
        rate: Rate,
        now_us: u64,
    ) -> Result<RateDecision, StoreError>;

    /// One request against `bucket` at `rate` at `now_us` (unix µs): consumes a token when
    /// allowed.
    async fn take_rate(
        &self,
        bucket: &Bucket,
        rate: Rate,
        now_us: u64,
    ) -> Result<RateDecision, StoreError>;

    /// Register a slot; `false` when the id exists.
    async fn create_pairing(&self, slot: &PairingSlot, ttl: Duration) -> Result<bool, StoreError>;
    async fn pairing(&self, pairing_id: &PairingId) -> Result<Option<PairingState>, StoreError>;
    /// Store the first claim of a slot; notifies [`Topic::Pairing`].
    async fn claim_pairing(
        &self,
        pairing_id: &PairingId,
        claimed: &PairingClaimed,
    ) -> Result<ClaimOutcome, StoreError>;
    /// Store the acceptance of a claimed slot, or the confirmation of an accepted one, once
    /// each; notifies [`Topic::Pairing`].
    async fn advance_pairing(
        &self,
        pairing_id: &PairingId,
        step: &PairingStep,
    ) -> Result<StepOutcome, StoreError>;

    /// Store a challenge and an inbox entry for each target with `in_inbox`, all living `ttl`;
    /// notifies each such target's [`Topic::Inbox`]. Returns the existing challenge if the
    /// `cid` is taken (nothing is written then).
    async fn create_challenge(
        &self,
        challenge: &StoredChallenge,
        ttl: Duration,
    ) -> Result<CreateOutcome, StoreError>;
    async fn challenge(&self, cid: &Cid) -> Result<Option<StoredChallenge>, StoreError>;
    /// Replace the delivery report of a challenge (no-op if it is gone).
    async fn record_deliveries(
        &self,
        cid: &Cid,
        deliveries: &[TargetDelivery],
    ) -> Result<(), StoreError>;
    /// Atomically store `verdict` if the challenge is still pending (first answer wins), then
    /// remove the challenge from every target's inbox and notify [`Topic::Challenge`].
    async fn decide(&self, cid: &Cid, verdict: &SignedVerdict)
        -> Result<DecideOutcome, StoreError>;
    /// Atomically cancel a pending challenge, remove its inbox entries, notify.
    async fn cancel(&self, cid: &Cid) -> Result<CancelOutcome, StoreError>;
    /// A device's pending inbox entries that have not expired at `now`, oldest first.
    async fn inbox(&self, device_id: &DeviceId, now: u64) -> Result<Vec<InboxEntry>, StoreError>;
    /// Drop a device's inbox entries from one NAS (the device unpaired).
    async fn drop_inbox_from(&self, device_id: &DeviceId, nas_id: &NasId)
        -> Result<(), StoreError>;

    /// Mute pushes from `nas_id` to `device_id` until `until` (record lives `ttl`).
    async fn set_mute(
        &self,
        nas_id: &NasId,
        device_id: &DeviceId,
        until: u64,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    async fn muted_until(
        &self,
        nas_id: &NasId,
        device_id: &DeviceId,
    ) -> Result<Option<u64>, StoreError>;

    /// Append a notice to a NAS's mailbox (entry lives `ttl`) and notify [`Topic::Mailbox`].
    /// The notice replaces any older one with the same [`Notice::coalescing_key`], and the
    /// mailbox keeps at most [`MAILBOX_CAP`] entries (the oldest go first).
    async fn post_notice(
        &self,
        nas_id: &NasId,
        notice: &Notice,
        at: u64,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// The oldest `limit` entries of a NAS's mailbox, oldest first.
    async fn mailbox(&self, nas_id: &NasId, limit: usize) -> Result<Vec<MailboxEntry>, StoreError>;
    /// Remove mailbox entries by id (unknown ids are ignored).
    async fn ack_mailbox(&self, nas_id: &NasId, ids: &[String]) -> Result<(), StoreError>;

    /// Register a waiter for `topic`; re-read the state after this returns.
    async fn watch(&self, topic: Topic) -> Result<Watch, StoreError>;
    /// The waiter registry (for the waiters gauge).
    fn notifier(&self) -> &std::sync::Arc<Notifier>;
    /// Is the store reachable?
    async fn ping(&self) -> Result<(), StoreError>;
}
