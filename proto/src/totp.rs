//! Offline one-time codes (RFC 6238 TOTP with HMAC-SHA256, 30 s steps, 6 digits) for when the
//! relay or push is unreachable. Both sides derive the per-pairing TOTP secret from the pairing
//! secret `k` at pairing time, so there is no extra enrollment step. Owns the derivation, code
//! computation and the ±1-step, use-once check; callers persist the last used step.

use hkdf::Hkdf;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::ids::DeviceId;
use crate::pairing::PairingSecret;

/// Seconds per step.
pub const STEP: u64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// HKDF salt of the TOTP secret derivation.
pub const SALT: &[u8] = b"approvd/v1/totp";

/// `HKDF-SHA256(salt = "approvd/v1/totp", ikm = k, info = device_id bytes)`, 32 bytes.
pub fn totp_secret(pairing_secret: &PairingSecret, device_id: &DeviceId) -> [u8; 32] {
    let hkdf = Hkdf::<Sha256>::new(Some(SALT), &pairing_secret.0);
    let mut secret = [0u8; 32];
    hkdf.expand(device_id.as_bytes(), &mut secret)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    secret
}

/// The RFC 6238 code for time step `counter` with `digits` digits (HMAC-SHA256, RFC 4226
/// dynamic truncation).
pub fn code_for_step(secret: &[u8], counter: u64, digits: u32) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!(
        "{:0width$}",
        binary % 10u32.pow(digits),
        width = digits as usize
    )
}

/// The 6-digit code at unix time `now`.
pub fn code_at(secret: &[u8], now: u64) -> String {
    code_for_step(secret, now / STEP, DIGITS)
}

/// Check `code` at `now`, accepting the previous, current and next step, but only steps after
/// `last_used_step` (each code works once). Returns the matched step to remember.
pub fn verify(secret: &[u8], code: &str, now: u64, last_used_step: Option<u64>) -> Option<u64> {
    let current = now / STEP;
    let mut matched = None;
    for step in [current.saturating_sub(1), current, current + 1] {
        if last_used_step.is_some_and(|used| step <= used) {
            continue;
        }
        let expected = code_for_step(secret, step, DIGITS);
        // Constant-time compare; keep scanning so timing does not reveal which step matched.
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, the SHA-256 column (seed = ASCII "1234567890" repeated to 32 bytes).
    #[test]
    fn rfc6238_sha256_vectors() {
        let seed = b"12345678901234567890123456789012";
        for (time, expected) in [
            (59u64, "46119246"),
            (1_111_111_109, "68084774"),
            (1_111_111_111, "67062674"),
            (1_234_567_890, "91819424"),
            (2_000_000_000, "90698825"),
            (20_000_000_000, "77737706"),
        ] {
            assert_eq!(code_for_step(seed, time / STEP, 8), expected, "T = {time}");
        }
    }

    #[test]
    fn codes_work_within_one_step_and_only_once() {
        let keys = crate::vectors::Keys::fixed();
        let secret = totp_secret(&PairingSecret([1; 32]), &keys.device_id());
        let now = 1_800_000_015;
        let code = code_at(&secret, now);
        assert_eq!(code.len(), 6);
        let step = verify(&secret, &code, now, None).expect("valid now");
        assert_eq!(
            verify(&secret, &code, now + STEP, None),
            Some(step),
            "a step late is fine"
        );
        assert_eq!(
            verify(&secret, &code, now - STEP, None),
            Some(step),
            "a step early is fine"
        );
        assert_eq!(
            verify(&secret, &code, now + 2 * STEP, None),
            None,
            "two steps late is not"
        );
        assert_eq!(verify(&secret, &code, now, Some(step)), None, "used once");
        assert_eq!(verify(&secret, "000000x", now, None), None);
    }

    #[test]
    fn the_secret_depends_on_pairing_secret_and_device() {
        let keys = crate::vectors::Keys::fixed();
        let a = totp_secret(&PairingSecret([1; 32]), &keys.device_id());
        let b = totp_secret(&PairingSecret([2; 32]), &keys.device_id());
        let c = totp_secret(
            &PairingSecret([1; 32]),
            &DeviceId(crate::PublicKey::from(&keys.nas)),
        );
        assert_ne!(a, b);
        assert_ne!(a, c);
    }
}
