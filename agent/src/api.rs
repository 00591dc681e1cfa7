//! The agent's local approval API as types: every request body and every answer of every
//! route, the problem types it answers with, the account-name rule and the bounds (wait,
//! lifetimes). The only spelling of the contract — the daemon (`http`), its client (`client`),
//! `approvd pam`, the sign-in page, the tests and the fuzzers all use these types, so a change
//! to the contract is one edit here that the compiler carries to every end. No I/O.

use std::time::Duration;

use approvd_proto::context::{LoginContext, LoginKind};
use approvd_proto::wire::{Delivery, TargetDelivery};
use approvd_proto::{Cid, DeviceId, PairingId};
use unicode_normalization::UnicodeNormalization as _;

pub use approvd_proto::wire::Problem;

/// Longest `?wait=` an outcome poll may hold, seconds (longer asks are cut to this).
pub const MAX_WAIT_SECS: u64 = 25;
/// Most requests one account may have pending at once; one more is `429 too-many-pending`
/// (a caller hammering one name cannot grow the agent's state or its number draw).
pub const MAX_PENDING_PER_ACCOUNT: usize = 10;
/// A request's lifetime when the caller names none, seconds.
pub const DEFAULT_LIFETIME_SECS: u64 = 60;
/// Longest lifetime of a request, seconds (the relay's challenge limit, PROTOCOL.md §3).
pub const MAX_LIFETIME_SECS: u64 = approvd_proto::wire::MAX_CHALLENGE_LIFETIME;
/// How long a pairing QR code is valid when the caller names no time, seconds.
pub const DEFAULT_PAIRING_TTL_SECS: u64 = 300;
/// Longest validity of a pairing QR code, seconds (PROTOCOL.md §5).
pub const MAX_PAIRING_TTL_SECS: u64 = approvd_proto::pairing::MAX_PAIRING_TTL;
/// Largest request body the agent reads, bytes.
pub const MAX_BODY: usize = 16 * 1024;
/// Wrong codes one sign-in request takes before it ends (a new request, which the phones are
/// shown, is needed for more).
pub const MAX_WRONG_CODES_PER_REQUEST: u32 = 3;
/// How long after a request's expiry a code may still settle it, seconds (the user who waited
/// for the phone in vain then reads the app's offline code).
pub const CODE_WINDOW_SECS: u64 = 300;

/// An account on the NAS: whose phones a request goes to. One rule for every caller (the
/// agent, PAM, the sign-in page), decided for what login systems actually hand over:
/// - Unicode, NFC-normalised (so `é` typed two ways is one account) — DSM and directory
///   services allow non-ASCII names; Linux allows any bytes but `/`, `:` and NUL;
/// - 1 to 64 bytes of UTF-8 (the pairing URI's limit, PROTOCOL.md §5.2);
/// - no control characters, no leading or trailing white space;
/// - no `/` or `:` (a path separator, the passwd field separator) and not `.` or `..` (URL
///   paths would resolve them), so a name is always one path segment of the API.
///
/// `user@example.com`, `DOMAIN\jane`, `jürgen`, `j.doe-2` are accounts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountName(String);

/// Why a text is not an [`AccountName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountNameError {
    #[error("an account name cannot be empty")]
    Empty,
    #[error("an account name is at most {max} bytes of UTF-8 (this one is {got})")]
    TooLong { max: usize, got: usize },
    #[error("an account name cannot contain control characters")]
    Control,
    #[error("an account name cannot start or end with white space")]
    Padded,
    #[error("an account name cannot contain `/` or `:`")]
    Separator,
    #[error("`.` and `..` are not account names")]
    Dots,
}

impl AccountName {
    /// Most bytes of UTF-8 in an account name.
    pub const MAX_BYTES: usize = approvd_proto::pairing::MAX_ACCOUNT;

    /// Check `text` against the rule and normalise it (NFC).
    pub fn parse(text: &str) -> Result<Self, AccountNameError> {
        let name: String = text.nfc().collect();
        if name.is_empty() {
            return Err(AccountNameError::Empty);
        }
        if name.len() > Self::MAX_BYTES {
            return Err(AccountNameError::TooLong {
                max: Self::MAX_BYTES,
                got: name.len(),
            });
        }
        if name.chars().any(char::is_control) {
            return Err(AccountNameError::Control);
        }
        if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
            return Err(AccountNameError::Padded);
        }
        if name.contains(['/', ':']) {
            return Err(AccountNameError::Separator);
        }
        if name == "." || name == ".." {
            return Err(AccountNameError::Dots);
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AccountName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for AccountName {
    type Err = AccountNameError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl serde::Serialize for AccountName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for AccountName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for AccountName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .description(Some(
                "An account on the NAS: 1 to 64 bytes of UTF-8, NFC-normalised, no control \
                 characters, no leading or trailing white space, no `/` or `:`, not `.` or `..`.",
            ))
            .min_length(Some(1))
            .max_length(Some(Self::MAX_BYTES))
            .into()
    }
}

impl utoipa::ToSchema for AccountName {}

// ---- request bodies ----

/// `POST /v1/requests`: ask an account's phones to approve a sign-in or an action.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    /// The account signing in: only its phones are asked.
    pub user: AccountName,
    /// The service signed in to, as the phone shows it.
    #[serde(default = "default_service")]
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// A coarse location, e.g. "Berlin, DE".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Default: `action` when an action is named, else `login`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<LoginKind>,
    /// An action to approve, shown verbatim on the phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Number matching for an `action` (always on for sign-ins).
    #[serde(default)]
    pub number_matching: bool,
    /// Seconds the phone has to answer, 1 to 120 (longer or shorter asks are clamped).
    #[serde(default = "default_lifetime")]
    pub lifetime_secs: u64,
    /// Only these of the account's phones (default: all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceId>,
}

fn default_service() -> String {
    "login".to_owned()
}

fn default_lifetime() -> u64 {
    DEFAULT_LIFETIME_SECS
}

impl ApprovalRequest {
    /// A sign-in request for `user` with every other field at its default.
    pub fn sign_in(user: AccountName) -> Self {
        Self {
            user,
            service: default_service(),
            client_ip: None,
            user_agent: None,
            location: None,
            kind: None,
            action: None,
            number_matching: false,
            lifetime_secs: DEFAULT_LIFETIME_SECS,
            devices: Vec::new(),
        }
    }

    /// The context sealed to the phones: `kind` defaults to an action when one is named, else
    /// a sign-in.
    pub fn login_context(&self, nas_label: &str, now: u64) -> LoginContext {
        let kind = self.kind.unwrap_or(if self.action.is_some() {
            LoginKind::Action
        } else {
            LoginKind::Login
        });
        LoginContext {
            user: self.user.as_str().to_owned(),
            service: self.service.clone(),
            nas_label: nas_label.to_owned(),
            client_ip: self.client_ip.clone(),
            user_agent: self.user_agent.clone(),
            location: self.location.clone(),
            kind,
            action: self.action.clone(),
            time: now,
        }
    }

    /// Whether to ask for number matching: when requested, and always for sign-ins.
    pub fn number_matching(&self, context: &LoginContext) -> bool {
        self.number_matching || context.requires_number_matching()
    }

    /// The challenge's lifetime, 1 to [`MAX_LIFETIME_SECS`] seconds.
    pub fn lifetime(&self) -> Duration {
        Duration::from_secs(self.lifetime_secs.clamp(1, MAX_LIFETIME_SECS))
    }
}

/// `POST /v1/requests/{id}/code` (an offline code: digits; a recovery code: anything else) and
/// `POST /v1/pairings/{id}/confirm`: a code the user typed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    pub code: String,
}

/// `POST /v1/pairings`: start pairing a phone with an account.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PairingRequest {
    pub user: AccountName,
    /// How long the QR code is valid, 1 to 600 seconds (clamped).
    #[serde(default = "default_pairing_ttl")]
    pub ttl_secs: u64,
    /// Once the account has a phone: an approved `pair` request
    /// (`POST /v1/accounts/{user}/approvals`), used up by this pairing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub approval: Option<Cid>,
    /// Or, when no phone of the account is at hand: one of its recovery codes (used up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_code: Option<String>,
}

/// What approves a change to an account that has a phone (N-8): an approved request of the
/// right purpose, or one of the account's recovery codes. Both are used up.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Authorisation {
    /// An approved request from `POST /v1/accounts/{user}/approvals`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub approval: Option<Cid>,
    /// One of the account's recovery codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_code: Option<String>,
}

/// What an approval on the account's phone is for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Pairing another phone with the account.
    Pair,
    /// Issuing a new set of recovery codes (the old set stops working).
    RecoveryCodes,
}

impl Purpose {
    /// The action the phones are asked to approve (shown verbatim, PROTOCOL.md §4.1).
    pub fn action(self, account: &AccountName) -> String {
        match self {
            Purpose::Pair => format!("Pair a new phone with {account}"),
            Purpose::RecoveryCodes => {
                format!("Issue new recovery codes for {account} (the old ones stop working)")
            }
        }
    }
}

/// `POST /v1/accounts/{user}/approvals`: ask the account's phones to approve a change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalForChange {
    pub purpose: Purpose,
}

fn default_pairing_ttl() -> u64 {
    DEFAULT_PAIRING_TTL_SECS
}

impl PairingRequest {
    /// How long the QR code is valid, 1 to [`MAX_PAIRING_TTL_SECS`] seconds.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs.clamp(1, MAX_PAIRING_TTL_SECS))
    }

    /// What approves this pairing (its `approval` and `recovery_code`).
    pub fn authorisation(&self) -> Authorisation {
        Authorisation {
            approval: self.approval,
            recovery_code: self.recovery_code.clone(),
        }
    }
}

/// `?wait=N` on `GET /v1/requests/{id}`: hold the poll up to N seconds (at most
/// [`MAX_WAIT_SECS`]) for the outcome.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    utoipa::IntoParams,
)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// Seconds to hold the poll for an outcome (0 answers at once; cut to 25).
    #[serde(default)]
    pub wait: u64,
}

impl WaitQuery {
    /// The wait asked for, cut to [`MAX_WAIT_SECS`].
    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.wait.min(MAX_WAIT_SECS))
    }
}

/// Which of an account's codes a user typed (each kind has its own attempt limit).
pub use approvd_client::home::CodeKind;

// ---- answers ----

/// `201` to `POST /v1/requests`: the request went out to the phones.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestCreated {
    /// Poll `GET /v1/requests/{request_id}` for the outcome.
    #[schema(value_type = String)]
    pub request_id: Cid,
    /// The number to show on the login page (number matching), if any.
    pub number: Option<String>,
    /// When the phones stop being able to answer (unix seconds).
    pub expires: u64,
    /// What the relay did for each phone.
    pub deliveries: Vec<TargetDelivery>,
    /// Set when the relay could not be reached (or failed): no phone was asked, and the
    /// request is open for a code only (`POST /v1/requests/{request_id}/code`) until it
    /// expires. Show the code form at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_error: Option<String>,
}

impl RequestCreated {
    /// The phones the request reached one way or another (push or inbox).
    pub fn reached(&self) -> impl Iterator<Item = &DeviceId> {
        self.deliveries
            .iter()
            .filter(|delivery| delivery.delivery != Delivery::RateLimited)
            .map(|delivery| &delivery.device_id)
    }
}

/// The phone that decided a request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Decider {
    pub device_id: DeviceId,
    /// Its name when paired (`null` if it was removed since).
    pub device_name: Option<String>,
}

/// `200` to `GET /v1/requests/{id}`: where the request stands, verified end to end.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RequestStatus {
    /// No answer yet: poll again.
    Pending,
    /// The phone approved (with the right number): sign the user in.
    Approved(Decider),
    Denied(Decider),
    /// The phone approved with another number than the login page showed: refuse, and count
    /// it as a failed sign-in.
    WrongNumber(Decider),
    /// The user says this sign-in is not theirs: refuse, and alert.
    Fraud(Decider),
    Expired,
    Cancelled,
    /// The relay served an answer that fails the agent's checks: refuse; the request stays
    /// pending and a later poll may still get a genuine answer.
    Invalid {
        reason: String,
    },
}

impl RequestStatus {
    /// Whether this is final (everything but `pending` and `invalid`).
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Pending | Self::Invalid { .. })
    }

    /// The `status` name as on the wire (`wrong_number`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved(_) => "approved",
            Self::Denied(_) => "denied",
            Self::WrongNumber(_) => "wrong_number",
            Self::Fraud(_) => "fraud",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::Invalid { .. } => "invalid",
        }
    }
}

/// `201` to `POST /v1/pairings`: show `qr_svg` (or `uri` as a QR code) to the user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PairingStarted {
    #[schema(value_type = String)]
    pub pairing_id: PairingId,
    /// The `approvd://pair?…` URI the phone scans.
    pub uri: String,
    /// The URI as an SVG QR code, at least 256 px.
    pub qr_svg: String,
    /// When the QR code stops working (unix seconds).
    pub expires_at: u64,
}

/// Where a pairing stands (`status`), with what is known at that step.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PairingState {
    /// The QR code is shown; no phone claimed it yet.
    Waiting,
    /// A phone claimed it and the agent committed to that claim: ask the user for the 6-digit
    /// code the phone shows and confirm it.
    Claimed {
        device_name: String,
        platform: String,
    },
    Paired {
        device_id: DeviceId,
        device_name: String,
    },
    Expired,
    /// The pairing cannot complete (a claim failed the checks, the code typed was wrong, or
    /// the user rejected the phone): start a new one.
    Failed {
        reason: String,
    },
}

/// `200` to `GET /v1/pairings/{id}` and `POST /v1/pairings/{id}/reject`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PairingStatus {
    pub user: AccountName,
    #[serde(flatten)]
    pub state: PairingState,
}

/// `200` to `POST /v1/pairings/{id}/confirm`: the phone is paired (`status` is `paired`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PairingConfirmed {
    #[serde(flatten)]
    pub pairing: PairingStatus,
    /// For an account's first phone: its recovery codes, shown this once.
    pub recovery_codes: Option<Vec<String>>,
}

/// One of an account's phones.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Device {
    pub device_id: DeviceId,
    pub name: String,
    pub platform: String,
    /// The push provider said its token is dead: it is asked through its inbox only.
    pub push_gone: bool,
    /// The phone muted this NAS until then (unix seconds).
    pub muted_until: Option<u64>,
}

/// `200` to `GET /v1/accounts/{user}/devices`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Devices {
    pub devices: Vec<Device>,
}

/// An account's approval policy: `GET` and `PUT /v1/accounts/{user}/policy` (admin).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPolicy {
    /// Approvals count only when the phone says the user unlocked its approval key with
    /// biometrics or a passcode (`user_verified`); other approvals are refused as invalid
    /// and the request stays pending. Judged when the answer arrives, so it applies to
    /// requests already pending too.
    pub require_user_verification: bool,
}

/// `201` to `POST /v1/accounts/{user}/recovery-codes`: shown once; the old set stops working.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// `200` to `POST /v1/requests/{id}/code`. An accepted code ends the request (no phone's
/// answer counts any more; its status reads `cancelled`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CodeResult {
    /// The code is right; an offline code names the phone whose code it is.
    Accepted { device_id: Option<DeviceId> },
    /// Wrong, too old, or used already; wrong codes in a row so far.
    Rejected { failures: u32 },
    /// Too many wrong codes: no code, right or wrong, is checked before `locked_until`.
    LockedOut { locked_until: u64 },
}

// ---- problems ----

/// Every problem `type` the agent answers with (after
/// [`approvd_proto::wire::PROBLEM_TYPE_PREFIX`]), so a caller matches a variant, not a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemType {
    /// 400: the body is not JSON of the route's type.
    InvalidBody,
    /// 400: a field, path segment or query parameter is out of bounds.
    InvalidField,
    /// 400: the code typed is not the one the phone shows; the pairing has failed.
    WrongCode,
    /// 401: a TCP caller without the bearer token.
    Unauthenticated,
    /// 403: the caller's capability (login or admin) does not include this route, or its
    /// uid may not use this socket.
    NotAllowed,
    /// 403: the account has a phone, so this change must be approved on it (or with a
    /// recovery code) first.
    ApprovalRequired,
    /// 404: no such request, pairing or device.
    NotFound,
    /// 404: the account has no paired phone (to ask).
    NoDevices,
    /// 404: no such endpoint.
    NoRoute,
    /// 409: the account has as many phones as it may.
    TooManyPhones,
    /// 409: the resource is not in a state that allows this.
    Conflict,
    /// 413: the body is larger than [`MAX_BODY`].
    BodyTooLarge,
    /// 429: the relay refuses more requests to these phones for now (push bombing defence).
    RateLimited,
    /// 429: the account has [`MAX_PENDING_PER_ACCOUNT`] requests pending already.
    TooManyPending,
    /// 429: the account refused a recent sign-in (fraud report, wrong numbers) and cools
    /// down: its phones are not asked before `Retry-After` seconds.
    AccountCoolingDown,
    /// 500: the agent's own state cannot be read or written.
    State,
    /// 502: the relay cannot be reached or refused the call.
    Relay,
    /// 503: the agent is shutting down; ask again (`Retry-After`).
    Unavailable,
    /// 503: another process holds the NAS state's lock; nothing was changed, ask again.
    StateBusy,
}

impl ProblemType {
    /// Every problem type, for tables and tests.
    pub const ALL: [ProblemType; 19] = [
        Self::InvalidBody,
        Self::InvalidField,
        Self::WrongCode,
        Self::Unauthenticated,
        Self::NotAllowed,
        Self::ApprovalRequired,
        Self::NotFound,
        Self::NoDevices,
        Self::NoRoute,
        Self::TooManyPhones,
        Self::Conflict,
        Self::BodyTooLarge,
        Self::RateLimited,
        Self::TooManyPending,
        Self::AccountCoolingDown,
        Self::State,
        Self::Relay,
        Self::Unavailable,
        Self::StateBusy,
    ];

    /// The one table: the stable name after the prefix, the HTTP status, the title, and the
    /// `Retry-After` seconds that go with each type.
    pub fn describe(self) -> (&'static str, u16, &'static str, Option<u64>) {
        match self {
            Self::InvalidBody => ("invalid-body", 400, "Malformed request body", None),
            Self::InvalidField => ("invalid-field", 400, "Invalid field", None),
            Self::WrongCode => ("wrong-code", 400, "Wrong code", None),
            Self::Unauthenticated => ("unauthenticated", 401, "Token required", None),
            Self::NotAllowed => ("not-allowed", 403, "Not allowed", None),
            Self::ApprovalRequired => ("approval-required", 403, "Approval required", None),
            Self::NotFound => ("not-found", 404, "Not found", None),
            Self::NoDevices => ("no-devices", 404, "No paired phone", None),
            Self::NoRoute => ("no-route", 404, "No such endpoint", None),
            Self::TooManyPhones => ("too-many-phones", 409, "Too many phones", None),
            Self::Conflict => ("conflict", 409, "Conflict", None),
            Self::BodyTooLarge => ("body-too-large", 413, "Body too large", None),
            Self::RateLimited => ("rate-limited", 429, "Rate limited", Some(60)),
            Self::TooManyPending => (
                "too-many-pending",
                429,
                "Too many pending requests",
                Some(30),
            ),
            Self::AccountCoolingDown => (
                "account-cooling-down",
                429,
                "Account cooling down",
                Some(60),
            ),
            Self::State => ("state", 500, "Agent state unavailable", None),
            Self::Relay => ("relay", 502, "Relay unavailable", None),
            Self::Unavailable => ("unavailable", 503, "Shutting down", Some(1)),
            Self::StateBusy => ("state-busy", 503, "Agent state busy", Some(1)),
        }
    }

    pub fn name(self) -> &'static str {
        self.describe().0
    }

    pub fn status(self) -> u16 {
        self.describe().1
    }

    pub fn title(self) -> &'static str {
        self.describe().2
    }

    pub fn retry_after_secs(self) -> Option<u64> {
        self.describe().3
    }

    /// The type a problem document names, if it is one of the agent's.
    pub fn of(problem: &Problem) -> Option<Self> {
        let name = problem
            .type_uri
            .strip_prefix(approvd_proto::wire::PROBLEM_TYPE_PREFIX)?;
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_follow_one_rule() {
        for name in [
            "alice",
            "j.doe-2",
            "user@example.com",
            "DOMAIN\\jane",
            "jürgen",
            "山田",
            "a b",
        ] {
            assert_eq!(AccountName::parse(name).map(|n| n.0), Ok(name.to_owned()));
        }
        let refused = [
            ("", AccountNameError::Empty),
            (" alice", AccountNameError::Padded),
            ("alice\t", AccountNameError::Control),
            ("ali\nce", AccountNameError::Control),
            ("al\u{0}ice", AccountNameError::Control),
            ("../etc", AccountNameError::Separator),
            ("a:b", AccountNameError::Separator),
            ("..", AccountNameError::Dots),
            (".", AccountNameError::Dots),
        ];
        for (name, error) in refused {
            assert_eq!(AccountName::parse(name), Err(error), "{name:?}");
        }
        let long = "é".repeat(33);
        assert!(matches!(
            AccountName::parse(&long),
            Err(AccountNameError::TooLong { max: 64, got: 66 })
        ));
        assert!(AccountName::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn an_account_name_typed_decomposed_is_the_same_account() {
        let composed = AccountName::parse("j\u{00fc}rgen").expect("composed");
        let decomposed = AccountName::parse("ju\u{0308}rgen").expect("decomposed");
        assert_eq!(composed, decomposed);
        let from_json: AccountName = serde_json::from_str("\"ju\\u0308rgen\"").expect("json");
        assert_eq!(from_json, composed);
    }

    #[test]
    fn lifetimes_and_waits_are_clamped() {
        let mut request = ApprovalRequest::sign_in(AccountName::parse("alice").expect("name"));
        for (asked, got) in [(0, 1), (60, 60), (121, 120), (u64::MAX, 120)] {
            request.lifetime_secs = asked;
            assert_eq!(request.lifetime().as_secs(), got);
        }
        let pairing = |ttl_secs| PairingRequest {
            user: AccountName::parse("alice").expect("name"),
            ttl_secs,
            approval: None,
            recovery_code: None,
        };
        assert_eq!(pairing(0).ttl().as_secs(), 1);
        assert_eq!(pairing(10_000).ttl().as_secs(), 600);
        assert_eq!(WaitQuery { wait: 3600 }.duration().as_secs(), MAX_WAIT_SECS);
    }

    #[test]
    fn every_problem_type_has_its_own_name() {
        let names: std::collections::BTreeSet<&str> =
            ProblemType::ALL.iter().map(|kind| kind.name()).collect();
        assert_eq!(names.len(), ProblemType::ALL.len());
        for kind in ProblemType::ALL {
            let problem = Problem {
                type_uri: format!(
                    "{}{}",
                    approvd_proto::wire::PROBLEM_TYPE_PREFIX,
                    kind.name()
                ),
                title: String::new(),
                status: kind.status(),
                detail: String::new(),
                field: None,
                instance: None,
            };
            assert_eq!(ProblemType::of(&problem), Some(kind));
        }
    }
}
