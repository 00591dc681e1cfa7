//! [`FcmSender`]: Firebase Cloud Messaging HTTP v1 on reqwest. Owns the service-account OAuth
//! flow (RS256 JWT assertion → access token, cached until 5 minutes before expiry, one refresh at
//! a time, refreshed again on a 401), the data-only message (`{v, cid}`, priority HIGH, TTL = time
//! left, collapse key = cid) and the classification of FCM's answers. Base URL and token URI are
//! configurable so a local mock can stand in; plain http only when explicitly allowed.

use std::time::{Duration, Instant};

use approvd_proto::wire::PushRegistration;
use serde::Deserialize;

use super::retry::{retry_after, Attempt, RetryPolicy};
use super::{PushKind, PushMessage, PushResult, PushSender};

/// The OAuth scope FCM sends need.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// FCM's production base URL.
pub const DEFAULT_BASE_URL: &str = "https://fcm.googleapis.com";

/// Why the FCM sender could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum FcmError {
    #[error("the service account JSON is not usable: {0}")]
    ServiceAccount(String),
    #[error("`{0}` is not https (allow plain http only for local tests)")]
    Insecure(String),
    #[error("HTTP client: {0}")]
    Client(String),
}

/// The fields of a Google service-account key file that matter here.
#[derive(Clone, Deserialize)]
pub struct ServiceAccount {
    pub project_id: String,
    pub client_email: String,
    pub private_key: String,
    pub token_uri: String,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("project_id", &self.project_id)
            .field("client_email", &self.client_email)
            .field("private_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

/// A cached access token.
#[derive(Debug)]
struct CachedToken {
    value: String,
    refresh_at: Instant,
}

/// Sends pushes through FCM HTTP v1.
pub struct FcmSender {
    http: reqwest::Client,
    account: ServiceAccount,
    /// The service account's RSA key (secret).
    signing_key: jsonwebtoken::EncodingKey,
    send_url: String,
    /// The cached OAuth token; an async mutex so exactly one refresh runs at a time.
    token: tokio::sync::Mutex<Option<CachedToken>>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for FcmSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmSender")
            .field("account", &self.account)
            .field("send_url", &self.send_url)
            .finish_non_exhaustive()
    }
}

fn check_url(url: &str, allow_http: bool) -> Result<(), FcmError> {
    if url.starts_with("https://") || (allow_http && url.starts_with("http://")) {
        Ok(())
    } else {
        Err(FcmError::Insecure(url.to_owned()))
    }
}

impl FcmSender {
    /// From service-account JSON. `base_url` defaults to FCM's; the token URI comes from the
    /// JSON. `timeout` bounds every HTTP request.
    pub fn new(
        service_account_json: &str,
        base_url: &str,
        allow_http: bool,
        timeout: Duration,
        retry: RetryPolicy,
    ) -> Result<Self, FcmError> {
        let account: ServiceAccount = serde_json::from_str(service_account_json)
            .map_err(|error| FcmError::ServiceAccount(error.to_string()))?;
        let signing_key =
            jsonwebtoken::EncodingKey::from_rsa_pem(account.private_key.as_bytes())
                .map_err(|error| FcmError::ServiceAccount(format!("private_key: {error}")))?;
        check_url(base_url, allow_http)?;
        check_url(&account.token_uri, allow_http)?;
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout);
        if base_url.starts_with("http://") {
            // A local stand-in over plain http speaks HTTP/2 without TLS (prior knowledge), so
            // pushes are multiplexed as they are to FCM itself, where ALPN picks HTTP/2.
            builder = builder.http2_prior_knowledge();
        }
        let http = builder
            .build()
            .map_err(|error| FcmError::Client(error.to_string()))?;
        Ok(Self {
            send_url: format!(
                "{}/v1/projects/{}/messages:send",
                base_url.trim_end_matches('/'),
                account.project_id
            ),
            http,
            account,
            signing_key,
            token: tokio::sync::Mutex::new(None),
            retry,
        })
    }

    /// The JSON body FCM receives: data-only, nothing but `{v, cid}`.
    pub fn message_body(
        registration: &PushRegistration,
        message: &PushMessage,
        now: u64,
    ) -> serde_json::Value {
        let cid = message.cid.to_string();
        // FCM data values are strings.
        let (data, priority) = match message.kind {
            PushKind::Alert => (serde_json::json!({ "v": "1", "cid": cid }), "HIGH"),
            PushKind::Dismiss => (
                serde_json::json!({ "v": "1", "cid": cid, "dismiss": "1" }),
                "NORMAL",
            ),
        };
        serde_json::json!({
            "message": {
                "token": registration.token,
                "data": data,
                "android": {
                    "priority": priority,
                    "ttl": format!("{}s", message.expires.saturating_sub(now)),
                    "collapse_key": cid,
                },
            }
        })
    }

    /// A valid access token, fetching one if the cache is empty or due.
    async fn access_token(&self) -> Result<String, Attempt> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached
            .as_ref()
            .filter(|token| token.refresh_at > Instant::now())
        {
            return Ok(token.value.clone());
        }
        let now = crate::clock::system_now();
        let claims = serde_json::json!({
            "iss": self.account.client_email,
            "scope": SCOPE,
            "aud": self.account.token_uri,
            "iat": now,
            "exp": now + 3600,
        });
        let assertion = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &self.signing_key,
        )
        .map_err(|error| failed(format!("cannot sign the OAuth assertion: {error}"), true))?;
        let response = self
            .http
            .post(&self.account.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|error| retry(None, format!("token request: {error}")))?;
        let status = response.status().as_u16();
        if status >= 500 || status == 429 {
            return Err(retry(
                retry_after(&response),
                format!("token endpoint answered {status}"),
            ));
        }
        if status != 200 {
            return Err(failed(
                format!("token endpoint refused the service account ({status})"),
                true,
            ));
        }
        let answer: TokenAnswer = response
            .json()
            .await
            .map_err(|error| retry(None, format!("token answer: {error}")))?;
        let lifetime = Duration::from_secs(answer.expires_in.saturating_sub(300));
        *cached = Some(CachedToken {
            value: answer.access_token.clone(),
            refresh_at: Instant::now() + lifetime,
        });
        Ok(answer.access_token)
    }

    /// Forget `rejected` (the token FCM just answered 401 to) — only if it is still the cached
    /// one: when several sends meet one revocation, the first to get here fetches a fresh token
    /// and the others must not throw that away.
    async fn invalidate_token(&self, rejected: &str) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|token| token.value == rejected) {
            *cached = None;
        }
    }

    /// One try: a send, and after a first 401 a fresh token and one more send — part of the
    /// same try, so `--push-max-tries 1` still gets the refresh the docs promise. A second 401
    /// is a credentials problem (for iOS devices via FCM it usually means the APNs key in
    /// Firebase is wrong).
    async fn attempt(&self, body: &serde_json::Value) -> Attempt {
        let mut refreshed = false;
        loop {
            let token = match self.access_token().await {
                Ok(token) => token,
                Err(attempt) => return attempt,
            };
            let response = match self
                .http
                .post(&self.send_url)
                .bearer_auth(&token)
                .json(body)
                .send()
                .await
            {
                Ok(response) => response,
                Err(error) => return retry(None, format!("send: {error}")),
            };
            let status = response.status().as_u16();
            let after = retry_after(&response);
            let error_body: serde_json::Value = if status == 200 {
                serde_json::Value::Null
            } else {
                response.json().await.unwrap_or(serde_json::Value::Null)
            };
            if status != 401 {
                return classify(status, after, &error_body);
            }
            self.invalidate_token(&token).await;
            if refreshed {
                return failed("FCM refused the credentials (401) twice".to_owned(), true);
            }
            refreshed = true;
        }
    }
}

/// FCM's answer → what to do (one table; see ARCHITECTURE.md).
pub fn classify(status: u16, after: Option<Duration>, error: &serde_json::Value) -> Attempt {
    let error_code = error["error"]["details"]
        .as_array()
        .and_then(|details| {
            details
                .iter()
                .find_map(|detail| detail["errorCode"].as_str())
        })
        .unwrap_or("");
    let bad_field = error["error"]["details"]
        .as_array()
        .and_then(|details| {
            details.iter().find_map(|detail| {
                detail["fieldViolations"]
                    .as_array()
                    .and_then(|violations| violations.iter().find_map(|v| v["field"].as_str()))
            })
        })
        .unwrap_or("");
    match status {
        200 => Attempt::Done(PushResult::Delivered),
        404 => Attempt::Done(PushResult::Gone),
        400 if error_code == "UNREGISTERED" || bad_field == "message.token" => {
            Attempt::Done(PushResult::Gone)
        }
        400 => Attempt::Done(PushResult::Failed {
            reason: format!(
                "FCM refused the message ({error_code}): {}",
                error["error"]["message"].as_str().unwrap_or("")
            ),
            alarm: false,
        }),
        403 if error_code == "SENDER_ID_MISMATCH" => Attempt::Done(PushResult::Gone),
        403 => Attempt::Done(PushResult::Failed {
            reason: format!(
                "FCM denied the send ({error_code}): check the service account's permissions"
            ),
            alarm: true,
        }),
        429 | 500 | 502 | 503 | 504 => retry(after, format!("FCM answered {status}")),
        other => Attempt::Done(PushResult::Failed {
            reason: format!("FCM answered {other}"),
            alarm: false,
        }),
    }
}

fn retry(after: Option<Duration>, reason: String) -> Attempt {
    Attempt::Retry { after, reason }
}

fn failed(reason: String, alarm: bool) -> Attempt {
    Attempt::Done(PushResult::Failed { reason, alarm })
}

#[async_trait::async_trait]
impl PushSender for FcmSender {
    fn name(&self) -> &'static str {
        "fcm"
    }

    async fn send(&self, registration: &PushRegistration, message: &PushMessage) -> PushResult {
        let now = crate::clock::system_now();
        let body = Self::message_body(registration, message, now);
        self.retry
            .run(message.expires, || self.attempt(&body))
            .await
    }
}
