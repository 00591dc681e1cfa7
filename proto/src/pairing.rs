//! QR pairing: the `approvd://pair?...` URI, the claim MAC and the 6-digit short
//! authentication string (SAS), each under its own subkey of the pairing secret `k`. Owns
//! everything derived from `k`; the relay never sees `k`, so it can neither forge nor swap a
//! claim. `k` lives only as long as the pairing: nothing after it is derived from it.

use hmac::{Hmac, Mac as _};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::UriError;
use crate::ids::{decode_fixed, encode_b64, ClaimKey, Digest, NasId, PairingId};
pub use crate::limits::{
    DEVICE_INFO_PLAINTEXT, MAX_ACCOUNT, MAX_LABEL, MAX_PAIRING_TTL, MAX_RELAY_URL, MAX_URI,
    SEALED_DEVICE_INFO,
};
use crate::signed::{Encoder, PairClaim, SignedMessage as _};
use crate::Error;

/// The URI prefix.
pub const URI_PREFIX: &str = "approvd://pair?";
/// Label of the SAS input (an [`Encoder`] label) and of its subkey.
pub const SAS_LABEL: &str = "sas";
/// HKDF salt of the subkeys of `k`.
pub const SUBKEY_SALT: &[u8] = b"approvd/v1/pairing";
/// HKDF `info` of the claim-MAC subkey.
pub const MAC_KEY_LABEL: &[u8] = b"claim-mac";
/// HKDF `info` of the SAS subkey.
pub const SAS_KEY_LABEL: &[u8] = b"sas";
/// HKDF `info` of the device-info subkey.
pub const INFO_KEY_LABEL: &[u8] = b"device-info";
/// HKDF `info` of the relay-claim subkey `k_relay` (N-15): the phone shows it to the relay with
/// its claim, the NAS registered its SHA-256 with the slot.
pub const RELAY_CLAIM_LABEL: &[u8] = b"relay-claim";
/// Label of the device-info AEAD's associated data.
pub const INFO_AAD_LABEL: &str = "device-info";

type HmacSha256 = Hmac<Sha256>;

/// Characters left unescaped in URI parameter values: RFC 3986 unreserved.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The 32-byte pairing secret `k` carried only in the QR code.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct PairingSecret(pub [u8; 32]);

impl PairingSecret {
    /// A fresh random secret.
    pub fn generate() -> Self {
        Self(crate::random_bytes())
    }

    /// `HKDF-SHA256(salt = "approvd/v1/pairing", ikm = k, info = label)`, 32 bytes: one key per
    /// purpose, so that `k` itself is never used as a key.
    pub fn subkey(&self, label: &[u8]) -> [u8; 32] {
        let mut key = [0u8; 32];
        hkdf::Hkdf::<Sha256>::new(Some(SUBKEY_SALT), &self.0)
            .expand(label, &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        key
    }

    /// `k_relay`: what a claim carries to show the relay that its sender read the QR code
    /// (PROTOCOL.md §5.1a). Independent of the other subkeys, and `k` cannot be found from it.
    pub fn relay_claim_key(&self) -> ClaimKey {
        ClaimKey(self.subkey(RELAY_CLAIM_LABEL))
    }

    /// `SHA-256(k_relay)`: what the NAS registers its slot with, so the relay can refuse a claim
    /// that does not carry `k_relay` before it consumes the slot.
    pub fn claim_verifier(&self) -> Digest {
        Digest::of(&self.relay_claim_key().0)
    }

    fn hmac(&self, label: &[u8]) -> HmacSha256 {
        let mut key = self.subkey(label);
        let mac = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
        key.zeroize();
        mac
    }
}

impl std::fmt::Debug for PairingSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairingSecret(<redacted>)")
    }
}

/// Everything the QR code carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingUri {
    /// Base URL of the relay (`r`), e.g. `https://relay.example.com`.
    pub relay: String,
    /// Slot id (`p`).
    pub pairing_id: PairingId,
    /// Pairing secret (`k`).
    pub secret: PairingSecret,
    /// The NAS key to pin (`n`).
    pub nas_id: NasId,
    /// Human label of the NAS (`a`).
    pub label: String,
    /// The account on the NAS this phone will approve sign-ins for (`u`), shown to the user
    /// before the phone claims the slot.
    pub account: String,
    /// Unix time after which the slot is gone (`e`).
    pub expires_at: u64,
}

impl PairingUri {
    /// Render as `approvd://pair?v=1&r=…&p=…&k=…&n=…&a=…&u=…&e=…`.
    pub fn to_uri(&self) -> String {
        format!(
            "{URI_PREFIX}v=1&r={}&p={}&k={}&n={}&a={}&u={}&e={}",
            utf8_percent_encode(&self.relay, VALUE),
            self.pairing_id,
            encode_b64(&self.secret.0),
            self.nas_id,
            utf8_percent_encode(&self.label, VALUE),
            utf8_percent_encode(&self.account, VALUE),
            self.expires_at
        )
    }

    /// [`PairingUri::to_uri`], checked to parse back to itself — in particular that it fits
    /// [`MAX_URI`] once percent-encoded (a label or account of non-ASCII characters grows up
    /// to threefold). A NAS renders its QR codes with this, so it never shows one that phones
    /// refuse.
    pub fn checked_uri(&self) -> Result<String, Error> {
        let uri = self.to_uri();
        if uri.len() > MAX_URI {
            return Err(Error::TooLong {
                field: "pairing URI (shorten the NAS label, the account name or the relay URL)",
                max: MAX_URI,
                got: uri.len(),
            });
        }
        let parsed = Self::parse(&uri, self.expires_at.saturating_sub(1))?;
        if parsed != *self {
            return Err(UriError::Encoding("pairing URI").into());
        }
        Ok(uri)
    }

    /// Parse and check a pairing URI at time `now` (unix seconds).
    ///
    /// Every parameter must appear exactly once; unknown parameters are refused (a newer QR
    /// format bumps `v`); the relay URL must be http(s) without query or fragment.
    pub fn parse(uri: &str, now: u64) -> Result<Self, Error> {
        if uri.len() > MAX_URI {
            return Err(UriError::TooLong { max: MAX_URI }.into());
        }
        let query = uri.strip_prefix(URI_PREFIX).ok_or(UriError::Scheme)?;
        const NAMES: [&str; 8] = ["v", "r", "p", "k", "n", "a", "u", "e"];
        let mut values: [Option<&str>; 8] = [None; 8];
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let index = NAMES
                .iter()
                .position(|known| *known == name)
                .ok_or_else(|| UriError::Unknown(truncate(name)))?;
            if values[index].replace(value).is_some() {
                return Err(UriError::Duplicate(name.to_owned()).into());
            }
        }
        let get = |index: usize| values[index].ok_or(UriError::Missing(NAMES[index]));
        let version = get(0)?;
        if version != "1" {
            return Err(UriError::Version(truncate(version)).into());
        }
        let relay = decode_value("r", get(1)?)?;
        check_relay_url(&relay)?;
        let pairing_id = PairingId(decode_fixed("p", get(2)?)?);
        let secret = PairingSecret(decode_fixed("k", get(3)?)?);
        let nas_id = NasId(crate::ids::PublicKey::parse("n", get(4)?)?);
        let label = decode_value("a", get(5)?)?;
        crate::limits::check_text("a", &label, MAX_LABEL, false)?;
        let account = decode_value("u", get(6)?)?;
        crate::limits::check_text("u", &account, MAX_ACCOUNT, false)?;
        let expiry_text = get(7)?;
        if expiry_text.is_empty() || !expiry_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(UriError::Expiry.into());
        }
        let expires_at: u64 = expiry_text.parse().map_err(|_| UriError::Expiry)?;
        if expires_at <= now {
            return Err(Error::Expired {
                expired_at: expires_at,
                now,
            });
        }
        Ok(Self {
            relay,
            pairing_id,
            secret,
            nas_id,
            label,
            account,
            expires_at,
        })
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(32).collect()
}

fn decode_value(field: &'static str, raw: &str) -> Result<String, Error> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|value| value.into_owned())
        .map_err(|_| UriError::Encoding(field).into())
}

/// A relay base URL: `https://`, or `http://` to a loopback address (`localhost`, `127.0.0.0/8`,
/// `[::1]`: a relay on the same machine, for development); a non-empty host; no query, fragment
/// or spaces. Everything on the wire is signed and the context sealed, but plain HTTP across a
/// network would still show who talks to which relay when, and let anyone on the path drop it.
pub fn check_relay_url(url: &str) -> Result<(), Error> {
    if url.len() > MAX_RELAY_URL {
        return Err(Error::TooLong {
            field: "r",
            max: MAX_RELAY_URL,
            got: url.len(),
        });
    }
    let (rest, plain) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (rest, false),
        (None, Some(rest)) => (rest, true),
        (None, None) => return Err(UriError::RelayUrl.into()),
    };
    let authority = rest.split('/').next().unwrap_or("");
    let bad_char = |c: char| c.is_whitespace() || c.is_control() || c == '?' || c == '#';
    if authority.is_empty() || rest.contains(bad_char) {
        return Err(UriError::RelayUrl.into());
    }
    if plain && !is_loopback(authority) {
        return Err(UriError::PlainHttp.into());
    }
    Ok(())
}

/// Whether `authority` (host with an optional port) names this machine.
fn is_loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<core::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The claim MAC: `HMAC-SHA256(k_mac, pair-claim signed bytes)`.
pub fn claim_mac(secret: &PairingSecret, claim: &PairClaim) -> [u8; 32] {
    let mut mac = secret.hmac(MAC_KEY_LABEL);
    mac.update(&claim.signed_bytes());
    mac.finalize().into_bytes().into()
}

/// Check a claim MAC in constant time.
pub fn verify_claim_mac(
    secret: &PairingSecret,
    claim: &PairClaim,
    mac_bytes: &[u8],
) -> Result<(), Error> {
    let mut mac = secret.hmac(MAC_KEY_LABEL);
    mac.update(&claim.signed_bytes());
    mac.verify_slice(mac_bytes).map_err(|_| Error::BadMac)
}

/// The 6-digit SAS:
/// `HMAC-SHA256(k_sas, "approvd/v1/sas" || 0x00 || LP(N) || LP(D_api) || LP(D_sig) || LP(Dx))`,
/// first 8 bytes as u64 big-endian, modulo 1 000 000, zero-padded to 6 digits. The phone shows
/// it once the NAS has accepted (committed to) its claim; the user types it into the NAS.
pub fn sas(secret: &PairingSecret, claim: &PairClaim) -> String {
    let input = Encoder::new(SAS_LABEL)
        .bytes(claim.nas_id.as_bytes())
        .bytes(claim.device_id.as_bytes())
        .bytes(claim.sig_key.as_bytes())
        .bytes(claim.seal_key.as_bytes())
        .finish();
    let mut mac = secret.hmac(SAS_KEY_LABEL);
    mac.update(&input);
    let digest = mac.finalize().into_bytes();
    let head: [u8; 8] = digest[..8].try_into().expect("HMAC-SHA256 is 32 bytes");
    format!("{:06}", u64::from_be_bytes(head) % 1_000_000)
}

/// Whether `typed` is the SAS of `claim` (what the phone shows), compared in constant time.
pub fn sas_matches(secret: &PairingSecret, claim: &PairClaim, typed: &str) -> bool {
    let expected = sas(secret, claim);
    bool::from(expected.as_bytes().ct_eq(typed.trim().as_bytes()))
}

pub use crate::ids::SealedDeviceInfo;

/// The phone's name and platform as the NAS will show and record them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceInfo {
    /// Non-empty, at most [`crate::limits::MAX_DEVICE_NAME`] bytes of UTF-8.
    pub name: String,
    /// e.g. `ios`, `android`: printable ASCII, at most [`crate::limits::MAX_PLATFORM`] bytes.
    pub platform: String,
}

impl DeviceInfo {
    /// Check the field limits.
    pub fn validate(&self) -> Result<(), Error> {
        crate::limits::check_text("name", &self.name, crate::limits::MAX_DEVICE_NAME, false)?;
        crate::limits::check_text(
            "platform",
            &self.platform,
            crate::limits::MAX_PLATFORM,
            false,
        )?;
        if !self.platform.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(Error::Invalid {
                field: "platform",
                reason: "must be printable ASCII",
            });
        }
        Ok(())
    }
}

/// AEAD associated data: `"approvd/v1/device-info" || 0x00 || LP(pairing_id) || LP(device_id)`.
fn device_info_aad(
    pairing_id: &crate::ids::PairingId,
    device_id: &crate::ids::DeviceId,
) -> Vec<u8> {
    Encoder::new(INFO_AAD_LABEL)
        .bytes(pairing_id.as_bytes())
        .bytes(device_id.as_bytes())
        .finish()
}

/// Seal `info` for the NAS: the JSON object `{"name":…,"platform":…}` padded with spaces to
/// [`DEVICE_INFO_PLAINTEXT`] bytes, under ChaCha20-Poly1305 with `k_info` and a random nonce,
/// bound to the slot and the device.
pub fn seal_device_info(
    secret: &PairingSecret,
    pairing_id: &crate::ids::PairingId,
    device_id: &crate::ids::DeviceId,
    info: &DeviceInfo,
) -> Result<SealedDeviceInfo, Error> {
    seal_device_info_with_nonce(secret, pairing_id, device_id, info, crate::random_bytes())
}

/// [`seal_device_info`] with a given nonce (test vectors; production uses a random one).
pub fn seal_device_info_with_nonce(
    secret: &PairingSecret,
    pairing_id: &crate::ids::PairingId,
    device_id: &crate::ids::DeviceId,
    info: &DeviceInfo,
    nonce: [u8; 12],
) -> Result<SealedDeviceInfo, Error> {
    use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
    info.validate()?;
    let mut plaintext =
        serde_json::to_vec(info).map_err(|error| Error::ContextJson(error.to_string()))?;
    if plaintext.len() > DEVICE_INFO_PLAINTEXT {
        return Err(Error::TooLong {
            field: "device_info",
            max: DEVICE_INFO_PLAINTEXT,
            got: plaintext.len(),
        });
    }
    plaintext.resize(DEVICE_INFO_PLAINTEXT, b' ');
    let mut key = secret.subkey(INFO_KEY_LABEL);
    let cipher = chacha20poly1305::ChaCha20Poly1305::new((&key).into());
    key.zeroize();
    let aad = device_info_aad(pairing_id, device_id);
    let ciphertext = cipher
        .encrypt(
            (&nonce).into(),
            Payload {
                msg: &plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| Error::SealFailed)?;
    let mut sealed = [0u8; SEALED_DEVICE_INFO];
    sealed[..12].copy_from_slice(&nonce);
    sealed[12..].copy_from_slice(&ciphertext);
    Ok(SealedDeviceInfo(sealed))
}

/// Open a claim's device info with the pairing secret (the NAS). Fails unless it was sealed
/// under this QR code's secret for this slot and device.
pub fn open_device_info(secret: &PairingSecret, claim: &PairClaim) -> Result<DeviceInfo, Error> {
    use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
    let (nonce, ciphertext) = claim.device_info.0.split_at(12);
    let mut key = secret.subkey(INFO_KEY_LABEL);
    let cipher = chacha20poly1305::ChaCha20Poly1305::new((&key).into());
    key.zeroize();
    let aad = device_info_aad(&claim.pairing_id, &claim.device_id);
    let plaintext = cipher
        .decrypt(
            nonce.into(),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| Error::OpenFailed)?;
    let info: DeviceInfo = serde_json::from_slice(&plaintext)
        .map_err(|error| Error::ContextJson(error.to_string()))?;
    info.validate()?;
    Ok(info)
}
