//! The client of the NAS agent's local approval API (`approvd agent`): the only way this web
//! page talks to approvd. Over the agent's Unix socket, or loopback TCP with a bearer token.

use std::path::PathBuf;
use std::time::Duration;

/// How the page reaches the agent.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Socket(PathBuf),
    Tcp { url: String, token: String },
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The account has no paired phone (or does not exist: the agent cannot tell).
    #[error("the account has no paired phone")]
    NoDevices,
    /// The agent is down, or it cannot reach the relay.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The relay's per-phone budget is spent (push-bombing defence).
    #[error("too many requests to the account's phones")]
    RateLimited,
    #[error("the agent refused the call: {0}")]
    Refused(String),
}

/// A request the agent sent to an account's phones.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Created {
    pub request_id: String,
    pub number: Option<String>,
    pub expires: u64,
    pub deliveries: Vec<Delivery>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Delivery {
    pub device_id: String,
}

/// The agent's verified outcome of a request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Approved,
    Denied,
    WrongNumber,
    Fraud,
    Expired,
    Cancelled,
    Invalid,
}

#[derive(Debug, serde::Deserialize)]
struct Outcome {
    status: Status,
}

/// What the agent says of an offline or recovery code.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CodeResult {
    Accepted,
    Rejected,
    LockedOut { locked_until: u64 },
}

#[derive(Debug, serde::Deserialize)]
struct Device {
    device_id: String,
    name: String,
}

#[derive(Debug, serde::Deserialize)]
struct Devices {
    devices: Vec<Device>,
}

#[derive(Debug, Clone)]
pub struct Agent {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// The longest outcome poll the agent serves, seconds.
pub const MAX_WAIT: u64 = 25;

impl Agent {
    pub fn new(endpoint: Endpoint) -> Result<Self, reqwest::Error> {
        let builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(MAX_WAIT + 10))
            .connect_timeout(Duration::from_secs(5));
        let (builder, base, token) = match endpoint {
            Endpoint::Socket(path) => (builder.unix_socket(path), "http://agent".to_owned(), None),
            Endpoint::Tcp { url, token } => {
                (builder, url.trim_end_matches('/').to_owned(), Some(token))
            }
        };
        Ok(Self {
            http: builder.build()?,
            base,
            token,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, serde_json::Value), AgentError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| AgentError::Unreachable(format!("the agent: {error}")))?;
        let status = response.status().as_u16();
        let json = response.json().await.unwrap_or(serde_json::Value::Null);
        match status {
            200..=299 => Ok((status, json)),
            502..=504 => Err(AgentError::Unreachable(detail(&json))),
            _ => Ok((status, json)),
        }
    }

    /// Ask `user`'s phones; number matching is always on.
    pub async fn create(
        &self,
        user: &str,
        kind: &str,
        client_ip: Option<&str>,
        user_agent: Option<&str>,
        lifetime_secs: u64,
    ) -> Result<Created, AgentError> {
        let body = serde_json::json!({
            "user": user,
            "service": "Web sign-in",
            "kind": kind,
            "client_ip": client_ip,
            "user_agent": user_agent,
            "number_matching": true,
            "lifetime_secs": lifetime_secs,
        });
        match self
            .call(reqwest::Method::POST, "/v1/requests", Some(body))
            .await?
        {
            (201, json) => serde_json::from_value(json)
                .map_err(|error| AgentError::Refused(format!("unexpected answer: {error}"))),
            (404, _) => Err(AgentError::NoDevices),
            (429, _) => Err(AgentError::RateLimited),
            (_, json) => Err(AgentError::Refused(detail(&json))),
        }
    }

    /// The verified outcome, waiting up to `wait` seconds for it.
    pub async fn outcome(&self, request_id: &str, wait: u64) -> Result<Status, AgentError> {
        let path = format!("/v1/requests/{request_id}?wait={}", wait.min(MAX_WAIT));
        match self.call(reqwest::Method::GET, &path, None).await? {
            (200, json) => serde_json::from_value::<Outcome>(json)
                .map(|outcome| outcome.status)
                .map_err(|error| AgentError::Refused(format!("unexpected answer: {error}"))),
            (_, json) => Err(AgentError::Refused(detail(&json))),
        }
    }

    pub async fn cancel(&self, request_id: &str) -> Result<(), AgentError> {
        let path = format!("/v1/requests/{request_id}");
        match self.call(reqwest::Method::DELETE, &path, None).await? {
            (204, _) => Ok(()),
            (_, json) => Err(AgentError::Refused(detail(&json))),
        }
    }

    /// Names of the devices among `device_ids` (for "sent to Alice's iPhone").
    pub async fn device_names(
        &self,
        user: &str,
        device_ids: &[String],
    ) -> Result<Vec<String>, AgentError> {
        let path = format!("/v1/accounts/{}/devices", encode(user));
        match self.call(reqwest::Method::GET, &path, None).await? {
            (200, json) => {
                let devices: Devices = serde_json::from_value(json)
                    .map_err(|error| AgentError::Refused(format!("unexpected answer: {error}")))?;
                Ok(devices
                    .devices
                    .into_iter()
                    .filter(|device| device_ids.contains(&device.device_id))
                    .map(|device| device.name)
                    .collect())
            }
            (_, json) => Err(AgentError::Refused(detail(&json))),
        }
    }

    /// Check an offline code (digits) or a recovery code (anything else).
    pub async fn check_code(&self, user: &str, code: &str) -> Result<CodeResult, AgentError> {
        let code = code.trim();
        let which = if code.chars().all(|c| c.is_ascii_digit() || c == ' ') {
            "offline-code"
        } else {
            "recovery-code"
        };
        let path = format!("/v1/accounts/{}/{which}", encode(user));
        let body = serde_json::json!({ "code": code.replace(' ', "") });
        match self.call(reqwest::Method::POST, &path, Some(body)).await? {
            (200, json) => serde_json::from_value(json)
                .map_err(|error| AgentError::Refused(format!("unexpected answer: {error}"))),
            (_, json) => Err(AgentError::Refused(detail(&json))),
        }
    }
}

fn detail(problem: &serde_json::Value) -> String {
    problem["detail"]
        .as_str()
        .unwrap_or("no detail given")
        .to_owned()
}

/// Percent-encode a path segment (user names are checked to a safe set; this is belt and braces).
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
