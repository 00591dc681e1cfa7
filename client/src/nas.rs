//! The NAS side of the protocol: open a pairing slot and verify the phone's claim (MAC under
//! the pairing secret, signature, weak keys, slot, expiry), confirm it, seal and sign challenges
//! for paired devices, and verify verdicts end to end — against the keys *this NAS* recorded,
//! never anything the relay says. Keeps no files (callers persist [`PairedDevice`]s).

use std::time::Duration;

use approvd_proto::context::{self, ContextBinding, LoginContext};
use approvd_proto::pairing::{self, PairingSecret, PairingUri};
use approvd_proto::totp::{CodeSecret, CodeSecretBinding};
use approvd_proto::wire::{
    ChallengeCreated, ChallengeTarget, CreateChallengeRequest, CreatePairingRequest, Mailbox,
    MailboxAck, Notice, PairingAcceptance, PairingClaimed, PairingConfirmation, PairingCreated,
    PushHandle, Sealed, SealedCodeSecret, SignedVerdict,
};
use approvd_proto::{
    Challenge, Cid, Decision, DeviceId, Digest, NasId, PairAccept, PairClaim, PairConfirm,
    PairingId, PublicKey, SealKey, SignedMessage as _,
};
use ed25519_dalek::SigningKey;

use crate::transport::{unix_now, ClientError, RelayClient};

/// A phone paired with this NAS: what the NAS must remember about it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PairedDevice {
    pub device_id: DeviceId,
    /// `D_sig`: verdicts, unpair and mute notices must verify under this key.
    pub sig_key: PublicKey,
    /// `Dx`: login contexts are sealed to it.
    pub seal_key: SealKey,
    pub name: String,
    pub platform: String,
    /// The relay's handle for this pairing (sent back with every challenge).
    pub push_handle: PushHandle,
    pub paired_at: u64,
}

/// A claim that passed every check and that this NAS has committed to (`pair-accept` is
/// posted): the phone now shows its 6-digit code, and the user types it here.
#[derive(Debug, Clone)]
pub struct VerifiedClaim {
    pub claimed: PairingClaimed,
    /// The phone's name and platform, opened with the QR code's secret.
    pub device: pairing::DeviceInfo,
    /// The pairing secret from the QR code (for the code check), erased with this value.
    secret: PairingSecret,
}

impl VerifiedClaim {
    /// Whether `typed` is the code the phone shows (constant-time). The user types it: there is
    /// deliberately no way to show the code for a yes/no comparison (N-7: a rushed "Yes" would
    /// pair a bystander who claimed first).
    pub fn code_matches(&self, typed: &str) -> bool {
        pairing::sas_matches(&self.secret, &self.claimed.claim, typed)
    }
}

/// A challenge this NAS sent: what it needs to judge the verdict (serializable, so a daemon
/// can keep judging it after a restart).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SentChallenge {
    pub cid: Cid,
    pub created: u64,
    pub expires: u64,
    /// The number shown on the login page (number matching), if any.
    pub number: Option<String>,
    /// Per device: the hash of the `challenge` message signed for it.
    pub challenge_hashes: Vec<(DeviceId, Digest)>,
    /// The relay's delivery report.
    pub report: ChallengeCreated,
}

/// A verified mailbox notice, for the caller to apply to its device list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxEvent {
    /// Replace the device's push handle.
    HandleRefreshed {
        device_id: DeviceId,
        push_handle: PushHandle,
    },
    /// The device's push token is dead (its inbox still works).
    PushGone { device_id: DeviceId },
    /// The phone unpaired itself (signature verified): forget the device.
    Unpaired { device_id: DeviceId },
    /// The phone muted this NAS until `until` (signature verified).
    Muted { device_id: DeviceId, until: u64 },
    /// A notice that failed verification or names an unknown device.
    Ignored { reason: String },
}

/// The NAS's verdict on a verdict.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Approved {
        device_id: DeviceId,
    },
    Denied {
        device_id: DeviceId,
    },
    /// The phone approved with another number than the login page showed (or none): a deny
    /// that counts toward the account's lockout like any failed sign-in — someone may be
    /// approving requests they did not start.
    WrongNumber {
        device_id: DeviceId,
    },
    FraudReported {
        device_id: DeviceId,
    },
    Expired,
    Cancelled,
    /// The relay returned something that does not pass the NAS's checks: treat as no answer.
    Invalid {
        reason: String,
    },
}

/// Digits of the number shown for number matching (PROTOCOL.md §3.4: at least 3).
pub const NUMBER_DIGITS: u32 = 3;

/// Where a challenge this NAS sent stands. The NAS accepts one verdict per challenge and
/// honours its own cancel, whatever the relay delivers later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeState {
    Pending,
    Decided,
    Cancelled,
}

/// How long after its expiry a challenge's record is kept (so that a caller polling late still
/// learns the outcome), seconds. A forgotten challenge can only be judged expired.
pub const RECORD_RETENTION: u64 = 300;

/// Seconds past a challenge's expiry in which a verdict fetched now still counts (clock skew
/// between the phone, the relay and this NAS); later, the challenge can only be expired.
pub const VERDICT_GRACE: u64 = 5;

/// Most challenges one account may have pending at once: [`NUMBER_DIGITS`] numbers must stay
/// distinct among them, and a caller hammering one name must not fill the number space.
pub const MAX_PENDING_PER_USER: usize = 100;

/// What this NAS remembers of a challenge it sent: the one record per challenge, from which
/// its verdict is judged, its number kept apart from the user's other prompts, and its outcome
/// answered once decided. Serializable, so a daemon can keep judging it after a restart
/// ([`Nas::pending_records`], [`Nas::restore`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChallengeRecord {
    /// The account whose phones were asked.
    pub user: String,
    pub sent: SentChallenge,
    /// The devices asked, as they were when it was sent (their keys judge the verdict).
    pub devices: Vec<PairedDevice>,
    /// The final outcome: a verified verdict, [`Outcome::Expired`] or [`Outcome::Cancelled`]
    /// (never [`Outcome::Invalid`]). `None` while pending.
    pub outcome: Option<Outcome>,
}

impl ChallengeRecord {
    pub fn state(&self) -> ChallengeState {
        match self.outcome {
            None => ChallengeState::Pending,
            Some(Outcome::Cancelled) => ChallengeState::Cancelled,
            Some(_) => ChallengeState::Decided,
        }
    }
}

/// A NAS identity talking to one relay. Clones share the record of live challenges.
#[derive(Debug, Clone)]
pub struct Nas {
    key: SigningKey,
    client: RelayClient,
    /// Approvals must carry `user_verified` ([`Nas::require_user_verification`]).
    require_user_verification: bool,
    /// Accounts whose approvals must carry `user_verified`
    /// ([`Nas::require_user_verification_for`]), shared by clones.
    verified_accounts: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// Every challenge sent and not yet forgotten ([`RECORD_RETENTION`]), shared by clones.
    live: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<Cid, ChallengeRecord>>>,
    /// The one acceptance signed per pairing slot, until the slot expires (N-6): a retried
    /// [`Nas::wait_for_claim`] re-sends it, and never signs one for another claim.
    accepted: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<PairingId, Accepted>>>,
}

/// The acceptance a NAS signed for a slot ([`Nas::wait_for_claim`]).
#[derive(Debug, Clone)]
struct Accepted {
    claim_hash: Digest,
    body: PairingAcceptance,
    /// The slot's expiry: the record is dropped after it.
    expires_at: u64,
}

impl Nas {
    pub fn new(relay_url: &str, key: SigningKey) -> Result<Self, ClientError> {
        Ok(Self {
            client: RelayClient::new(relay_url, key.clone())?,
            key,
            live: Default::default(),
            accepted: Default::default(),
            require_user_verification: false,
            verified_accounts: Default::default(),
        })
    }

    /// Accept an approval only when the phone says the user unlocked its approval key with
    /// biometrics or a passcode (`verdict.user_verified`): a phone left unlocked on a desk then
    /// cannot approve by a tap alone. Off by default (not every phone can gate the key).
    pub fn require_user_verification(&mut self, required: bool) {
        self.require_user_verification = required;
    }

    /// [`Nas::require_user_verification`] for one account's sign-ins only (a per-account
    /// policy, I-9): approvals of challenges sent to `account` must carry `user_verified`,
    /// judged when the verdict arrives (so it also applies to challenges already pending).
    pub fn require_user_verification_for(&self, account: &str, required: bool) {
        let mut accounts = self
            .verified_accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if required {
            accounts.insert(account.to_owned());
        } else {
            accounts.remove(account);
        }
    }

    /// Whether an approval of a challenge sent to `account` must carry `user_verified`.
    fn needs_user_verification(&self, account: Option<&str>) -> bool {
        self.require_user_verification
            || account.is_some_and(|account| {
                self.verified_accounts
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .contains(account)
            })
    }

    fn live(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<Cid, ChallengeRecord>> {
        // A panic while holding the lock leaves only this bookkeeping behind: keep using it.
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where challenge `cid` stands for this NAS (`None`: not sent by it, or forgotten after
    /// expiry).
    pub fn challenge_state(&self, cid: &Cid) -> Option<ChallengeState> {
        self.live().get(cid).map(ChallengeRecord::state)
    }

    /// This NAS's record of challenge `cid` (`None`: not sent by it, or forgotten).
    pub fn record(&self, cid: &Cid) -> Option<ChallengeRecord> {
        self.live().get(cid).cloned()
    }

    /// The records of every challenge not yet forgotten at `now` ([`RECORD_RETENTION`] after
    /// its expiry), pending, cancelled or decided: what a daemon keeps on disk so that after a
    /// restart its pending challenges are still judged and its cancels and verdicts still
    /// stand (a cancelled challenge never turns `approved`).
    pub fn kept_records(&self, now: u64) -> Vec<ChallengeRecord> {
        self.live()
            .values()
            .filter(|record| record.sent.expires + RECORD_RETENTION > now)
            .cloned()
            .collect()
    }

    /// How many challenges of `user` are pending and not expired at `now`.
    pub fn pending_for(&self, user: &str, now: u64) -> usize {
        self.live()
            .values()
            .filter(|record| {
                record.user == user && record.outcome.is_none() && record.sent.expires >= now
            })
            .count()
    }

    /// Take back a record kept by [`Nas::kept_records`] (one whose delivery report names
    /// another challenge is refused), with its outcome if it had one. Its verdict is still
    /// judged only against its own hashes and this NAS's key.
    pub fn restore(&self, record: ChallengeRecord) -> Result<(), ClientError> {
        if record.sent.report.cid != record.sent.cid {
            return Err(verification(
                "a record whose report names another challenge",
            ));
        }
        self.live().insert(record.sent.cid, record);
        Ok(())
    }

    /// Record the final `outcome` of `cid` unless one is recorded already (the first wins).
    fn settle(&self, cid: &Cid, outcome: &Outcome) {
        Self::settle_in(&mut self.live(), cid, outcome);
    }

    fn settle_in(
        live: &mut std::collections::HashMap<Cid, ChallengeRecord>,
        cid: &Cid,
        outcome: &Outcome,
    ) {
        if matches!(outcome, Outcome::Invalid { .. }) {
            return;
        }
        if let Some(record) = live.get_mut(cid) {
            record.outcome.get_or_insert_with(|| outcome.clone());
        }
    }

    /// Record `cid` as expired if it is still pending past its expiry and [`VERDICT_GRACE`] at
    /// `now` (no verdict fetched from then on could count); whether it is now decided.
    pub fn settle_overdue(&self, cid: &Cid, now: u64) -> bool {
        let mut live = self.live();
        let Some(record) = live.get_mut(cid) else {
            return false;
        };
        if record.outcome.is_none() && now > record.sent.expires + VERDICT_GRACE {
            record.outcome = Some(Outcome::Expired);
        }
        record.outcome.is_some()
    }

    /// Record this NAS's own cancel of `cid` (unless it is decided already), without telling
    /// the relay: from now on no verdict counts. [`Nas::cancel`] also tells the relay.
    pub fn withdraw(&self, cid: &Cid) {
        self.settle(cid, &Outcome::Cancelled);
    }

    /// A number of [`NUMBER_DIGITS`] digits, uniform from the CSPRNG, different from the number
    /// of every other challenge of `user` in `live` still pending at `now` (so that two prompts
    /// cannot be confused).
    /// More than [`MAX_PENDING_PER_USER`] pending challenges of `user` are refused, so the
    /// draw always has most numbers free.
    fn draw_number(
        live: &std::collections::HashMap<Cid, ChallengeRecord>,
        user: &str,
        now: u64,
    ) -> Result<String, ClientError> {
        let taken: Vec<&str> = live
            .values()
            .filter(|record| {
                record.user == user && record.outcome.is_none() && record.sent.expires >= now
            })
            .filter_map(|record| record.sent.number.as_deref())
            .collect();
        if taken.len() >= MAX_PENDING_PER_USER {
            return Err(approvd_proto::Error::Invalid {
                field: "user",
                reason: "this account has too many sign-in requests pending; let some end first",
            }
            .into());
        }
        let range = 10u32.pow(NUMBER_DIGITS);
        loop {
            let draw = u32::from_be_bytes(approvd_proto::random_bytes::<4>());
            // Rejection sampling: values past the last whole multiple of `range` would bias.
            if draw >= u32::MAX - u32::MAX % range {
                continue;
            }
            let number = format!("{:0width$}", draw % range, width = NUMBER_DIGITS as usize);
            if !taken.contains(&number.as_str()) {
                return Ok(number);
            }
        }
    }

    pub fn nas_id(&self) -> NasId {
        NasId(PublicKey::from(&self.key))
    }

    pub fn client(&self) -> &RelayClient {
        &self.client
    }

    /// Register a pairing slot for `account` and return the URI to show as a QR code.
    pub async fn start_pairing(
        &self,
        label: &str,
        account: &str,
        ttl: Duration,
    ) -> Result<PairingUri, ClientError> {
        approvd_proto::context::check_text("account", account, pairing::MAX_ACCOUNT, false)?;
        let mut uri = PairingUri {
            relay: self.client.base_url().to_owned(),
            pairing_id: PairingId::random(),
            secret: PairingSecret::generate(),
            nas_id: self.nas_id(),
            label: label.to_owned(),
            account: account.to_owned(),
            expires_at: unix_now() + ttl.as_secs(),
        };
        // Refuse a QR code the phone would refuse before making a slot for it.
        uri.checked_uri()?;
        let request = CreatePairingRequest {
            pairing_id: uri.pairing_id,
            ttl_secs: ttl.as_secs(),
            claim_verifier: uri.secret.claim_verifier(),
        };
        let created: PairingCreated = self
            .client
            .call("POST", "/v1/pairings", "", Some(&request))
            .await?
            .ok_or_else(|| unexpected("an empty answer to POST /v1/pairings"))?;
        uri.pairing_id = created.pairing_id;
        uri.expires_at = created.expires_at;
        uri.checked_uri()?;
        Ok(uri)
    }

    /// Long-poll for the phone's claim, check it completely, and commit to it (`pair-accept`)
    /// so that the phone shows its code. `Ok(None)`: no claim yet. The first valid claim is the
    /// one this slot will confirm; no code is shown for any other.
    pub async fn wait_for_claim(
        &self,
        uri: &PairingUri,
        wait: Duration,
    ) -> Result<Option<VerifiedClaim>, ClientError> {
        let path = format!("/v1/pairings/{}/claim", uri.pairing_id);
        let query = format!("wait={}", wait.as_secs());
        let Some(claimed) = self
            .client
            .call::<(), PairingClaimed>("GET", &path, &query, None)
            .await?
        else {
            return Ok(None);
        };
        let now = unix_now();
        let device = self.verify_claim(uri, &claimed, now)?;
        let body = self.accept_once(uri, &claimed.claim, now)?;
        let path = format!("/v1/pairings/{}/accept", uri.pairing_id);
        self.client
            .call::<_, ()>("POST", &path, "", Some(&body))
            .await?;
        Ok(Some(VerifiedClaim {
            claimed,
            device,
            secret: uri.secret.clone(),
        }))
    }

    /// The acceptance of `claim` for the slot of `uri`: signed the first time, the same one
    /// again when the caller retries, and an error for any other claim — whatever the relay
    /// answered to the first (PROTOCOL.md §5.1 step 4: at most one `pair-accept` per slot, so a
    /// relay that fails the first accept cannot get a second one for a claim it ground).
    fn accept_once(
        &self,
        uri: &PairingUri,
        claim: &PairClaim,
        now: u64,
    ) -> Result<PairingAcceptance, ClientError> {
        let mut accepted = self
            .accepted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        accepted.retain(|_, slot| slot.expires_at > now);
        match accepted.get(&uri.pairing_id) {
            Some(slot) if slot.claim_hash == claim.hash() => Ok(slot.body.clone()),
            Some(_) => Err(verification(
                "the relay offered a second claim for a slot whose first claim this NAS already \
                 accepted: refused (one acceptance per slot); start over with a new QR code",
            )),
            None => {
                let accept = PairAccept {
                    pairing_id: claim.pairing_id,
                    nas_id: self.nas_id(),
                    device_id: claim.device_id,
                    claim_hash: claim.hash(),
                    accepted_at: now,
                };
                let body = PairingAcceptance {
                    sig: accept.sign(&self.key),
                    accept,
                };
                accepted.insert(
                    uri.pairing_id,
                    Accepted {
                        claim_hash: claim.hash(),
                        body: body.clone(),
                        expires_at: uri.expires_at,
                    },
                );
                Ok(body)
            }
        }
    }

    /// The NAS's checks on a claim (PROTOCOL.md §5.1 step 4); returns the phone's name and
    /// platform, which only the holder of the QR code's secret can read.
    pub fn verify_claim(
        &self,
        uri: &PairingUri,
        claimed: &PairingClaimed,
        now: u64,
    ) -> Result<pairing::DeviceInfo, ClientError> {
        let claim = &claimed.claim;
        pairing::verify_claim_mac(&uri.secret, claim, &claimed.mac.0).map_err(|_| {
            verification(
                "the claim's MAC does not verify: it was not made with this QR code's secret",
            )
        })?;
        claim
            .verify(&claim.sig_key, &claimed.sig)
            .map_err(|_| verification("the claim's signature does not verify"))?;
        if claim.nas_id != self.nas_id() || claim.pairing_id != uri.pairing_id {
            return Err(verification("the claim is for another NAS or slot"));
        }
        if uri.expires_at <= now {
            return Err(verification("the pairing slot has expired"));
        }
        approvd_proto::wire::validate_claim(claim)?;
        pairing::open_device_info(&uri.secret, claim).map_err(|_| {
            verification("the claim's device name does not open with this QR code's secret")
        })
    }

    /// Confirm a verified claim once the user typed the phone's code: draws the offline-code
    /// secret, seals it to the phone and posts `pair-confirm`. A wrong code confirms nothing
    /// (start over with a new QR code). Returns the device to record and its code secret.
    pub async fn confirm(
        &self,
        verified: &VerifiedClaim,
        typed_code: &str,
    ) -> Result<(PairedDevice, CodeSecret), ClientError> {
        if !verified.code_matches(typed_code) {
            return Err(verification(
                "the code typed is not the one the phone shows: the phone is not paired",
            ));
        }
        let claim = &verified.claimed.claim;
        let code_secret = CodeSecret::generate();
        let sealed = approvd_proto::totp::seal_code_secret(
            &code_secret,
            &CodeSecretBinding {
                pairing_id: claim.pairing_id,
                nas_id: self.nas_id(),
                device_id: claim.device_id,
                claim_hash: claim.hash(),
            },
            &claim.seal_key,
        )?;
        let code_secret_sealed = SealedCodeSecret(
            sealed
                .as_slice()
                .try_into()
                .map_err(|_| unexpected("a sealed code secret of the wrong length"))?,
        );
        let confirm = PairConfirm {
            pairing_id: claim.pairing_id,
            nas_id: self.nas_id(),
            device_id: claim.device_id,
            claim_hash: claim.hash(),
            code_secret_hash: Digest::of(&sealed),
            confirmed_at: unix_now(),
        };
        let body = PairingConfirmation {
            sig: confirm.sign(&self.key),
            confirm,
            code_secret: code_secret_sealed,
        };
        let path = format!("/v1/pairings/{}/confirm", claim.pairing_id);
        self.client
            .call::<_, ()>("POST", &path, "", Some(&body))
            .await?;
        let device = PairedDevice {
            device_id: claim.device_id,
            sig_key: claim.sig_key,
            seal_key: claim.seal_key,
            name: verified.device.name.clone(),
            platform: verified.device.platform.clone(),
            push_handle: verified.claimed.push_handle.clone(),
            paired_at: unix_now(),
        };
        Ok((device, code_secret))
    }

    /// Seal `context` for each device, sign one `challenge` per device, and post them.
    /// With `number_matching` (required for `login` and `passwordless`), a 3-digit number is
    /// drawn: show it on the login page.
    pub async fn request_approval(
        &self,
        devices: &[PairedDevice],
        context: &LoginContext,
        number_matching: bool,
        lifetime: Duration,
    ) -> Result<SentChallenge, ClientError> {
        let (request, sent) = self.build_challenge(devices, context, number_matching, lifetime)?;
        let posted = self
            .client
            .call("POST", "/v1/challenges", "", Some(&request))
            .await
            .and_then(|report: Option<ChallengeCreated>| {
                report.ok_or_else(|| unexpected("an empty answer to POST /v1/challenges"))
            });
        let report = match posted {
            Ok(report) => report,
            Err(error) => {
                // Not sent (or not known to be): no record, so its number is free again.
                self.live().remove(&sent.cid);
                return Err(error);
            }
        };
        if let Some(record) = self.live().get_mut(&sent.cid) {
            record.sent.report = report.clone();
        }
        Ok(SentChallenge { report, ..sent })
    }

    /// The request [`Nas::request_approval`] posts (exposed for tests and custom transports).
    pub fn build_challenge(
        &self,
        devices: &[PairedDevice],
        context: &LoginContext,
        number_matching: bool,
        lifetime: Duration,
    ) -> Result<(CreateChallengeRequest, SentChallenge), ClientError> {
        if context.requires_number_matching() && !number_matching {
            return Err(approvd_proto::Error::Invalid {
                field: "number_matching",
                reason: "a login or passwordless sign-in requires number matching",
            }
            .into());
        }
        let cid = Cid::random();
        let created = unix_now();
        let expires = created + lifetime.as_secs();
        let mut targets = Vec::with_capacity(devices.len());
        let mut challenge_hashes = Vec::with_capacity(devices.len());
        for device in devices {
            let binding = ContextBinding {
                cid,
                nas_id: self.nas_id(),
                device_id: device.device_id,
                created,
                expires,
                number_matching,
            };
            let sealed = context::seal(context, &binding, &device.seal_key)?;
            let challenge = Challenge {
                cid,
                nas_id: self.nas_id(),
                device_id: device.device_id,
                created,
                expires,
                number_matching,
                context_hash: context::context_hash(&sealed),
            };
            challenge_hashes.push((device.device_id, challenge.hash()));
            targets.push(ChallengeTarget {
                device_id: device.device_id,
                push_handle: device.push_handle.clone(),
                sig: challenge.sign(&self.key),
                sealed: Sealed(sealed),
            });
        }
        let request = CreateChallengeRequest {
            cid,
            created,
            expires,
            number_matching,
            targets,
        };
        let mut live = self.live();
        live.retain(|_, record| record.sent.expires + RECORD_RETENTION > created);
        let number = number_matching
            .then(|| Self::draw_number(&live, &context.user, created))
            .transpose()?;
        let sent = SentChallenge {
            cid,
            created,
            expires,
            number,
            challenge_hashes,
            report: ChallengeCreated {
                cid,
                expires,
                deliveries: Vec::new(),
            },
        };
        live.insert(
            cid,
            ChallengeRecord {
                user: context.user.clone(),
                sent: sent.clone(),
                devices: devices.to_vec(),
                outcome: None,
            },
        );
        Ok((request, sent))
    }

    /// Long-poll for the verdict and judge it. `Ok(None)`: still pending. The first final
    /// outcome is recorded: later verdicts for the same challenge, and any verdict after this
    /// NAS cancelled it, are refused whatever the relay says.
    pub async fn wait_for_verdict(
        &self,
        sent: &SentChallenge,
        devices: &[PairedDevice],
        wait: Duration,
    ) -> Result<Option<Outcome>, ClientError> {
        let path = format!("/v1/challenges/{}/verdict", sent.cid);
        let query = format!("wait={}", wait.as_secs());
        match self
            .client
            .call::<(), SignedVerdict>("GET", &path, &query, None)
            .await
        {
            Ok(Some(verdict)) => {
                // Judge and record under one lock: two polls sharing this NAS never accept two
                // verdicts for one challenge, and a cancel cannot slip in between.
                let mut live = self.live();
                let record = live.get(&sent.cid);
                let state = record.map(ChallengeRecord::state);
                let verified = self.needs_user_verification(record.map(|r| r.user.as_str()));
                let outcome = self.judge_in(state, verified, sent, devices, &verdict, unix_now());
                Self::settle_in(&mut live, &sent.cid, &outcome);
                Ok(Some(outcome))
            }
            Ok(None) => Ok(None),
            Err(error) => {
                let outcome = match error.problem_name() {
                    Some("challenge-expired") => Outcome::Expired,
                    Some("challenge-cancelled") => Outcome::Cancelled,
                    _ => return Err(error),
                };
                self.settle(&sent.cid, &outcome);
                Ok(Some(outcome))
            }
        }
    }

    /// [`Nas::wait_for_verdict`] for a challenge of this NAS's record, answered from the
    /// record once it is decided. `Ok(None)`: still pending, or not a challenge this NAS
    /// remembers (see [`Nas::record`]).
    pub async fn poll_recorded(
        &self,
        cid: &Cid,
        wait: Duration,
    ) -> Result<Option<Outcome>, ClientError> {
        let Some(record) = self.record(cid) else {
            return Ok(None);
        };
        if let Some(outcome) = record.outcome {
            return Ok(Some(outcome));
        }
        self.wait_for_verdict(&record.sent, &record.devices, wait)
            .await
    }

    /// The NAS's checks on a verdict (PROTOCOL.md §11): only keys and hashes this NAS holds,
    /// and its own record of the challenge (cancelled: [`Outcome::Cancelled`]; decided
    /// already: invalid). Does not record anything ([`Nas::wait_for_verdict`] does).
    pub fn judge(
        &self,
        sent: &SentChallenge,
        devices: &[PairedDevice],
        signed: &SignedVerdict,
        now: u64,
    ) -> Outcome {
        let user = self.record(&sent.cid).map(|record| record.user);
        let verified = self.needs_user_verification(user.as_deref());
        self.judge_in(
            self.challenge_state(&sent.cid),
            verified,
            sent,
            devices,
            signed,
            now,
        )
    }

    /// [`Nas::judge`] given the challenge's recorded state and whether an approval must be
    /// user-verified.
    fn judge_in(
        &self,
        state: Option<ChallengeState>,
        user_verification: bool,
        sent: &SentChallenge,
        devices: &[PairedDevice],
        signed: &SignedVerdict,
        now: u64,
    ) -> Outcome {
        let verdict = &signed.verdict;
        let invalid = |reason: &str| Outcome::Invalid {
            reason: reason.to_owned(),
        };
        match state {
            Some(ChallengeState::Cancelled) => return Outcome::Cancelled,
            Some(ChallengeState::Decided) => {
                return invalid("this challenge is decided already: one verdict per challenge")
            }
            Some(ChallengeState::Pending) | None => {}
        }
        let Some(device) = devices
            .iter()
            .find(|device| device.device_id == verdict.device_id)
        else {
            return invalid("the verdict comes from a device this NAS did not pair");
        };
        if verdict.verify(&device.sig_key, &signed.sig).is_err() {
            return invalid("the verdict signature does not verify under the recorded D_sig");
        }
        if verdict.cid != sent.cid || verdict.nas_id != self.nas_id() {
            return invalid("the verdict is for another challenge or NAS");
        }
        let expected_hash = sent
            .challenge_hashes
            .iter()
            .find(|(device_id, _)| *device_id == verdict.device_id)
            .map(|(_, hash)| *hash);
        if expected_hash != Some(verdict.challenge_hash) {
            return invalid("the verdict does not answer the challenge this NAS sent that device");
        }
        if verdict.decided_at > sent.expires || now > sent.expires + VERDICT_GRACE {
            return Outcome::Expired;
        }
        match verdict.decision {
            Decision::Approve => {
                let number_ok = match (&sent.number, &verdict.number) {
                    (None, _) => true,
                    (Some(expected), Some(typed)) => bool::from(subtle::ConstantTimeEq::ct_eq(
                        expected.as_bytes(),
                        typed.as_bytes(),
                    )),
                    (Some(_), None) => false,
                };
                if !number_ok {
                    return Outcome::WrongNumber {
                        device_id: device.device_id,
                    };
                }
                if user_verification && !verdict.user_verified {
                    return invalid(
                        "approved without user verification, which this NAS requires for the \
                         account",
                    );
                }
                Outcome::Approved {
                    device_id: device.device_id,
                }
            }
            Decision::Deny => Outcome::Denied {
                device_id: device.device_id,
            },
            Decision::Fraud => Outcome::FraudReported {
                device_id: device.device_id,
            },
        }
    }

    /// Fetch the mailbox, verify every notice against this NAS's records, acknowledge them all,
    /// and return what the caller should apply. Notices that fail verification are reported as
    /// `Ignored` (a relay cannot unpair or mute a device on its own).
    pub async fn drain_mailbox(
        &self,
        devices: &[PairedDevice],
        wait: Duration,
    ) -> Result<Vec<MailboxEvent>, ClientError> {
        let mut events = Vec::new();
        let mut query = format!("wait={}", wait.as_secs());
        // The relay answers a page at a time; after acknowledging one, ask for the next.
        while let Some(mailbox) = self
            .client
            .call::<(), Mailbox>("GET", "/v1/mailbox", &query, None)
            .await?
        {
            let more = mailbox.more;
            events.extend(self.apply_page(devices, mailbox).await?);
            if !more {
                break;
            }
            query = "wait=0".to_owned();
        }
        Ok(events)
    }

    /// Judge one page of notices, then acknowledge it.
    async fn apply_page(
        &self,
        devices: &[PairedDevice],
        mailbox: Mailbox,
    ) -> Result<Vec<MailboxEvent>, ClientError> {
        let known =
            |device_id: &DeviceId| devices.iter().find(|device| device.device_id == *device_id);
        let mut events = Vec::with_capacity(mailbox.entries.len());
        for entry in &mailbox.entries {
            let event = match &entry.notice {
                Notice::HandleRefreshed {
                    device_id,
                    push_handle,
                } => match known(device_id) {
                    Some(_) => MailboxEvent::HandleRefreshed {
                        device_id: *device_id,
                        push_handle: push_handle.clone(),
                    },
                    None => MailboxEvent::Ignored {
                        reason: "handle for an unknown device".to_owned(),
                    },
                },
                Notice::PushGone { device_id } => match known(device_id) {
                    Some(_) => MailboxEvent::PushGone {
                        device_id: *device_id,
                    },
                    None => MailboxEvent::Ignored {
                        reason: "dead token of an unknown device".to_owned(),
                    },
                },
                Notice::Unpaired { unpair, sig } => match known(&unpair.device_id) {
                    Some(device)
                        if unpair.nas_id == self.nas_id()
                            && unpair.verify(&device.sig_key, sig).is_ok() =>
                    {
                        MailboxEvent::Unpaired {
                            device_id: device.device_id,
                        }
                    }
                    _ => MailboxEvent::Ignored {
                        reason: "unpair notice that does not verify".to_owned(),
                    },
                },
                Notice::Muted { mute, sig } => match known(&mute.device_id) {
                    Some(device)
                        if mute.nas_id == self.nas_id()
                            && mute.verify(&device.sig_key, sig).is_ok() =>
                    {
                        MailboxEvent::Muted {
                            device_id: device.device_id,
                            until: mute.until,
                        }
                    }
                    _ => MailboxEvent::Ignored {
                        reason: "mute notice that does not verify".to_owned(),
                    },
                },
            };
            events.push(event);
        }
        let ack = MailboxAck {
            ids: mailbox.entries.into_iter().map(|entry| entry.id).collect(),
        };
        self.client
            .call::<_, ()>("POST", "/v1/mailbox/ack", "", Some(&ack))
            .await?;
        Ok(events)
    }

    /// Cancel a challenge (e.g. the user signed in another way). From now on this NAS refuses
    /// any verdict for it, even if the relay never learns of the cancel.
    pub async fn cancel(&self, cid: &Cid) -> Result<(), ClientError> {
        self.withdraw(cid);
        let path = format!("/v1/challenges/{cid}");
        self.client
            .call::<(), ()>("DELETE", &path, "", None)
            .await?;
        Ok(())
    }
}

fn verification(reason: &str) -> ClientError {
    ClientError::Verification(reason.to_owned())
}

fn unexpected(detail: &str) -> ClientError {
    ClientError::Unexpected {
        status: 200,
        detail: detail.to_owned(),
    }
}
