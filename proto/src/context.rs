//! The login context and its HPKE sealing (RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256),
//! HKDF-SHA256, ChaCha20-Poly1305). Owns what the phone shows the user and the only place it is
//! ever in plaintext outside the NAS and the phone; the relay sees sealed bytes only.

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable as _, Kem as _, OpModeR, OpModeS, Serializable as _};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::ids::{Cid, DeviceId, Digest, NasId, SealKey};
pub use crate::limits::{check_text, MAX_ACTION, MAX_PLAINTEXT, MAX_SEALED};
use crate::signed::Encoder;
use crate::Error;

/// Label of the HPKE `info` string.
pub const INFO_LABEL: &str = "context-info";
/// Label of the HPKE `aad` string.
pub const AAD_LABEL: &str = "context-aad";
/// Plaintext is padded with spaces to a multiple of this, so the sealed size does not reveal
/// the length of the user name, user agent or location.
pub const PAD_BLOCK: usize = 256;

/// What sort of sign-in the phone is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LoginKind {
    /// Second factor after a password ("login approval").
    Login,
    /// Sign-in without a password: the approval is the only factor.
    Passwordless,
    /// Approval of a sensitive action by an already signed-in user.
    Action,
    /// Something the NAS tells the user (in `action`), with nothing to approve: the account
    /// cools down after a refused sign-in, a phone was added with a recovery code. A phone
    /// shows it and never answers it; the NAS never waits for an answer.
    Notice,
    /// The NAS has retired its key `N` (N-14): the phone deletes this pairing, tells the NAS
    /// it did (its signed `unpair`), shows `action` (why) once, and never answers. It names no
    /// successor key: a thief holding `N` can only end pairings with it, never move them.
    Retire,
}

/// The login context shown on the phone. Serialized as a JSON object, padded, then sealed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginContext {
    /// Account name signing in (≤ 128 bytes).
    pub user: String,
    /// Service being signed in to, e.g. "DSM" or "SSH" (≤ 64 bytes).
    pub service: String,
    /// The NAS's human name, e.g. "home-nas" (≤ 64 bytes).
    pub nas_label: String,
    /// Client IP address as text (≤ 45 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// Client user agent (≤ 256 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Coarse location, e.g. "Berlin, DE" (≤ 128 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub kind: LoginKind,
    /// For `kind: action`, what the user is asked to approve, shown verbatim (≤ 256 bytes),
    /// e.g. "Delete the shared folder `photos`". Required for `action`, absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// When the sign-in attempt happened (unix seconds).
    pub time: u64,
}

impl LoginContext {
    /// Check the documented field limits.
    pub fn validate(&self) -> Result<(), Error> {
        check_text("user", &self.user, 128, false)?;
        check_text("service", &self.service, 64, false)?;
        check_text("nas_label", &self.nas_label, 64, false)?;
        check_opt("client_ip", &self.client_ip, 45)?;
        check_opt("user_agent", &self.user_agent, 256)?;
        check_opt("location", &self.location, 128)?;
        match (self.kind, &self.action) {
            (LoginKind::Action, None) => Err(Error::Invalid {
                field: "action",
                reason: "kind `action` must say which action (the phone shows it verbatim)",
            }),
            (LoginKind::Notice | LoginKind::Retire, None) => Err(Error::Invalid {
                field: "action",
                reason: "kinds `notice` and `retire` must carry their text in `action`",
            }),
            (LoginKind::Action | LoginKind::Notice | LoginKind::Retire, Some(action)) => {
                check_text("action", action, MAX_ACTION, false)
            }
            (LoginKind::Login | LoginKind::Passwordless, Some(_)) => Err(Error::Invalid {
                field: "action",
                reason: "only kinds `action`, `notice` and `retire` carry an action text",
            }),
            (LoginKind::Login | LoginKind::Passwordless, None) => Ok(()),
        }
    }

    /// Whether this kind of sign-in requires number matching (PROTOCOL.md §4.1): everything
    /// that signs someone in. An action by an already signed-in user may go without.
    pub fn requires_number_matching(&self) -> bool {
        matches!(self.kind, LoginKind::Login | LoginKind::Passwordless)
    }

    /// Whether this is something to answer (approve or deny): not a `notice` or `retire`.
    pub fn is_answerable(&self) -> bool {
        !matches!(self.kind, LoginKind::Notice | LoginKind::Retire)
    }
}

fn check_opt(field: &'static str, value: &Option<String>, max: usize) -> Result<(), Error> {
    value
        .as_deref()
        .map_or(Ok(()), |value| check_text(field, value, max, true))
}

/// The challenge fields the sealed context is bound to (through HPKE `info` and `aad`), so a
/// context cannot be moved to another challenge, device or NAS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextBinding {
    pub cid: Cid,
    pub nas_id: NasId,
    pub device_id: DeviceId,
    pub created: u64,
    pub expires: u64,
    pub number_matching: bool,
}

impl ContextBinding {
    /// HPKE `info`: `"approvd/v1/context-info" || 0x00 || LP(cid) || LP(device_id)`.
    pub fn info(&self) -> Vec<u8> {
        Encoder::new(INFO_LABEL)
            .bytes(self.cid.as_bytes())
            .bytes(self.device_id.as_bytes())
            .finish()
    }

    /// HPKE `aad`: the challenge header (everything the `challenge` signature covers except the
    /// context hash, which is computed over this seal's output).
    pub fn aad(&self) -> Vec<u8> {
        Encoder::new(AAD_LABEL)
            .bytes(self.cid.as_bytes())
            .bytes(self.nas_id.as_bytes())
            .bytes(self.device_id.as_bytes())
            .u64(self.created)
            .u64(self.expires)
            .bool(self.number_matching)
            .finish()
    }
}

/// A phone's X25519 secret key `Dx` (32 raw bytes, as RFC 7748 and CryptoKit store them).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SealSecret([u8; 32]);

impl SealSecret {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self(crate::random_bytes())
    }

    /// From 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes, for saving to a key file.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The matching public key.
    pub fn public_key(&self) -> SealKey {
        let secret = self.hpke_secret();
        SealKey(X25519HkdfSha256::sk_to_pk(&secret).to_bytes().into())
    }

    fn hpke_secret(&self) -> <X25519HkdfSha256 as hpke::Kem>::PrivateKey {
        // 32 bytes always deserialize for X25519.
        <X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(&self.0)
            .expect("any 32 bytes are an X25519 secret")
    }
}

impl std::fmt::Debug for SealSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealSecret(<redacted>)")
    }
}

/// Seal `context` to `recipient` for the challenge described by `binding`.
///
/// Output: `enc (32 bytes) || ciphertext`. The plaintext is the JSON object padded with spaces
/// to a multiple of [`PAD_BLOCK`] bytes.
pub fn seal(
    context: &LoginContext,
    binding: &ContextBinding,
    recipient: &SealKey,
) -> Result<Vec<u8>, Error> {
    seal_with_rng(context, binding, recipient, &mut rand::rng())
}

/// [`seal`] with a caller-chosen RNG: the first 32 bytes it yields are the ephemeral `ikmE`
/// (RFC 9180 `DeriveKeyPair`). Test vectors use a fixed `ikmE`; production uses [`seal`].
pub fn seal_with_rng<R: rand::CryptoRng + rand::RngCore>(
    context: &LoginContext,
    binding: &ContextBinding,
    recipient: &SealKey,
    rng: &mut R,
) -> Result<Vec<u8>, Error> {
    context.validate()?;
    let mut plaintext =
        serde_json::to_vec(context).map_err(|error| Error::ContextJson(error.to_string()))?;
    let padded_len = plaintext.len().div_ceil(PAD_BLOCK).max(1) * PAD_BLOCK;
    if padded_len > MAX_PLAINTEXT {
        return Err(Error::TooLong {
            field: "context",
            max: MAX_PLAINTEXT,
            got: plaintext.len(),
        });
    }
    plaintext.resize(padded_len, b' ');
    let sealed = hpke_seal(recipient, &binding.info(), &binding.aad(), &plaintext, rng);
    plaintext.zeroize();
    sealed
}

/// RFC 9180 base-mode single-shot seal to `recipient` (the suite above): `enc || ciphertext`.
/// Shared by the login context and the offline-code secret (`crate::totp`).
pub(crate) fn hpke_seal<R: rand::CryptoRng + rand::RngCore>(
    recipient: &SealKey,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, Error> {
    let recipient = <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(recipient.as_bytes())
        .map_err(|_| Error::InvalidKey { field: "seal_key" })?;
    let (enc, ciphertext) = hpke::single_shot_seal::<
        ChaCha20Poly1305,
        HkdfSha256,
        X25519HkdfSha256,
        _,
    >(&OpModeS::Base, &recipient, info, plaintext, aad, rng)
    .map_err(|_| Error::SealFailed)?;
    let mut sealed = enc.to_bytes().to_vec();
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// The inverse of [`hpke_seal`]; any change to `sealed`, `info` or `aad` fails.
pub(crate) fn hpke_open(
    sealed: &[u8],
    info: &[u8],
    aad: &[u8],
    secret: &SealSecret,
) -> Result<Vec<u8>, Error> {
    if sealed.len() < 32 + 16 {
        return Err(Error::OpenFailed);
    }
    let (enc, ciphertext) = sealed.split_at(32);
    let enc = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(enc)
        .map_err(|_| Error::OpenFailed)?;
    hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        &secret.hpke_secret(),
        &enc,
        info,
        ciphertext,
        aad,
    )
    .map_err(|_| Error::OpenFailed)
}

/// Open a sealed context with the phone's secret. Fails if anything in `binding` differs from
/// what the NAS sealed to, if a byte was changed, or if the plaintext is not a valid context.
pub fn open(
    sealed: &[u8],
    binding: &ContextBinding,
    secret: &SealSecret,
) -> Result<LoginContext, Error> {
    if sealed.len() > MAX_SEALED {
        return Err(Error::TooLong {
            field: "sealed",
            max: MAX_SEALED,
            got: sealed.len(),
        });
    }
    let mut plaintext = hpke_open(sealed, &binding.info(), &binding.aad(), secret)?;
    let parsed = serde_json::from_slice::<LoginContext>(&plaintext)
        .map_err(|error| Error::ContextJson(error.to_string()));
    plaintext.zeroize();
    let context = parsed?;
    context.validate()?;
    Ok(context)
}

/// `context_hash` for the `challenge` signature: SHA-256 of the whole sealed blob.
pub fn context_hash(sealed: &[u8]) -> Digest {
    Digest::of(sealed)
}
