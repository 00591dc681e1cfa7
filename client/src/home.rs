//! State directories for the CLI and for integrators who want files: a NAS home (identity key,
//! settings, device list with offline-code secrets) and a phone home (one pairing). Keys and
//! secrets are written 0600 and refused when readable by others; every write is atomic.

use std::path::{Path, PathBuf};

use approvd_proto::ids::{decode_fixed, encode_b64};
use approvd_proto::totp::CodeSecret;
use approvd_proto::DeviceId;
use ed25519_dalek::SigningKey;

use crate::files::{read_json, read_private, write_atomic, write_json};
use crate::nas::{MailboxEvent, Nas, PairedDevice};
use crate::phone::{Phone, PhoneState};
use crate::transport::ClientError;

/// A NAS's settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NasSettings {
    pub relay: String,
    pub label: String,
}

/// One paired device as the NAS stores it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceRecord {
    #[serde(flatten)]
    pub device: PairedDevice,
    /// base64url offline-code secret (PROTOCOL.md §5.5).
    pub totp_secret: String,
    /// The last offline-code step accepted (codes work once).
    pub last_totp_step: Option<u64>,
    /// The push provider reported the token dead; the inbox still works.
    pub push_gone: bool,
    /// The phone muted this NAS until then.
    pub muted_until: Option<u64>,
}

/// `<dir>/nas.key` (0600), `<dir>/nas.json`, `<dir>/devices.json` (0600: offline-code secrets).
#[derive(Debug, Clone)]
pub struct NasHome {
    dir: PathBuf,
}

impl NasHome {
    fn key_path(&self) -> PathBuf {
        self.dir.join("nas.key")
    }

    fn devices_path(&self) -> PathBuf {
        self.dir.join("devices.json")
    }

    /// Create a NAS identity in `dir` (refuses to overwrite one).
    pub fn init(dir: &Path, relay: &str, label: &str) -> Result<Self, ClientError> {
        let home = Self {
            dir: dir.to_owned(),
        };
        if home.key_path().exists() {
            return Err(ClientError::Storage {
                path: home.key_path().display().to_string(),
                message: "a NAS identity exists here already".to_owned(),
            });
        }
        approvd_proto::pairing::check_relay_url(relay)
            .map_err(|_| ClientError::BadUrl(relay.to_owned()))?;
        let key = approvd_proto::generate_signing_key();
        write_atomic(
            &home.key_path(),
            format!("{}\n", encode_b64(&key.to_bytes())).as_bytes(),
            true,
        )?;
        write_json(
            &dir.join("nas.json"),
            &NasSettings {
                relay: relay.to_owned(),
                label: label.to_owned(),
            },
            false,
        )?;
        write_json(&home.devices_path(), &Vec::<DeviceRecord>::new(), true)?;
        Ok(home)
    }

    /// Open an existing NAS home.
    pub fn open(dir: &Path) -> Result<Self, ClientError> {
        let home = Self {
            dir: dir.to_owned(),
        };
        if !home.key_path().exists() {
            return Err(ClientError::Storage {
                path: dir.display().to_string(),
                message: "no NAS identity here; run `approvd nas init` first".to_owned(),
            });
        }
        Ok(home)
    }

    pub fn settings(&self) -> Result<NasSettings, ClientError> {
        read_json(&self.dir.join("nas.json"), false)
    }

    /// The NAS client (loads the private key, refusing a key file others can read).
    pub fn nas(&self) -> Result<Nas, ClientError> {
        let text = read_private(&self.key_path())?;
        let text = String::from_utf8_lossy(&text);
        let key = SigningKey::from_bytes(&decode_fixed::<32>("nas.key", text.trim())?);
        Nas::new(&self.settings()?.relay, key)
    }

    pub fn devices(&self) -> Result<Vec<DeviceRecord>, ClientError> {
        read_json(&self.devices_path(), true)
    }

    pub fn save_devices(&self, devices: &[DeviceRecord]) -> Result<(), ClientError> {
        write_json(&self.devices_path(), &devices, true)
    }

    /// Record a newly paired device with its offline-code secret.
    pub fn add_device(
        &self,
        device: PairedDevice,
        code_secret: &CodeSecret,
    ) -> Result<(), ClientError> {
        let mut devices = self.devices()?;
        devices.retain(|record| record.device.device_id != device.device_id);
        devices.push(DeviceRecord {
            device,
            totp_secret: encode_b64(&code_secret.0),
            last_totp_step: None,
            push_gone: false,
            muted_until: None,
        });
        self.save_devices(&devices)
    }

    /// Apply verified mailbox events to the device list.
    pub fn apply(&self, events: &[MailboxEvent]) -> Result<(), ClientError> {
        let mut devices = self.devices()?;
        for event in events {
            match event {
                MailboxEvent::HandleRefreshed {
                    device_id,
                    push_handle,
                } => {
                    for record in devices
                        .iter_mut()
                        .filter(|r| r.device.device_id == *device_id)
                    {
                        record.device.push_handle = push_handle.clone();
                        record.push_gone = false;
                    }
                }
                MailboxEvent::PushGone { device_id } => {
                    for record in devices
                        .iter_mut()
                        .filter(|r| r.device.device_id == *device_id)
                    {
                        record.push_gone = true;
                    }
                }
                MailboxEvent::Unpaired { device_id } => {
                    devices.retain(|record| record.device.device_id != *device_id);
                }
                MailboxEvent::Muted { device_id, until } => {
                    for record in devices
                        .iter_mut()
                        .filter(|r| r.device.device_id == *device_id)
                    {
                        record.muted_until = Some(*until);
                    }
                }
                MailboxEvent::Ignored { .. } => {}
            }
        }
        self.save_devices(&devices)
    }

    /// Check an offline code against every device (±1 step, each code once). Returns the device
    /// whose code it is, and remembers the step so the code cannot be used again.
    pub fn check_offline_code(
        &self,
        code: &str,
        now: u64,
    ) -> Result<Option<DeviceId>, ClientError> {
        let mut devices = self.devices()?;
        let mut matched = None;
        for record in &mut devices {
            let secret = decode_fixed::<32>("totp_secret", &record.totp_secret)?;
            if let Some(step) =
                approvd_proto::totp::verify(&secret, code, now, record.last_totp_step)
            {
                record.last_totp_step = Some(step);
                matched = Some(record.device.device_id);
                break;
            }
        }
        if matched.is_some() {
            self.save_devices(&devices)?;
        }
        Ok(matched)
    }
}

/// `<dir>/phone.json` (0600): one pairing.
#[derive(Debug, Clone)]
pub struct PhoneHome {
    dir: PathBuf,
}

impl PhoneHome {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("phone.json")
    }

    /// The state file's path.
    pub fn path_for_cli(&self) -> PathBuf {
        self.path()
    }

    pub fn exists(&self) -> bool {
        self.path().exists()
    }

    pub fn save(&self, state: &PhoneState) -> Result<(), ClientError> {
        write_json(&self.path(), state, true)
    }

    pub fn state(&self) -> Result<PhoneState, ClientError> {
        if !self.exists() {
            return Err(ClientError::Storage {
                path: self.dir.display().to_string(),
                message: "no pairing here; run `approvd phone enroll <URI>` first".to_owned(),
            });
        }
        read_json(&self.path(), true)
    }

    pub fn phone(&self) -> Result<Phone, ClientError> {
        Phone::from_state(&self.state()?)
    }

    /// Persist what `phone` remembers about the challenges it showed and answered.
    pub fn remember(&self, phone: &Phone) -> Result<(), ClientError> {
        let state = self.state()?;
        self.save(&phone.to_state(&state.nas_label, state.confirmed))
    }
}
