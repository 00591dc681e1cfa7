//! State directories for the CLI and for integrators who want files: a NAS home (identity key,
//! settings, device list with offline-code secrets) and a phone home (one pairing). Keys and
//! secrets are written 0600 and refused when readable by others; every write is atomic.

use std::path::{Path, PathBuf};

use approvd_proto::ids::{decode_fixed, encode_b64};
use approvd_proto::totp::CodeSecret;
use approvd_proto::DeviceId;
use ed25519_dalek::SigningKey;

use crate::files::{
    check_private_dir, create_private_dir, read_json, read_private, write_atomic, write_json,
};
use crate::nas::{MailboxEvent, Nas, PairedDevice};
use crate::phone::{Phone, PhoneState};
use crate::transport::ClientError;

/// Phones one account may pair unless `nas init --max-phones` says otherwise (Synology
/// Secure SignIn's limit).
pub const DEFAULT_MAX_PHONES: usize = 20;
/// The format of `devices.json` this version reads and writes.
pub const STATE_FORMAT: u32 = 2;

/// A NAS's settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NasSettings {
    pub relay: String,
    pub label: String,
    /// Most phones one account may pair.
    #[serde(default = "default_max_phones")]
    pub max_phones_per_account: usize,
}

fn default_max_phones() -> usize {
    DEFAULT_MAX_PHONES
}

/// One paired device as the NAS stores it: a phone of one account.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceRecord {
    /// The account (user name on the NAS) this phone approves sign-ins for.
    pub account: String,
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

/// How many wrong codes of one kind an account may enter, and what follows (PROTOCOL.md §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeLimit {
    /// Wrong codes before the first lockout.
    pub free: u32,
    /// The first lockout, seconds; each further wrong code doubles it, up to `max_lockout`.
    pub first_lockout: u64,
    pub max_lockout: u64,
    /// One wrong code is forgiven per this many seconds without one (failures decay, so a
    /// stranger's occasional guess never keeps the account locked for good).
    pub decay: u64,
}

/// Offline codes: six digits, three accepted at a time (±1 step), so a few guesses only.
pub const OFFLINE_CODE_LIMIT: CodeLimit = CodeLimit {
    free: 5,
    first_lockout: 60,
    max_lockout: 24 * 3600,
    decay: 3600,
};

/// Recovery codes: 50 random bits each, so guessing is hopeless and the threshold is high; a
/// count of their own, so wrong offline codes never lock the way back in (nor the reverse).
pub const RECOVERY_CODE_LIMIT: CodeLimit = CodeLimit {
    free: 20,
    first_lockout: 60,
    max_lockout: 3600,
    decay: 600,
};

/// Wrong offline codes an account may enter before it is locked out.
pub const FREE_FAILURES: u32 = OFFLINE_CODE_LIMIT.free;
/// The first offline-code lockout, seconds.
pub const FIRST_LOCKOUT: u64 = OFFLINE_CODE_LIMIT.first_lockout;
/// Recovery codes per set.
pub const RECOVERY_CODES: usize = 10;
/// The longest a read or change waits for the state lock before it is refused as busy (a
/// lock held longer than any real change takes is a stuck or hostile process).
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// An account's record of wrong codes of one kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attempts {
    /// Wrong codes since the last right one, less those forgiven since `last_failure`.
    pub failures: u32,
    /// No code is accepted before this time (unix seconds).
    pub locked_until: u64,
    /// Unix seconds of the last wrong code (0 in files written before failures decayed).
    #[serde(default)]
    pub last_failure: u64,
}

impl Attempts {
    /// Forgive the wrong codes `limit` lets decay by `now`; `Err(until)` while locked out.
    pub fn admit(&mut self, limit: &CodeLimit, now: u64) -> Result<(), u64> {
        if self.locked_until > now {
            return Err(self.locked_until);
        }
        let since = self.last_failure.max(self.locked_until);
        let forgiven =
            (now.saturating_sub(since) / limit.decay.max(1)).min(u64::from(self.failures));
        if forgiven > 0 {
            // `forgiven` ≤ `failures`, a u32.
            self.failures -= u32::try_from(forgiven).unwrap_or(self.failures);
            self.last_failure = since + forgiven * limit.decay.max(1);
        }
        Ok(())
    }

    /// Count a wrong code: from the `limit.free`-th on, a lockout that doubles each time.
    pub fn fail(&mut self, limit: &CodeLimit, now: u64) -> u32 {
        self.failures += 1;
        self.last_failure = now;
        if self.failures >= limit.free {
            let doublings = (self.failures - limit.free).min(20);
            self.locked_until = now + (limit.first_lockout << doublings).min(limit.max_lockout);
        }
        self.failures
    }

    /// Whether nothing is left to remember at `now`.
    pub fn is_spent(&self, limit: &CodeLimit, now: u64) -> bool {
        self.locked_until <= now
            && now.saturating_sub(self.last_failure.max(self.locked_until))
                >= u64::from(self.failures) * limit.decay
    }
}

/// An account's recovery codes, stored only as salted hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecoveryCodes {
    /// base64url random salt of this set.
    pub salt: String,
    /// base64url SHA-256(salt || account || 0x00 || code) of the codes not used yet.
    pub unused: Vec<String>,
}

/// What a code check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCheck {
    /// The code is right (an offline code names the device whose code it is).
    Accepted { device_id: Option<DeviceId> },
    /// Wrong, too old, or used already; `failures` so far.
    Rejected { failures: u32 },
    /// Too many wrong codes: none is accepted, right or wrong, before `until`.
    LockedOut { until: u64 },
    /// The account has no phone and no recovery code: nothing was checked or written (the
    /// caller counts it where strangers cannot grow the state, and answers as for a wrong code).
    NoAccount,
}

/// Everything in `devices.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NasState {
    /// [`STATE_FORMAT`]; a file without it predates accounts and is refused.
    pub format: u32,
    pub devices: Vec<DeviceRecord>,
    /// Per account with a phone or recovery codes: wrong offline codes.
    #[serde(default)]
    pub attempts: std::collections::BTreeMap<String, Attempts>,
    /// Per account with a phone or recovery codes: wrong recovery codes (their own count).
    #[serde(default)]
    pub recovery_attempts: std::collections::BTreeMap<String, Attempts>,
    /// Per account: recovery codes for a lost phone.
    #[serde(default)]
    pub recovery: std::collections::BTreeMap<String, RecoveryCodes>,
    /// Accounts whose approvals must be user-verified (`verdict.user_verified`: the phone's
    /// approval key was unlocked by biometrics or a passcode), I-9.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub user_verified_accounts: std::collections::BTreeSet<String>,
}

impl NasState {
    /// Run a code check of `kind` for `account` within its limit: refused unseen while
    /// locked out; a wrong code counts (failures decay, see [`CodeLimit`]); a right code clears
    /// the count. An account with no phone and no recovery code is not checked, and nothing is
    /// kept for it ([`CodeCheck::NoAccount`]): strangers typing names cannot grow this file.
    fn guarded(
        &mut self,
        account: &str,
        kind: CodeKind,
        now: u64,
        check: impl FnOnce(&mut Self) -> Option<Option<DeviceId>>,
    ) -> CodeCheck {
        let known = self.devices.iter().any(|record| record.account == account)
            || self.recovery.contains_key(account);
        if !known {
            return CodeCheck::NoAccount;
        }
        let limit = kind.limit();
        let counts = match kind {
            CodeKind::Offline => &mut self.attempts,
            CodeKind::Recovery => &mut self.recovery_attempts,
        };
        let mut attempts = counts.remove(account).unwrap_or_default();
        if let Err(until) = attempts.admit(&limit, now) {
            counts.insert(account.to_owned(), attempts);
            return CodeCheck::LockedOut { until };
        }
        match check(self) {
            Some(device_id) => CodeCheck::Accepted { device_id },
            None => {
                let failures = attempts.fail(&limit, now);
                let counts = match kind {
                    CodeKind::Offline => &mut self.attempts,
                    CodeKind::Recovery => &mut self.recovery_attempts,
                };
                counts.insert(account.to_owned(), attempts);
                CodeCheck::Rejected { failures }
            }
        }
    }
}

/// The two kinds of code that stand in for a phone's approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodeKind {
    /// Six digits from the phone's offline-code screen (TOTP).
    Offline,
    /// One of the account's recovery codes (each works once).
    Recovery,
}

impl CodeKind {
    /// Digits (and spaces) are an offline code, anything else a recovery code.
    pub fn of(code: &str) -> Self {
        if code.trim().chars().all(|c| c.is_ascii_digit() || c == ' ') {
            Self::Offline
        } else {
            Self::Recovery
        }
    }

    /// The attempt limit of this kind.
    pub fn limit(self) -> CodeLimit {
        match self {
            CodeKind::Offline => OFFLINE_CODE_LIMIT,
            CodeKind::Recovery => RECOVERY_CODE_LIMIT,
        }
    }
}

fn recovery_hash(salt: &str, account: &str, code: &str) -> String {
    use sha2::Digest as _;
    let normalized: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let mut hasher = sha2::Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update(account.as_bytes());
    hasher.update([0]);
    hasher.update(normalized.as_bytes());
    encode_b64(&hasher.finalize())
}

/// A recovery code: 10 characters of a 32-letter alphabet without look-alikes (50 bits), shown
/// as `xxxxx-xxxxx`.
fn new_recovery_code() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghjkmnpqrstuvwxyz123456789";
    let bytes = approvd_proto::random_bytes::<10>();
    let letters: String = bytes
        .iter()
        .map(|byte| char::from(ALPHABET[usize::from(byte % 32)]))
        .collect();
    format!("{}-{}", &letters[..5], &letters[5..])
}

impl NasState {
    /// The devices of `account`.
    pub fn of(&self, account: &str) -> impl Iterator<Item = &DeviceRecord> {
        let account = account.to_owned();
        self.devices
            .iter()
            .filter(move |record| record.account == account)
    }
}

/// `<dir>/nas.key` (0600), `<dir>/nas.json`, `<dir>/devices.json` (0600: offline-code secrets),
/// `<dir>/devices.lock` (0600, held while the device state is read or changed). The directory
/// is 0700 and belongs to the user running: [`NasHome::open`] refuses any other.
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
        Self::init_with(dir, relay, label, DEFAULT_MAX_PHONES)
    }

    /// [`NasHome::init`] with a limit of phones per account.
    pub fn init_with(
        dir: &Path,
        relay: &str,
        label: &str,
        max_phones_per_account: usize,
    ) -> Result<Self, ClientError> {
        let home = Self {
            dir: dir.to_owned(),
        };
        create_private_dir(dir)?;
        check_private_dir(dir)?;
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
                max_phones_per_account,
            },
            false,
        )?;
        write_json(
            &home.devices_path(),
            &NasState {
                format: STATE_FORMAT,
                ..NasState::default()
            },
            true,
        )?;
        Ok(home)
    }

    /// Open an existing NAS home: refused when another user could enter it or it belongs to
    /// another user ([`check_private_dir`]).
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
        check_private_dir(dir)?;
        Ok(home)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
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

    /// Hold the state lock (exclusive for a change, shared for a read) while `f` runs: two
    /// processes (the CLI, an agent) never interleave a read-modify-write of the devices. The
    /// lock file is 0600 and never opened through a link; a lock not had within [`LOCK_WAIT`]
    /// is [`ClientError::Busy`], never an endless wait.
    fn locked<R>(
        &self,
        exclusive: bool,
        f: impl FnOnce(&Path) -> Result<R, ClientError>,
    ) -> Result<R, ClientError> {
        let path = self.dir.join("devices.lock");
        let storage = |error: std::io::Error| ClientError::Storage {
            path: path.display().to_string(),
            message: error.to_string(),
        };
        let mut options = std::fs::OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options
                .mode(0o600)
                .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits());
        }
        let lock = options.open(&path).map_err(storage)?;
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            let taken = if exclusive {
                lock.try_lock()
            } else {
                lock.try_lock_shared()
            };
            match taken {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(ClientError::Busy {
                        path: path.display().to_string(),
                    })
                }
                Err(std::fs::TryLockError::Error(error)) => return Err(storage(error)),
            }
        }
        let result = f(&self.devices_path());
        drop(lock); // closing the file releases the lock
        result
    }

    fn read_state(path: &Path) -> Result<NasState, ClientError> {
        let value: serde_json::Value = read_json(path, true)?;
        if value.get("format").and_then(serde_json::Value::as_u64) != Some(STATE_FORMAT.into()) {
            return Err(ClientError::Storage {
                path: path.display().to_string(),
                message: format!(
                    "this device list was written by an approvd without accounts (format \
                     {STATE_FORMAT} expected): phones now belong to accounts. Move the file \
                     away and pair each phone again with `approvd nas pair --user NAME`"
                ),
            });
        }
        serde_json::from_value(value).map_err(|error| ClientError::Storage {
            path: path.display().to_string(),
            message: error.to_string(),
        })
    }

    /// The device state (under a shared lock).
    pub fn state(&self) -> Result<NasState, ClientError> {
        self.locked(false, Self::read_state)
    }

    /// Change the device state under the exclusive lock; `f`'s error leaves it unchanged.
    pub fn update<R>(
        &self,
        f: impl FnOnce(&mut NasState) -> Result<R, ClientError>,
    ) -> Result<R, ClientError> {
        self.locked(true, |path| {
            let mut state = Self::read_state(path)?;
            let result = f(&mut state)?;
            write_json(path, &state, true)?;
            Ok(result)
        })
    }

    /// Every paired device (all accounts).
    pub fn devices(&self) -> Result<Vec<DeviceRecord>, ClientError> {
        Ok(self.state()?.devices)
    }

    /// The devices of `account`.
    pub fn account_devices(&self, account: &str) -> Result<Vec<PairedDevice>, ClientError> {
        Ok(self
            .state()?
            .of(account)
            .map(|record| record.device.clone())
            .collect())
    }

    /// Whether `account` may pair one more phone.
    pub fn check_room(&self, account: &str) -> Result<(), ClientError> {
        let max = self.settings()?.max_phones_per_account;
        if self.state()?.of(account).count() >= max {
            return Err(too_many(account, max));
        }
        Ok(())
    }

    /// Record a newly paired device of `account` with its offline-code secret.
    pub fn add_device(
        &self,
        account: &str,
        device: PairedDevice,
        code_secret: &CodeSecret,
    ) -> Result<(), ClientError> {
        let max = self.settings()?.max_phones_per_account;
        self.update(|state| {
            state
                .devices
                .retain(|record| record.device.device_id != device.device_id);
            if state.of(account).count() >= max {
                return Err(too_many(account, max));
            }
            state.devices.push(DeviceRecord {
                account: account.to_owned(),
                device,
                totp_secret: encode_b64(&code_secret.0),
                last_totp_step: None,
                push_gone: false,
                muted_until: None,
            });
            Ok(())
        })
    }

    /// Forget `device_id` of `account`; `false` if it was not there.
    pub fn remove_device(&self, account: &str, device_id: &DeviceId) -> Result<bool, ClientError> {
        self.update(|state| {
            let before = state.devices.len();
            state.devices.retain(|record| {
                !(record.account == account && record.device.device_id == *device_id)
            });
            Ok(state.devices.len() != before)
        })
    }

    /// Require (or stop requiring) user-verified approvals for `account`'s sign-ins.
    pub fn set_user_verification(&self, account: &str, required: bool) -> Result<(), ClientError> {
        self.update(|state| {
            if required {
                state.user_verified_accounts.insert(account.to_owned());
            } else {
                state.user_verified_accounts.remove(account);
            }
            Ok(())
        })
    }

    /// Retire this home's NAS key after its phones were told (PROTOCOL.md §5.6): the key file
    /// is renamed to `nas.key.retired-<unix time>` (kept for the owner, never used again) and
    /// every pairing, recovery code and attempt record is forgotten, under the state lock. The
    /// home then has no identity: `approvd nas init` makes a new key in it. Returns the
    /// retired key's new path.
    pub fn retire(&self, now: u64) -> Result<PathBuf, ClientError> {
        let retired = self.dir.join(format!("nas.key.retired-{now}"));
        self.update(|state| {
            std::fs::rename(self.key_path(), &retired)
                .map_err(|error| crate::files::storage(&self.key_path(), error))?;
            *state = NasState {
                format: STATE_FORMAT,
                ..NasState::default()
            };
            Ok(())
        })?;
        Ok(retired)
    }

    /// Apply verified mailbox events to the device list.
    pub fn apply(&self, events: &[MailboxEvent]) -> Result<(), ClientError> {
        self.update(|state| {
            let devices = &mut state.devices;
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
            Ok(())
        })
    }

    /// Check an offline code against `account`'s phones only (±1 step, each code once, never
    /// a step older than the last accepted), within the account's attempt limit. Remembers the
    /// step — under the exclusive lock, so two concurrent checks of one code cannot both
    /// succeed.
    pub fn check_offline_code(
        &self,
        account: &str,
        code: &str,
        now: u64,
    ) -> Result<CodeCheck, ClientError> {
        self.update(|state| {
            let mut secrets = Vec::new();
            for record in state
                .devices
                .iter()
                .filter(|record| record.account == account)
            {
                secrets.push(decode_fixed::<32>("totp_secret", &record.totp_secret)?);
            }
            Ok(state.guarded(account, CodeKind::Offline, now, |state| {
                let records = state
                    .devices
                    .iter_mut()
                    .filter(|record| record.account == account);
                for (record, secret) in records.zip(&secrets) {
                    if let Some(step) =
                        approvd_proto::totp::verify(secret, code, now, record.last_totp_step)
                    {
                        record.last_totp_step = Some(step);
                        return Some(Some(record.device.device_id));
                    }
                }
                None
            }))
        })
    }

    /// A new set of [`RECOVERY_CODES`] recovery codes for `account`, replacing (voiding) any
    /// old set. Shown once: only salted hashes are stored.
    pub fn new_recovery_codes(&self, account: &str) -> Result<Vec<String>, ClientError> {
        self.update(|state| {
            let salt = encode_b64(&approvd_proto::random_bytes::<16>());
            let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
            let unused = codes
                .iter()
                .map(|code| recovery_hash(&salt, account, code))
                .collect();
            state
                .recovery
                .insert(account.to_owned(), RecoveryCodes { salt, unused });
            Ok(codes)
        })
    }

    /// Whether `account` has recovery codes left.
    pub fn has_recovery_codes(&self, account: &str) -> Result<bool, ClientError> {
        Ok(self
            .state()?
            .recovery
            .get(account)
            .is_some_and(|set| !set.unused.is_empty()))
    }

    /// Use one of `account`'s recovery codes (each works once), within their own attempt
    /// limit ([`RECOVERY_CODE_LIMIT`]).
    pub fn use_recovery_code(
        &self,
        account: &str,
        code: &str,
        now: u64,
    ) -> Result<CodeCheck, ClientError> {
        self.update(|state| {
            Ok(state.guarded(account, CodeKind::Recovery, now, |state| {
                let set = state.recovery.get_mut(account)?;
                let hash = recovery_hash(&set.salt, account, code);
                let position = set.unused.iter().position(|unused| *unused == hash)?;
                set.unused.remove(position);
                Some(None)
            }))
        })
    }
}

fn too_many(account: &str, max: usize) -> ClientError {
    ClientError::Storage {
        path: "devices.json".to_owned(),
        message: format!(
            "account `{account}` has {max} phones already (the limit): remove one first \
             (`approvd nas remove --user {account} DEVICE_ID`)"
        ),
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
