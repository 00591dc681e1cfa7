//! Identifiers and public keys as they travel: fixed-size byte strings written as unpadded
//! base64url. Owns parsing (with the field name in every error) and weak-key rejection; does no
//! signing (that is `signed`) and no I/O.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;

use crate::limits::SEALED_DEVICE_INFO;
use crate::Error;

/// Decode unpadded base64url into exactly `N` bytes, naming `field` in the error.
pub fn decode_fixed<const N: usize>(field: &'static str, text: &str) -> Result<[u8; N], Error> {
    let bytes = decode_b64(field, text, N)?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| Error::Length {
        field,
        expected: N,
        got: bytes.len(),
    })
}

/// Decode unpadded base64url of at most `max` decoded bytes. The length is checked on the text
/// before decoding, so an oversized input costs nothing.
pub fn decode_b64(field: &'static str, text: &str, max: usize) -> Result<Vec<u8>, Error> {
    // base64url without padding: 4 characters per 3 bytes, rounded up.
    let max_chars = (max * 4).div_ceil(3);
    if text.len() > max_chars {
        return Err(Error::TooLong {
            field,
            max,
            got: text.len() * 3 / 4,
        });
    }
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| Error::Base64 { field })
}

/// Encode bytes as unpadded base64url.
/// How many bytes unpadded base64url `text` decodes to (`None`: not base64url).
pub fn decode_b64_len(text: &str) -> Option<usize> {
    URL_SAFE_NO_PAD.decode(text).ok().map(|bytes| bytes.len())
}

pub fn encode_b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The exact set of unpadded base64url strings that decode (canonically: unused trailing bits
/// zero) to `bytes` bytes, or to any length when `bytes` is `None`, as a regular expression.
pub fn b64_pattern(bytes: Option<usize>) -> String {
    const CHAR: &str = "[A-Za-z0-9_-]";
    // The last character of a group of 2 (1 byte) or 3 (2 bytes) carries 4 or 2 unused bits.
    const LAST_OF_2: &str = "[AQgw]";
    const LAST_OF_3: &str = "[AEIMQUYcgkosw048]";
    match bytes {
        Some(bytes) => {
            let full = 4 * (bytes / 3);
            match bytes % 3 {
                0 => format!("^{CHAR}{{{full}}}$"),
                1 => format!("^{CHAR}{{{}}}{LAST_OF_2}$", full + 1),
                _ => format!("^{CHAR}{{{}}}{LAST_OF_3}$", full + 2),
            }
        }
        None => format!("^(?:{CHAR}{{4}})*(?:{CHAR}{LAST_OF_2}|{CHAR}{{2}}{LAST_OF_3})?$"),
    }
}

/// OpenAPI schema of a base64url string holding `min..=max` bytes (exactly `max` when equal):
/// its pattern admits exactly the strings the parsers accept.
#[cfg(feature = "openapi")]
pub fn b64_schema(
    description: &str,
    min_bytes: Option<usize>,
    max_bytes: Option<usize>,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let exact = (min_bytes == max_bytes).then_some(max_bytes).flatten();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(Some(b64_pattern(exact)))
        .min_length(min_bytes.map(|bytes| (bytes * 4).div_ceil(3)))
        .max_length(max_bytes.map(|bytes| (bytes * 4).div_ceil(3)))
        .into()
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for PublicKey {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        b64_schema(
            "base64url (no padding) of a 32-byte Ed25519 public key",
            Some(32),
            Some(32),
        )
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for PublicKey {}

/// Defines a fixed-size byte-string newtype that is base64url on the wire.
macro_rules! fixed_bytes {
    ($(#[$meta:meta])* $name:ident, $len:expr, $field:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// Parse from unpadded base64url.
            pub fn parse(text: &str) -> Result<Self, Error> {
                $crate::ids::decode_fixed::<$len>($field, text).map(Self)
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Fresh random bytes (see [`crate::random_bytes`]).
            pub fn random() -> Self {
                Self(crate::random_bytes())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&$crate::ids::encode_b64(&self.0))
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::ids::b64_schema(concat!("base64url (no padding) of ", stringify!($len), " bytes: ", $field), Some($len), Some($len))
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(text: &str) -> Result<Self, Error> {
                Self::parse(text)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&$crate::ids::encode_b64(&self.0))
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
pub(crate) use fixed_bytes;

fixed_bytes!(
    /// Challenge id: 16 random bytes chosen by the NAS.
    Cid, 16, "cid"
);
fixed_bytes!(
    /// A device's name and platform sealed under the pairing secret's device-info subkey
    /// (`pairing::seal_device_info`): `nonce (12) || ChaCha20-Poly1305 ciphertext`.
    SealedDeviceInfo, SEALED_DEVICE_INFO, "device_info"
);
fixed_bytes!(
    /// Pairing slot id: 16 random bytes chosen by the NAS.
    PairingId, 16, "pairing_id"
);
fixed_bytes!(
    /// An X25519 public key (a phone's `Dx`), the recipient of the sealed login context.
    SealKey, 32, "seal_key"
);
fixed_bytes!(
    /// SHA-256 digest of a message (`context_hash`, `challenge_hash`, `claim_hash`).
    Digest, 32, "hash"
);
fixed_bytes!(
    /// `k_relay`, the relay-claim subkey of a pairing secret (`pairing::PairingSecret::
    /// relay_claim_key`): a claim carries it, the slot was registered with its SHA-256.
    ClaimKey, 32, "claim_key"
);
fixed_bytes!(
    /// An Ed25519 signature (`R || S`, 64 bytes).
    Sig, 64, "sig"
);

impl Digest {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Self(sha2::Sha256::digest(bytes).into())
    }
}

/// Is `bytes` the canonical encoding of whatever point it names? Its `y` (the low 255 bits)
/// must be below p = 2^255 - 19, and the sign of `x` may be set only when `x` is not zero —
/// `x` is zero only for y = 1 and y = p - 1. Checked on the bytes, without the field inversion
/// re-compressing the point would cost.
fn is_canonical(bytes: &[u8; 32]) -> bool {
    let sign = bytes[31] & 0x80 != 0;
    let mut y = *bytes;
    y[31] &= 0x7f;
    // p and p - 1, little-endian.
    let at_least_p = y[31] == 0x7f && y[1..31].iter().all(|&b| b == 0xff) && y[0] >= 0xed;
    if at_least_p {
        return false;
    }
    let is_one = y[0] == 1 && y[1..].iter().all(|&b| b == 0);
    let is_p_minus_one = y[31] == 0x7f && y[1..31].iter().all(|&b| b == 0xff) && y[0] == 0xec;
    !(sign && (is_one || is_p_minus_one))
}

/// Most keys [`PublicKey::from_bytes`] remembers; past it the cache starts over.
pub const KEY_CACHE_SIZE: usize = 4096;

/// Decompressed keys that passed every check, by their encoding.
#[derive(Debug, Default)]
struct KeyCache(std::sync::Mutex<std::collections::HashMap<[u8; 32], VerifyingKey>>);

impl KeyCache {
    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<[u8; 32], VerifyingKey>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, bytes: &[u8; 32]) -> Option<VerifyingKey> {
        self.map().get(bytes).copied()
    }

    fn put(&self, bytes: [u8; 32], key: VerifyingKey) {
        let mut map = self.map();
        if map.len() >= KEY_CACHE_SIZE {
            map.clear();
        }
        map.insert(bytes, key);
    }
}

fn key_cache() -> &'static KeyCache {
    static CACHE: std::sync::OnceLock<KeyCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(KeyCache::default)
}

/// A validated Ed25519 public key: it decompresses to a curve point and is not of small order.
///
/// Parsing always rejects weak keys, so every `PublicKey` that exists is safe to pin.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Validate 32 raw bytes; `field` names the input in errors.
    ///
    /// Decompressing a point costs a field exponentiation, and a relay parses the same few keys
    /// (a NAS's, its phones') in request after request, so keys that passed are remembered in
    /// a small process-wide cache ([`KEY_CACHE_SIZE`]; public data only).
    pub fn from_bytes(field: &'static str, bytes: &[u8; 32]) -> Result<Self, Error> {
        if let Some(key) = key_cache().get(bytes) {
            return Ok(Self(key));
        }
        // A non-canonical encoding names the same point as a canonical one: refuse it, so one
        // key has exactly one id.
        if !is_canonical(bytes) {
            return Err(Error::InvalidKey { field });
        }
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| Error::InvalidKey { field })?;
        if key.is_weak() {
            return Err(Error::WeakKey { field });
        }
        key_cache().put(*bytes, key);
        Ok(Self(key))
    }

    /// Parse unpadded base64url; `field` names the input in errors.
    pub fn parse(field: &'static str, text: &str) -> Result<Self, Error> {
        Self::from_bytes(field, &decode_fixed::<32>(field, text)?)
    }

    /// The 32 compressed bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The dalek key, for verification.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }

    /// The key's JWK thumbprint (RFC 7638 over the RFC 8037 OKP form
    /// `{"crv":"Ed25519","kty":"OKP","x":…}`), unpadded base64url: what a forwarding token's
    /// `cnf.jkt` names (PROTOCOL.md §8.6).
    pub fn jwk_thumbprint(&self) -> String {
        use sha2::Digest as _;
        let jwk = format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            encode_b64(self.as_bytes())
        );
        encode_b64(&sha2::Sha256::digest(jwk.as_bytes()))
    }
}

impl From<&ed25519_dalek::SigningKey> for PublicKey {
    fn from(signing_key: &ed25519_dalek::SigningKey) -> Self {
        // A key derived from a secret scalar is never of small order.
        Self(signing_key.verifying_key())
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&encode_b64(self.as_bytes()))
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse("key", &text).map_err(serde::de::Error::custom)
    }
}

/// Defines an identity newtype over a validated Ed25519 public key.
macro_rules! key_id {
    ($(#[$meta:meta])* $name:ident, $field:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub PublicKey);

        impl $name {
            /// Parse unpadded base64url, rejecting invalid and weak keys.
            pub fn parse(text: &str) -> Result<Self, Error> {
                PublicKey::parse($field, text).map(Self)
            }

            /// Validate 32 raw bytes.
            pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
                PublicKey::from_bytes($field, bytes).map(Self)
            }

            /// The 32 public key bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                self.0.as_bytes()
            }

            /// The key this id is.
            pub fn key(&self) -> &PublicKey {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::ids::b64_schema(concat!($field, ": base64url (no padding) of a 32-byte Ed25519 public key"), Some(32), Some(32))
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(text: &str) -> Result<Self, Error> {
                Self::parse(text)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(serializer)
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

key_id!(
    /// A NAS: base64url of its Ed25519 key `N`. Self-certifying; the relay keeps no account list.
    NasId, "nas_id"
);
key_id!(
    /// A phone's pairing: base64url of its Ed25519 API key `D_api`.
    DeviceId, "device_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jwk_thumbprint_matches_rfc_8037() {
        // RFC 8037 Appendix A.3: the thumbprint of the Appendix A.2 public key.
        let key =
            PublicKey::parse("x", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").expect("key");
        assert_eq!(
            key.jwk_thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn ids_round_trip_through_text_and_json() {
        let cid = Cid::random();
        assert_eq!(Cid::parse(&cid.to_string()), Ok(cid));
        let json = serde_json::to_string(&cid).expect("serialize");
        assert_eq!(
            serde_json::from_str::<Cid>(&json).expect("deserialize"),
            cid
        );
    }

    #[test]
    fn wrong_length_and_bad_alphabet_are_named() {
        assert_eq!(
            Cid::parse("AAAA"),
            Err(Error::Length {
                field: "cid",
                expected: 16,
                got: 3
            })
        );
        assert_eq!(
            Cid::parse("AAAAAAAAAAAAAAAAAAAA+A"),
            Err(Error::Base64 { field: "cid" })
        );
        // Padded base64 is refused: the wire form is unpadded.
        assert_eq!(
            Cid::parse("AAAAAAAAAAAAAAAAAAAAAA=="),
            Err(Error::TooLong {
                field: "cid",
                max: 16,
                got: 18
            })
        );
    }

    #[test]
    fn weak_and_invalid_keys_are_refused() {
        // The identity point (0, 1) has order 1.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            NasId::from_bytes(&identity),
            Err(Error::WeakKey { field: "nas_id" })
        );
        // A point of order 8 (from the RFC 8032 / "Taming the many EdDSAs" small-order list).
        let order8 = hex_to_32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a");
        assert_eq!(
            DeviceId::from_bytes(&order8),
            Err(Error::WeakKey { field: "device_id" })
        );
        // y = 2 is not on the curve.
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        assert_eq!(
            DeviceId::from_bytes(&off_curve),
            Err(Error::InvalidKey { field: "device_id" })
        );
    }

    #[test]
    fn non_canonical_encodings_of_valid_points_are_refused() {
        // y = p + small: decompresses to the point with y = small. Find the ones that are valid,
        // non-weak points under a lax decoder, and check that we refuse them.
        let mut refused = 0;
        for small in 2u8..19 {
            // p = 2^255 - 19, little-endian: ed ff .. ff 7f; p + small keeps the top bit clear.
            let mut bytes = [0xffu8; 32];
            bytes[31] = 0x7f;
            bytes[0] = 0xed + small;
            let Ok(lax) = VerifyingKey::from_bytes(&bytes) else {
                continue;
            };
            if lax.is_weak() {
                continue;
            }
            assert_eq!(
                PublicKey::from_bytes("key", &bytes),
                Err(Error::InvalidKey { field: "key" })
            );
            refused += 1;
        }
        assert!(
            refused > 0,
            "no non-canonical valid point found to test with"
        );
    }

    #[test]
    fn the_byte_check_agrees_with_recompression_on_every_edge() {
        // Every encoding near p, near zero and with either sign: canonical exactly when the
        // point it decodes to re-encodes to the same bytes.
        let mut cases = Vec::new();
        for low in (0u8..=0xff).step_by(1) {
            for top in [0x00u8, 0x7f, 0x80, 0xff] {
                let mut near_p = [0xffu8; 32];
                near_p[0] = low;
                near_p[31] = top;
                cases.push(near_p);
                let mut near_zero = [0u8; 32];
                near_zero[0] = low;
                near_zero[31] = top & 0x80;
                cases.push(near_zero);
            }
        }
        let mut compared = 0;
        for bytes in cases {
            let Ok(point) = VerifyingKey::from_bytes(&bytes) else {
                continue;
            };
            let recompressed = point.to_edwards().compress().to_bytes() == bytes;
            assert_eq!(is_canonical(&bytes), recompressed, "{}", hex::encode(bytes));
            compared += 1;
        }
        assert!(compared > 100, "only {compared} points decoded");
    }

    #[test]
    fn a_cached_key_is_the_key_and_refusals_are_never_cached() {
        let key = crate::generate_signing_key().verifying_key();
        let first = PublicKey::from_bytes("key", key.as_bytes()).expect("valid");
        let again = PublicKey::from_bytes("key", key.as_bytes()).expect("cached");
        assert_eq!(first, again);
        assert_eq!(again.verifying_key(), &key);
        let mut identity = [0u8; 32];
        identity[0] = 1;
        for _ in 0..2 {
            assert_eq!(
                PublicKey::from_bytes("key", &identity),
                Err(Error::WeakKey { field: "key" })
            );
        }
    }

    fn hex_to_32(text: &str) -> [u8; 32] {
        let bytes = hex::decode(text).expect("hex");
        bytes.try_into().expect("32 bytes")
    }
}
