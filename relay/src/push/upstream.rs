//! Push forwarding, downstream side: a [`PushSender`] that hands each push (token, topic, kind,
//! cid) to an upstream approvd relay's `POST /v1/push/forward`, which pushes it with the app
//! publisher's credentials and answers the classified outcome (PROTOCOL.md §8.6).

use std::time::Duration;

use approvd_proto::wire::{
    ForwardPushRequest, ForwardPushResponse, ForwardResult, PushRegistration,
};

use super::{PushMessage, PushResult, PushSender};

/// Longest answer read from the upstream (a result and a short reason).
const MAX_ANSWER: usize = 16 * 1024;
/// Longest one forwarded push may take, however far away the challenge's expiry is.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Why the upstream sender cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("`{0}` is not an http(s) URL")]
    NotUrl(String),
    #[error(
        "`{0}`: use https:// (the forwarding token and push tokens would cross the network in \
         clear); plain http:// only to a loopback address"
    )]
    Insecure(String),
    #[error("HTTP client: {0}")]
    Client(String),
}

/// Forwards pushes to an upstream relay.
pub struct UpstreamSender {
    http: reqwest::Client,
    /// `<upstream>/v1/push/forward`.
    url: String,
    /// `Bearer <JWT>` the upstream's operator issued for this relay.
    authorization: String,
}

impl std::fmt::Debug for UpstreamSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSender")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// `https://…`, or `http://` to a loopback host; the URL without its trailing slash.
pub fn check_upstream_url(url: &str) -> Result<String, UpstreamError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| UpstreamError::NotUrl(url.to_owned()))?;
    let host = match parsed.host_str() {
        Some(host) if !host.is_empty() => host,
        _ => return Err(UpstreamError::NotUrl(url.to_owned())),
    };
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err(UpstreamError::Insecure(url.to_owned())),
        _ => return Err(UpstreamError::NotUrl(url.to_owned())),
    }
    Ok(url.trim_end_matches('/').to_owned())
}

impl UpstreamSender {
    /// Forward to the relay at `base_url` with the forwarding `token` (a JWT); `connect_timeout`
    /// bounds connecting.
    pub fn new(
        base_url: &str,
        token: &str,
        connect_timeout: Duration,
    ) -> Result<Self, UpstreamError> {
        let base = check_upstream_url(base_url)?;
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .user_agent(concat!("approvd/", env!("CARGO_PKG_VERSION")))
            // Never follow a redirect (L3): it could lead the token and the push tokens to
            // plain http or to another host. A redirect is an answer the operator must fix.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| UpstreamError::Client(error.to_string()))?;
        Ok(Self {
            http,
            url: format!("{base}/v1/push/forward"),
            authorization: format!("Bearer {}", token.trim()),
        })
    }

    async fn forward(
        &self,
        registration: &PushRegistration,
        message: &PushMessage,
    ) -> Result<PushResult, PushResult> {
        let now = crate::clock::system_now();
        let wait = Duration::from_secs(message.expires.saturating_sub(now))
            .clamp(Duration::from_secs(1), MAX_WAIT);
        let request = ForwardPushRequest {
            push: registration.clone(),
            cid: message.cid,
            expires: message.expires,
            kind: message.kind,
        };
        let failed = |reason: String, alarm: bool| PushResult::Failed { reason, alarm };
        let mut response = self
            .http
            .post(&self.url)
            .header("authorization", &self.authorization)
            .timeout(wait)
            .json(&request)
            .send()
            .await
            .map_err(|error| failed(format!("upstream relay: {}", without_url(&error)), false))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| failed(format!("upstream relay: {}", without_url(&error)), false))?
        {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(failed("upstream relay: answer too long".to_owned(), false));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let detail = serde_json::from_slice::<approvd_proto::wire::Problem>(&body)
                .map(|problem| problem.detail)
                .unwrap_or_default();
            // Refused credentials, a disabled endpoint or a malformed request will not heal by
            // themselves: an operator must act.
            let alarm = matches!(status.as_u16(), 400 | 401 | 403 | 404 | 405 | 413);
            if status.is_redirection() {
                return Err(failed(
                    format!(
                        "upstream relay answered {status} (a redirect, never followed): set \
                         --push-upstream to the relay's own https:// URL"
                    ),
                    true,
                ));
            }
            return Err(failed(
                format!("upstream relay answered {status}: {detail}"),
                alarm,
            ));
        }
        let answer: ForwardPushResponse = serde_json::from_slice(&body).map_err(|error| {
            failed(format!("upstream relay: unreadable answer: {error}"), false)
        })?;
        let upstream = |reason: Option<String>| format!("upstream: {}", reason.unwrap_or_default());
        Ok(match answer.result {
            ForwardResult::Delivered => PushResult::Delivered,
            ForwardResult::Logged => PushResult::Logged,
            ForwardResult::Gone => PushResult::Gone,
            ForwardResult::Failed => failed(upstream(answer.reason), false),
            ForwardResult::FailedConfig => failed(upstream(answer.reason), true),
        })
    }
}

/// A client error's text without its URL (which is not secret, but long and repeated).
fn without_url(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

#[async_trait::async_trait]
impl PushSender for UpstreamSender {
    fn name(&self) -> &'static str {
        "upstream"
    }

    async fn send(&self, registration: &PushRegistration, message: &PushMessage) -> PushResult {
        match self.forward(registration, message).await {
            Ok(result) | Err(result) => result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        assert_eq!(
            check_upstream_url("https://push.example.com/").expect("https"),
            "https://push.example.com"
        );
        for loopback in [
            "http://127.0.0.1:8080",
            "http://[::1]:80",
            "http://localhost:9",
        ] {
            check_upstream_url(loopback).expect(loopback);
        }
        for insecure in ["http://push.example.com", "http://10.0.0.5:8080"] {
            assert!(matches!(
                check_upstream_url(insecure),
                Err(UpstreamError::Insecure(_))
            ));
        }
        for wrong in ["push.example.com", "ftp://push.example.com", "https://"] {
            assert!(matches!(
                check_upstream_url(wrong),
                Err(UpstreamError::NotUrl(_))
            ));
        }
    }
}
