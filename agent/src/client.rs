//! The one Rust client of the agent's local API, over its Unix socket or loopback TCP with the
//! bearer token: one method per route, taking and returning the `api` types, problems as a
//! typed [`ClientError`]. Used by `approvd pam`, the sign-in page, the tests and the fuzzers.

use std::path::PathBuf;
use std::time::Duration;

use approvd_proto::{Cid, DeviceId, PairingId};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::api::{
    AccountName, AccountPolicy, ApprovalForChange, ApprovalRequest, Authorisation, CodeRequest,
    CodeResult, Devices, PairingConfirmed, PairingRequest, PairingStarted, PairingStatus, Problem,
    ProblemType, Purpose, RecoveryCodes, RequestCreated, RequestStatus, MAX_WAIT_SECS,
};

/// How a caller reaches the agent.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// One of the agent's Unix sockets: `<home>/login.sock` (login: sign-in requests and
    /// codes) or `<home>/agent.sock` (admin: every route).
    Socket(PathBuf),
    /// `approvd agent --listen`: a loopback base URL and the token of `--token-file` (login)
    /// or `--admin-token-file` (admin).
    Tcp { url: String, token: String },
}

/// Why a call gave no answer of the API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection to the agent, or no answer in time.
    #[error("the agent cannot be reached: {0}")]
    Unreachable(String),
    /// The agent refused with a problem document (`kind` is `None` for a type this client
    /// does not know, from a newer agent).
    #[error("{}", .problem.detail)]
    Problem {
        kind: Option<ProblemType>,
        problem: Box<Problem>,
    },
    /// An answer that is not what the API says.
    #[error("the agent's answer does not fit the API: {0}")]
    Unexpected(String),
}

impl ClientError {
    /// The problem type, if the agent refused with one.
    pub fn kind(&self) -> Option<ProblemType> {
        match self {
            ClientError::Problem { kind, .. } => *kind,
            ClientError::Unreachable(_) | ClientError::Unexpected(_) => None,
        }
    }

    /// The phones cannot be asked right now: the agent is down or stopping, or it cannot reach
    /// the relay — where a login system falls back to codes.
    pub fn is_unreachable(&self) -> bool {
        match self {
            ClientError::Unreachable(_) => true,
            ClientError::Problem { problem, .. } => matches!(problem.status, 502..=504),
            ClientError::Unexpected(_) => false,
        }
    }
}

/// What to percent-encode in a path segment: everything but unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// A client of one agent.
#[derive(Debug, Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    base: String,
    /// Sent as `Authorization: Bearer` to a TCP endpoint.
    token: Option<String>,
}

impl AgentClient {
    /// A client whose calls give up after `timeout` (keep it above [`MAX_WAIT_SECS`] for
    /// held polls; [`AgentClient::new`] does).
    pub fn with_timeout(endpoint: Endpoint, timeout: Duration) -> Result<Self, ClientError> {
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(3));
        let (builder, base, token) = match endpoint {
            Endpoint::Socket(path) => (builder.unix_socket(path), "http://agent".to_owned(), None),
            Endpoint::Tcp { url, token } => {
                (builder, url.trim_end_matches('/').to_owned(), Some(token))
            }
        };
        let http = builder
            .build()
            .map_err(|error| ClientError::Unexpected(error.to_string()))?;
        Ok(Self { http, base, token })
    }

    /// A client whose calls give up 15 s after the longest held poll.
    pub fn new(endpoint: Endpoint) -> Result<Self, ClientError> {
        Self::with_timeout(endpoint, Duration::from_secs(MAX_WAIT_SECS + 15))
    }

    async fn call<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Option<T>, ClientError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| ClientError::Unreachable(error.to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| ClientError::Unreachable(error.to_string()))?;
        if status.is_success() {
            if status == reqwest::StatusCode::NO_CONTENT {
                return Ok(None);
            }
            return serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|error| ClientError::Unexpected(format!("{path}: {error}")));
        }
        let problem: Problem = serde_json::from_slice(&bytes).map_err(|_| {
            ClientError::Unexpected(format!("{path}: {status} without a problem document"))
        })?;
        Err(ClientError::Problem {
            kind: ProblemType::of(&problem),
            problem: Box::new(problem),
        })
    }

    async fn answer<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        self.call(method, path, body)
            .await?
            .ok_or_else(|| ClientError::Unexpected(format!("{path}: an empty answer")))
    }

    /// `POST /v1/requests`: ask the account's phones.
    pub async fn create_request(
        &self,
        request: &ApprovalRequest,
    ) -> Result<RequestCreated, ClientError> {
        self.answer(reqwest::Method::POST, "/v1/requests", Some(request))
            .await
    }

    /// `GET /v1/requests/{id}?wait=N`: the verified outcome, waiting up to `wait` seconds.
    pub async fn request_status(&self, id: &Cid, wait: u64) -> Result<RequestStatus, ClientError> {
        let path = format!("/v1/requests/{id}?wait={}", wait.min(MAX_WAIT_SECS));
        self.answer::<(), _>(reqwest::Method::GET, &path, None)
            .await
    }

    /// `DELETE /v1/requests/{id}`.
    pub async fn cancel_request(&self, id: &Cid) -> Result<(), ClientError> {
        let path = format!("/v1/requests/{id}");
        self.call::<(), serde_json::Value>(reqwest::Method::DELETE, &path, None)
            .await
            .map(drop)
    }

    /// `GET /v1/accounts/{user}/devices`.
    pub async fn devices(&self, user: &AccountName) -> Result<Devices, ClientError> {
        let path = format!("/v1/accounts/{}/devices", segment(user.as_str()));
        self.answer::<(), _>(reqwest::Method::GET, &path, None)
            .await
    }

    /// `GET /v1/accounts/{user}/policy`.
    pub async fn policy(&self, user: &AccountName) -> Result<AccountPolicy, ClientError> {
        let path = format!("/v1/accounts/{}/policy", segment(user.as_str()));
        self.answer::<(), _>(reqwest::Method::GET, &path, None)
            .await
    }

    /// `PUT /v1/accounts/{user}/policy`.
    pub async fn set_policy(
        &self,
        user: &AccountName,
        policy: &AccountPolicy,
    ) -> Result<AccountPolicy, ClientError> {
        let path = format!("/v1/accounts/{}/policy", segment(user.as_str()));
        self.answer(reqwest::Method::PUT, &path, Some(policy)).await
    }

    /// `DELETE /v1/accounts/{user}/devices/{device_id}`.
    pub async fn remove_device(
        &self,
        user: &AccountName,
        device_id: &DeviceId,
    ) -> Result<(), ClientError> {
        let path = format!(
            "/v1/accounts/{}/devices/{device_id}",
            segment(user.as_str())
        );
        self.call::<(), serde_json::Value>(reqwest::Method::DELETE, &path, None)
            .await
            .map(drop)
    }

    /// `POST /v1/accounts/{user}/recovery-codes`, approved by `given` once the account has a
    /// phone.
    pub async fn new_recovery_codes(
        &self,
        user: &AccountName,
        given: &Authorisation,
    ) -> Result<RecoveryCodes, ClientError> {
        let path = format!("/v1/accounts/{}/recovery-codes", segment(user.as_str()));
        self.answer(reqwest::Method::POST, &path, Some(given)).await
    }

    /// `POST /v1/accounts/{user}/approvals`: ask the account's phones to approve `purpose`.
    pub async fn ask_approval(
        &self,
        user: &AccountName,
        purpose: Purpose,
    ) -> Result<RequestCreated, ClientError> {
        let path = format!("/v1/accounts/{}/approvals", segment(user.as_str()));
        self.answer(
            reqwest::Method::POST,
            &path,
            Some(&ApprovalForChange { purpose }),
        )
        .await
    }

    /// `POST /v1/requests/{id}/code`: a code typed instead of answering on the phone
    /// (offline or recovery, told apart by its shape).
    pub async fn check_code(&self, id: &Cid, code: &str) -> Result<CodeResult, ClientError> {
        let path = format!("/v1/requests/{id}/code");
        let body = CodeRequest {
            code: code.to_owned(),
        };
        self.answer(reqwest::Method::POST, &path, Some(&body)).await
    }

    /// `POST /v1/pairings`.
    pub async fn start_pairing(
        &self,
        request: &PairingRequest,
    ) -> Result<PairingStarted, ClientError> {
        self.answer(reqwest::Method::POST, "/v1/pairings", Some(request))
            .await
    }

    /// `GET /v1/pairings/{id}`.
    pub async fn pairing_status(&self, id: &PairingId) -> Result<PairingStatus, ClientError> {
        let path = format!("/v1/pairings/{id}");
        self.answer::<(), _>(reqwest::Method::GET, &path, None)
            .await
    }

    /// `POST /v1/pairings/{id}/confirm` with the code the phone shows.
    pub async fn confirm_pairing(
        &self,
        id: &PairingId,
        code: &str,
    ) -> Result<PairingConfirmed, ClientError> {
        let path = format!("/v1/pairings/{id}/confirm");
        let body = CodeRequest {
            code: code.to_owned(),
        };
        self.answer(reqwest::Method::POST, &path, Some(&body)).await
    }

    /// `POST /v1/pairings/{id}/reject`.
    pub async fn reject_pairing(&self, id: &PairingId) -> Result<PairingStatus, ClientError> {
        let path = format!("/v1/pairings/{id}/reject");
        self.answer::<(), _>(reqwest::Method::POST, &path, None)
            .await
    }

    /// `GET /openapi.json`.
    pub async fn openapi(&self) -> Result<serde_json::Value, ClientError> {
        self.answer::<(), _>(reqwest::Method::GET, "/openapi.json", None)
            .await
    }
}
