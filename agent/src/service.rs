//! The agent's use cases, without HTTP: asking an account's phones and answering for the
//! verified outcome, pairing a phone for an account (QR code, claim, code, the first-phone
//! recovery codes), an account's phones and codes, and keeping the mailbox applied. Owns the
//! agent's state: the NAS home (through `approvd_client::NasHome`), the SDK's one record per
//! challenge (`Nas::record`) kept on disk until it is forgotten (so cancels and verdicts
//! survive a restart), the one relay long-poll per pending request that every status read
//! shares, and the pairing sessions. Every use of the NAS home runs off the async workers
//! (its lock may be held by another process for up to `LOCK_WAIT`). The HTTP handlers (`http`)
//! and `approvd nas …` both call these functions; neither repeats them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use approvd_client::transport::unix_now;
use approvd_client::{
    ChallengeRecord, ClientError, CodeCheck, DeviceRecord, MailboxEvent, Nas, NasHome, Outcome,
    PairedDevice, VerifiedClaim,
};
use approvd_proto::pairing::PairingUri;
use approvd_proto::totp::CodeSecret;
use approvd_proto::{Cid, DeviceId, PairingId};
use tokio_util::sync::CancellationToken;

use crate::cooling::{Cooldowns, Verdict};

use crate::api::{
    AccountName, AccountPolicy, ApprovalRequest, Authorisation, CodeKind, CodeResult, Decider,
    Device, Devices, PairingConfirmed, PairingRequest, PairingStarted, PairingState, PairingStatus,
    Purpose, RecoveryCodes, RequestCreated, RequestStatus, CODE_WINDOW_SECS,
    MAX_PENDING_PER_ACCOUNT, MAX_WAIT_SECS, MAX_WRONG_CODES_PER_REQUEST,
};

/// Why a use case refused or failed. `http` maps each variant to one problem type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such request, pairing or device (`what` names which).
    #[error("no such {what}")]
    NotFound { what: &'static str },
    #[error("`{0}` has no paired phones (to ask)")]
    NoDevices(AccountName),
    #[error(
        "account `{account}` has {max} phones already (the limit): remove one first \
         (`approvd nas remove --user {account} DEVICE_ID`)"
    )]
    TooManyPhones { account: AccountName, max: usize },
    /// The code typed is not the one the phone shows; the pairing has failed.
    #[error("{0}; start a new pairing")]
    WrongCode(String),
    #[error("{0}")]
    Conflict(&'static str),
    /// The relay's per-phone budget (push-bombing defence).
    #[error(
        "the relay refuses more requests to these phones for now (push-bombing defence); \
         try again in a minute"
    )]
    RateLimited,
    /// The account has [`MAX_PENDING_PER_ACCOUNT`] requests pending already.
    #[error(
        "`{0}` has {MAX_PENDING_PER_ACCOUNT} sign-in requests pending already; let one end \
         (answer, cancel or expire) first"
    )]
    TooManyPending(AccountName),
    /// The account cools down after a fraud report or wrong numbers (push fatigue): no
    /// request reaches its phones before `until` (unix seconds).
    #[error(
        "`{account}` refused a recent sign-in (reported it, or chose wrong numbers): its phones \
         are not asked again for {} s",
        until.saturating_sub(unix_now())
    )]
    CoolingDown { account: AccountName, until: u64 },
    /// A value the protocol refuses (e.g. a context field too long to seal).
    #[error(transparent)]
    Invalid(approvd_proto::Error),
    /// The NAS home cannot be read or written.
    #[error("the agent's state: {0}")]
    State(ClientError),
    /// Another process holds the NAS state's lock: nothing was read or changed.
    #[error("the agent's state: {0}")]
    Busy(ClientError),
    /// The relay cannot be reached, refused the call, or answered what fails the checks.
    #[error("the relay: {0}")]
    Relay(ClientError),
    /// The relay poll of a pending request failed the last time it ran (it is tried again).
    #[error("the relay: {0}")]
    RelayPoll(String),
    #[error("the agent is shutting down; ask again when it is back (the request is kept)")]
    ShuttingDown,
    /// The account has a phone: the change needs an approval on it or a recovery code (N-8).
    #[error("{0}")]
    ApprovalRequired(String),
}

/// Whether the relay could not take a request at all (unreachable, TLS, or its own failure),
/// as opposed to refusing it: then the request is opened for a code only.
fn relay_unreachable(error: &ClientError) -> bool {
    match error {
        ClientError::Network(_) | ClientError::Tls(_) => true,
        ClientError::Relay { status, .. } | ClientError::Unexpected { status, .. } => {
            *status >= 500
        }
        ClientError::BadUrl(_)
        | ClientError::Verification(_)
        | ClientError::Alarm(_)
        | ClientError::Protocol(_)
        | ClientError::Storage { .. }
        | ClientError::Busy { .. } => false,
    }
}

impl From<ClientError> for Error {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::Protocol(error) => Error::Invalid(error),
            ClientError::Storage { .. } => Error::State(error),
            ClientError::Busy { .. } => Error::Busy(error),
            ClientError::Relay { status: 429, .. } => Error::RateLimited,
            other => Error::Relay(other),
        }
    }
}

/// A sign-in request the relay could not take: no phone was asked, and only a code can
/// settle it (in memory only; it lives as long as its lifetime plus [`CODE_WINDOW_SECS`]).
#[derive(Debug, Clone)]
struct CodeOnly {
    account: AccountName,
    expires: u64,
    ended: bool,
}

/// How long a notice stays in the phones' inboxes, seconds.
const NOTICE_LIFETIME_SECS: u64 = 120;

/// The most code-only requests kept at once (each account has at most
/// [`MAX_PENDING_PER_ACCOUNT`] open; this bounds the map whatever the number of accounts).
const MAX_CODE_ONLY: usize = 10_000;

/// Whether undecided requests are kept on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// In `<home>/agent-requests.json`, so a restarted agent judges them still (the daemon).
    OnDisk,
    /// In memory only (`approvd nas …`, which may run beside an agent that owns the file).
    InMemory,
}

/// Where a pairing started here stands.
#[derive(Debug, Clone)]
enum Step {
    Waiting,
    Claimed(Box<VerifiedClaim>),
    Paired { device_id: DeviceId, name: String },
    Expired,
    Failed(String),
}

#[derive(Debug)]
struct PairingSession {
    account: AccountName,
    expires_at: u64,
    step: Step,
}

impl PairingSession {
    fn status(&self, now: u64) -> PairingStatus {
        let expired =
            matches!(self.step, Step::Waiting | Step::Claimed(_)) && self.expires_at <= now;
        let state = match &self.step {
            _ if expired => PairingState::Expired,
            Step::Waiting => PairingState::Waiting,
            Step::Claimed(verified) => PairingState::Claimed {
                device_name: verified.device.name.clone(),
                platform: verified.device.platform.clone(),
            },
            Step::Paired { device_id, name } => PairingState::Paired {
                device_id: *device_id,
                device_name: name.clone(),
            },
            Step::Expired => PairingState::Expired,
            Step::Failed(reason) => PairingState::Failed {
                reason: reason.clone(),
            },
        };
        PairingStatus {
            user: self.account.clone(),
            state,
        }
    }
}

/// How long a finished pairing's status can still be read, seconds after its QR code expired.
const PAIRING_RETENTION: u64 = 600;
/// How long a confirmation waits for the claim to be recorded (the phone shows its code as
/// soon as the acceptance is on the relay, a moment before the claim task records it).
const CLAIM_SETTLE: Duration = Duration::from_secs(2);
/// What [`Service::retire`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retirement {
    /// Phones paired with the retired key.
    pub phones: usize,
    /// Of those, how many the retirement reached the relay for (pushed or in their inbox).
    pub told: usize,
    /// Of those, how many confirmed (their signed `unpair` arrived).
    pub confirmed: usize,
    /// Where the retired key file is now.
    pub retired_key: PathBuf,
}

/// Back-off of the mailbox loop while the relay or the home cannot be reached.
const MAILBOX_RETRY: Duration = Duration::from_secs(5);
/// Back-off of a request's relay poll after the relay failed or answered what fails the checks.
/// Names with no account whose wrong codes are counted at once (see `Service::strangers`).
pub const MAX_STRANGER_COUNTS: usize = 10_000;
const POLL_RETRY: Duration = Duration::from_secs(2);
/// The shortest time between two relay polls of one request (a relay that answers "pending"
/// at once instead of holding the poll must not make the agent spin).
const POLL_SPACING: Duration = Duration::from_secs(1);
/// How old a temp file in the home must be before the agent removes it as a crash's leftover.
const STRAY_TEMP_AGE: Duration = Duration::from_secs(60);

/// What the relay poll of a pending request last saw, for the status reads that watch it.
#[derive(Debug, Clone)]
enum PollEvent {
    /// Nothing yet (or the relay held the poll and answered "pending").
    Polling,
    /// The relay handed over an answer that fails the NAS's checks (ignored; polling goes on).
    Invalid(String),
    /// The relay could not be asked; polling goes on after [`POLL_RETRY`].
    Failed(String),
    /// The request is decided (or forgotten); the poll has ended.
    Ended,
}

/// The NAS side's use cases over one NAS home.
#[derive(Debug)]
pub struct Service {
    home: NasHome,
    nas: Nas,
    /// The NAS's name as phones show it.
    label: String,
    /// `<home>/agent-requests.json` with [`Keep::OnDisk`].
    requests_file: Option<PathBuf>,
    /// Held while the requests file is written, so two saves never interleave.
    save_lock: Mutex<()>,
    /// The one relay poll per pending request that status reads share (H1: a status read
    /// costs the NAS's relay budget nothing; each pending request costs one long-poll at a
    /// time, whoever watches it and however often).
    polls: Mutex<HashMap<Cid, tokio::sync::watch::Receiver<PollEvent>>>,
    /// Pairings started here, by id; finished ones are dropped [`PAIRING_RETENTION`] after
    /// their QR code expired.
    pairings: Mutex<HashMap<PairingId, PairingSession>>,
    /// Woken whenever a pairing changes step, for those waiting on one.
    pairing_changed: tokio::sync::Notify,
    /// Wrong codes typed for names with no phone and no recovery code, in memory only and
    /// bounded ([`MAX_STRANGER_COUNTS`]): they are answered like a real account's (no
    /// enumeration) and never written to the NAS state (which strangers must not grow).
    strangers: Mutex<HashMap<(String, CodeKind), approvd_client::home::Attempts>>,
    /// Approval requests sent for a change to an account (N-8), until used.
    approvals: Mutex<HashMap<Cid, (AccountName, Purpose)>>,
    /// Requests the relay could not take, open for a code only ([`CodeOnly`]).
    code_only: Mutex<HashMap<Cid, CodeOnly>>,
    /// Wrong codes typed into each open request (at most [`MAX_WRONG_CODES_PER_REQUEST`]);
    /// in memory only, dropped with the request.
    wrong_codes: Mutex<HashMap<Cid, u32>>,
    /// Per account: the cool-down after refused sign-ins (push fatigue), kept on disk with
    /// [`Keep::OnDisk`] so a restart never lifts one.
    cooldowns: Cooldowns,
    /// Cancelled at shutdown: held polls answer [`Error::ShuttingDown`] at once, claim tasks end.
    stopping: CancellationToken,
}

impl Service {
    /// Open the NAS home in `dir`: it must be private to the user running, and its key,
    /// settings and device state must all be readable (an old or damaged state is refused
    /// here, before anything is served). With [`Keep::OnDisk`] (the agent), the requests a
    /// previous run kept are restored, with their cancels and verdicts (a damaged file is
    /// refused, never dropped), and temp files a crash left are removed.
    pub fn open(dir: &Path, keep: Keep) -> Result<Arc<Self>, Error> {
        let home = NasHome::open(dir)?;
        let nas = home.nas()?;
        let label = home.settings()?.label;
        home.state()?;
        let requests_file = (keep == Keep::OnDisk).then(|| dir.join("agent-requests.json"));
        if keep == Keep::OnDisk {
            let removed = approvd_client::files::remove_stray_temps(dir, STRAY_TEMP_AGE);
            if removed > 0 {
                tracing::info!("removed {removed} temp file(s) an interrupted write left");
            }
        }
        let cooldowns = match keep {
            Keep::OnDisk => Cooldowns::on_disk(dir).map_err(|error| {
                Error::State(ClientError::Storage {
                    path: error.path.clone(),
                    message: error.to_string(),
                })
            })?,
            Keep::InMemory => Cooldowns::in_memory(),
        };
        let service = Self {
            strangers: Mutex::new(HashMap::new()),
            code_only: Mutex::new(HashMap::new()),
            approvals: Mutex::new(HashMap::new()),
            wrong_codes: Mutex::new(HashMap::new()),
            cooldowns,
            home,
            nas,
            label,
            requests_file,
            save_lock: Mutex::new(()),
            polls: Mutex::new(HashMap::new()),
            pairings: Mutex::new(HashMap::new()),
            pairing_changed: tokio::sync::Notify::new(),
            stopping: CancellationToken::new(),
        };
        for account in &service.home.state()?.user_verified_accounts {
            service.nas.require_user_verification_for(account, true);
        }
        service.restore_requests()?;
        Ok(Arc::new(service))
    }

    /// Run `f` on the NAS home on a blocking thread: the state lock, which another process of
    /// the NAS's user may hold for up to `LOCK_WAIT`, never stalls an async worker (and with
    /// it every other call).
    async fn on_home<R: Send + 'static>(
        &self,
        f: impl FnOnce(&NasHome) -> Result<R, ClientError> + Send + 'static,
    ) -> Result<R, Error> {
        let home = self.home.clone();
        tokio::task::spawn_blocking(move || f(&home))
            .await
            .map_err(|error| {
                Error::State(ClientError::Storage {
                    path: self.home.dir().display().to_string(),
                    message: format!("the state task failed: {error}"),
                })
            })?
            .map_err(Error::from)
    }

    pub fn nas(&self) -> &Nas {
        &self.nas
    }

    /// End held polls and claim tasks (at shutdown).
    pub fn stop(&self) {
        self.stopping.cancel();
    }

    // ---- approval requests ----

    /// Ask the account's phones (or the listed ones among them) to approve.
    pub async fn create_request(&self, request: &ApprovalRequest) -> Result<RequestCreated, Error> {
        use approvd_proto::context::LoginKind;
        if matches!(request.kind, Some(LoginKind::Notice | LoginKind::Retire)) {
            return Err(Error::Invalid(approvd_proto::Error::Invalid {
                field: "kind",
                reason: "`notice` and `retire` are the NAS's own: they cannot be approved",
            }));
        }
        if let Some(until) = self.cooldowns.until(request.user.as_str(), unix_now()) {
            return Err(Error::CoolingDown {
                account: request.user.clone(),
                until,
            });
        }
        let now = unix_now();
        if self.nas.pending_for(request.user.as_str(), now) + self.code_only_for(&request.user, now)
            >= MAX_PENDING_PER_ACCOUNT
        {
            return Err(Error::TooManyPending(request.user.clone()));
        }
        let account = request.user.clone();
        let devices: Vec<PairedDevice> = self
            .on_home(move |home| home.account_devices(account.as_str()))
            .await?
            .into_iter()
            .filter(|device| {
                request.devices.is_empty() || request.devices.contains(&device.device_id)
            })
            .collect();
        if devices.is_empty() {
            return Err(Error::NoDevices(request.user.clone()));
        }
        let context = request.login_context(&self.label, unix_now());
        let number_matching = request.number_matching(&context);
        let sent = match self
            .nas
            .request_approval(&devices, &context, number_matching, request.lifetime())
            .await
        {
            Ok(sent) => sent,
            Err(error) if relay_unreachable(&error) => {
                return Ok(self.open_code_only(&request.user, request.lifetime(), &error))
            }
            Err(error) => return Err(error.into()),
        };
        self.save_requests();
        tracing::info!(
            "{}: request {} sent to {} phone(s)",
            request.user,
            sent.cid,
            sent.report.deliveries.len()
        );
        Ok(RequestCreated {
            request_id: sent.cid,
            number: sent.number,
            expires: sent.expires,
            deliveries: sent.report.deliveries,
            relay_error: None,
        })
    }

    /// A request for `account` that no phone was asked (the relay failed with `error`): only
    /// a code settles it. The map is bounded: ended ones go first, then the oldest.
    fn open_code_only(
        &self,
        account: &AccountName,
        lifetime: Duration,
        error: &ClientError,
    ) -> RequestCreated {
        let now = unix_now();
        let cid = Cid::random();
        let expires = now + lifetime.as_secs();
        let mut open = self.code_only();
        open.retain(|_, request| request.expires + CODE_WINDOW_SECS > now);
        if open.len() >= MAX_CODE_ONLY {
            let oldest = open
                .iter()
                .min_by_key(|(_, request)| (!request.ended, request.expires))
                .map(|(cid, _)| *cid);
            if let Some(oldest) = oldest {
                open.remove(&oldest);
            }
        }
        open.insert(
            cid,
            CodeOnly {
                account: account.clone(),
                expires,
                ended: false,
            },
        );
        tracing::warn!("{account}: request {cid} is open for a code only: the relay: {error}");
        RequestCreated {
            request_id: cid,
            number: None,
            expires,
            deliveries: Vec::new(),
            relay_error: Some(error.to_string()),
        }
    }

    fn code_only(&self) -> std::sync::MutexGuard<'_, HashMap<Cid, CodeOnly>> {
        self.code_only
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The account's code-only requests still open.
    fn code_only_for(&self, account: &AccountName, now: u64) -> usize {
        self.code_only()
            .values()
            .filter(|request| {
                &request.account == account && !request.ended && request.expires > now
            })
            .count()
    }

    /// Check a code the user typed inside sign-in request `cid` (the only way a login caller
    /// checks codes: a code replaces the phone of a request the caller opened, never the
    /// first factor). The request must be open — pending, or expired less than
    /// [`CODE_WINDOW_SECS`] ago — and takes at most [`MAX_WRONG_CODES_PER_REQUEST`] wrong
    /// codes; the account's own code limits apply as well. An accepted code ends the request:
    /// no phone's answer counts any more.
    pub async fn check_request_code(&self, cid: &Cid, code: &str) -> Result<CodeResult, Error> {
        let now = unix_now();
        let (account, expires, open) = if let Some(record) = self.nas.record(cid) {
            let account = AccountName::parse(&record.user)
                .map_err(|_| Error::NotFound { what: "request" })?;
            let open = matches!(record.outcome, None | Some(Outcome::Expired));
            (account, record.sent.expires, open)
        } else if let Some(request) = self.code_only().get(cid).cloned() {
            (request.account, request.expires, !request.ended)
        } else {
            return Err(Error::NotFound { what: "request" });
        };
        if !open {
            return Err(Error::Conflict(
                "this sign-in request is decided or cancelled; a code counts only in an open one",
            ));
        }
        if now > expires + CODE_WINDOW_SECS {
            return Err(Error::Conflict(
                "this sign-in request ended more than 5 minutes ago; start a new one",
            ));
        }
        // The try is taken before the check, so concurrent guesses cannot pass the count.
        let tries = {
            let mut wrong = self.wrong_codes();
            if wrong.len() >= MAX_CODE_ONLY && !wrong.contains_key(cid) {
                // Counts of requests forgotten since are dropped.
                let code_only = self.code_only();
                wrong
                    .retain(|cid, _| code_only.contains_key(cid) || self.nas.record(cid).is_some());
            }
            let tries = wrong.entry(*cid).or_default();
            if *tries >= MAX_WRONG_CODES_PER_REQUEST {
                return Err(Error::Conflict(
                    "this sign-in request took 3 wrong codes; start a new one",
                ));
            }
            *tries += 1;
            *tries
        };
        let result = match self.check_code(&account, CodeKind::of(code), code).await {
            Ok(result) => result,
            Err(error) => {
                // Nothing was checked: the try is given back.
                if let Some(tries) = self.wrong_codes().get_mut(cid) {
                    *tries = tries.saturating_sub(1);
                }
                return Err(error);
            }
        };
        let end = match &result {
            CodeResult::Accepted { .. } => true,
            CodeResult::Rejected { .. } | CodeResult::LockedOut { .. } => {
                tries >= MAX_WRONG_CODES_PER_REQUEST
            }
        };
        if end {
            self.wrong_codes().remove(cid);
            if let Err(error) = self.cancel_request(cid).await {
                tracing::warn!("{account}: request {cid}: telling the relay of its end: {error}");
            }
        }
        Ok(result)
    }

    fn wrong_codes(&self) -> std::sync::MutexGuard<'_, HashMap<Cid, u32>> {
        self.wrong_codes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where request `cid` stands, waiting up to `wait` (at most [`MAX_WAIT_SECS`]) for the
    /// phone's verified answer. Answered from the agent's own record: the relay is asked only
    /// by the one poll this request has ([`Service::poll_relay`], started by the first status
    /// read), so any number of reads, of any `wait`, cost the NAS's relay budget nothing more.
    pub async fn request_status(
        self: &Arc<Self>,
        cid: &Cid,
        wait: Duration,
    ) -> Result<RequestStatus, Error> {
        if let Some(request) = self.code_only().get(cid) {
            return Ok(if request.ended {
                RequestStatus::Cancelled
            } else if request.expires <= unix_now() {
                RequestStatus::Expired
            } else {
                RequestStatus::Pending
            });
        }
        let record = self
            .nas
            .record(cid)
            .ok_or(Error::NotFound { what: "request" })?;
        if record.outcome.is_none() && self.nas.settle_overdue(cid, unix_now()) {
            self.save_requests();
        }
        if let Some((outcome, record)) = self
            .nas
            .record(cid)
            .and_then(|record| Some((record.outcome.clone()?, record)))
        {
            return Ok(status_of(&outcome, &record));
        }
        let mut events = self.watch(cid);
        let wait = wait.min(Duration::from_secs(MAX_WAIT_SECS));
        let event = if wait.is_zero() {
            PollEvent::Polling
        } else {
            tokio::select! {
                changed = tokio::time::timeout(wait, events.changed()) => match changed {
                    Ok(Ok(())) => events.borrow_and_update().clone(),
                    // The poll ended (decided) or the wait is over: the record says which.
                    Ok(Err(_)) | Err(_) => PollEvent::Ended,
                },
                () = self.stopping.cancelled() => return Err(Error::ShuttingDown),
            }
        };
        let record = self
            .nas
            .record(cid)
            .ok_or(Error::NotFound { what: "request" })?;
        if let Some(outcome) = &record.outcome {
            return Ok(status_of(outcome, &record));
        }
        match event {
            PollEvent::Invalid(reason) => Ok(RequestStatus::Invalid { reason }),
            PollEvent::Failed(reason) => Err(Error::RelayPoll(reason)),
            PollEvent::Polling | PollEvent::Ended => Ok(RequestStatus::Pending),
        }
    }

    /// A watch of request `cid`'s relay poll, starting the poll if none runs.
    fn watch(self: &Arc<Self>, cid: &Cid) -> tokio::sync::watch::Receiver<PollEvent> {
        let mut polls = self.polls();
        if let Some(events) = polls.get(cid) {
            let mut events = events.clone();
            events.mark_unchanged();
            return events;
        }
        let (sender, events) = tokio::sync::watch::channel(PollEvent::Polling);
        polls.insert(*cid, events.clone());
        tokio::spawn(Arc::clone(self).poll_relay(*cid, sender));
        events
    }

    fn polls(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<Cid, tokio::sync::watch::Receiver<PollEvent>>> {
        self.polls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The one relay poll of request `cid`: long-polls for its verdict until it is decided,
    /// past its expiry, or the agent stops, judging every verdict against the account's phones
    /// as they are now (a phone removed meanwhile cannot approve). Tells the watchers what each
    /// poll saw, and keeps the decided request on disk.
    async fn poll_relay(self: Arc<Self>, cid: Cid, events: tokio::sync::watch::Sender<PollEvent>) {
        while let Some(record) = self.nas.record(&cid) {
            let now = unix_now();
            if record.outcome.is_some() || self.nas.settle_overdue(&cid, now) {
                break;
            }
            let left =
                (record.sent.expires + approvd_client::VERDICT_GRACE + 1).saturating_sub(now);
            let wait = Duration::from_secs(left.clamp(1, MAX_WAIT_SECS));
            let started = tokio::time::Instant::now();
            let polled = tokio::select! {
                polled = self.judge_next(&record, wait) => polled,
                () = self.stopping.cancelled() => break,
            };
            let pause = match polled {
                Ok(None) => POLL_SPACING.saturating_sub(started.elapsed()),
                Ok(Some(Outcome::Invalid { reason })) => {
                    tracing::warn!(
                        "{}: request {cid}: invalid answer refused: {reason}",
                        record.user
                    );
                    events.send_replace(PollEvent::Invalid(reason));
                    POLL_RETRY
                }
                Ok(Some(outcome)) => {
                    tracing::info!(
                        "{}: request {cid} is {}",
                        record.user,
                        status_of(&outcome, &record).name()
                    );
                    Arc::clone(&self).count_verdict(&record.user, &outcome);
                    continue;
                }
                Err(error) => {
                    tracing::warn!("{}: request {cid}: polling the relay: {error}", record.user);
                    events.send_replace(PollEvent::Failed(error.to_string()));
                    POLL_RETRY
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.stopping.cancelled() => break,
            }
        }
        self.polls().remove(&cid);
        self.save_requests();
        events.send_replace(PollEvent::Ended);
    }

    /// Count a decided request toward its account's cool-down (push fatigue); when one starts,
    /// the account's phones are told.
    fn count_verdict(self: Arc<Self>, account: &str, outcome: &Outcome) {
        let verdict = match outcome {
            Outcome::Approved { .. } => Verdict::Approved,
            Outcome::Denied { .. } => Verdict::Denied,
            Outcome::WrongNumber { .. } => Verdict::WrongNumber,
            Outcome::FraudReported { .. } => Verdict::Fraud,
            Outcome::Expired | Outcome::Cancelled | Outcome::Invalid { .. } => return,
        };
        let now = unix_now();
        if let Some(until) = self.cooldowns.record(account, verdict, now) {
            tracing::warn!(
                "{account}: a refused sign-in ({verdict:?}); the account's phones are not asked \
                 for {} s",
                until - now
            );
            if let Ok(account) = AccountName::parse(account) {
                let text = format!(
                    "Sign-ins to {account} are paused for {} min: a sign-in was refused on your \
                     phone (reported, or the wrong number chosen). If it was not you, change \
                     the password.",
                    (until - now).div_ceil(60)
                );
                tokio::spawn(async move { self.notify(&account, &text).await });
            }
        }
    }

    /// Tell every phone of the account `text`: a `notice` (PROTOCOL.md §4.1), which phones
    /// show and never answer, and nobody waits for. A failure is logged, never the caller's.
    pub async fn notify(&self, account: &AccountName, text: &str) {
        let name = account.clone();
        let devices = match self
            .on_home(move |home| home.account_devices(name.as_str()))
            .await
        {
            Ok(devices) if !devices.is_empty() => devices,
            Ok(_) => return,
            Err(error) => {
                tracing::warn!("{account}: cannot tell its phones: {error}");
                return;
            }
        };
        let request = ApprovalRequest {
            service: "approvd".to_owned(),
            kind: Some(approvd_proto::context::LoginKind::Notice),
            action: Some(text.to_owned()),
            lifetime_secs: NOTICE_LIFETIME_SECS,
            ..ApprovalRequest::sign_in(account.clone())
        };
        let context = request.login_context(&self.label, unix_now());
        match self
            .nas
            .request_approval(&devices, &context, false, request.lifetime())
            .await
        {
            Ok(sent) => tracing::info!("{account}: phones told ({})", sent.cid),
            Err(error) => tracing::warn!("{account}: cannot tell its phones: {error}"),
        }
    }

    /// One long-poll of the relay for `record`'s verdict, judged against the phones of its
    /// account that are still paired (with the keys recorded when it was sent).
    async fn judge_next(
        &self,
        record: &ChallengeRecord,
        wait: Duration,
    ) -> Result<Option<Outcome>, Error> {
        let account = record.user.clone();
        let current: Vec<DeviceRecord> = self
            .on_home(move |home| Ok(home.state()?.of(&account).cloned().collect()))
            .await?;
        let devices: Vec<PairedDevice> = record
            .devices
            .iter()
            .filter(|device| {
                current.iter().any(|now| {
                    now.device.device_id == device.device_id && now.device.sig_key == device.sig_key
                })
            })
            .cloned()
            .collect();
        Ok(self
            .nas
            .wait_for_verdict(&record.sent, &devices, wait)
            .await?)
    }

    /// Cancel request `cid`: from now on no answer counts, whatever the relay delivers, and
    /// the cancel is on disk before the relay is told (a restart keeps it).
    pub async fn cancel_request(&self, cid: &Cid) -> Result<(), Error> {
        if let Some(request) = self.code_only().get_mut(cid) {
            request.ended = true;
            return Ok(());
        }
        self.wrong_codes().remove(cid);
        if self.nas.record(cid).is_none() {
            return Err(Error::NotFound { what: "request" });
        }
        self.nas.withdraw(cid);
        self.save_requests();
        self.nas.cancel(cid).await?;
        Ok(())
    }

    /// Keep the requests on disk (with [`Keep::OnDisk`]): pending ones to judge after a
    /// restart, cancelled and decided ones so their outcome stands.
    fn save_requests(&self) {
        let Some(path) = &self.requests_file else {
            return;
        };
        let _saving = self
            .save_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let records = self.nas.kept_records(unix_now());
        let written = serde_json::to_vec(&records)
            .map_err(|error| error.to_string())
            .and_then(|text| {
                approvd_client::files::write_atomic(path, &text, true).map_err(|e| e.to_string())
            });
        if let Err(error) = written {
            tracing::error!("cannot save the pending requests: {error}");
        }
    }

    /// Take back the requests a previous run kept. A file that is there but unreadable is
    /// refused (the agent does not start), never silently dropped: a PAM login waiting on one
    /// of them would otherwise be told its request is lost.
    fn restore_requests(&self) -> Result<(), Error> {
        let Some(path) = &self.requests_file else {
            return Ok(());
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(refused_requests(path, &error.to_string())),
        };
        let records: Vec<ChallengeRecord> = serde_json::from_slice(&bytes).map_err(|error| {
            refused_requests(path, &format!("not a list of requests ({error})"))
        })?;
        let now = unix_now();
        for record in records
            .into_iter()
            .filter(|record| record.sent.expires + approvd_client::RECORD_RETENTION > now)
        {
            if let Err(error) = self.nas.restore(record) {
                tracing::warn!("a kept request is not restored: {error}");
            }
        }
        Ok(())
    }

    // ---- accounts ----

    /// The account's phones.
    pub async fn devices(&self, account: &AccountName) -> Result<Devices, Error> {
        let account = account.clone();
        let state = self.on_home(|home| home.state()).await?;
        let devices = state.of(account.as_str()).map(device_of).collect();
        Ok(Devices { devices })
    }

    /// The account's approval policy.
    pub async fn policy(&self, account: &AccountName) -> Result<AccountPolicy, Error> {
        let name = account.clone();
        let state = self.on_home(|home| home.state()).await?;
        Ok(AccountPolicy {
            require_user_verification: state.user_verified_accounts.contains(name.as_str()),
        })
    }

    /// Set the account's approval policy (kept in the NAS state, applied at once).
    pub async fn set_policy(
        &self,
        account: &AccountName,
        policy: &AccountPolicy,
    ) -> Result<AccountPolicy, Error> {
        let (name, required) = (account.clone(), policy.require_user_verification);
        self.on_home(move |home| home.set_user_verification(name.as_str(), required))
            .await?;
        self.nas
            .require_user_verification_for(account.as_str(), required);
        tracing::info!(
            "{account}: approvals {} user verification",
            if required {
                "require"
            } else {
                "no longer require"
            }
        );
        Ok(policy.clone())
    }

    /// Every paired phone with its account's name, as stored.
    pub async fn all_devices(&self) -> Result<Vec<(String, Device)>, Error> {
        Ok(self
            .on_home(|home| home.devices())
            .await?
            .iter()
            .map(|record| (record.account.clone(), device_of(record)))
            .collect())
    }

    /// Forget one of the account's phones: no more requests; its codes stop working; its
    /// answers to requests still pending no longer count, and a pending request that only
    /// it could answer is cancelled.
    pub async fn remove_device(
        &self,
        account: &AccountName,
        device_id: &DeviceId,
    ) -> Result<(), Error> {
        let (name, id) = (account.clone(), *device_id);
        if !self
            .on_home(move |home| home.remove_device(name.as_str(), &id))
            .await?
        {
            return Err(Error::NotFound {
                what: "device of this account",
            });
        }
        tracing::info!("{account}: removed device {device_id}");
        let orphaned: Vec<Cid> = self
            .nas
            .kept_records(unix_now())
            .into_iter()
            .filter(|record| record.outcome.is_none() && record.user == account.as_str())
            .filter(|record| {
                record
                    .devices
                    .iter()
                    .all(|device| device.device_id == *device_id)
            })
            .map(|record| record.sent.cid)
            .collect();
        for cid in orphaned {
            tracing::info!("{account}: request {cid} cancelled: its phone was removed");
            if let Err(error) = self.cancel_request(&cid).await {
                tracing::warn!(
                    "{account}: request {cid}: telling the relay of the cancel: {error}"
                );
            }
        }
        Ok(())
    }

    /// A new set of recovery codes for the account; the old set stops working.
    pub async fn new_recovery_codes(&self, account: &AccountName) -> Result<RecoveryCodes, Error> {
        let name = account.clone();
        let recovery_codes = self
            .on_home(move |home| home.new_recovery_codes(name.as_str()))
            .await?;
        tracing::info!("{account}: new recovery codes issued");
        Ok(RecoveryCodes { recovery_codes })
    }

    /// Check a code the user typed, within the account's attempt limit. The outcome is logged,
    /// never the code. For the NAS's own tools on its home (`approvd nas`, the PAM fallback
    /// when the agent is down); the API checks a code only inside a request
    /// ([`Service::check_request_code`]).
    pub async fn check_code(
        &self,
        account: &AccountName,
        kind: CodeKind,
        code: &str,
    ) -> Result<CodeResult, Error> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        let now = unix_now();
        let name = account.clone();
        let checked = self
            .on_home(move |home| match kind {
                CodeKind::Offline => home.check_offline_code(name.as_str(), &code, now),
                CodeKind::Recovery => home.use_recovery_code(name.as_str(), &code, now),
            })
            .await?;
        let result = match checked {
            CodeCheck::Accepted { device_id } => CodeResult::Accepted { device_id },
            CodeCheck::Rejected { failures } => CodeResult::Rejected { failures },
            CodeCheck::LockedOut { until } => CodeResult::LockedOut {
                locked_until: until,
            },
            CodeCheck::NoAccount => self.stranger_code(account, kind, now),
        };
        match &result {
            CodeResult::Accepted { .. } => tracing::info!("{account}: code accepted"),
            CodeResult::Rejected { failures } => {
                tracing::warn!("{account}: wrong code ({failures} in a row)");
            }
            CodeResult::LockedOut { locked_until } => tracing::warn!(
                "{account}: code refused, locked out for {} s more",
                locked_until.saturating_sub(now)
            ),
        }
        Ok(result)
    }

    /// A code typed for a name with no phone and no recovery code: wrong, counted in memory
    /// only (at most [`MAX_STRANGER_COUNTS`] names) under the same limit as a real account's,
    /// so the answers — failures, then a lockout — are the same as for a real account.
    fn stranger_code(&self, account: &AccountName, kind: CodeKind, now: u64) -> CodeResult {
        let limit = kind.limit();
        let mut strangers = self
            .strangers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (account.as_str().to_owned(), kind);
        if !strangers.contains_key(&key) && strangers.len() >= MAX_STRANGER_COUNTS {
            strangers.retain(|(_, kind), attempts| !attempts.is_spent(&kind.limit(), now));
            if strangers.len() >= MAX_STRANGER_COUNTS {
                let oldest = strangers
                    .iter()
                    .min_by_key(|(_, attempts)| attempts.last_failure)
                    .map(|(key, _)| key.clone());
                if let Some(oldest) = oldest {
                    strangers.remove(&oldest);
                }
            }
        }
        let attempts = strangers.entry(key).or_default();
        match attempts.admit(&limit, now) {
            Err(locked_until) => CodeResult::LockedOut { locked_until },
            Ok(()) => CodeResult::Rejected {
                failures: attempts.fail(&limit, now),
            },
        }
    }

    // ---- changes an account's phone must approve (N-8) ----

    /// Ask the account's phones to approve `purpose` (an `action` request, with a number to
    /// show): the id to poll, then to give as `approval` to the change.
    pub async fn ask_approval(
        &self,
        account: &AccountName,
        purpose: Purpose,
    ) -> Result<RequestCreated, Error> {
        let request = ApprovalRequest {
            service: "approvd".to_owned(),
            kind: Some(approvd_proto::context::LoginKind::Action),
            action: Some(purpose.action(account)),
            number_matching: true,
            ..ApprovalRequest::sign_in(account.clone())
        };
        let created = self.create_request(&request).await?;
        if let Some(reason) = &created.relay_error {
            self.code_only().remove(&created.request_id);
            return Err(Error::RelayPoll(format!(
                "{reason}; the phones cannot be asked now (a recovery code approves instead)"
            )));
        }
        let mut approvals = self.approvals();
        if approvals.len() >= MAX_CODE_ONLY {
            approvals.retain(|cid, _| self.nas.record(cid).is_some());
        }
        approvals.insert(created.request_id, (account.clone(), purpose));
        tracing::info!(
            "{account}: approval {} asked for {purpose:?}",
            created.request_id
        );
        Ok(created)
    }

    /// Whether `given` approves `purpose` for the account: always when it has no phone yet
    /// (its first phone is enrolled on the caller's own first factor); otherwise an approved
    /// request asked for this account and purpose, or one of its recovery codes — either is
    /// used up here.
    pub async fn authorise(
        self: &Arc<Self>,
        account: &AccountName,
        purpose: Purpose,
        given: &Authorisation,
    ) -> Result<(), Error> {
        let name = account.clone();
        let has_phone = self
            .on_home(move |home| Ok(!home.account_devices(name.as_str())?.is_empty()))
            .await?;
        if !has_phone {
            return Ok(());
        }
        let refused = |why: String| Err(Error::ApprovalRequired(why));
        if let Some(cid) = &given.approval {
            if self.approvals().get(cid) != Some(&(account.clone(), purpose)) {
                return refused(format!(
                    "approval {cid} was not asked for this change to {account}"
                ));
            }
            return match self.request_status(cid, Duration::ZERO).await? {
                RequestStatus::Approved(decider) => {
                    // Used once: a second change needs a second approval.
                    if self.approvals().remove(cid).is_none() {
                        return refused(format!("approval {cid} is used already"));
                    }
                    tracing::info!(
                        "{account}: {purpose:?} approved on {}",
                        decider.device_name.as_deref().unwrap_or("a phone")
                    );
                    Ok(())
                }
                RequestStatus::Pending => refused(format!(
                    "approval {cid} is not answered yet: wait for the phone"
                )),
                other => {
                    self.approvals().remove(cid);
                    refused(format!("approval {cid} was not given: {}", other.name()))
                }
            };
        }
        if let Some(code) = &given.recovery_code {
            return match self.check_code(account, CodeKind::Recovery, code).await? {
                CodeResult::Accepted { .. } => {
                    tracing::info!("{account}: {purpose:?} approved with a recovery code");
                    let text = match purpose {
                        Purpose::Pair => format!(
                            "A new phone is being paired with {account}, approved with a \
                             recovery code. If this was not you, remove it and issue new codes."
                        ),
                        Purpose::RecoveryCodes => format!(
                            "New recovery codes were issued for {account}, approved with a \
                             recovery code; the old ones no longer work."
                        ),
                    };
                    self.notify(account, &text).await;
                    Ok(())
                }
                CodeResult::Rejected { .. } | CodeResult::LockedOut { .. } => {
                    refused("the recovery code is not valid".to_owned())
                }
            };
        }
        refused(format!(
            "{account} has a phone: approve this on it first (POST /v1/accounts/{account}/approvals \
             {{\"purpose\": …}}, then give the request as `approval`), or give one of its \
             recovery codes"
        ))
    }

    fn approvals(&self) -> std::sync::MutexGuard<'_, HashMap<Cid, (AccountName, Purpose)>> {
        self.approvals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    // ---- pairing ----

    /// Start pairing a phone for the account: a relay slot and the QR code to show. A task
    /// then waits for the phone's claim, checks it and commits to it.
    pub async fn start_pairing(
        self: &Arc<Self>,
        request: &PairingRequest,
    ) -> Result<PairingStarted, Error> {
        self.check_room(&request.user).await?;
        let uri = self
            .nas
            .start_pairing(&self.label, request.user.as_str(), request.ttl())
            .await?;
        let text = uri.to_uri();
        let qr_svg = qrcode::QrCode::new(text.as_bytes())
            .map(|code| {
                code.render::<qrcode::render::svg::Color<'_>>()
                    .min_dimensions(256, 256)
                    .build()
            })
            .unwrap_or_default();
        {
            let now = unix_now();
            let mut pairings = self.pairings();
            pairings.retain(|_, session| session.expires_at + PAIRING_RETENTION > now);
            pairings.insert(
                uri.pairing_id,
                PairingSession {
                    account: request.user.clone(),
                    expires_at: uri.expires_at,
                    step: Step::Waiting,
                },
            );
        }
        tracing::info!("{}: pairing {} started", request.user, uri.pairing_id);
        let started = PairingStarted {
            pairing_id: uri.pairing_id,
            uri: text,
            qr_svg,
            expires_at: uri.expires_at,
        };
        tokio::spawn(Arc::clone(self).await_claim(uri));
        Ok(started)
    }

    /// Whether the account may pair one more phone.
    async fn check_room(&self, account: &AccountName) -> Result<(), Error> {
        let name = account.clone();
        let (max, paired) = self
            .on_home(move |home| {
                let max = home.settings()?.max_phones_per_account;
                Ok((max, home.state()?.of(name.as_str()).count()))
            })
            .await?;
        if paired >= max {
            return Err(Error::TooManyPhones {
                account: account.clone(),
                max,
            });
        }
        Ok(())
    }

    /// Wait for the phone's claim until the slot expires, the pairing ends another way, or
    /// the agent stops; the SDK checks the claim and commits to it.
    async fn await_claim(self: Arc<Self>, uri: PairingUri) {
        let next = loop {
            let left = uri.expires_at.saturating_sub(unix_now());
            if left == 0 {
                break Step::Expired;
            }
            let still_waiting = self
                .pairings()
                .get(&uri.pairing_id)
                .is_some_and(|session| matches!(session.step, Step::Waiting));
            if !still_waiting {
                return;
            }
            let wait = Duration::from_secs(left.min(MAX_WAIT_SECS));
            let claimed = tokio::select! {
                claimed = self.nas.wait_for_claim(&uri, wait) => claimed,
                () = self.stopping.cancelled() => return,
            };
            match claimed {
                Ok(Some(verified)) => break Step::Claimed(Box::new(verified)),
                Ok(None) => continue,
                // The relay's clock ended the slot a moment before ours.
                Err(error) if error.problem_name() == Some("pairing-expired") => {
                    break Step::Expired
                }
                Err(error) => break Step::Failed(error.to_string()),
            }
        };
        let (id, expires_at) = (uri.pairing_id, uri.expires_at);
        // The QR code's secret `k` goes with the URI; a claim keeps its own copy to check
        // the code the user types.
        drop(uri);
        let status = self.advance(&id, |step| matches!(step, Step::Waiting).then_some(next));
        if !status.is_some_and(|status| matches!(status.state, PairingState::Claimed { .. })) {
            return;
        }
        // A claim nobody confirms or rejects: at the QR code's expiry the pairing ends and
        // `k` is erased with the claim (PROTOCOL.md §5.1: both sides erase `k`).
        let left = Duration::from_secs(expires_at.saturating_sub(unix_now()));
        tokio::select! {
            () = tokio::time::sleep(left) => {}
            () = self.stopping.cancelled() => return,
        }
        let abandoned = self
            .advance(&id, |step| {
                matches!(step, Step::Claimed(_)).then_some(Step::Expired)
            })
            .is_some_and(|status| status.state == PairingState::Expired);
        if abandoned {
            tracing::info!(
                "pairing {id} expired with its claim unconfirmed; the pairing secret is erased"
            );
        }
    }

    /// Move a pairing to the step `next` returns for its current one (`None`: leave it).
    fn advance(
        &self,
        id: &PairingId,
        next: impl FnOnce(&Step) -> Option<Step>,
    ) -> Option<PairingStatus> {
        let status = {
            let mut pairings = self.pairings();
            let session = pairings.get_mut(id)?;
            if let Some(step) = next(&session.step) {
                session.step = step;
            }
            session.status(unix_now())
        };
        self.pairing_changed.notify_waiters();
        Some(status)
    }

    fn pairings(&self) -> std::sync::MutexGuard<'_, HashMap<PairingId, PairingSession>> {
        self.pairings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where pairing `id` stands.
    pub fn pairing_status(&self, id: &PairingId) -> Result<PairingStatus, Error> {
        self.pairings()
            .get(id)
            .map(|session| session.status(unix_now()))
            .ok_or(Error::NotFound { what: "pairing" })
    }

    /// Where pairing `id` stands once it is no longer waiting for a claim, or after `wait`.
    pub async fn wait_for_pairing(
        &self,
        id: &PairingId,
        wait: Duration,
    ) -> Result<PairingStatus, Error> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let changed = self.pairing_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let status = self.pairing_status(id)?;
            if !matches!(status.state, PairingState::Waiting) {
                return Ok(status);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Ok(status);
            }
        }
    }

    /// The user refuses the phone (it is not theirs): the pairing ends, nothing is recorded.
    pub fn reject_pairing(&self, id: &PairingId) -> Result<PairingStatus, Error> {
        let mut paired = false;
        let status = self
            .advance(id, |step| match step {
                Step::Paired { .. } => {
                    paired = true;
                    None
                }
                _ => Some(Step::Failed("rejected".to_owned())),
            })
            .ok_or(Error::NotFound { what: "pairing" })?;
        if paired {
            return Err(Error::Conflict("paired already: remove the device instead"));
        }
        tracing::info!("{}: pairing {id} rejected", status.user);
        Ok(status)
    }

    /// Confirm pairing `id` with the code the user typed from the phone. A wrong code fails
    /// the pairing (start a new one). The account's first phone comes with recovery codes.
    pub async fn confirm_pairing(
        &self,
        id: &PairingId,
        typed_code: &str,
    ) -> Result<PairingConfirmed, Error> {
        self.wait_for_pairing(id, CLAIM_SETTLE).await?;
        let (account, verified) = {
            let pairings = self.pairings();
            let session = pairings
                .get(id)
                .ok_or(Error::NotFound { what: "pairing" })?;
            match &session.step {
                Step::Claimed(verified) if session.expires_at > unix_now() => {
                    (session.account.clone(), verified.clone())
                }
                _ => {
                    return Err(Error::Conflict(
                        "nothing to confirm: see the pairing's status",
                    ))
                }
            }
        };
        let (device, secret) = match self.nas.confirm(&verified, typed_code.trim()).await {
            Ok(paired) => paired,
            Err(ClientError::Verification(reason)) => {
                tracing::warn!("{account}: pairing {id}: wrong code typed");
                self.advance(id, |_| Some(Step::Failed(reason.clone())));
                return Err(Error::WrongCode(reason));
            }
            Err(error) => return Err(error.into()),
        };
        let recovery_codes = self
            .record_paired(&account, device.clone(), &secret)
            .await?;
        let pairing = self
            .advance(id, |_| {
                Some(Step::Paired {
                    device_id: device.device_id,
                    name: device.name.clone(),
                })
            })
            .ok_or(Error::NotFound { what: "pairing" })?;
        Ok(PairingConfirmed {
            pairing,
            recovery_codes,
        })
    }

    /// Record a newly paired phone of `account`. The rule for recovery codes lives here only:
    /// an account that has none left gets a new set with this phone (returned, to be shown
    /// once).
    pub async fn record_paired(
        &self,
        account: &AccountName,
        device: PairedDevice,
        code_secret: &CodeSecret,
    ) -> Result<Option<Vec<String>>, Error> {
        let (device_id, name) = (device.device_id, device.name.clone());
        let (owner, secret) = (account.clone(), code_secret.clone());
        let needs_codes = self
            .on_home(move |home| {
                let needs_codes = !home.has_recovery_codes(owner.as_str())?;
                home.add_device(owner.as_str(), device, &secret)?;
                Ok(needs_codes)
            })
            .await?;
        tracing::info!("{account}: paired {name} ({device_id})");
        if !needs_codes {
            return Ok(None);
        }
        Ok(Some(self.new_recovery_codes(account).await?.recovery_codes))
    }

    // ---- retirement ----

    /// Retire this NAS's key (PROTOCOL.md §5.6, N-14): tell every paired phone (`kind:
    /// retire`, `reason` shown), wait up to `wait` for their signed `unpair`s, then retire the
    /// key in the home ([`NasHome::retire`]). A phone that was not reached keeps its pairing
    /// until it expires it ([`approvd_client::PAIRING_IDLE_LIMIT`]) or its user deletes it;
    /// the key it trusts is never used again here.
    pub async fn retire(&self, reason: &str, wait: Duration) -> Result<Retirement, Error> {
        let records = self.on_home(|home| home.devices()).await?;
        let mut accounts: HashMap<String, Vec<PairedDevice>> = HashMap::new();
        for record in &records {
            accounts
                .entry(record.account.clone())
                .or_default()
                .push(record.device.clone());
        }
        let now = unix_now();
        let mut told = 0;
        for (account, devices) in &accounts {
            let context = approvd_proto::context::LoginContext {
                user: account.clone(),
                service: "approvd".to_owned(),
                nas_label: self.label.clone(),
                client_ip: None,
                user_agent: None,
                location: None,
                kind: approvd_proto::context::LoginKind::Retire,
                action: Some(reason.to_owned()),
                time: now,
            };
            context.validate().map_err(Error::Invalid)?;
            let lifetime = Duration::from_secs(approvd_proto::wire::MAX_CHALLENGE_LIFETIME);
            // One challenge reaches at most MAX_TARGETS phones; an account may have more.
            for devices in devices.chunks(approvd_proto::limits::MAX_TARGETS) {
                match self
                    .nas
                    .request_approval(devices, &context, false, lifetime)
                    .await
                {
                    Ok(sent) => {
                        told += sent
                            .report
                            .deliveries
                            .iter()
                            .filter(|entry| {
                                entry.delivery != approvd_proto::wire::Delivery::RateLimited
                            })
                            .count();
                    }
                    Err(error) => tracing::warn!("{account}: cannot tell its phones: {error}"),
                }
            }
        }
        let all: Vec<PairedDevice> = records.iter().map(|record| record.device.clone()).collect();
        let mut confirmed = std::collections::HashSet::new();
        let deadline = tokio::time::Instant::now() + wait;
        while confirmed.len() < all.len() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let poll = left.min(Duration::from_secs(MAX_WAIT_SECS));
            for event in self.nas.drain_mailbox(&all, poll).await? {
                if let MailboxEvent::Unpaired { device_id } = event {
                    confirmed.insert(device_id);
                }
            }
        }
        let retired_key = self.on_home(move |home| home.retire(now)).await?;
        tracing::info!(
            "NAS key retired: {} phones, {} confirmed",
            all.len(),
            confirmed.len()
        );
        Ok(Retirement {
            phones: all.len(),
            told,
            confirmed: confirmed.len(),
            retired_key,
        })
    }

    // ---- mailbox ----

    /// Fetch, verify, apply and acknowledge the mailbox's notices (waiting up to `wait` for
    /// one); the events applied.
    pub async fn drain_mailbox(&self, wait: Duration) -> Result<Vec<MailboxEvent>, Error> {
        let devices: Vec<PairedDevice> = self
            .on_home(|home| home.devices())
            .await?
            .into_iter()
            .map(|record| record.device)
            .collect();
        let events = self.nas.drain_mailbox(&devices, wait).await?;
        for event in &events {
            tracing::info!("mailbox: {event:?}");
        }
        let applied = events.clone();
        self.on_home(move |home| home.apply(&applied)).await?;
        Ok(events)
    }

    /// Apply mailbox notices as they arrive, until the agent stops; back off while the relay
    /// or the home cannot be reached.
    pub async fn keep_mailbox_applied(self: Arc<Self>) {
        loop {
            let drained = tokio::select! {
                drained = self.drain_mailbox(Duration::from_secs(MAX_WAIT_SECS)) => drained,
                () = self.stopping.cancelled() => return,
            };
            if let Err(error) = drained {
                tracing::warn!(
                    "mailbox: {error}; retrying in {} s",
                    MAILBOX_RETRY.as_secs()
                );
                tokio::select! {
                    () = tokio::time::sleep(MAILBOX_RETRY) => {}
                    () = self.stopping.cancelled() => return,
                }
            }
        }
    }
}

fn refused_requests(path: &Path, reason: &str) -> Error {
    Error::State(ClientError::Storage {
        path: path.display().to_string(),
        message: format!(
            "{reason}: the agent will not start without the requests it kept; move the file \
             away to start without them (their sign-ins then end as lost)"
        ),
    })
}

fn device_of(record: &DeviceRecord) -> Device {
    Device {
        device_id: record.device.device_id,
        name: record.device.name.clone(),
        platform: record.device.platform.clone(),
        push_gone: record.push_gone,
        muted_until: record.muted_until,
    }
}

/// The API's status for `outcome`, naming the deciding phone as the record knew it.
fn status_of(outcome: &Outcome, record: &ChallengeRecord) -> RequestStatus {
    let decider = |device_id: &DeviceId| Decider {
        device_id: *device_id,
        device_name: record
            .devices
            .iter()
            .find(|device| device.device_id == *device_id)
            .map(|device| device.name.clone()),
    };
    match outcome {
        Outcome::Approved { device_id } => RequestStatus::Approved(decider(device_id)),
        Outcome::Denied { device_id } => RequestStatus::Denied(decider(device_id)),
        Outcome::WrongNumber { device_id } => RequestStatus::WrongNumber(decider(device_id)),
        Outcome::FraudReported { device_id } => RequestStatus::Fraud(decider(device_id)),
        Outcome::Expired => RequestStatus::Expired,
        Outcome::Cancelled => RequestStatus::Cancelled,
        Outcome::Invalid { reason } => RequestStatus::Invalid {
            reason: reason.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use approvd_proto::wire::PushHandle;
    use approvd_proto::{PublicKey, SealKey};

    use super::*;

    /// A NAS home in a fresh directory under the system's temporary directory (removed on
    /// drop). No relay is needed for what these tests do.
    struct Home(PathBuf);

    impl Home {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "approvd-agent-{name}-{}-{}",
                std::process::id(),
                approvd_proto::ids::encode_b64(&approvd_proto::random_bytes::<6>())
            ));
            NasHome::init(&dir, "http://127.0.0.1:9", "test-nas").expect("init");
            Self(dir)
        }
    }

    impl Drop for Home {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn phone(name: &str) -> PairedDevice {
        PairedDevice {
            device_id: DeviceId(PublicKey::from(&approvd_proto::generate_signing_key())),
            sig_key: PublicKey::from(&approvd_proto::generate_signing_key()),
            seal_key: SealKey([9; 32]),
            name: name.to_owned(),
            platform: "ios".to_owned(),
            push_handle: PushHandle(vec![1, 2, 3]),
            paired_at: 1_800_000_000,
        }
    }

    fn account(name: &str) -> AccountName {
        AccountName::parse(name).expect("name")
    }

    #[tokio::test]
    async fn an_accounts_first_phone_comes_with_recovery_codes_and_the_next_does_not() {
        let home = Home::new("first-phone");
        let service = Service::open(&home.0, Keep::InMemory).expect("open");
        let alice = account("alice");
        let first = service
            .record_paired(&alice, phone("first"), &CodeSecret::generate())
            .await
            .expect("recorded");
        assert_eq!(
            first.map(|codes| codes.len()),
            Some(approvd_client::home::RECOVERY_CODES)
        );
        let second = service
            .record_paired(&alice, phone("second"), &CodeSecret::generate())
            .await
            .expect("recorded");
        assert_eq!(second, None);
        // Bob is another account: his first phone has codes of its own.
        let bob = service
            .record_paired(&account("bob"), phone("bob's"), &CodeSecret::generate())
            .await
            .expect("recorded");
        assert!(bob.is_some());
        // An account whose codes are used up gets a new set with its next phone.
        let mut codes = service
            .new_recovery_codes(&alice)
            .await
            .expect("codes")
            .recovery_codes;
        for code in codes.drain(..) {
            let used = service
                .check_code(&alice, CodeKind::Recovery, &code)
                .await
                .expect("checked");
            assert!(matches!(used, CodeResult::Accepted { device_id: None }));
        }
        let third = service
            .record_paired(&alice, phone("third"), &CodeSecret::generate())
            .await
            .expect("recorded");
        assert!(third.is_some());
        assert_eq!(
            service
                .devices(&alice)
                .await
                .expect("devices")
                .devices
                .len(),
            3
        );
    }

    #[tokio::test]
    async fn a_state_that_cannot_be_read_is_an_error_not_a_set_of_codes() {
        let home = Home::new("unreadable");
        let service = Service::open(&home.0, Keep::InMemory).expect("open");
        std::fs::write(home.0.join("devices.json"), b"{not json").expect("damage");
        let refused = service
            .record_paired(&account("alice"), phone("x"), &CodeSecret::generate())
            .await;
        assert!(matches!(refused, Err(Error::State(_))), "{refused:?}");
        assert!(matches!(
            Service::open(&home.0, Keep::InMemory),
            Err(Error::State(_))
        ));
    }

    #[tokio::test]
    async fn phones_and_codes_belong_to_one_account() {
        let home = Home::new("accounts");
        let service = Service::open(&home.0, Keep::InMemory).expect("open");
        let (alice, bob) = (account("alice"), account("bob"));
        let alices = phone("alice's");
        service
            .record_paired(&alice, alices.clone(), &CodeSecret::generate())
            .await
            .expect("recorded");
        assert!(matches!(
            service.remove_device(&bob, &alices.device_id).await,
            Err(Error::NotFound { .. })
        ));
        let checked = service
            .check_code(&bob, CodeKind::Offline, "123 456")
            .await
            .expect("checked");
        assert_eq!(checked, CodeResult::Rejected { failures: 1 });
        let all = service.all_devices().await.expect("all");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].0, "alice");
        service
            .remove_device(&alice, &alices.device_id)
            .await
            .expect("removed");
        assert!(service
            .devices(&alice)
            .await
            .expect("devices")
            .devices
            .is_empty());
        assert!(matches!(
            service.remove_device(&alice, &alices.device_id).await,
            Err(Error::NotFound { .. })
        ));
    }

    #[test]
    fn an_unknown_request_or_pairing_is_not_found() {
        let home = Home::new("unknown");
        let service = Service::open(&home.0, Keep::InMemory).expect("open");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let cid = Cid::random();
        let status = runtime.block_on(service.request_status(&cid, Duration::ZERO));
        assert!(matches!(status, Err(Error::NotFound { what: "request" })));
        let cancelled = runtime.block_on(service.cancel_request(&cid));
        assert!(matches!(cancelled, Err(Error::NotFound { .. })));
        let id = PairingId::random();
        assert!(matches!(
            service.pairing_status(&id),
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            service.reject_pairing(&id),
            Err(Error::NotFound { .. })
        ));
        let confirmed = runtime.block_on(service.confirm_pairing(&id, "123456"));
        assert!(matches!(confirmed, Err(Error::NotFound { .. })));
    }

    #[test]
    fn kept_requests_and_their_cancels_come_back_a_damaged_file_is_refused_and_strays_go() {
        let home = Home::new("requests-file");
        let file = home.0.join("agent-requests.json");
        let cid = Cid::random();
        let expires = unix_now() + 60;
        let record = ChallengeRecord {
            user: "alice".to_owned(),
            sent: approvd_client::SentChallenge {
                cid,
                created: expires - 60,
                expires,
                number: Some("042".to_owned()),
                challenge_hashes: Vec::new(),
                report: approvd_proto::wire::ChallengeCreated {
                    cid,
                    expires,
                    deliveries: Vec::new(),
                },
            },
            devices: vec![phone("alice's")],
            outcome: None,
        };
        let other = Cid::random();
        let cancelled = ChallengeRecord {
            sent: approvd_client::SentChallenge {
                cid: other,
                report: approvd_proto::wire::ChallengeCreated {
                    cid: other,
                    ..record.sent.report.clone()
                },
                ..record.sent.clone()
            },
            outcome: Some(Outcome::Cancelled),
            ..record.clone()
        };
        let forgotten = ChallengeRecord {
            sent: approvd_client::SentChallenge {
                expires: 1,
                ..record.sent.clone()
            },
            ..record.clone()
        };
        std::fs::write(
            &file,
            serde_json::to_vec(&[&record, &cancelled, &forgotten]).expect("json"),
        )
        .expect("write");
        // A crash's leftover copy of the state, old enough to be nobody's write under way.
        let stray = home.0.join(".devices.json.AAAAAAAAAAAAAAAA.tmp");
        std::fs::write(&stray, b"{}").expect("stray");
        let old = std::time::SystemTime::now() - 2 * STRAY_TEMP_AGE;
        std::fs::File::options()
            .write(true)
            .open(&stray)
            .and_then(|file| file.set_modified(old))
            .expect("age the stray file");
        let service = Service::open(&home.0, Keep::OnDisk).expect("open");
        assert!(!stray.exists(), "the agent removes what a crash left");
        let mut kept = service.nas().kept_records(0);
        kept.sort_by_key(|record| record.sent.cid != cid);
        assert_eq!(kept, [record.clone(), cancelled.clone()]);
        assert_eq!(
            service.nas().challenge_state(&other),
            Some(approvd_client::nas::ChallengeState::Cancelled),
            "a cancel survives the restart"
        );
        // Saved again as it was: the forgotten one is gone from the file too.
        service.save_requests();
        let saved: Vec<ChallengeRecord> =
            serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("records");
        assert_eq!(saved.len(), 2);
        drop(service);

        for damaged in [&b"[{\"neither\": \"here nor there\"}]"[..], b"[[{\"garbage"] {
            std::fs::write(&file, damaged).expect("write");
            let refused =
                Service::open(&home.0, Keep::OnDisk).expect_err("a damaged file stops it");
            assert!(
                refused.to_string().contains("move the file away"),
                "{refused}"
            );
            assert_eq!(
                std::fs::read(&file).expect("kept"),
                damaged,
                "and is left as it was"
            );
        }

        std::fs::remove_file(&file).expect("remove");
        let service = Service::open(&home.0, Keep::InMemory).expect("open");
        service.save_requests();
        assert!(!file.exists(), "approvd nas leaves the agent's file alone");
    }
}
