//! The phone side of the protocol for one pairing: claim a slot from a pairing URI (fresh
//! `D_api`, `D_sig`, `Dx`), verify the NAS's confirmation under the pinned key, fetch the
//! inbox and verify every challenge (signature under the pinned NAS key, expiry, sealed context),
//! sign verdicts, and refresh push, mute or unpair. Keeps no files.

use std::time::Duration;

use approvd_proto::context::{self, ContextBinding, LoginContext, SealSecret};
use approvd_proto::pairing::{self, PairingUri};
use approvd_proto::wire::{
    ClaimMac, ClaimRequest, HandleIssued, Inbox, InboxEntry, PairingConfirmation, PushHandle,
    PushRegistration, RefreshPushRequest, SignedMute, SignedUnpair, SignedVerdict,
};
use approvd_proto::{
    Challenge, Decision, DeviceId, Mute, NasId, PairClaim, PublicKey, SignedMessage as _, Unpair,
    Verdict,
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
    /// Offline-code secret derived from the pairing secret (PROTOCOL.md §5.5).
    totp_secret: [u8; 32],
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
    pub totp_secret: String,
    pub claim: PairClaim,
    pub push_handle: PushHandle,
    pub confirmed: bool,
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
    /// Create keys and claim the slot named by `uri`. Returns the phone and the SAS to show.
    pub async fn enroll(
        uri: &PairingUri,
        device_name: &str,
        platform: &str,
        push: Option<PushRegistration>,
    ) -> Result<(Self, String), ClientError> {
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

    /// [`Phone::enroll`] with given keys (a simple client may pass the same key twice).
    pub async fn enroll_with_keys(
        uri: &PairingUri,
        device_name: &str,
        platform: &str,
        push: Option<PushRegistration>,
        api_key: SigningKey,
        sig_key: SigningKey,
        seal_secret: SealSecret,
    ) -> Result<(Self, String), ClientError> {
        if uri.expires_at <= unix_now() {
            return Err(ClientError::Verification(
                "the pairing QR code has expired".to_owned(),
            ));
        }
        let client = RelayClient::new(&uri.relay, api_key.clone())?;
        let claim = PairClaim {
            pairing_id: uri.pairing_id,
            nas_id: uri.nas_id,
            device_id: DeviceId(PublicKey::from(&api_key)),
            sig_key: PublicKey::from(&sig_key),
            seal_key: seal_secret.public_key(),
            device_name: device_name.to_owned(),
            platform: platform.to_owned(),
            claimed_at: unix_now(),
        };
        approvd_proto::wire::validate_claim(&claim)?;
        let request = ClaimRequest {
            mac: ClaimMac(pairing::claim_mac(&uri.secret, &claim)),
            sig: claim.sign(&sig_key),
            claim: claim.clone(),
            push,
        };
        let path = format!("/v1/pairings/{}/claim", uri.pairing_id);
        let issued: HandleIssued = client
            .call("POST", &path, "", Some(&request))
            .await?
            .ok_or_else(|| ClientError::Unexpected {
                status: 204,
                detail: "no handle in the claim answer".to_owned(),
            })?;
        let sas = pairing::sas(&uri.secret, &claim);
        let totp_secret = approvd_proto::totp::totp_secret(&uri.secret, &claim.device_id);
        Ok((
            Self {
                api_key,
                sig_key,
                seal_secret,
                nas_id: uri.nas_id,
                claim,
                push_handle: issued.push_handle,
                totp_secret,
                client,
            },
            sas,
        ))
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
            totp_secret: encode_b64(&self.totp_secret),
            claim: self.claim.clone(),
            push_handle: self.push_handle.clone(),
            confirmed,
        }
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
        Ok(Self {
            client: RelayClient::new(&state.relay, api_key.clone())?,
            api_key,
            sig_key,
            seal_secret,
            nas_id: state.claim.nas_id,
            claim: state.claim.clone(),
            push_handle: state.push_handle.clone(),
            totp_secret: decode_fixed::<32>("totp_secret", &state.totp_secret)?,
        })
    }

    /// The offline one-time code at `now` (for when the relay or push is unreachable).
    pub fn offline_code(&self, now: u64) -> String {
        approvd_proto::totp::code_at(&self.totp_secret, now)
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

    /// Long-poll for the NAS's confirmation; `Ok(true)` once it arrived and verified.
    pub async fn wait_for_confirmation(&self, wait: Duration) -> Result<bool, ClientError> {
        let path = format!("/v1/pairings/{}/confirmation", self.claim.pairing_id);
        let query = format!("wait={}", wait.as_secs());
        let Some(confirmation) = self
            .client
            .call::<(), PairingConfirmation>("GET", &path, &query, None)
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
        Ok(true)
    }

    /// Fetch the inbox (long-poll up to `wait`) and verify each entry; entries that fail any
    /// check are left out (they are garbage or forgeries, never shown to the user).
    pub async fn inbox(&self, wait: Duration) -> Result<Vec<ReceivedChallenge>, ClientError> {
        let query = format!("wait={}", wait.as_secs());
        let inbox = self
            .client
            .call::<(), Inbox>("GET", "/v1/inbox", &query, None)
            .await?;
        let now = unix_now();
        Ok(inbox
            .map(|inbox| inbox.entries)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|entry| self.verify_entry(entry, now).ok())
            .collect())
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
        Ok(ReceivedChallenge {
            entry,
            challenge,
            context,
        })
    }

    /// Sign a verdict on a verified challenge. `number` is what the user typed.
    pub fn answer(
        &self,
        received: &ReceivedChallenge,
        decision: Decision,
        number: Option<&str>,
    ) -> SignedVerdict {
        let verdict = Verdict {
            cid: received.entry.cid,
            nas_id: self.nas_id,
            device_id: self.device_id(),
            challenge_hash: received.challenge.hash(),
            decision,
            number: number.map(str::to_owned),
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
