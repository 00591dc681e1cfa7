//! The one error type of `approvd-proto`: what was wrong with an input, by field. Knows nothing
//! of HTTP status codes or I/O; the relay and the SDK map these variants to their own errors.

/// Everything that can be wrong with bytes, strings or signatures handed to this crate.
///
/// `field` names are the wire names (JSON keys, URI parameters, header names), so a message
/// built from this error tells the caller exactly what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("`{field}` is not valid unpadded base64url")]
    Base64 { field: &'static str },
    #[error("`{field}` must be {expected} bytes, got {got}")]
    Length {
        field: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("`{field}` is longer than {max} bytes (got {got})")]
    TooLong {
        field: &'static str,
        max: usize,
        got: usize,
    },
    #[error("`{field}` has more than {max} entries (got {got})")]
    TooMany {
        field: &'static str,
        max: usize,
        got: usize,
    },
    #[error("`{field}` must not be empty")]
    Empty { field: &'static str },
    #[error("`{field}` is not a valid Ed25519 public key")]
    InvalidKey { field: &'static str },
    #[error("`{field}` is a weak (small-order) Ed25519 public key")]
    WeakKey { field: &'static str },
    #[error("`{field}` has an invalid value: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
    #[error("signature does not verify")]
    BadSignature,
    #[error("pairing claim MAC does not verify")]
    BadMac,
    #[error("expired at {expired_at} (now {now})")]
    Expired { expired_at: u64, now: u64 },
    #[error("not valid before {not_before} (now {now}): check the clock")]
    NotYetValid { not_before: u64, now: u64 },
    #[error("pairing URI: {0}")]
    Uri(#[from] UriError),
    #[error("HTTP signature: {0}")]
    HttpSig(#[from] HttpSigError),
    #[error("sealed context could not be opened (wrong key, wrong challenge or tampered)")]
    OpenFailed,
    #[error("sealing the context failed")]
    SealFailed,
    #[error("login context is not valid JSON: {0}")]
    ContextJson(String),
}

impl Error {
    /// The wire field the error is about, when it names one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Error::Base64 { field }
            | Error::Length { field, .. }
            | Error::TooLong { field, .. }
            | Error::TooMany { field, .. }
            | Error::Empty { field }
            | Error::InvalidKey { field }
            | Error::WeakKey { field }
            | Error::Invalid { field, .. } => Some(field),
            Error::BadSignature
            | Error::BadMac
            | Error::Expired { .. }
            | Error::NotYetValid { .. }
            | Error::Uri(_)
            | Error::HttpSig(_)
            | Error::OpenFailed
            | Error::SealFailed
            | Error::ContextJson(_) => None,
        }
    }
}

/// What is wrong with an `approvd://pair?...` URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("must start with `approvd://pair?`")]
    Scheme,
    #[error("missing parameter `{0}`")]
    Missing(&'static str),
    #[error("parameter `{0}` appears more than once")]
    Duplicate(String),
    #[error("unknown parameter `{0}`")]
    Unknown(String),
    #[error("unsupported version `v={0}` (this implementation speaks v=1)")]
    Version(String),
    #[error("parameter `{0}` is not valid percent-encoded UTF-8")]
    Encoding(&'static str),
    #[error("`r` must be an absolute http:// or https:// URL without query or fragment")]
    RelayUrl,
    #[error("`r` must be https:// (plain http:// only to a loopback address, for development)")]
    PlainHttp,
    #[error("`e` must be a decimal unix time")]
    Expiry,
    #[error("URI is longer than {max} bytes")]
    TooLong { max: usize },
}

/// What is wrong with an RFC 9421 request signature. The relay answers all of these with 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpSigError {
    #[error("missing header `{0}`")]
    MissingHeader(&'static str),
    #[error("header `{header}` is malformed: {reason}")]
    Malformed {
        header: &'static str,
        reason: &'static str,
    },
    #[error("`Signature-Input` must carry exactly one signature, and `Signature` the same label")]
    Label,
    #[error("covered components must include `{0}`")]
    MissingComponent(&'static str),
    #[error("component `{0}` is not supported by this profile")]
    UnsupportedComponent(String),
    #[error("covered component `{0}` is not in the request")]
    MissingField(String),
    #[error("missing signature parameter `{0}`")]
    MissingParam(&'static str),
    #[error("signature parameter `{0}` is not supported by this profile")]
    UnknownParam(String),
    #[error("`alg` must be \"ed25519\"")]
    Alg,
    #[error("`tag` must be \"approvd/v1\"")]
    Tag,
    #[error("`created` is {skew} s away from the relay clock (allowed: {max_skew} s)")]
    Skew { skew: u64, max_skew: u64 },
    #[error("the covered `Date` is {skew} s away from the relay clock (allowed: {max_skew} s)")]
    DateSkew { skew: u64, max_skew: u64 },
    #[error("`expires` is in the past")]
    Expired,
    #[error("`expires` must be after `created` and at most {max} s later")]
    Lifetime { max: u64 },
    #[error("`nonce` must be 16 to 64 base64url characters")]
    Nonce,
    #[error("`keyid`: {0}")]
    KeyId(Box<Error>),
    #[error("`Content-Digest` does not match the body")]
    DigestMismatch,
    #[error("`Content-Digest` must carry a sha-256 digest")]
    DigestAlgorithm,
    #[error("signature does not verify")]
    BadSignature,
}
