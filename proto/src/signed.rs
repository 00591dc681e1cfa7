//! The signed-message encoding and one type per signed tag. Owns the exact bytes every party
//! signs and verifies: `"approvd/v1/" || TAG || 0x00 || LP(f1) || LP(f2) || ...` with
//! `LP(x) = u32_be(len(x)) || x`. Nobody signs JSON; JSON only carries these fields.

use ed25519_dalek::{Signer as _, SigningKey};

use crate::ids::{
    Cid, DeviceId, Digest, NasId, PairingId, PublicKey, SealKey, SealedDeviceInfo, Sig,
};
use crate::Error;

/// The domain prefix of every approvd signed message (and HPKE `info`/`aad`).
pub const DOMAIN: &[u8] = b"approvd/v1/";

/// The kinds of signed message. A signature made under one tag never verifies under another:
/// the tag and its terminating `0x00` are part of the signed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tag {
    /// Phone → NAS, signed by `D_sig`: "these are my keys for this pairing slot".
    PairClaim,
    /// NAS → phone, signed by `N`: "this is the claim I will confirm" — a commitment made
    /// before any code is shown, so that no claim can be ground to match the phone's code.
    PairAccept,
    /// NAS → phone, signed by `N`: "the user confirmed that claim; here is your offline-code
    /// secret" (bound by the hash of its sealed blob).
    PairConfirm,
    /// NAS → phone, signed by `N`: "approve this sign-in" (binds the sealed context by hash).
    Challenge,
    /// Phone → NAS, signed by `D_sig`: the decision on exactly one challenge.
    Verdict,
    /// Phone → NAS, signed by `D_sig`: "forget this pairing".
    Unpair,
    /// Phone → NAS (via relay), signed by `D_sig`: "do not push me until `until`".
    Mute,
}

impl Tag {
    /// Every tag, for tests and tools that iterate.
    pub const ALL: [Tag; 7] = [
        Tag::PairClaim,
        Tag::PairAccept,
        Tag::PairConfirm,
        Tag::Challenge,
        Tag::Verdict,
        Tag::Unpair,
        Tag::Mute,
    ];

    /// The ASCII tag as it appears in the signed bytes.
    pub fn as_str(self) -> &'static str {
        match self {
            Tag::PairClaim => "pair-claim",
            Tag::PairAccept => "pair-accept",
            Tag::PairConfirm => "pair-confirm",
            Tag::Challenge => "challenge",
            Tag::Verdict => "verdict",
            Tag::Unpair => "unpair",
            Tag::Mute => "mute",
        }
    }
}

/// Builds `"approvd/v1/" || label || 0x00 || LP(f1) || ...`.
///
/// `label` is a signature [`Tag`] or, for HPKE `info`/`aad`, one of the non-signature labels
/// in [`crate::context`]; labels never contain `0x00`, which makes the prefix self-delimiting.
#[derive(Debug)]
pub struct Encoder {
    bytes: Vec<u8>,
}

impl Encoder {
    /// Start a message for `label`.
    pub fn new(label: &str) -> Self {
        debug_assert!(!label.as_bytes().contains(&0));
        let mut bytes = Vec::with_capacity(DOMAIN.len() + label.len() + 1 + 256);
        bytes.extend_from_slice(DOMAIN);
        bytes.extend_from_slice(label.as_bytes());
        bytes.push(0);
        Self { bytes }
    }

    /// Append `LP(field)`.
    pub fn bytes(mut self, field: &[u8]) -> Self {
        let len = u32::try_from(field.len()).expect("signed fields are far below 4 GiB");
        self.bytes.extend_from_slice(&len.to_be_bytes());
        self.bytes.extend_from_slice(field);
        self
    }

    /// Append a UTF-8 string.
    pub fn str(self, field: &str) -> Self {
        self.bytes(field.as_bytes())
    }

    /// Append an optional string; absent is `LP(empty)`.
    pub fn opt_str(self, field: Option<&str>) -> Self {
        self.bytes(field.unwrap_or("").as_bytes())
    }

    /// Append an integer as 8 bytes big-endian.
    pub fn u64(self, field: u64) -> Self {
        self.bytes(&field.to_be_bytes())
    }

    /// Append a flag as one byte, `0x00` or `0x01`.
    pub fn bool(self, field: bool) -> Self {
        self.bytes(&[u8::from(field)])
    }

    /// The finished bytes.
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Split signed bytes back into their label and fields. Used by tests (to prove the encoding is
/// injective: it decodes back to exactly what was encoded) and by debugging tools.
pub fn decode(bytes: &[u8]) -> Result<(String, Vec<&[u8]>), Error> {
    let malformed = |reason| Error::Invalid {
        field: "message",
        reason,
    };
    let rest = bytes
        .strip_prefix(DOMAIN)
        .ok_or(malformed("missing approvd/v1/ prefix"))?;
    let nul = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or(malformed("missing label terminator"))?;
    let label = std::str::from_utf8(&rest[..nul]).map_err(|_| malformed("label is not UTF-8"))?;
    let mut rest = &rest[nul + 1..];
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or(malformed("truncated length prefix"))?;
        let len = u32::from_be_bytes(*len) as usize;
        if tail.len() < len {
            return Err(malformed("truncated field"));
        }
        let (field, tail) = tail.split_at(len);
        fields.push(field);
        rest = tail;
    }
    Ok((label.to_owned(), fields))
}

/// A message that is signed with Ed25519 over its [`Encoder`] bytes.
pub trait SignedMessage {
    /// The tag of this message kind.
    const TAG: Tag;

    /// Append this message's fields, in protocol order, to an encoder for [`Self::TAG`].
    fn encode_fields(&self, encoder: Encoder) -> Encoder;

    /// The exact bytes that are signed.
    fn signed_bytes(&self) -> Vec<u8> {
        self.encode_fields(Encoder::new(Self::TAG.as_str()))
            .finish()
    }

    /// SHA-256 of [`Self::signed_bytes`] (e.g. `challenge_hash` in a verdict).
    fn hash(&self) -> Digest {
        Digest::of(&self.signed_bytes())
    }

    /// Sign with `key`.
    fn sign(&self, key: &SigningKey) -> Sig {
        Sig(key.sign(&self.signed_bytes()).to_bytes())
    }

    /// Verify `sig` under `key` with `verify_strict` (canonical `S`, no small-order `R`/`A`).
    fn verify(&self, key: &PublicKey, sig: &Sig) -> Result<(), Error> {
        verify_strict(key, &self.signed_bytes(), sig)
    }
}

/// `verify_strict` over raw bytes: refuses non-canonical `S`, small-order `R` and weak keys.
pub fn verify_strict(key: &PublicKey, message: &[u8], sig: &Sig) -> Result<(), Error> {
    let signature = ed25519_dalek::Signature::from_bytes(&sig.0);
    key.verifying_key()
        .verify_strict(message, &signature)
        .map_err(|_| Error::BadSignature)
}

/// A phone's answer to a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// "Yes, that is me signing in."
    Approve,
    /// "No." (the user may simply have changed their mind)
    Deny,
    /// "No, and I did not start this": the NAS should alert and may lock the account.
    Fraud,
}

impl Decision {
    /// The string that is signed and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
            Decision::Fraud => "fraud",
        }
    }
}

/// `pair-claim`: the phone's keys for one pairing slot. Signed by `D_sig`, and MACed with the
/// pairing secret `k` from the QR code (see [`crate::pairing`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PairClaim {
    pub pairing_id: PairingId,
    pub nas_id: NasId,
    /// `D_api`, which is also the device id.
    pub device_id: DeviceId,
    /// `D_sig`, the verdict key.
    pub sig_key: PublicKey,
    /// `Dx`, the X25519 key the NAS seals login contexts to.
    pub seal_key: SealKey,
    /// The device's name and platform, sealed to the NAS under a subkey of `k`
    /// ([`crate::pairing::seal_device_info`]): the relay never reads them.
    pub device_info: SealedDeviceInfo,
    #[serde(deserialize_with = "crate::json::integer")]
    pub claimed_at: u64,
}

impl SignedMessage for PairClaim {
    const TAG: Tag = Tag::PairClaim;
    fn encode_fields(&self, encoder: Encoder) -> Encoder {
        encoder
            .bytes(self.pairing_id.as_bytes())
            .bytes(self.nas_id.as_bytes())
            .bytes(self.device_id.as_bytes())
            .bytes(self.sig_key.as_bytes())
            .bytes(self.seal_key.as_bytes())
            .bytes(&self.device_info.0)
            .u64(self.claimed_at)
    }
}

/// `pair-accept`: the NAS commits to the claim whose signed bytes hash to `claim_hash` before
/// either screen shows a code. Signed by `N`. The phone shows its code only under an acceptance
/// of its own claim, so a claim made (or ground) by someone else cannot be confirmed by a
/// matching code.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PairAccept {
    pub pairing_id: PairingId,
    pub nas_id: NasId,
    pub device_id: DeviceId,
    pub claim_hash: Digest,
    #[serde(deserialize_with = "crate::json::integer")]
    pub accepted_at: u64,
}

impl SignedMessage for PairAccept {
    const TAG: Tag = Tag::PairAccept;
    fn encode_fields(&self, encoder: Encoder) -> Encoder {
        encoder
            .bytes(self.pairing_id.as_bytes())
            .bytes(self.nas_id.as_bytes())
            .bytes(self.device_id.as_bytes())
            .bytes(self.claim_hash.as_bytes())
            .u64(self.accepted_at)
    }
}

/// `pair-confirm`: the user confirmed the accepted claim (`claim_hash`); `code_secret_hash` is
/// SHA-256 of the sealed offline-code secret that travels next to it. Signed by `N`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PairConfirm {
    pub pairing_id: PairingId,
    pub nas_id: NasId,
    pub device_id: DeviceId,
    pub claim_hash: Digest,
    pub code_secret_hash: Digest,
    #[serde(deserialize_with = "crate::json::integer")]
    pub confirmed_at: u64,
}

impl SignedMessage for PairConfirm {
    const TAG: Tag = Tag::PairConfirm;
    fn encode_fields(&self, encoder: Encoder) -> Encoder {
        encoder
            .bytes(self.pairing_id.as_bytes())
            .bytes(self.nas_id.as_bytes())
            .bytes(self.device_id.as_bytes())
            .bytes(self.claim_hash.as_bytes())
            .bytes(self.code_secret_hash.as_bytes())
            .u64(self.confirmed_at)
    }
}

/// `challenge`: one approval request to one device. Signed by `N`. The sealed login context is
/// bound by `context_hash` = SHA-256 of the sealed blob.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Challenge {
    pub cid: Cid,
    pub nas_id: NasId,
    pub device_id: DeviceId,
    #[serde(deserialize_with = "crate::json::integer")]
    pub created: u64,
    #[serde(deserialize_with = "crate::json::integer")]
    pub expires: u64,
    pub number_matching: bool,
    pub context_hash: Digest,
}

impl SignedMessage for Challenge {
    const TAG: Tag = Tag::Challenge;
    fn encode_fields(&self, encoder: Encoder) -> Encoder {
        encoder
            .bytes(self.cid.as_bytes())
            .bytes(self.nas_id.as_bytes())
            .bytes(self.device_id.as_bytes())
            .u64(self.created)
            .u64(self.expires)
            .bool(self.number_matching)
            .bytes(self.context_hash.as_bytes())
    }
}

/// `verdict`: a phone's decision on the challenge whose signed bytes hash to `challenge_hash`.
/// Signed by `D_sig`. `number` is the number the user typed (number matching), absent otherwise.
/// `user_verified`: the phone asserts that signing needed the user's biometrics or passcode
/// (`D_sig` is gated by the platform), so a NAS may require it for approvals.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    pub cid: Cid,
    pub nas_id: NasId,
    pub device_id: DeviceId,
    pub challenge_hash: Digest,
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    pub user_verified: bool,
    #[serde(deserialize_with = "crate::json::integer")]
    pub decided_at: u64,
}

impl SignedMessage for Verdict {
    const TAG: Tag = Tag::Verdict;
    fn encode_fields(&self, encoder: Encoder) -> Encoder {
        encoder
            .bytes(self.cid.as_bytes())
            .bytes(self.nas_id.as_bytes())
            .bytes(self.device_id.as_bytes())
            .bytes(self.challenge_hash.as_bytes())
            .str(self.decision.as_str())
            .opt_str(self.number.as_deref())
            .bool(self.user_verified)
            .u64(self.decided_at)
    }
}

/// `unpair`: the phone forgets this pairing. Signed by `D_sig`; the NAS verifies and drops it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Unpair {
    pub nas_id: NasId,
    pub device_id: DeviceId,
    #[serde(deserialize_with = "crate::json::integer")]
    pub unpaired_at: u64,
}

impl SignedMessage for Unpair {
    const TAG: Tag = Tag::Unpair;
    fn encode_fields(&self, encoder: Encoder) -> Encoder {
        encoder
            .bytes(self.nas_id.as_bytes())
            .bytes(self.device_id.as_bytes())
            .u64(self.unpaired_at)
    }
}

/// `mute`: the phone asks not to be pushed for this NAS until `until` (push-bombing defence).
/// Signed by `D_sig`, so the NAS can show the user that the mute really came from the phone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Mute {
    pub nas_id: NasId,
    pub device_id: DeviceId,
    #[serde(deserialize_with = "crate::json::integer")]
    pub until: u64,
    #[serde(deserialize_with = "crate::json::integer")]
    pub muted_at: u64,
}

impl SignedMessage for Mute {
    const TAG: Tag = Tag::Mute;
    fn encode_fields(&self, encoder: Encoder) -> Encoder {
        encoder
            .bytes(self.nas_id.as_bytes())
            .bytes(self.device_id.as_bytes())
            .u64(self.until)
            .u64(self.muted_at)
    }
}
