//! The phone side of the protocol for one pairing: claim a slot from a pairing URI (fresh
//! `D_api`, `D_sig`, `Dx`), show the code only under the NAS's signed acceptance of this very
//! claim (alarm otherwise), verify the NAS's confirmation under the pinned key and open the
//! offline-code secret it sealed to `Dx`, erase the pairing secret, fetch the
//! inbox and verify every challenge (signature under the pinned NAS key, expiry, sealed context),
//! sign verdicts, and refresh push, mute or unpair. Keeps no files.

use std::time::Duration;

use approvd_proto::context::{self, ContextBinding, LoginContext, SealSecret};
use approvd_proto::pairing::{self, PairingSecret, PairingUri};
use approvd_proto::totp::{CodeSecret, CodeSecretBinding};
use approvd_proto::wire::{
    ClaimMac, ClaimRequest, HandleIssued, Inbox, InboxEntry, PairingAcceptance,
    PairingConfirmation, PushHandle, PushRegistration, RefreshPushRequest, SignedMute,
    SignedUnpair, SignedVerdict,
};
use approvd_proto::{
    Challenge, Cid, Decision, DeviceId, Digest, Mute, NasId, PairClaim, PublicKey,
    SignedMessage as _, Unpair, Verdict,
};
use ed25519_dalek::SigningKey;

use crate::transport::{unix_now, ClientError, RelayClient};

/// A challenge that passed every check, with its opened context.
#[derive(Debug, Clone)]
pub struct ReceivedChallenge {
    pub entry: InboxEntry,
    /// The exact message that was verified (its hash goes into the verdict).
    pub challenge: Challenge,
    pub context: LoginContext,
}

impl ReceivedChallenge {
    /// Whether the NAS retired its key (`kind: retire`, PROTOCOL.md §5.6): delete the pairing
    /// ([`Phone::unpair`] tells the NAS), show `action` once, answer nothing.
    pub fn retires_pairing(&self) -> bool {
        self.context.kind == approvd_proto::context::LoginKind::Retire
    }
}

/// A pairing whose NAS sent nothing that verified for this long is expired by the phone
/// (PROTOCOL.md §5.6): a key its owner abandoned stops being trusted even when the
/// retirement never arrived.
pub const PAIRING_IDLE_LIMIT: u64 = 365 * 86_400;

/// Most challenges one pairing may put in front of the user within [`PROMPT_WINDOW`]; more
/// are held back and counted as suspicious (push bombing, or a relay re-delivering).
pub const MAX_PROMPTS: usize = 10;
/// The window of [`MAX_PROMPTS`], seconds.
pub const PROMPT_WINDOW: u64 = 600;
/// How long past a challenge's expiry an answered `cid` is remembered (clock skew).
pub const REMEMBER_SKEW: u64 = 60;

/// What a phone remembers about the challenges it saw (persisted with its state): a `cid` it
/// answered is never shown again, whatever the relay re-delivers, and prompts are limited per
/// pairing.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PromptMemory {
    /// `(cid, forget after)`: answered here; never prompt again.
    #[serde(default)]
    pub answered: Vec<(Cid, u64)>,
    /// `(cid, first shown at)`: for the prompt limit.
    #[serde(default)]
    pub prompted: Vec<(Cid, u64)>,
    /// `(cid, forget after)`: held back by the prompt limit.
    #[serde(default)]
    pub held_back: Vec<(Cid, u64)>,
    /// When something from this NAS last verified here (or the pairing was made); 0 in state
    /// saved before this was kept, read as "now".
    #[serde(default)]
    pub last_heard: u64,
}

impl PromptMemory {
    fn forget_old(&mut self, now: u64) {
        self.answered.retain(|(_, until)| *until > now);
        self.held_back.retain(|(_, until)| *until > now);
        self.prompted
            .retain(|(_, at)| at.saturating_add(PROMPT_WINDOW) > now);
    }

    fn answered(&self, cid: &Cid) -> bool {
        self.answered.iter().any(|(answered, _)| answered == cid)
    }

    /// Whether `entry` may be shown now; records it as shown (or held back).
    fn admit(&mut self, entry: &InboxEntry, now: u64, limit: usize) -> bool {
        if self.prompted.iter().any(|(cid, _)| *cid == entry.cid) {
            return true;
        }
        if self.prompted.len() >= limit {
            if !self.held_back.iter().any(|(cid, _)| *cid == entry.cid) {
                self.held_back
                    .push((entry.cid, entry.expires + REMEMBER_SKEW));
            }
            return false;
        }
        self.prompted.push((entry.cid, now));
        true
    }
}

/// One pairing of a phone with one NAS.
#[derive(Debug, Clone)]
pub struct Phone {
    /// `D_api`: signs HTTP requests.
    api_key: SigningKey,
    /// `D_sig`: signs verdicts, mutes and unpairs.
    sig_key: SigningKey,
    /// `Dx`: opens sealed contexts.
    seal_secret: SealSecret,
    /// The NAS key pinned from the QR code.
    nas_id: NasId,
    claim: PairClaim,
    push_handle: PushHandle,
    /// The QR code's secret `k`, kept only until the NAS confirmed (for the code).
    pairing_secret: Option<PairingSecret>,
    /// Offline-code secret the NAS sealed to `Dx` in its confirmation (PROTOCOL.md §5.5).
    code_secret: Option<CodeSecret>,
    memory: std::sync::Arc<std::sync::Mutex<PromptMemory>>,
    /// [`MAX_PROMPTS`] unless changed with [`Phone::set_prompt_limit`].
    prompt_limit: usize,
    /// Whether `D_sig` signs only after the user's biometrics or passcode (see
    /// [`Phone::set_user_verified_signing`]).
    user_verified_signing: bool,
    client: RelayClient,
}

/// Everything a phone must keep for one pairing (secret: store it privately).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct PhoneState {
    pub relay: String,
    pub nas_label: String,
    pub api_secret: String,
    pub sig_secret: String,
    pub seal_secret: String,
    /// `k`, until the pairing is confirmed; then erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairing_secret: Option<String>,
    /// The offline-code secret, once confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_secret: Option<String>,
    pub claim: PairClaim,
    pub push_handle: PushHandle,
    pub confirmed: bool,
    #[serde(default)]
    pub memory: PromptMemory,
}

impl std::fmt::Debug for PhoneState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhoneState")
            .field("relay", &self.relay)
            .field("device_id", &self.claim.device_id)
            .finish_non_exhaustive()
    }
}

impl Phone {
    /// Create keys and claim the slot named by `uri`. Show no code yet: wait for the NAS to
    /// accept this claim ([`Phone::wait_for_acceptance`]).
    pub async fn enroll(
        uri: &PairingUri,
        device_name: &str,
        platform: &str,
        push: Option<PushRegistration>,
    ) -> Result<Self, ClientError> {
        Self::enroll_with_keys(
            uri,
            device_name,
            platform,
            push,
            approvd_proto::generate_signing_key(),
            approvd_proto::generate_signing_key(),
            SealSecret::generate(),
        )
        .await
    }

    /// [`Phone::enroll`] with given keys (`api_key` and `sig_key` must differ).
    pub async fn enroll_with_keys(
        uri: &PairingUri,
        device_name: &str,
        platform: &str,
        push: Option<PushRegistration>,
        api_key: SigningKey,
        sig_key: SigningKey,
        seal_secret: SealSecret,
    ) -> Result<Self, ClientError> {
        if uri.expires_at <= unix_now() {
            return Err(ClientError::Verification(
                "the pairing QR code has expired".to_owned(),
            ));
        }
        let client = RelayClient::new(&uri.relay, api_key.clone())?;
        let device_id = DeviceId(PublicKey::from(&api_key));
        let info = pairing::DeviceInfo {
            name: device_name.to_owned(),
            platform: platform.to_owned(),
        };
        let claim = PairClaim {
            pairing_id: uri.pairing_id,
            nas_id: uri.nas_id,
            device_id,
            sig_key: PublicKey::from(&sig_key),
            seal_key: seal_secret.public_key(),
            device_info: pairing::seal_device_info(
                &uri.secret,
                &uri.pairing_id,
                &device_id,
                &info,
            )?,
            claimed_at: unix_now(),
        };
        approvd_proto::wire::validate_claim(&claim)?;
        let request = ClaimRequest {
            claim_key: uri.secret.relay_claim_key(),
            mac: ClaimMac(pairing::claim_mac(&uri.secret, &claim)),
            sig: claim.sign(&sig_key),
            claim: claim.clone(),
            push,
        };
        let path = format!("/v1/pairings/{}/claim", uri.pairing_id);
        let issued: HandleIssued = match client.call("POST", &path, "", Some(&request)).await {
            Ok(issued) => issued.ok_or_else(|| ClientError::Unexpected {
                status: 204,
                detail: "no handle in the claim answer".to_owned(),
            })?,
            Err(error) if error.problem_name() == Some("already-claimed") => {
                return Err(ClientError::Alarm(
                    "another device claimed this pairing code first: someone else has seen the \
                     QR code. Do not pair; cancel on the NAS and start again."
                        .to_owned(),
                ))
            }
            Err(error) => return Err(error),
        };
        Ok(Self {
            api_key,
            sig_key,
            seal_secret,
            nas_id: uri.nas_id,
            claim,
            push_handle: issued.push_handle,
            pairing_secret: Some(uri.secret.clone()),
            code_secret: None,
            memory: std::sync::Arc::new(std::sync::Mutex::new(PromptMemory {
                last_heard: unix_now(),
                ..PromptMemory::default()
            })),
            prompt_limit: MAX_PROMPTS,
            user_verified_signing: false,
            client,
        })
    }

    /// The state to persist (with `confirmed` and the NAS label from the caller).
    pub fn to_state(&self, nas_label: &str, confirmed: bool) -> PhoneState {
        use approvd_proto::ids::encode_b64;
        PhoneState {
            relay: self.client.base_url().to_owned(),
            nas_label: nas_label.to_owned(),
            api_secret: encode_b64(&self.api_key.to_bytes()),
            sig_secret: encode_b64(&self.sig_key.to_bytes()),
            seal_secret: encode_b64(&self.seal_secret.to_bytes()),
            pairing_secret: self.pairing_secret.as_ref().map(|k| encode_b64(&k.0)),
            code_secret: self
                .code_secret
                .as_ref()
                .map(|secret| encode_b64(&secret.0)),
            claim: self.claim.clone(),
            push_handle: self.push_handle.clone(),
            confirmed,
            memory: self.memory().clone(),
        }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, PromptMemory> {
        // Only bookkeeping is behind the lock: keep using it after a panic elsewhere.
        self.memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Declare that every verdict this phone signs was unlocked by the user's biometrics or
    /// passcode (the platform gates `D_sig`: Secure Enclave / StrongBox with user presence);
    /// verdicts then carry `user_verified: true`, which a NAS may require. An app MUST NOT set
    /// this unless the platform enforces it.
    pub fn set_user_verified_signing(&mut self, enforced: bool) {
        self.user_verified_signing = enforced;
    }

    /// Show at most `limit` challenges per [`PROMPT_WINDOW`] (default [`MAX_PROMPTS`]); for
    /// tests and tools that drive many challenges through one pairing on purpose.
    pub fn set_prompt_limit(&mut self, limit: usize) {
        self.prompt_limit = limit;
    }

    /// How many challenges the prompt limit is holding back (not yet expired): more than
    /// [`MAX_PROMPTS`] in [`PROMPT_WINDOW`] from one NAS is suspicious — tell the user, and
    /// offer to mute the NAS.
    pub fn held_back_prompts(&self) -> usize {
        let mut memory = self.memory();
        memory.forget_old(unix_now());
        memory.held_back.len()
    }

    /// Restore a phone from its persisted state.
    pub fn from_state(state: &PhoneState) -> Result<Self, ClientError> {
        use approvd_proto::ids::decode_fixed;
        let api_key = SigningKey::from_bytes(&decode_fixed::<32>("api_secret", &state.api_secret)?);
        let sig_key = SigningKey::from_bytes(&decode_fixed::<32>("sig_secret", &state.sig_secret)?);
        let seal_secret =
            SealSecret::from_bytes(decode_fixed::<32>("seal_secret", &state.seal_secret)?);
        if DeviceId(PublicKey::from(&api_key)) != state.claim.device_id
            || PublicKey::from(&sig_key) != state.claim.sig_key
            || seal_secret.public_key() != state.claim.seal_key
        {
            return Err(ClientError::Verification(
                "the stored keys do not match the stored claim".to_owned(),
            ));
        }
        let secret = |field, text: &Option<String>| {
            text.as_deref()
                .map(|text| decode_fixed::<32>(field, text))
                .transpose()
        };
        Ok(Self {
            client: RelayClient::new(&state.relay, api_key.clone())?,
            api_key,
            sig_key,
            seal_secret,
            nas_id: state.claim.nas_id,
            claim: state.claim.clone(),
            push_handle: state.push_handle.clone(),
            pairing_secret: secret("pairing_secret", &state.pairing_secret)?.map(PairingSecret),
            code_secret: secret("code_secret", &state.code_secret)?.map(CodeSecret),
            memory: std::sync::Arc::new(std::sync::Mutex::new(PromptMemory {
                last_heard: match state.memory.last_heard {
                    0 => unix_now(),
                    at => at,
                },
                ..state.memory.clone()
            })),
            prompt_limit: MAX_PROMPTS,
            user_verified_signing: false,
        })
    }

    /// The offline one-time code at `now` (for when the relay or push is unreachable); `None`
    /// until the NAS confirmed the pairing.
    pub fn offline_code(&self, now: u64) -> Option<String> {
        self.code_secret
            .as_ref()
            .map(|secret| approvd_proto::totp::code_at(&secret.0, now))
    }

    pub fn device_id(&self) -> DeviceId {
        self.claim.device_id
    }

    pub fn nas_id(&self) -> NasId {
        self.nas_id
    }

    pub fn client(&self) -> &RelayClient {
        &self.client
    }

    pub fn push_handle(&self) -> &PushHandle {
        &self.push_handle
    }

    /// Long-poll for the NAS's acceptance. `Ok(Some(code))` once it arrived, verified under
    /// the pinned NAS key, and names *this* claim: show the code and ask the user to type it on
    /// the NAS. An acceptance of another claim is an [`ClientError::Alarm`]: someone else used
    /// the QR code, and no code may be shown.
    pub async fn wait_for_acceptance(&self, wait: Duration) -> Result<Option<String>, ClientError> {
        let Some(acceptance) = self
            .poll_slot::<PairingAcceptance>("acceptance", wait)
            .await?
        else {
            return Ok(None);
        };
        self.check_acceptance(&acceptance).map(Some)
    }

    /// Long-poll `/v1/pairings/{pairing_id}/{what}` of this phone's slot.
    async fn poll_slot<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        wait: Duration,
    ) -> Result<Option<T>, ClientError> {
        let path = format!("/v1/pairings/{}/{what}", self.claim.pairing_id);
        let query = format!("wait={}", wait.as_secs());
        self.client.call::<(), T>("GET", &path, &query, None).await
    }

    /// The phone's checks on an acceptance (PROTOCOL.md §5.1 step 4): signed by the pinned NAS
    /// key, for this slot, and naming exactly this phone's claim. Returns the code to show.
    pub fn check_acceptance(&self, acceptance: &PairingAcceptance) -> Result<String, ClientError> {
        let accept = &acceptance.accept;
        accept
            .verify(&self.nas_id.0, &acceptance.sig)
            .map_err(|_| {
                ClientError::Verification(
                    "the acceptance is not signed by the NAS key from the QR code".to_owned(),
                )
            })?;
        if accept.pairing_id != self.claim.pairing_id || accept.nas_id != self.nas_id {
            return Err(ClientError::Verification(
                "the acceptance is for another pairing".to_owned(),
            ));
        }
        if accept.device_id != self.claim.device_id || accept.claim_hash != self.claim.hash() {
            return Err(ClientError::Alarm(
                "the NAS accepted another device's claim: someone else has seen the QR code. \
                 Do not pair; cancel on the NAS and start again."
                    .to_owned(),
            ));
        }
        let secret = self.pairing_secret.as_ref().ok_or_else(|| {
            ClientError::Verification("this pairing is already confirmed".to_owned())
        })?;
        Ok(pairing::sas(secret, &self.claim))
    }

    /// Long-poll for the NAS's confirmation; `Ok(true)` once it arrived, verified, and the
    /// offline-code secret opened. The pairing secret is erased then.
    pub async fn wait_for_confirmation(&mut self, wait: Duration) -> Result<bool, ClientError> {
        let Some(confirmation) = self
            .poll_slot::<PairingConfirmation>("confirmation", wait)
            .await?
        else {
            return Ok(false);
        };
        let confirm = &confirmation.confirm;
        confirm
            .verify(&self.nas_id.0, &confirmation.sig)
            .map_err(|_| {
                ClientError::Verification(
                    "the confirmation is not signed by the NAS key from the QR code".to_owned(),
                )
            })?;
        if confirm.pairing_id != self.claim.pairing_id
            || confirm.nas_id != self.nas_id
            || confirm.device_id != self.claim.device_id
            || confirm.claim_hash != self.claim.hash()
        {
            return Err(ClientError::Verification(
                "the confirmation does not confirm the claim this phone sent".to_owned(),
            ));
        }
        let sealed = &confirmation.code_secret.0;
        if confirm.code_secret_hash != Digest::of(sealed) {
            return Err(ClientError::Verification(
                "the sealed offline-code secret is not the one the NAS signed".to_owned(),
            ));
        }
        let binding = CodeSecretBinding {
            pairing_id: confirm.pairing_id,
            nas_id: confirm.nas_id,
            device_id: confirm.device_id,
            claim_hash: confirm.claim_hash,
        };
        let code_secret =
            approvd_proto::totp::open_code_secret(sealed, &binding, &self.seal_secret).map_err(
                |_| ClientError::Verification("the offline-code secret does not open".to_owned()),
            )?;
        self.code_secret = Some(code_secret);
        self.pairing_secret = None;
        Ok(true)
    }

    /// Fetch the inbox (long-poll up to `wait`) and verify each entry; entries that fail any
    /// check are left out (they are garbage or forgeries, never shown to the user), and so are
    /// challenges this phone answered already and those past the prompt limit
    /// ([`Phone::held_back_prompts`]).
    pub async fn inbox(&self, wait: Duration) -> Result<Vec<ReceivedChallenge>, ClientError> {
        let query = format!("wait={}", wait.as_secs());
        let inbox = self
            .client
            .call::<(), Inbox>("GET", "/v1/inbox", &query, None)
            .await?;
        let now = unix_now();
        let verified: Vec<ReceivedChallenge> = inbox
            .map(|inbox| inbox.entries)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|entry| self.verify_entry(entry, now).ok())
            .collect();
        let mut memory = self.memory();
        memory.forget_old(now);
        if !verified.is_empty() {
            memory.last_heard = memory.last_heard.max(now);
        }
        // A retirement is never held back by the prompt limit: it ends the pairing.
        Ok(verified
            .into_iter()
            .filter(|received| {
                received.retires_pairing() || memory.admit(&received.entry, now, self.prompt_limit)
            })
            .collect())
    }

    /// Whether nothing from the NAS verified here for [`PAIRING_IDLE_LIMIT`]: the pairing has
    /// expired; delete it (as for a retirement) and tell the user.
    pub fn unused_for_long(&self, now: u64) -> bool {
        now.saturating_sub(self.memory().last_heard) > PAIRING_IDLE_LIMIT
    }

    /// The phone's checks on one inbox entry (PROTOCOL.md §11).
    pub fn verify_entry(
        &self,
        entry: InboxEntry,
        now: u64,
    ) -> Result<ReceivedChallenge, ClientError> {
        if entry.nas_id != self.nas_id {
            return Err(ClientError::Verification(
                "from a NAS this pairing does not know".to_owned(),
            ));
        }
        if self.memory().answered(&entry.cid) {
            return Err(ClientError::Verification(
                "answered already on this phone: a re-delivery is never shown again".to_owned(),
            ));
        }
        let challenge = entry.challenge(self.device_id());
        challenge.verify(&self.nas_id.0, &entry.sig).map_err(|_| {
            ClientError::Verification(
                "the challenge is not signed by the pinned NAS key".to_owned(),
            )
        })?;
        if entry.expires <= now
            || entry.expires.saturating_sub(entry.created)
                > approvd_proto::wire::MAX_CHALLENGE_LIFETIME
        {
            return Err(ClientError::Verification(
                "the challenge has expired".to_owned(),
            ));
        }
        let binding = ContextBinding {
            cid: entry.cid,
            nas_id: entry.nas_id,
            device_id: self.device_id(),
            created: entry.created,
            expires: entry.expires,
            number_matching: entry.number_matching,
        };
        let context = context::open(&entry.sealed.0, &binding, &self.seal_secret)?;
        if context.requires_number_matching() && !entry.number_matching {
            return Err(ClientError::Verification(
                "a sign-in without number matching is refused (PROTOCOL.md §3.4)".to_owned(),
            ));
        }
        Ok(ReceivedChallenge {
            entry,
            challenge,
            context,
        })
    }

    /// Sign a verdict on a verified challenge. `number` is what the user typed. The phone
    /// remembers the `cid` until it expires and never shows it again.
    pub fn answer(
        &self,
        received: &ReceivedChallenge,
        decision: Decision,
        number: Option<&str>,
    ) -> SignedVerdict {
        let forget_after = received.entry.expires + REMEMBER_SKEW;
        self.memory()
            .answered
            .push((received.entry.cid, forget_after));
        let verdict = Verdict {
            cid: received.entry.cid,
            nas_id: self.nas_id,
            device_id: self.device_id(),
            challenge_hash: received.challenge.hash(),
            decision,
            number: number.map(str::to_owned),
            user_verified: self.user_verified_signing,
            decided_at: unix_now(),
        };
        SignedVerdict {
            sig: verdict.sign(&self.sig_key),
            verdict,
        }
    }

    /// Send a signed verdict.
    pub async fn submit(&self, verdict: &SignedVerdict) -> Result<(), ClientError> {
        let path = format!("/v1/challenges/{}/verdict", verdict.verdict.cid);
        self.client
            .call::<_, ()>("POST", &path, "", Some(verdict))
            .await?;
        Ok(())
    }

    /// Replace the push registration (or turn push off with `None`).
    pub async fn refresh_push(
        &mut self,
        push: Option<PushRegistration>,
    ) -> Result<(), ClientError> {
        let request = RefreshPushRequest {
            push_handle: self.push_handle.clone(),
            push,
        };
        let issued: HandleIssued = self
            .client
            .call("POST", "/v1/devices/push", "", Some(&request))
            .await?
            .ok_or_else(|| ClientError::Unexpected {
                status: 204,
                detail: "no handle in the refresh answer".to_owned(),
            })?;
        self.push_handle = issued.push_handle;
        Ok(())
    }

    /// Ask the relay not to push this NAS's challenges until `until` (unix seconds).
    pub async fn mute(&self, until: u64) -> Result<(), ClientError> {
        let mute = Mute {
            nas_id: self.nas_id,
            device_id: self.device_id(),
            until,
            muted_at: unix_now(),
        };
        let request = SignedMute {
            sig: mute.sign(&self.sig_key),
            mute,
            push_handle: self.push_handle.clone(),
        };
        self.client
            .call::<_, ()>("POST", "/v1/devices/mute", "", Some(&request))
            .await?;
        Ok(())
    }

    /// Tell the NAS (through the relay) that this phone forgets the pairing.
    pub async fn unpair(&self) -> Result<(), ClientError> {
        let unpair = Unpair {
            nas_id: self.nas_id,
            device_id: self.device_id(),
            unpaired_at: unix_now(),
        };
        let request = SignedUnpair {
            sig: unpair.sign(&self.sig_key),
            unpair,
            push_handle: self.push_handle.clone(),
        };
        self.client
            .call::<_, ()>("POST", "/v1/devices/unpair", "", Some(&request))
            .await?;
        Ok(())
    }

    /// The API key (for tests that need to hand-craft requests).
    pub fn api_key(&self) -> &SigningKey {
        &self.api_key
    }

    /// The verdict key (for tests that need to hand-craft messages).
    pub fn sig_key(&self) -> &SigningKey {
        &self.sig_key
    }
}
