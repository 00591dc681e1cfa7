//! Per-account cool-downs after refused sign-ins — the agent's push-fatigue limit (N-3/M4).
//! A fraud report, or a few wrong numbers in a row, makes the account's phones unaskable for a
//! time that grows with every further strike; strikes are forgotten after a quiet day. Owns
//! `<home>/agent-cooldowns.json` (kept across restarts, a damaged file refuses the start). It
//! knows nothing of HTTP or the relay: `service` records outcomes here and asks before sending.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Wrong numbers in a row (no approval between them) that make one strike.
pub const WRONG_NUMBERS_PER_STRIKE: u32 = 3;
/// The first cool-down after a fraud report, seconds; each further strike doubles it.
pub const FRAUD_COOL_DOWN: u64 = 15 * 60;
/// The first cool-down after [`WRONG_NUMBERS_PER_STRIKE`] wrong numbers, seconds.
pub const WRONG_NUMBER_COOL_DOWN: u64 = 5 * 60;
/// The longest cool-down, seconds.
pub const MAX_COOL_DOWN: u64 = 24 * 3600;
/// Seconds without a strike after which an account's strikes are forgotten.
pub const STRIKE_MEMORY: u64 = 24 * 3600;
/// Accounts tracked at most; the ones whose last strike is oldest go first. Only requests to
/// accounts with phones can be answered, so this bounds nothing an anonymous client can grow.
pub const MAX_TRACKED: usize = 10_000;

/// What a decided request says about the person asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Approved with the right number: the wrong-number run ends.
    Approved,
    /// Denied: the person said no, once; it counts toward nothing.
    Denied,
    /// Approved with another number than shown: someone may be tapping through requests.
    WrongNumber,
    /// The person reported the sign-in as not theirs.
    Fraud,
}

/// One account's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Strikes {
    /// Strikes since the account was last quiet for [`STRIKE_MEMORY`].
    pub strikes: u32,
    /// Wrong numbers since the last approval or strike.
    pub wrong_numbers: u32,
    /// Unix seconds of the last strike (or wrong number).
    pub last: u64,
    /// No request is sent to the account's phones before this (unix seconds).
    pub until: u64,
}

/// Why the cool-down file was refused.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}; move it away to start with no cool-downs")]
pub struct CoolingError {
    pub path: String,
    pub message: String,
}

/// Every account's cool-down, optionally kept in a file.
#[derive(Debug)]
pub struct Cooldowns {
    file: Option<PathBuf>,
    /// Guards the map and the file together, so two strikes never write interleaved.
    accounts: Mutex<BTreeMap<String, Strikes>>,
}

impl Cooldowns {
    /// No file: kept in memory (`approvd nas …`, the PAM fallback).
    pub fn in_memory() -> Self {
        Self {
            file: None,
            accounts: Mutex::new(BTreeMap::new()),
        }
    }

    /// Kept in `<dir>/agent-cooldowns.json`, read back now. A file that is there but cannot
    /// be read is refused, never dropped: a restart must not lift a cool-down.
    pub fn on_disk(dir: &Path) -> Result<Self, CoolingError> {
        let path = dir.join("agent-cooldowns.json");
        let refused = |message: String| CoolingError {
            path: path.display().to_string(),
            message,
        };
        let accounts = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|error| refused(format!("not a cool-down list ({error})")))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => return Err(refused(error.to_string())),
        };
        Ok(Self {
            file: Some(path),
            accounts: Mutex::new(accounts),
        })
    }

    fn accounts(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Strikes>> {
        self.accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Until when `account` cools down, if it does at `now`.
    pub fn until(&self, account: &str, now: u64) -> Option<u64> {
        self.accounts()
            .get(account)
            .map(|strikes| strikes.until)
            .filter(|until| *until > now)
    }

    /// Count a decided request of `account`; the end of the cool-down it starts, if any.
    pub fn record(&self, account: &str, verdict: Verdict, now: u64) -> Option<u64> {
        let mut accounts = self.accounts();
        let known = accounts.contains_key(account);
        if !known && matches!(verdict, Verdict::Approved | Verdict::Denied) {
            return None;
        }
        let strikes = accounts.entry(account.to_owned()).or_default();
        if now >= strikes.last.saturating_add(STRIKE_MEMORY) {
            *strikes = Strikes::default();
        }
        let base = match verdict {
            Verdict::Denied => return None,
            Verdict::Approved => {
                strikes.wrong_numbers = 0;
                None
            }
            Verdict::WrongNumber => {
                strikes.wrong_numbers += 1;
                strikes.last = now;
                (strikes.wrong_numbers >= WRONG_NUMBERS_PER_STRIKE)
                    .then_some(WRONG_NUMBER_COOL_DOWN)
            }
            Verdict::Fraud => Some(FRAUD_COOL_DOWN),
        };
        let until = base.map(|base| {
            strikes.strikes += 1;
            strikes.wrong_numbers = 0;
            strikes.last = now;
            let doublings = (strikes.strikes - 1).min(20);
            strikes.until = now + (base << doublings).min(MAX_COOL_DOWN);
            strikes.until
        });
        if accounts.len() > MAX_TRACKED {
            let oldest = accounts
                .iter()
                .min_by_key(|(_, strikes)| strikes.last)
                .map(|(name, _)| name.clone());
            if let Some(oldest) = oldest {
                accounts.remove(&oldest);
            }
        }
        if base.is_some() || verdict == Verdict::WrongNumber || known {
            self.save(&accounts, now);
        }
        until
    }

    /// Write the accounts still remembered at `now` (under the map's lock).
    fn save(&self, accounts: &BTreeMap<String, Strikes>, now: u64) {
        let Some(path) = &self.file else {
            return;
        };
        let kept: BTreeMap<&String, &Strikes> = accounts
            .iter()
            .filter(|(_, strikes)| now < strikes.last.saturating_add(STRIKE_MEMORY))
            .collect();
        let written = serde_json::to_vec(&kept)
            .map_err(|error| error.to_string())
            .and_then(|text| {
                approvd_client::files::write_atomic(path, &text, true).map_err(|e| e.to_string())
            });
        if let Err(error) = written {
            tracing::error!("cannot save the cool-downs: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fraud_report_cools_the_account_down_longer_each_time_and_a_quiet_day_forgets() {
        let cooldowns = Cooldowns::in_memory();
        assert_eq!(
            cooldowns.record("alice", Verdict::Fraud, 1000),
            Some(1000 + 900)
        );
        assert_eq!(cooldowns.until("alice", 1000), Some(1900));
        assert_eq!(cooldowns.until("alice", 1900), None);
        assert_eq!(cooldowns.until("bob", 1000), None);
        assert_eq!(
            cooldowns.record("alice", Verdict::Fraud, 2000),
            Some(2000 + 1800)
        );
        assert_eq!(
            cooldowns.record("alice", Verdict::Fraud, 4000),
            Some(4000 + 3600)
        );
        let quiet = 4000 + STRIKE_MEMORY;
        assert_eq!(
            cooldowns.record("alice", Verdict::Fraud, quiet),
            Some(quiet + 900)
        );
        for step in 0..30 {
            cooldowns.record("carol", Verdict::Fraud, step);
        }
        assert_eq!(cooldowns.until("carol", 29), Some(29 + MAX_COOL_DOWN));
    }

    #[test]
    fn wrong_numbers_in_a_row_make_a_strike_and_an_approval_or_a_deny_counts_as_expected() {
        let cooldowns = Cooldowns::in_memory();
        assert_eq!(cooldowns.record("alice", Verdict::WrongNumber, 10), None);
        assert_eq!(cooldowns.record("alice", Verdict::WrongNumber, 11), None);
        assert_eq!(cooldowns.record("alice", Verdict::Approved, 12), None);
        assert_eq!(cooldowns.record("alice", Verdict::WrongNumber, 13), None);
        assert_eq!(cooldowns.record("alice", Verdict::Denied, 14), None);
        assert_eq!(cooldowns.record("alice", Verdict::WrongNumber, 15), None);
        assert_eq!(
            cooldowns.record("alice", Verdict::WrongNumber, 16),
            Some(16 + 300)
        );
        assert_eq!(cooldowns.until("alice", 17), Some(316));
        // Approvals and denies of accounts never struck are not tracked at all.
        assert_eq!(cooldowns.record("bob", Verdict::Approved, 20), None);
        assert_eq!(cooldowns.record("bob", Verdict::Denied, 20), None);
        assert!(!cooldowns.accounts().contains_key("bob"));
    }

    #[test]
    fn cool_downs_survive_a_restart_and_a_damaged_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("approvd-cooling-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let now = approvd_client::transport::unix_now();
        let until = Cooldowns::on_disk(&dir)
            .expect("no file yet")
            .record("alice", Verdict::Fraud, now)
            .expect("a cool-down");
        assert_eq!(
            Cooldowns::on_disk(&dir).expect("kept").until("alice", now),
            Some(until)
        );
        std::fs::write(dir.join("agent-cooldowns.json"), b"{not json").expect("write");
        let refused = Cooldowns::on_disk(&dir)
            .expect_err("a damaged file is refused")
            .to_string();
        assert!(refused.contains("agent-cooldowns.json"), "{refused}");
        assert!(refused.contains("move it away"), "{refused}");
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}
