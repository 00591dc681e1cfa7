//! [`MemoryStore`]: the embedded store for a single relay process — no setup, nothing on disk.
//! Owns in-process maps guarded by one mutex (never held across an await) with per-record
//! expiry on `tokio::time::Instant` (so tests can pause time). Expired records are invisible at
//! once and swept at most once a second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use approvd_proto::wire::{
    InboxEntry, MailboxEntry, Notice, PairingClaimed, SignedVerdict, TargetDelivery,
};
use approvd_proto::{Cid, DeviceId, NasId, PairingId};
use tokio::time::Instant;

use super::{
    gcra, Bucket, CancelOutcome, ChallengeState, ClaimOutcome, CreateOutcome, DecideOutcome, Nonce,
    Notifier, PairingSlot, PairingState, PairingStep, Rate, RateDecision, StepOutcome, Store,
    StoreError, StoredChallenge, Topic, Watch, MAILBOX_CAP,
};

/// A value with its expiry.
#[derive(Debug)]
struct Expiring<T> {
    value: T,
    expires: Instant,
}

impl<T> Expiring<T> {
    fn new(value: T, ttl: Duration) -> Self {
        Self {
            value,
            expires: Instant::now() + ttl,
        }
    }

    fn live(&self, now: Instant) -> bool {
        self.expires > now
    }
}

#[derive(Debug, Default)]
struct State {
    nonces: HashMap<Nonce, Instant>,
    buckets: HashMap<Bucket, Expiring<u64>>,
    pairings: HashMap<PairingId, Expiring<PairingState>>,
    challenges: HashMap<Cid, Expiring<StoredChallenge>>,
    inboxes: HashMap<DeviceId, Vec<Expiring<InboxEntry>>>,
    mutes: HashMap<(NasId, DeviceId), Expiring<u64>>,
    mailboxes: HashMap<NasId, Vec<Expiring<MailboxEntry>>>,
    next_notice: u64,
    last_sweep: Option<Instant>,
}

impl State {
    /// Drop expired records, at most once a second.
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|last| now.duration_since(last) < Duration::from_secs(1))
        {
            return;
        }
        self.last_sweep = Some(now);
        self.nonces.retain(|_, expires| *expires > now);
        self.buckets.retain(|_, bucket| bucket.live(now));
        self.pairings.retain(|_, pairing| pairing.live(now));
        self.challenges.retain(|_, challenge| challenge.live(now));
        self.mutes.retain(|_, mute| mute.live(now));
        for entries in self.inboxes.values_mut() {
            entries.retain(|entry| entry.live(now));
        }
        self.inboxes.retain(|_, entries| !entries.is_empty());
        for entries in self.mailboxes.values_mut() {
            entries.retain(|entry| entry.live(now));
        }
        self.mailboxes.retain(|_, entries| !entries.is_empty());
    }

    /// One GCRA step on `bucket`, storing the new TAT when allowed and `consume`.
    fn rate(
        &mut self,
        bucket: &Bucket,
        rate: Rate,
        now: Instant,
        now_us: u64,
        consume: bool,
    ) -> RateDecision {
        let tat = self
            .buckets
            .get(bucket)
            .filter(|stored| stored.live(now))
            .map(|stored| stored.value);
        let (decision, new_tat) = gcra(rate, tat, now_us, consume);
        if let Some(new_tat) = new_tat {
            let ttl = Duration::from_micros(new_tat.saturating_sub(now_us));
            self.buckets
                .insert(bucket.clone(), Expiring::new(new_tat, ttl));
        }
        decision
    }

    fn live_challenge(&mut self, cid: &Cid, now: Instant) -> Option<&mut StoredChallenge> {
        self.challenges
            .get_mut(cid)
            .filter(|challenge| challenge.live(now))
            .map(|challenge| &mut challenge.value)
    }

    fn remove_from_inboxes(&mut self, challenge: &StoredChallenge) {
        for target in &challenge.targets {
            if let Some(entries) = self.inboxes.get_mut(&target.device_id) {
                entries.retain(|entry| entry.value.cid != challenge.cid);
            }
        }
    }
}

/// The embedded store. See the module documentation.
#[derive(Debug)]
pub struct MemoryStore {
    /// All state; a std mutex because every critical section is short and synchronous.
    state: Mutex<State>,
    /// Wakes long-polls after writes.
    notifier: Arc<Notifier>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            notifier: Notifier::new(),
        }
    }

    /// Run `f` on the swept state.
    fn with<R>(&self, f: impl FnOnce(&mut State, Instant) -> R) -> R {
        let now = Instant::now();
        let mut state = self.state.lock().expect("memory store lock");
        state.sweep(now);
        f(&mut state, now)
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn remember_nonce(&self, nonce: &Nonce, ttl: Duration) -> Result<bool, StoreError> {
        Ok(self.with(|state, now| {
            if state
                .nonces
                .get(nonce)
                .is_some_and(|expires| *expires > now)
            {
                return false;
            }
            state.nonces.insert(nonce.clone(), now + ttl);
            true
        }))
    }

    async fn check_rate(
        &self,
        bucket: &Bucket,
        rate: Rate,
        now_us: u64,
    ) -> Result<RateDecision, StoreError> {
        Ok(self.with(|state, now| state.rate(bucket, rate, now, now_us, false)))
    }

    async fn take_rate(
        &self,
        bucket: &Bucket,
        rate: Rate,
        now_us: u64,
    ) -> Result<RateDecision, StoreError> {
        Ok(self.with(|state, now| state.rate(bucket, rate, now, now_us, true)))
    }

    async fn create_pairing(&self, slot: &PairingSlot, ttl: Duration) -> Result<bool, StoreError> {
        Ok(self.with(|state, now| {
            if state
                .pairings
                .get(&slot.pairing_id)
                .is_some_and(|p| p.live(now))
            {
                return false;
            }
            let pairing = PairingState {
                slot: slot.clone(),
                claimed: None,
                acceptance: None,
                confirmation: None,
            };
            state
                .pairings
                .insert(slot.pairing_id, Expiring::new(pairing, ttl));
            true
        }))
    }

    async fn pairing(&self, pairing_id: &PairingId) -> Result<Option<PairingState>, StoreError> {
        Ok(self.with(|state, now| {
            state
                .pairings
                .get(pairing_id)
                .filter(|pairing| pairing.live(now))
                .map(|pairing| pairing.value.clone())
        }))
    }

    async fn claim_pairing(
        &self,
        pairing_id: &PairingId,
        claimed: &PairingClaimed,
    ) -> Result<ClaimOutcome, StoreError> {
        let outcome = self.with(|state, now| {
            match state.pairings.get_mut(pairing_id).filter(|p| p.live(now)) {
                None => ClaimOutcome::Missing,
                Some(pairing) if pairing.value.claimed.is_some() => ClaimOutcome::AlreadyClaimed,
                Some(pairing) => {
                    pairing.value.claimed = Some(claimed.clone());
                    ClaimOutcome::Stored
                }
            }
        });
        if outcome == ClaimOutcome::Stored {
            self.notifier.notify(&Topic::Pairing(*pairing_id));
        }
        Ok(outcome)
    }

    async fn advance_pairing(
        &self,
        pairing_id: &PairingId,
        step: &PairingStep,
    ) -> Result<StepOutcome, StoreError> {
        let outcome = self.with(|state, now| {
            let Some(pairing) = state.pairings.get_mut(pairing_id).filter(|p| p.live(now)) else {
                return StepOutcome::Missing;
            };
            let pairing = &mut pairing.value;
            let (ready, done) = match step {
                PairingStep::Accept(_) => (pairing.claimed.is_some(), pairing.acceptance.is_some()),
                PairingStep::Confirm(_) => {
                    (pairing.acceptance.is_some(), pairing.confirmation.is_some())
                }
            };
            if !ready {
                return StepOutcome::NotReady;
            }
            if done {
                return StepOutcome::AlreadyDone;
            }
            match step {
                PairingStep::Accept(acceptance) => pairing.acceptance = Some(acceptance.clone()),
                PairingStep::Confirm(confirmation) => {
                    pairing.confirmation = Some(confirmation.clone())
                }
            }
            StepOutcome::Stored
        });
        if outcome == StepOutcome::Stored {
            self.notifier.notify(&Topic::Pairing(*pairing_id));
        }
        Ok(outcome)
    }

    async fn create_challenge(
        &self,
        challenge: &StoredChallenge,
        ttl: Duration,
    ) -> Result<CreateOutcome, StoreError> {
        let outcome = self.with(|state, now| {
            if let Some(existing) = state.live_challenge(&challenge.cid, now) {
                return CreateOutcome::Exists(Box::new(existing.clone()));
            }
            for target in challenge.targets.iter().filter(|target| target.in_inbox) {
                let entry = Expiring::new(challenge.inbox_entry(target), ttl);
                state
                    .inboxes
                    .entry(target.device_id)
                    .or_default()
                    .push(entry);
            }
            state
                .challenges
                .insert(challenge.cid, Expiring::new(challenge.clone(), ttl));
            CreateOutcome::Created
        });
        if outcome == CreateOutcome::Created {
            for target in challenge.targets.iter().filter(|target| target.in_inbox) {
                self.notifier.notify(&Topic::Inbox(target.device_id));
            }
        }
        Ok(outcome)
    }

    async fn challenge(&self, cid: &Cid) -> Result<Option<StoredChallenge>, StoreError> {
        Ok(self.with(|state, now| state.live_challenge(cid, now).cloned()))
    }

    async fn record_deliveries(
        &self,
        cid: &Cid,
        deliveries: &[TargetDelivery],
    ) -> Result<(), StoreError> {
        self.with(|state, now| {
            if let Some(challenge) = state.live_challenge(cid, now) {
                challenge.deliveries = deliveries.to_vec();
            }
        });
        Ok(())
    }

    async fn decide(
        &self,
        cid: &Cid,
        verdict: &SignedVerdict,
    ) -> Result<DecideOutcome, StoreError> {
        let outcome = self.with(|state, now| {
            let Some(challenge) = state.live_challenge(cid, now) else {
                return DecideOutcome::Missing;
            };
            match challenge.state {
                ChallengeState::Decided { .. } => DecideOutcome::AlreadyDecided,
                ChallengeState::Cancelled => DecideOutcome::Cancelled,
                ChallengeState::Pending => {
                    challenge.state = ChallengeState::Decided {
                        verdict: Box::new(verdict.clone()),
                    };
                    let challenge = challenge.clone();
                    state.remove_from_inboxes(&challenge);
                    DecideOutcome::Accepted
                }
            }
        });
        if outcome == DecideOutcome::Accepted {
            self.notifier.notify(&Topic::Challenge(*cid));
        }
        Ok(outcome)
    }

    async fn cancel(&self, cid: &Cid) -> Result<CancelOutcome, StoreError> {
        let outcome = self.with(|state, now| {
            let Some(challenge) = state.live_challenge(cid, now) else {
                return CancelOutcome::Missing;
            };
            match challenge.state {
                ChallengeState::Decided { .. } => CancelOutcome::AlreadyDecided,
                ChallengeState::Cancelled => CancelOutcome::AlreadyCancelled,
                ChallengeState::Pending => {
                    challenge.state = ChallengeState::Cancelled;
                    let challenge = challenge.clone();
                    state.remove_from_inboxes(&challenge);
                    CancelOutcome::Cancelled
                }
            }
        });
        if outcome == CancelOutcome::Cancelled {
            self.notifier.notify(&Topic::Challenge(*cid));
        }
        Ok(outcome)
    }

    async fn inbox(
        &self,
        device_id: &DeviceId,
        now_unix: u64,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        Ok(self.with(|state, now| {
            let mut entries: Vec<InboxEntry> = state
                .inboxes
                .get(device_id)
                .map(|entries| {
                    entries
                        .iter()
                        .filter(|entry| entry.live(now) && entry.value.expires > now_unix)
                        .map(|entry| entry.value.clone())
                        .collect()
                })
                .unwrap_or_default();
            entries.sort_by_key(|entry| (entry.created, entry.cid));
            entries
        }))
    }

    async fn drop_inbox_from(
        &self,
        device_id: &DeviceId,
        nas_id: &NasId,
    ) -> Result<(), StoreError> {
        self.with(|state, _| {
            if let Some(entries) = state.inboxes.get_mut(device_id) {
                entries.retain(|entry| entry.value.nas_id != *nas_id);
            }
        });
        Ok(())
    }

    async fn set_mute(
        &self,
        nas_id: &NasId,
        device_id: &DeviceId,
        until: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.with(|state, _| {
            state
                .mutes
                .insert((*nas_id, *device_id), Expiring::new(until, ttl));
        });
        Ok(())
    }

    async fn muted_until(
        &self,
        nas_id: &NasId,
        device_id: &DeviceId,
    ) -> Result<Option<u64>, StoreError> {
        Ok(self.with(|state, now| {
            state
                .mutes
                .get(&(*nas_id, *device_id))
                .filter(|mute| mute.live(now))
                .map(|mute| mute.value)
        }))
    }

    async fn post_notice(
        &self,
        nas_id: &NasId,
        notice: &Notice,
        at: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = notice.coalescing_key();
        self.with(|state, _| {
            state.next_notice += 1;
            let entry = MailboxEntry {
                id: format!("{at}-{}", state.next_notice),
                at,
                notice: notice.clone(),
            };
            let entries = state.mailboxes.entry(*nas_id).or_default();
            entries.retain(|entry| entry.value.notice.coalescing_key() != key);
            entries.push(Expiring::new(entry, ttl));
            let excess = entries.len().saturating_sub(MAILBOX_CAP);
            entries.drain(..excess);
        });
        self.notifier.notify(&Topic::Mailbox(*nas_id));
        Ok(())
    }

    async fn mailbox(&self, nas_id: &NasId, limit: usize) -> Result<Vec<MailboxEntry>, StoreError> {
        Ok(self.with(|state, now| {
            state
                .mailboxes
                .get(nas_id)
                .map(|entries| {
                    entries
                        .iter()
                        .filter(|entry| entry.live(now))
                        .take(limit)
                        .map(|entry| entry.value.clone())
                        .collect()
                })
                .unwrap_or_default()
        }))
    }

    async fn ack_mailbox(&self, nas_id: &NasId, ids: &[String]) -> Result<(), StoreError> {
        self.with(|state, _| {
            if let Some(entries) = state.mailboxes.get_mut(nas_id) {
                entries.retain(|entry| !ids.contains(&entry.value.id));
            }
        });
        Ok(())
    }

    async fn watch(&self, topic: Topic) -> Result<Watch, StoreError> {
        Ok(self.notifier.watch(topic))
    }

    fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
