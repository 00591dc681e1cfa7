//! Push forwarding, downstream side: a [`PushSender`] that hands each push (token, topic, kind,
//! cid) to an upstream approvd relay's `POST /v1/push/forward`, signed (RFC 9421) with this
//! relay's own key under the forwarding token bound to it, and reads the classified outcome
//! (PROTOCOL.md §8.6). Owns the token file, read again when it changes (renewal).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use approvd_proto::httpsig::{self, RequestTarget};
use approvd_proto::ids::PublicKey;
use approvd_proto::wire::{
    ForwardPushRequest, ForwardPushResponse, ForwardResult, PushRegistration,
};
use ed25519_dalek::SigningKey;

use super::{PushMessage, PushResult, PushSender};

/// The endpoint's path, which the signature covers: the API path, as a NAS signs its calls
/// (a proxy in front of the upstream that strips a prefix passes this path on).
const FORWARD_PATH: &str = "/v1/push/forward";
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
    #[error("not a JWT (three base64url parts separated by dots)")]
    NotJwt,
}

/// An Ed25519 private key from PEM (PKCS#8, as `openssl genpkey -algorithm ed25519` writes).
pub fn signing_key_from_pem(pem: &[u8]) -> Result<SigningKey, String> {
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
    let text = std::str::from_utf8(pem).map_err(|_| "not PEM text".to_owned())?;
    SigningKey::from_pkcs8_pem(text)
        .map_err(|error| format!("not an Ed25519 private key in PEM (PKCS#8) form: {error}"))
}

/// An Ed25519 public key from PEM (SubjectPublicKeyInfo, as `openssl pkey -pubout` writes).
pub fn public_key_from_pem(pem: &[u8]) -> Result<PublicKey, String> {
    use ed25519_dalek::pkcs8::DecodePublicKey as _;
    let text = std::str::from_utf8(pem).map_err(|_| "not PEM text".to_owned())?;
    let key = ed25519_dalek::VerifyingKey::from_public_key_pem(text)
        .map_err(|error| format!("not an Ed25519 public key in PEM form: {error}"))?;
    PublicKey::from_bytes("key", key.as_bytes()).map_err(|error| error.to_string())
}

/// Where the forwarding token comes from: a file, read again whenever it changes (the operator
/// renews a short-lived token by replacing the file), or the environment (fixed until restart).
#[derive(Debug)]
pub enum TokenSource {
    File {
        path: PathBuf,
        /// The file's version (modification time, length) and the token read from it.
        current: Mutex<(Option<(SystemTime, u64)>, String)>,
    },
    Inline(String),
}

impl TokenSource {
    /// Read the token file now (an unreadable file or a non-JWT is an error, at startup).
    pub fn file(path: PathBuf) -> Result<Self, UpstreamError> {
        let version = crate::clock::file_version(&path);
        let token = read_token(&path)?;
        log_expiry(&token);
        Ok(Self::File {
            path,
            current: Mutex::new((version, token)),
        })
    }

    /// A token given inline.
    pub fn inline(token: &str) -> Result<Self, UpstreamError> {
        let token = token.trim().to_owned();
        if token.split('.').count() != 3 {
            return Err(UpstreamError::NotJwt);
        }
        log_expiry(&token);
        Ok(Self::Inline(token))
    }

    /// The token to send now. A changed file is read again; one that no longer holds a token
    /// keeps the last good one (and says so).
    fn current(&self) -> String {
        match self {
            Self::Inline(token) => token.clone(),
            Self::File { path, current } => {
                let Ok(mut current) = current.lock() else {
                    return String::new();
                };
                let version = crate::clock::file_version(path);
                if version.is_some() && version != current.0 {
                    match read_token(path) {
                        Ok(token) => {
                            tracing::info!(file = %path.display(), "forwarding token: file changed, read again");
                            log_expiry(&token);
                            *current = (version, token);
                        }
                        Err(error) => tracing::warn!(
                            file = %path.display(),
                            %error,
                            "forwarding token: keeping the last token read"
                        ),
                    }
                }
                current.1.clone()
            }
        }
    }
}

fn read_token(path: &std::path::Path) -> Result<String, UpstreamError> {
    let text = std::fs::read(path)
        .map_err(|error| UpstreamError::Client(format!("{}: {error}", path.display())))?;
    let token = String::from_utf8_lossy(&text)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    if token.split('.').count() != 3 {
        return Err(UpstreamError::NotJwt);
    }
    Ok(token)
}

/// Say in the log until when the token is valid, loudly when that is within 7 days (the token
/// is the upstream's to verify; this reads its unverified `exp` only to warn in time).
fn log_expiry(token: &str) {
    use base64::Engine as _;
    let exp = token
        .split('.')
        .nth(1)
        .and_then(|payload| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .ok()
        })
        .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok())
        .and_then(|claims| claims["exp"].as_u64());
    let Some(exp) = exp else {
        tracing::warn!("forwarding token: no readable `exp`");
        return;
    };
    let now = crate::clock::system_now();
    let days_left = exp.saturating_sub(now) / 86_400;
    if exp <= now {
        tracing::error!(exp, "forwarding token: expired; ask the upstream's operator for a new one and replace the file");
    } else if days_left < 7 {
        tracing::warn!(exp, days_left, "forwarding token: expires soon; ask the upstream's operator for a new one and replace the file");
    } else {
        tracing::info!(exp, days_left, "forwarding token: valid");
    }
}

/// Forwards pushes to an upstream relay.
pub struct UpstreamSender {
    http: reqwest::Client,
    /// `<upstream>/v1/push/forward`.
    url: String,
    /// The forwarding token the upstream's operator issued for this relay.
    token: TokenSource,
    /// This relay's key, which the token is bound to and which signs each request.
    key: SigningKey,
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
    /// Forward to the relay at `base_url` under the forwarding `token`, signing with `key`;
    /// `connect_timeout` bounds connecting.
    pub fn new(
        base_url: &str,
        token: TokenSource,
        key: SigningKey,
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
        let url = format!("{base}{FORWARD_PATH}");
        tracing::info!(
            key = %PublicKey::from(&key).jwk_thumbprint(),
            "push forwarding to {base}: signing with this key (its JWK thumbprint is the \
             token's cnf.jkt)"
        );
        Ok(Self {
            http,
            url,
            token,
            key,
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
        let body = serde_json::to_vec(&request)
            .map_err(|error| failed(format!("upstream relay: {error}"), false))?;
        let signed = httpsig::sign_request(
            &self.key,
            &RequestTarget {
                method: "POST",
                path: FORWARD_PATH,
                query: "",
            },
            Some(&body),
            now,
            &httpsig::new_nonce(),
        );
        let mut post = self
            .http
            .post(&self.url)
            .header("authorization", format!("Bearer {}", self.token.current()))
            .header("content-type", "application/json")
            .header("signature-input", signed.signature_input)
            .header("signature", signed.signature);
        if let Some(digest) = signed.content_digest {
            post = post.header("content-digest", digest);
        }
        let mut response = post
            .timeout(wait)
            .body(body)
            .send()
            .await
            .map_err(|error| {
                failed(
                    format!("upstream relay: {}", super::describe_http_error(&error)),
                    false,
                )
            })?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| {
            failed(
                format!("upstream relay: {}", super::describe_http_error(&error)),
                false,
            )
        })? {
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
