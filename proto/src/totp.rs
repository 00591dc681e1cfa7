//! Offline one-time codes (RFC 6238 TOTP with HMAC-SHA256, 30 s steps, 6 digits) for when the
//! relay or push is unreachable. The code secret is 32 random bytes the NAS draws once the user
//! has confirmed the pairing and seals to the phone's `Dx` (HPKE, bound to the claim it
//! confirms); `pair-confirm` signs the sealed blob's hash. Nothing public or printed in the QR
//! code goes into it. Owns the secret, its sealing, code computation and the use-once check
//! (callers persist the last accepted step).

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::context::{hpke_open, hpke_seal, SealSecret};
use crate::ids::{DeviceId, Digest, NasId, PairingId, SealKey};
use crate::signed::Encoder;
use crate::Error;

/// Seconds per step.
pub const STEP: u64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Label of the HPKE `info` of the sealed code secret.
pub const INFO_LABEL: &str = "code-secret-info";
/// Label of the HPKE `aad` of the sealed code secret.
pub const AAD_LABEL: &str = "code-secret-aad";
/// Length of the sealed code secret: `enc` (32) + secret (32) + tag (16).
pub const SEALED_LEN: usize = 32 + 32 + 16;

/// The per-pairing offline-code secret.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct CodeSecret(pub [u8; 32]);

impl CodeSecret {
    /// A fresh random secret (the NAS draws one per confirmed pairing).
    pub fn generate() -> Self {
        Self(crate::random_bytes())
    }
}

impl std::fmt::Debug for CodeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeSecret(<redacted>)")
    }
}

/// What a sealed code secret is bound to: the pairing slot, the device, the NAS and the exact
/// claim being confirmed. Opening under any other binding fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeSecretBinding {
    pub pairing_id: PairingId,
    pub nas_id: NasId,
    pub device_id: DeviceId,
    pub claim_hash: Digest,
}

impl CodeSecretBinding {
    /// HPKE `info`: `"approvd/v1/code-secret-info" || 0x00 || LP(pairing_id) || LP(device_id)`.
    pub fn info(&self) -> Vec<u8> {
        Encoder::new(INFO_LABEL)
            .bytes(self.pairing_id.as_bytes())
            .bytes(self.device_id.as_bytes())
            .finish()
    }

    /// HPKE `aad`: `"approvd/v1/code-secret-aad" || 0x00 || LP(claim_hash) || LP(nas_id)`.
    pub fn aad(&self) -> Vec<u8> {
        Encoder::new(AAD_LABEL)
            .bytes(self.claim_hash.as_bytes())
            .bytes(self.nas_id.as_bytes())
            .finish()
    }
}

/// Seal `secret` to the phone's `Dx` under `binding` ([`SEALED_LEN`] bytes).
pub fn seal_code_secret(
    secret: &CodeSecret,
    binding: &CodeSecretBinding,
    recipient: &SealKey,
) -> Result<Vec<u8>, Error> {
    seal_code_secret_with_rng(secret, binding, recipient, &mut rand::rng())
}

/// [`seal_code_secret`] with a caller-chosen RNG (test vectors use a fixed `ikmE`).
pub fn seal_code_secret_with_rng<R: rand::CryptoRng + rand::RngCore>(
    secret: &CodeSecret,
    binding: &CodeSecretBinding,
    recipient: &SealKey,
    rng: &mut R,
) -> Result<Vec<u8>, Error> {
    hpke_seal(recipient, &binding.info(), &binding.aad(), &secret.0, rng)
}

/// Open a sealed code secret with the phone's `Dx` secret.
pub fn open_code_secret(
    sealed: &[u8],
    binding: &CodeSecretBinding,
    secret: &SealSecret,
) -> Result<CodeSecret, Error> {
    if sealed.len() != SEALED_LEN {
        return Err(Error::Length {
            field: "code_secret",
            expected: SEALED_LEN,
            got: sealed.len(),
        });
    }
    let mut plaintext = hpke_open(sealed, &binding.info(), &binding.aad(), secret)?;
    let opened: Result<[u8; 32], _> = plaintext.as_slice().try_into();
    plaintext.zeroize();
    opened.map(CodeSecret).map_err(|_| Error::OpenFailed)
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
/// `last_used_step` (each code works once, and never one older than the last one accepted).
/// Returns the matched step to remember.
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
    fn codes_work_within_one_step_and_only_once_and_never_older() {
        let secret = CodeSecret::generate();
        let now = 1_800_000_015;
        let code = code_at(&secret.0, now);
        assert_eq!(code.len(), 6);
        let step = verify(&secret.0, &code, now, None).expect("valid now");
        assert_eq!(verify(&secret.0, &code, now + STEP, None), Some(step));
        assert_eq!(verify(&secret.0, &code, now - STEP, None), Some(step));
        assert_eq!(verify(&secret.0, &code, now + 2 * STEP, None), None);
        assert_eq!(verify(&secret.0, &code, now, Some(step)), None, "used once");
        let next = code_at(&secret.0, now + STEP);
        assert_eq!(
            verify(&secret.0, &code, now, Some(step + 1)),
            None,
            "a code older than the last accepted one is refused"
        );
        assert_eq!(verify(&secret.0, &next, now, Some(step)), Some(step + 1));
        assert_eq!(verify(&secret.0, "000000x", now, None), None);
    }

    #[test]
    fn the_sealed_secret_opens_only_for_its_phone_and_claim() {
        let keys = crate::vectors::Keys::fixed();
        let binding = CodeSecretBinding {
            pairing_id: PairingId([7; 16]),
            nas_id: keys.nas_id(),
            device_id: keys.device_id(),
            claim_hash: Digest([9; 32]),
        };
        let secret = CodeSecret::generate();
        let sealed =
            seal_code_secret(&secret, &binding, &keys.device_seal.public_key()).expect("seals");
        assert_eq!(sealed.len(), SEALED_LEN);
        let opened = open_code_secret(&sealed, &binding, &keys.device_seal).expect("opens");
        assert_eq!(opened, secret);
        let other_claim = CodeSecretBinding {
            claim_hash: Digest([8; 32]),
            ..binding
        };
        assert_eq!(
            open_code_secret(&sealed, &other_claim, &keys.device_seal),
            Err(Error::OpenFailed)
        );
        let other_phone = SealSecret::generate();
        assert_eq!(
            open_code_secret(&sealed, &binding, &other_phone),
            Err(Error::OpenFailed)
        );
    }
}
