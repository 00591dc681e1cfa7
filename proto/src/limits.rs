//! Every size and count limit of the protocol (`MAX_*`, and the sizes they are made of) and
//! `check_text`, the one length check of text fields. The ground floor of `approvd-proto`: it
//! uses nothing of the crate but `Error`, so every other module may use it and no module needs
//! another just for a limit (the modules re-export theirs under their old paths).

use crate::Error;

// ---- the sealed login context (`context`) ----
/// Largest plaintext (after padding) a sealer produces and an opener accepts.
pub const MAX_PLAINTEXT: usize = 4096;
/// Longest action text (`kind: action`), bytes.
pub const MAX_ACTION: usize = 256;
/// Largest sealed blob: `enc` (32) + plaintext + Poly1305 tag (16).
pub const MAX_SEALED: usize = 32 + MAX_PLAINTEXT + 16;

// ---- request signatures (`httpsig`) ----
/// Largest allowed |now − created|, seconds.
pub const MAX_SKEW: u64 = 60;
/// Largest allowed `expires − created`, seconds.
pub const MAX_LIFETIME: u64 = 300;
/// Longest `Signature-Input` / `Signature` / `Content-Digest` header we parse.
pub const MAX_HEADER: usize = 2048;
/// Most components one signature may cover (the profile's 4 plus what a signer adds).
pub const MAX_COMPONENTS: usize = 16;

// ---- pairing (`pairing`) ----
/// Longest URI accepted (fits a version-10 QR code comfortably).
pub const MAX_URI: usize = 1024;
/// Longest relay URL.
pub const MAX_RELAY_URL: usize = 512;
/// Longest NAS label.
pub const MAX_LABEL: usize = 64;
/// Longest account name.
pub const MAX_ACCOUNT: usize = 64;
/// Longest a pairing slot may live, in seconds.
pub const MAX_PAIRING_TTL: u64 = 600;
/// The device-info plaintext is padded with spaces to this many bytes, so its sealed size says
/// nothing about the name's length.
pub const DEVICE_INFO_PLAINTEXT: usize = 128;
/// Length of the sealed device info: nonce (12) + padded plaintext + tag (16).
pub const SEALED_DEVICE_INFO: usize = 12 + DEVICE_INFO_PLAINTEXT + 16;

// ---- JSON bodies (`wire`) ----
/// Largest request body the relay accepts, bytes.
pub const MAX_BODY: usize = 64 * 1024;
/// Most targets (devices) in one challenge.
pub const MAX_TARGETS: usize = 10;
/// Longest challenge lifetime (`expires − created`), seconds.
pub const MAX_CHALLENGE_LIFETIME: u64 = 120;
/// Longest push handle, bytes.
pub const MAX_HANDLE: usize = 1024;
/// Longest push token, bytes (APNs: 32 bytes as 64 hex; FCM: ~160 characters).
pub const MAX_PUSH_TOKEN: usize = 512;
/// Longest push topic / app id, bytes.
pub const MAX_TOPIC: usize = 255;
/// Longest device name, bytes.
pub const MAX_DEVICE_NAME: usize = 64;
/// Longest platform string, bytes.
pub const MAX_PLATFORM: usize = 16;
/// Shortest typed number (number matching), digits: a blind guess of 3 digits wins 1 in 1000.
pub const MIN_NUMBER: usize = 3;
/// Longest typed number (number matching), digits.
pub const MAX_NUMBER: usize = 8;
/// Most notice ids in one mailbox acknowledgement.
pub const MAX_ACK: usize = 100;

/// Check a text field's byte length (and, unless `allow_empty`, that it is non-empty).
pub fn check_text(
    field: &'static str,
    value: &str,
    max: usize,
    allow_empty: bool,
) -> Result<(), Error> {
    if !allow_empty && value.is_empty() {
        return Err(Error::Empty { field });
    }
    if value.len() > max {
        return Err(Error::TooLong {
            field,
            max,
            got: value.len(),
        });
    }
    Ok(())
}
