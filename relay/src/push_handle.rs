//! Push handles: the relay's sealed record of one pairing (`device_id`, `nas_id`, `D_sig`,
//! optional push registration). Owns the handle keys (loading, generating, rotation by key id)
//! and sealing/opening with XChaCha20-Poly1305. Nothing outside this module sees a handle's
//! plaintext layout; push tokens exist only inside handles.
//!
//! Wire layout: `kid (1 byte) || nonce (24 bytes) || ciphertext+tag`, with
//! `aad = "approvd/v1/handle" || kid`.

use std::path::Path;

use approvd_proto::ids::{encode_b64, PublicKey};
use approvd_proto::wire::{PushHandle, PushRegistration};
use approvd_proto::{DeviceId, NasId};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

/// Why a handle or key file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandleError {
    /// Not minted by this relay (unknown key id, retired key, or tampered).
    #[error("the push handle was not minted by this relay or has been tampered with")]
    NotOurs,
    #[error("handle key file {path}: {message}")]
    KeyFile { path: String, message: String },
}

/// What a handle says.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HandleContents {
    #[serde(rename = "d")]
    pub device_id: DeviceId,
    #[serde(rename = "n")]
    pub nas_id: NasId,
    /// `D_sig`, for the relay's verdict signature check.
    #[serde(rename = "s")]
    pub sig_key: PublicKey,
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushRegistration>,
    #[serde(rename = "t")]
    pub minted_at: u64,
}

impl std::fmt::Debug for HandleContents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandleContents")
            .field("device_id", &self.device_id)
            .field("nas_id", &self.nas_id)
            .field("push", &self.push)
            .finish_non_exhaustive()
    }
}

/// One key.
struct HandleKey {
    kid: u8,
    cipher: XChaCha20Poly1305,
    /// Retired keys open handles only until then (unix seconds); `None` = no end.
    accept_until: Option<u64>,
}

/// The relay's handle keys: the first mints, all open (while accepted).
pub struct HandleKeys {
    /// Never empty; `keys[0]` is the minting key.
    keys: Vec<HandleKey>,
}

impl std::fmt::Debug for HandleKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<u8> = self.keys.iter().map(|key| key.kid).collect();
        write!(f, "HandleKeys(kids {kids:?}, <redacted>)")
    }
}

const AAD_PREFIX: &[u8] = b"approvd/v1/handle";

impl HandleKeys {
    /// Parse a key file: lines `<kid 0-255> <base64url 32 bytes> [accept-until=<unix>]`;
    /// `#` starts a comment. The first key line mints.
    pub fn parse(path: &str, text: &str) -> Result<Self, HandleError> {
        let error = |line: usize, message: &str| HandleError::KeyFile {
            path: path.to_owned(),
            message: format!("line {line}: {message}"),
        };
        let mut keys: Vec<HandleKey> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line_number = index + 1;
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let kid: u8 = parts
                .next()
                .and_then(|kid| kid.parse().ok())
                .ok_or_else(|| error(line_number, "expected a key id 0-255"))?;
            let secret = Zeroizing::new(
                approvd_proto::ids::decode_fixed::<32>("key", parts.next().unwrap_or(""))
                    .map_err(|_| error(line_number, "expected a base64url 32-byte key"))?,
            );
            let mut accept_until = None;
            for extra in parts {
                let until = extra
                    .strip_prefix("accept-until=")
                    .and_then(|until| until.parse().ok())
                    .ok_or_else(|| error(line_number, "expected accept-until=<unix time>"))?;
                accept_until = Some(until);
            }
            if keys.iter().any(|key| key.kid == kid) {
                return Err(error(line_number, "duplicate key id"));
            }
            if keys.is_empty() && accept_until.is_some() {
                return Err(error(
                    line_number,
                    "the first (minting) key cannot be retired",
                ));
            }
            keys.push(HandleKey {
                kid,
                cipher: XChaCha20Poly1305::new((&*secret).into()),
                accept_until,
            });
        }
        if keys.is_empty() {
            return Err(HandleError::KeyFile {
                path: path.to_owned(),
                message: "no key".to_owned(),
            });
        }
        Ok(Self { keys })
    }

    /// A fresh key file text (one random key with id 1).
    pub fn generate_file_text() -> Zeroizing<String> {
        let secret = Zeroizing::new(approvd_proto::random_bytes::<32>());
        Zeroizing::new(format!(
            "# approvd push-handle keys: <kid> <base64url key> [accept-until=<unix>]\n\
             # The first key mints handles; keep retired keys below it while old handles live.\n\
             1 {}\n",
            encode_b64(&*secret)
        ))
    }

    /// Load `path`, or — when `path` is `None` — load or create `<data_dir>/handle-keys`
    /// (mode 0600). Returns the keys and whether a new file was generated.
    pub fn load_or_generate(
        path: Option<&Path>,
        data_dir: &Path,
    ) -> Result<(Self, bool), HandleError> {
        let file_error = |path: &Path, error: std::io::Error| HandleError::KeyFile {
            path: path.display().to_string(),
            message: error.to_string(),
        };
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|error| file_error(path, error))?;
            return Ok((Self::parse(&path.display().to_string(), &text)?, false));
        }
        let path = data_dir.join("handle-keys");
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok((Self::parse(&path.display().to_string(), &text)?, false)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(|error| file_error(data_dir, error))?;
                let text = Self::generate_file_text();
                write_private(&path, text.as_bytes()).map_err(|error| file_error(&path, error))?;
                Ok((Self::parse(&path.display().to_string(), &text)?, true))
            }
            Err(error) => Err(file_error(&path, error)),
        }
    }

    /// Seal `contents` with the minting key.
    pub fn mint(&self, contents: &HandleContents) -> PushHandle {
        let key = &self.keys[0];
        let nonce_bytes = approvd_proto::random_bytes::<24>();
        let plaintext = Zeroizing::new(serde_json::to_vec(contents).expect("contents serialize"));
        let aad = aad(key.kid);
        let ciphertext = key
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce_bytes),
                Payload {
                    msg: &plaintext,
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 encryption of a small buffer cannot fail");
        let mut handle = Vec::with_capacity(1 + 24 + ciphertext.len());
        handle.push(key.kid);
        handle.extend_from_slice(&nonce_bytes);
        handle.extend_from_slice(&ciphertext);
        PushHandle(handle)
    }

    /// Open a handle at time `now`.
    pub fn open(&self, handle: &PushHandle, now: u64) -> Result<HandleContents, HandleError> {
        let bytes = &handle.0;
        if bytes.len() < 1 + 24 + 16 {
            return Err(HandleError::NotOurs);
        }
        let key = self
            .keys
            .iter()
            .find(|key| key.kid == bytes[0])
            .ok_or(HandleError::NotOurs)?;
        if key.accept_until.is_some_and(|until| now > until) {
            return Err(HandleError::NotOurs);
        }
        let aad = aad(key.kid);
        let plaintext = Zeroizing::new(
            key.cipher
                .decrypt(
                    XNonce::from_slice(&bytes[1..25]),
                    Payload {
                        msg: &bytes[25..],
                        aad: &aad,
                    },
                )
                .map_err(|_| HandleError::NotOurs)?,
        );
        serde_json::from_slice(&plaintext).map_err(|_| HandleError::NotOurs)
    }
}

fn aad(kid: u8) -> Vec<u8> {
    let mut aad = AAD_PREFIX.to_vec();
    aad.push(kid);
    aad
}

/// Write a file readable only by its owner.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use approvd_proto::wire::PushProvider;

    fn contents() -> HandleContents {
        let keys = approvd_proto::vectors::Keys::fixed();
        HandleContents {
            device_id: keys.device_id(),
            nas_id: keys.nas_id(),
            sig_key: keys.sig_key(),
            push: Some(PushRegistration {
                provider: PushProvider::Fcm,
                token: "t".repeat(163),
                topic: "dev.approvd.app".into(),
                p256dh: None,
                auth: None,
            }),
            minted_at: 1,
        }
    }

    fn keys(text: &str) -> HandleKeys {
        HandleKeys::parse("test", text).expect("parses")
    }

    const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    const KEY_B: &str = "HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4";

    #[test]
    fn minted_handle_opens_and_hides_the_token() {
        let keys = keys(&format!("1 {KEY_A}\n"));
        let handle = keys.mint(&contents());
        assert_eq!(keys.open(&handle, 0), Ok(contents()));
        let token = "t".repeat(163);
        assert!(!String::from_utf8_lossy(&handle.0).contains(&token));
        assert!(
            handle.0.len() <= approvd_proto::wire::MAX_HANDLE,
            "{}",
            handle.0.len()
        );
        assert!(!format!("{:?}", contents()).contains(&token));
    }

    /// Web Push registrations carry the endpoint (up to the 512 bytes every push token may
    /// have), the VAPID key as topic and the subscription's keys. Real endpoints measured
    /// from published subscriptions: Chrome (FCM) 188, Firefox (Mozilla) 234, Safari (Apple)
    /// 198, Edge (WNS) 412 bytes. All, and the 512-byte maximum, fit in a handle.
    #[test]
    fn a_web_push_handle_fits_the_limit_with_the_longest_endpoint() {
        let keys = keys(&format!("1 {KEY_A}\n"));
        let mut sizes = Vec::new();
        for (service, length) in [
            ("fcm", 188),
            ("mozilla", 234),
            ("apple", 198),
            ("wns", 412),
            ("longest allowed", approvd_proto::limits::MAX_PUSH_TOKEN),
        ] {
            let prefix = "https://push.example/";
            let registration = PushRegistration {
                provider: PushProvider::Webpush,
                token: format!("{prefix}{}", "x".repeat(length - prefix.len())),
                topic: encode_b64(&[4; 65]),
                p256dh: Some(encode_b64(&[4; 65])),
                auth: Some(encode_b64(&[1; 16])),
            };
            approvd_proto::wire::Validate::validate(&registration).expect(service);
            let handle = keys.mint(&HandleContents {
                push: Some(registration),
                ..contents()
            });
            assert!(
                handle.0.len() <= approvd_proto::wire::MAX_HANDLE,
                "{service}: {} bytes",
                handle.0.len()
            );
            sizes.push((service, handle.0.len()));
        }
        println!("handle bytes per endpoint: {sizes:?}");
    }

    #[test]
    fn tampered_foreign_and_retired_handles_are_not_ours() {
        let keys_a = keys(&format!("1 {KEY_A}\n"));
        let handle = keys_a.mint(&contents());
        for index in 0..handle.0.len() {
            let mut tampered = handle.clone();
            tampered.0[index] ^= 1;
            assert_eq!(
                keys_a.open(&tampered, 0),
                Err(HandleError::NotOurs),
                "byte {index}"
            );
        }
        let other_relay = keys(&format!("1 {KEY_B}\n"));
        assert_eq!(other_relay.open(&handle, 0), Err(HandleError::NotOurs));
        // Rotation: B mints, A is still accepted until 100.
        let rotated = keys(&format!("2 {KEY_B}\n1 {KEY_A} accept-until=100\n"));
        assert_eq!(rotated.open(&handle, 100), Ok(contents()));
        assert_eq!(rotated.open(&handle, 101), Err(HandleError::NotOurs));
        assert_eq!(rotated.mint(&contents()).0[0], 2);
    }

    #[test]
    fn bad_key_files_are_explained() {
        for (text, message) in [
            ("", "no key"),
            ("x key", "line 1: expected a key id 0-255"),
            ("1 short", "line 1: expected a base64url 32-byte key"),
            (
                &format!("1 {KEY_A}\n1 {KEY_B}") as &str,
                "line 2: duplicate key id",
            ),
            (
                &format!("1 {KEY_A} accept-until=5") as &str,
                "line 1: the first (minting) key cannot be retired",
            ),
        ] {
            let error = HandleKeys::parse("f", text)
                .map(|_| ())
                .expect_err("refused");
            assert_eq!(error.to_string(), format!("handle key file f: {message}"));
        }
    }

    #[test]
    fn generated_key_file_is_private_and_reloads() {
        let dir = std::env::temp_dir().join(format!("approvd-handle-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (first, generated) = HandleKeys::load_or_generate(None, &dir).expect("generates");
        assert!(generated);
        let (second, generated) = HandleKeys::load_or_generate(None, &dir).expect("loads");
        assert!(!generated);
        let handle = first.mint(&contents());
        assert_eq!(second.open(&handle, 0), Ok(contents()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join("handle-keys"))
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
