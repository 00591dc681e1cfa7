//! JSON bodies of every relay endpoint, shared by the relay, the SDK and the OpenAPI document.
//! Owns field names, size limits and cheap structural validation; signatures inside these
//! bodies are checked by whoever holds the key (see PROTOCOL.md "who verifies what").

use crate::ids::{
    decode_b64, encode_b64, fixed_bytes, Cid, ClaimKey, DeviceId, Digest, NasId, PairingId, Sig,
};
use crate::limits::MAX_SEALED;
pub use crate::limits::{
    MAX_ACK, MAX_BODY, MAX_CHALLENGE_LIFETIME, MAX_DEVICE_NAME, MAX_HANDLE, MAX_NUMBER,
    MAX_PLATFORM, MAX_PUSH_TOKEN, MAX_TARGETS, MAX_TOPIC, MIN_NUMBER,
};
use crate::signed::{Challenge, Mute, PairAccept, PairClaim, PairConfirm, Unpair, Verdict};
use crate::Error;

/// Default challenge lifetime, seconds.
pub const DEFAULT_CHALLENGE_LIFETIME: u64 = 60;

/// Defines a variable-length byte-string newtype that is base64url on the wire.
macro_rules! blob {
    ($(#[$meta:meta])* $name:ident, $max:expr, $field:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(pub Vec<u8>);

        impl $name {
            /// Parse from unpadded base64url.
            pub fn parse(text: &str) -> Result<Self, Error> {
                let bytes = decode_b64($field, text, $max)?;
                if bytes.is_empty() {
                    return Err(Error::Empty { field: $field });
                }
                Ok(Self(bytes))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({} bytes)", stringify!($name), self.0.len())
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::ids::b64_schema(concat!($field, ": base64url (no padding), opaque bytes"), Some(1), Some($max))
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&encode_b64(&self.0))
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

blob!(
    /// An opaque push handle minted by the relay. Only the relay that minted it can open it.
    PushHandle, MAX_HANDLE, "push_handle"
);
blob!(
    /// A sealed login context: `enc || ciphertext` (see `context`).
    Sealed, MAX_SEALED, "sealed"
);
fixed_bytes!(
    /// HMAC-SHA256 of a pairing claim under the pairing secret's MAC subkey.
    ClaimMac, 32, "mac"
);
fixed_bytes!(
    /// The offline-code secret sealed to the phone's `Dx`: `enc || ciphertext` (see `totp`).
    SealedCodeSecret, 80, "code_secret"
);

/// Which push service a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PushProvider {
    Apns,
    Fcm,
    /// Web Push (RFC 8030): a browser's push subscription, pushed with the relay operator's
    /// VAPID key (PROTOCOL.md §6a).
    Webpush,
}

/// `200` to `GET /v1/push/webpush`: the relay's VAPID public key. A page subscribes with it
/// (`applicationServerKey`) and registers it as its push `topic`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WebPushKey {
    /// The P-256 public key, uncompressed (65 bytes), base64url without padding.
    pub vapid_public_key: String,
}

/// A phone's push registration. Sent to the relay only, which seals it into a push handle.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PushRegistration {
    pub provider: PushProvider,
    /// The APNs device token (hex), the FCM registration token, or the Web Push subscription's
    /// `endpoint` (an https URL).
    pub token: String,
    /// APNs topic (bundle id), FCM app id, or for Web Push the relay's VAPID public key the
    /// subscription was made with: selects the relay's credentials.
    pub topic: String,
    /// Web Push only: the subscription's `keys.p256dh` (base64url, 65 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p256dh: Option<String>,
    /// Web Push only: the subscription's `keys.auth` (base64url, 16 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
}

impl std::fmt::Debug for PushRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Push tokens are secrets for logging purposes: never printed.
        f.debug_struct("PushRegistration")
            .field("provider", &self.provider)
            .field("token", &"<redacted>")
            .field("topic", &self.topic)
            .finish()
    }
}

impl Validate for PushRegistration {
    fn validate(&self) -> Result<(), Error> {
        check_printable("push.token", &self.token, MAX_PUSH_TOKEN)?;
        check_printable("push.topic", &self.topic, MAX_TOPIC)?;
        let keys = |field, value: &Option<String>, bytes: usize| match value {
            Some(value) if crate::ids::decode_b64_len(value) == Some(bytes) => Ok(()),
            _ => Err(Error::Invalid {
                field,
                reason: "a Web Push subscription needs `p256dh` (65 bytes) and `auth` (16 \
                         bytes), base64url",
            }),
        };
        match self.provider {
            PushProvider::Webpush => {
                if !self.token.starts_with("https://") {
                    return Err(Error::Invalid {
                        field: "push.token",
                        reason: "a Web Push endpoint is an https:// URL",
                    });
                }
                keys("push.p256dh", &self.p256dh, 65)?;
                keys("push.auth", &self.auth, 16)
            }
            PushProvider::Apns | PushProvider::Fcm => {
                if self.p256dh.is_some() || self.auth.is_some() {
                    return Err(Error::Invalid {
                        field: "push.p256dh",
                        reason: "only Web Push registrations carry `p256dh` and `auth`",
                    });
                }
                Ok(())
            }
        }
    }
}

/// Non-empty printable ASCII of at most `max` bytes.
fn check_printable(field: &'static str, value: &str, max: usize) -> Result<(), Error> {
    crate::limits::check_text(field, value, max, false)?;
    if !value.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Error::Invalid {
            field,
            reason: "must be printable ASCII without spaces",
        });
    }
    Ok(())
}

/// The limits of a request body beyond its JSON shape (lengths, character sets, counts). The
/// relay checks every body it parses with this before any handler sees it.
pub trait Validate {
    fn validate(&self) -> Result<(), Error>;
}

// ---------------------------------------------------------------- pairing

/// `POST /v1/pairings` (NAS): register a pairing slot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreatePairingRequest {
    pub pairing_id: PairingId,
    /// Slot lifetime in seconds, 1 to 600.
    #[serde(deserialize_with = "crate::json::integer")]
    pub ttl_secs: u64,
    /// `SHA-256(k_relay)` (PROTOCOL.md §5.1a): the relay stores only claims that carry
    /// `k_relay`, so someone who merely saw the `pairing_id` cannot claim the slot.
    pub claim_verifier: Digest,
}

impl Validate for CreatePairingRequest {
    fn validate(&self) -> Result<(), Error> {
        if self.ttl_secs == 0 || self.ttl_secs > crate::limits::MAX_PAIRING_TTL {
            return Err(Error::Invalid {
                field: "ttl_secs",
                reason: "must be between 1 and 600",
            });
        }
        Ok(())
    }
}

/// Answer to `POST /v1/pairings`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PairingCreated {
    pub pairing_id: PairingId,
    #[serde(deserialize_with = "crate::json::integer")]
    pub expires_at: u64,
}

/// `POST /v1/pairings/{pairing_id}/claim` (phone, signed by `D_api` = `claim.device_id`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    pub claim: PairClaim,
    /// `k_relay`, whose SHA-256 the slot was registered with.
    pub claim_key: ClaimKey,
    pub mac: ClaimMac,
    /// `pair-claim` signature by `claim.sig_key`.
    pub sig: Sig,
    /// Absent for a phone without push; it then fetches its inbox itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushRegistration>,
}

impl Validate for ClaimRequest {
    fn validate(&self) -> Result<(), Error> {
        validate_claim(&self.claim)?;
        self.push
            .as_ref()
            .map_or(Ok(()), PushRegistration::validate)
    }
}

/// Field limits of a claim, and one rule: `D_api` and `D_sig` are different keys, so that the
/// key that signs every HTTP request (and may sit outside the phone's user-verification gate)
/// cannot sign approvals.
pub fn validate_claim(claim: &PairClaim) -> Result<(), Error> {
    if claim.device_id.0 == claim.sig_key {
        return Err(Error::Invalid {
            field: "claim.sig_key",
            reason: "must differ from device_id (D_sig and D_api are separate keys)",
        });
    }
    Ok(())
}

/// Answer to `GET /v1/pairings/{pairing_id}/claim` (NAS): the claim, and the push handle the
/// relay minted from the phone's push registration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PairingClaimed {
    pub claim: PairClaim,
    pub mac: ClaimMac,
    pub sig: Sig,
    /// Minted by the relay for this pairing (with or without a push token inside).
    pub push_handle: PushHandle,
}

/// `POST /v1/pairings/{pairing_id}/accept` (NAS), and the answer to
/// `GET /v1/pairings/{pairing_id}/acceptance` (phone): the NAS's commitment to one claim.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PairingAcceptance {
    pub accept: PairAccept,
    /// `pair-accept` signature by `N`.
    pub sig: Sig,
}

/// `POST /v1/pairings/{pairing_id}/confirm` (NAS), and the answer to
/// `GET /v1/pairings/{pairing_id}/confirmation` (phone).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PairingConfirmation {
    pub confirm: PairConfirm,
    /// `pair-confirm` signature by `N`.
    pub sig: Sig,
    /// The offline-code secret sealed to the phone; `confirm.code_secret_hash` is its SHA-256.
    pub code_secret: SealedCodeSecret,
}

// ---------------------------------------------------------------- challenges

/// One device a challenge goes to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChallengeTarget {
    pub device_id: DeviceId,
    /// The handle the relay minted for this pairing. It proves the device paired with the
    /// calling NAS, carries `D_sig` for the relay's verdict check, and (optionally) the push
    /// token. A device without push still has one.
    pub push_handle: PushHandle,
    pub sealed: Sealed,
    /// `challenge` signature by `N` for this device.
    pub sig: Sig,
}

/// `POST /v1/challenges` (NAS).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateChallengeRequest {
    pub cid: Cid,
    #[serde(deserialize_with = "crate::json::integer")]
    pub created: u64,
    #[serde(deserialize_with = "crate::json::integer")]
    pub expires: u64,
    pub number_matching: bool,
    pub targets: Vec<ChallengeTarget>,
}

impl Validate for CreateChallengeRequest {
    /// Structure only: times, target count, no duplicate devices. Signatures are verified by
    /// the phone; the relay checks handles.
    fn validate(&self) -> Result<(), Error> {
        if self.expires <= self.created || self.expires - self.created > MAX_CHALLENGE_LIFETIME {
            return Err(Error::Invalid {
                field: "expires",
                reason: "must be after `created` and at most 120 s later",
            });
        }
        if self.targets.is_empty() {
            return Err(Error::Empty { field: "targets" });
        }
        if self.targets.len() > MAX_TARGETS {
            return Err(Error::TooMany {
                field: "targets",
                max: MAX_TARGETS,
                got: self.targets.len(),
            });
        }
        for (index, target) in self.targets.iter().enumerate() {
            if self.targets[..index]
                .iter()
                .any(|earlier| earlier.device_id == target.device_id)
            {
                return Err(Error::Invalid {
                    field: "targets",
                    reason: "a device appears twice",
                });
            }
        }
        Ok(())
    }
}

impl CreateChallengeRequest {
    /// The `challenge` message the NAS signed for `target`.
    pub fn challenge_for(&self, nas_id: NasId, target: &ChallengeTarget) -> Challenge {
        Challenge {
            cid: self.cid,
            nas_id,
            device_id: target.device_id,
            created: self.created,
            expires: self.expires,
            number_matching: self.number_matching,
            context_hash: crate::context::context_hash(&target.sealed.0),
        }
    }
}

/// What happened to one target of a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Accepted by APNs/FCM.
    Pushed,
    /// The handle carries no push token: the challenge waits in the device's inbox.
    InboxOnly,
    /// The push provider says the token is dead: drop this handle (the inbox still works).
    Gone,
    /// The phone muted this NAS; the challenge is in the inbox but no push was sent.
    Muted,
    /// Too many challenges for this device; nothing stored for it.
    RateLimited,
    /// The push could not be sent (provider or configuration trouble); the inbox still works.
    Failed,
    /// The push is still being attempted when the relay answered.
    Pending,
    /// The relay has no push credentials for this app and only logged the push (a development
    /// relay); nothing reached the phone, which finds the challenge in its inbox.
    Logged,
}

/// Delivery report for one target.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TargetDelivery {
    pub device_id: DeviceId,
    pub delivery: Delivery,
}

/// Answer to `POST /v1/challenges`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChallengeCreated {
    pub cid: Cid,
    #[serde(deserialize_with = "crate::json::integer")]
    pub expires: u64,
    pub deliveries: Vec<TargetDelivery>,
}

/// One pending challenge in a phone's inbox (`GET /v1/inbox`). The device is the caller.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InboxEntry {
    pub cid: Cid,
    pub nas_id: NasId,
    #[serde(deserialize_with = "crate::json::integer")]
    pub created: u64,
    #[serde(deserialize_with = "crate::json::integer")]
    pub expires: u64,
    pub number_matching: bool,
    pub sealed: Sealed,
    pub sig: Sig,
}

impl InboxEntry {
    /// The `challenge` message to verify under the pinned NAS key.
    pub fn challenge(&self, device_id: DeviceId) -> Challenge {
        Challenge {
            cid: self.cid,
            nas_id: self.nas_id,
            device_id,
            created: self.created,
            expires: self.expires,
            number_matching: self.number_matching,
            context_hash: crate::context::context_hash(&self.sealed.0),
        }
    }
}

/// Answer to `GET /v1/inbox`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Inbox {
    pub entries: Vec<InboxEntry>,
}

/// `POST /v1/challenges/{cid}/verdict` (phone), and the answer to
/// `GET /v1/challenges/{cid}/verdict` (NAS).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignedVerdict {
    pub verdict: Verdict,
    /// `verdict` signature by `D_sig`.
    pub sig: Sig,
}

impl Validate for SignedVerdict {
    fn validate(&self) -> Result<(), Error> {
        if let Some(number) = &self.verdict.number {
            if !(MIN_NUMBER..=MAX_NUMBER).contains(&number.len())
                || !number.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(Error::Invalid {
                    field: "verdict.number",
                    reason: "must be 3 to 8 decimal digits, or absent",
                });
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- devices

/// `POST /v1/devices/push` (phone): the OS rotated the push token (or push was turned on or
/// off); mint a new handle for this pairing and deliver it to the NAS's mailbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RefreshPushRequest {
    /// The pairing's current handle: proves the pairing and names the NAS.
    pub push_handle: PushHandle,
    /// The new registration; absent turns push off (the handle then only carries keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushRegistration>,
}

impl Validate for RefreshPushRequest {
    fn validate(&self) -> Result<(), Error> {
        self.push
            .as_ref()
            .map_or(Ok(()), PushRegistration::validate)
    }
}

/// Answer to a pairing claim and to a push refresh: the phone's (new) handle for this pairing,
/// which it presents to refresh, mute and unpair.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HandleIssued {
    pub push_handle: PushHandle,
}

/// `POST /v1/devices/mute` (phone).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignedMute {
    pub mute: Mute,
    /// `mute` signature by `D_sig`.
    pub sig: Sig,
    /// The pairing's current handle (proves the pairing; carries `D_sig` for the relay's check).
    pub push_handle: PushHandle,
}

/// `POST /v1/devices/unpair` (phone).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignedUnpair {
    pub unpair: Unpair,
    /// `unpair` signature by `D_sig`.
    pub sig: Sig,
    /// The pairing's current handle.
    pub push_handle: PushHandle,
}

// ---------------------------------------------------------------- mailbox

/// What a phone (or the relay) tells a NAS through its mailbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Notice {
    /// A device's push token changed: replace its handle.
    HandleRefreshed {
        device_id: DeviceId,
        push_handle: PushHandle,
    },
    /// The push provider reported the device's token dead: drop its handle.
    PushGone { device_id: DeviceId },
    /// The phone unpaired itself (verify `sig` under the recorded `D_sig`, then drop it).
    Unpaired { unpair: Unpair, sig: Sig },
    /// The phone muted this NAS.
    Muted { mute: Mute, sig: Sig },
}

/// One mailbox entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MailboxEntry {
    /// Opaque id to acknowledge.
    pub id: String,
    /// When the relay stored it (unix seconds).
    #[serde(deserialize_with = "crate::json::integer")]
    pub at: u64,
    pub notice: Notice,
}

impl Notice {
    /// What a newer notice replaces: the relay keeps only the newest notice of each kind per
    /// device (a second refresh makes the first one's handle stale; a second mute or dead token
    /// says the same again).
    pub fn coalescing_key(&self) -> (&'static str, DeviceId) {
        match self {
            Notice::HandleRefreshed { device_id, .. } => ("handle_refreshed", *device_id),
            Notice::PushGone { device_id } => ("push_gone", *device_id),
            Notice::Unpaired { unpair, .. } => ("unpaired", unpair.device_id),
            Notice::Muted { mute, .. } => ("muted", mute.device_id),
        }
    }
}

/// Most entries one `GET /v1/mailbox` answers (as many as one acknowledgement may name).
pub const MAILBOX_PAGE: usize = MAX_ACK;

/// Answer to `GET /v1/mailbox`: the oldest [`MAILBOX_PAGE`] entries at most.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Mailbox {
    pub entries: Vec<MailboxEntry>,
    /// More entries wait behind these: acknowledge these, then ask again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
}

/// `POST /v1/mailbox/ack` (NAS): remove these entries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MailboxAck {
    pub ids: Vec<String>,
}

impl Validate for MailboxAck {
    fn validate(&self) -> Result<(), Error> {
        if self.ids.len() > MAX_ACK {
            return Err(Error::TooMany {
                field: "ids",
                max: MAX_ACK,
                got: self.ids.len(),
            });
        }
        Ok(())
    }
}

impl Validate for PairingConfirmation {
    /// Nothing beyond its JSON shape: every field is fixed-length.
    fn validate(&self) -> Result<(), Error> {
        Ok(())
    }
}

impl Validate for PairingAcceptance {
    /// Nothing beyond its JSON shape: every field is fixed-length.
    fn validate(&self) -> Result<(), Error> {
        Ok(())
    }
}

impl Validate for SignedMute {
    /// Nothing beyond its JSON shape (the time window is the relay's check).
    fn validate(&self) -> Result<(), Error> {
        Ok(())
    }
}

impl Validate for SignedUnpair {
    /// Nothing beyond its JSON shape.
    fn validate(&self) -> Result<(), Error> {
        Ok(())
    }
}

// ---------------------------------------------------------------- push forwarding

/// Why a push is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PushKind {
    /// A new challenge: a visible alert that wakes the app.
    Alert,
    /// The challenge was answered elsewhere or cancelled: a silent background push so the app
    /// can withdraw its notification.
    Dismiss,
}

/// `POST /v1/push/forward` (a downstream relay, PROTOCOL.md §8.6): push `{v, cid}` to one token
/// through the upstream relay's credentials.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ForwardPushRequest {
    /// The phone's push registration, as the downstream relay decoded it from the handle.
    pub push: PushRegistration,
    /// The challenge id: the push's only content, and its collapse id.
    pub cid: Cid,
    /// Unix time after which the push is pointless (the challenge's expiry).
    #[serde(deserialize_with = "crate::json::integer")]
    pub expires: u64,
    pub kind: PushKind,
}

impl Validate for ForwardPushRequest {
    fn validate(&self) -> Result<(), Error> {
        self.push.validate()
    }
}

/// How a forwarded push ended, as the upstream's provider classified it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ForwardResult {
    /// Accepted by APNs/FCM.
    Delivered,
    /// The upstream has no credentials at all and only logged it (a development relay).
    Logged,
    /// The provider says the token is dead.
    Gone,
    /// Not delivered this time (provider trouble, throttling, timeout).
    Failed,
    /// Not delivered because of the upstream's configuration: it has no credential for the
    /// topic, or its credential was refused. Retrying will not help.
    FailedConfig,
}

/// The answer to [`ForwardPushRequest`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForwardPushResponse {
    pub result: ForwardResult,
    /// For `failed` and `failed_config`: what the upstream saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

// ---------------------------------------------------------------- errors

/// Prefix of every problem `type` (`urn:approvd:problem:<name>`, PROTOCOL.md §9).
pub const PROBLEM_TYPE_PREFIX: &str = "urn:approvd:problem:";

/// An RFC 9457 problem document, as the relay sends it with `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// Stable URI naming the error, e.g. `urn:approvd:problem:replayed-nonce`.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    /// What went wrong and what to fix.
    pub detail: String,
    /// For validation errors: the offending field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request's id (`X-Request-Id`), to quote when asking an operator about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_fields_take_any_json_integer_and_nothing_else() {
        let ttl = |text: &str| {
            serde_json::from_str::<CreatePairingRequest>(&format!(
                r#"{{"pairing_id":"AAAAAAAAAAAAAAAAAAAAAA","ttl_secs":{text},"claim_verifier":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}"#
            ))
            .map(|request| request.ttl_secs)
        };
        for (text, value) in [
            ("60", 60),
            ("60.0", 60),
            ("6e1", 60),
            ("0", 0),
            ("18446744073709551615", u64::MAX),
            ("9007199254740992.0", 1 << 53),
        ] {
            assert_eq!(ttl(text).expect(text), value, "{text}");
        }
        for text in [
            "60.5",
            "-1",
            "-0.5",
            "1e300",
            "\"60\"",
            "true",
            "null",
            "9007199254740994.0",
        ] {
            assert!(ttl(text).is_err(), "{text} was accepted");
        }
    }
}
