//! The signed HTTP transport: builds each request's `Content-Digest`, `Signature-Input` and
//! `Signature` (fresh nonce, `created` = now) and maps the relay's answers: 2xx bodies to types,
//! 204 to `None`, problem+json to [`ClientError::Relay`]. Owns the HTTP client; knows nothing of
//! pairing or challenges.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use approvd_proto::httpsig::{self, RequestTarget};
use approvd_proto::wire::Problem;
use approvd_proto::PublicKey;
use ed25519_dalek::SigningKey;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// What went wrong talking to the relay.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The relay could not be reached or the connection failed.
    #[error("network: {0}")]
    Network(#[from] reqwest::Error),
    /// No TLS root certificates could be loaded for an https relay.
    #[error("cannot set up TLS to the relay ({0}): no root certificates were found; install the `ca-certificates` package")]
    Tls(String),
    /// The relay answered with a problem document.
    #[error("relay answered {status} {}: {}", problem.type_uri, problem.detail)]
    Relay { status: u16, problem: Box<Problem> },
    /// The relay answered something that is not what the protocol says.
    #[error("unexpected answer {status}: {detail}")]
    Unexpected { status: u16, detail: String },
    #[error("invalid relay URL `{0}`")]
    BadUrl(String),
    /// Something the relay handed over failed our own end-to-end checks.
    #[error("verification failed: {0}")]
    Verification(String),
    /// A sign of an attack the user must be told about (e.g. someone else claimed the pairing
    /// QR code first): stop, and do not pair or approve.
    #[error("ALARM: {0}")]
    Alarm(String),
    /// Bad input from the caller of this library.
    #[error("{0}")]
    Protocol(#[from] approvd_proto::Error),
    /// A state file could not be read or written, or is unsafe to use.
    #[error("{path}: {message}")]
    Storage { path: String, message: String },
    /// Another process held the state lock longer than a change takes: nothing was read or
    /// changed; ask again.
    #[error("{path}: the state is locked by another process; nothing was changed, try again")]
    Busy { path: String },
}

impl ClientError {
    /// The problem `type` after `urn:approvd:problem:`, if the relay sent one.
    pub fn problem_name(&self) -> Option<&str> {
        match self {
            ClientError::Relay { problem, .. } => problem
                .type_uri
                .strip_prefix(approvd_proto::wire::PROBLEM_TYPE_PREFIX),
            _ => None,
        }
    }
}

/// A request that is signed and ready to send (and, in tests, to tamper with).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Client-side timeout for this request.
    pub timeout: Duration,
}

/// A client of one relay, signing as one key (a NAS's `N` or a phone's `D_api`).
#[derive(Debug, Clone)]
pub struct RelayClient {
    http: reqwest::Client,
    base: String,
    key: SigningKey,
}

/// The HTTP client for `base_url`. A plain-http relay needs no TLS roots at all (a minimal
/// container without `ca-certificates` must still reach one); an https relay uses the system's
/// roots and, when the system has none, the Mozilla roots bundled in this binary.
fn http_client(base_url: &str) -> Result<reqwest::Client, ClientError> {
    let builder = || {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(50))
            // A relay may drop or delay, never point this client elsewhere: a redirect would
            // carry the signed request (and its body) to any address the relay names.
            .redirect(reqwest::redirect::Policy::none())
    };
    if base_url.starts_with("http://") {
        return Ok(builder().tls_certs_only(Vec::new()).build()?);
    }
    match builder().build() {
        Ok(client) => Ok(client),
        Err(system_roots) => {
            let bundled = webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .filter_map(|der| reqwest::Certificate::from_der(der).ok());
            builder()
                .tls_certs_only(bundled)
                .build()
                .map_err(|_| ClientError::Tls(system_roots.to_string()))
        }
    }
}

/// Current unix time in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

impl RelayClient {
    /// A client for the relay at `base_url` (e.g. `https://relay.example.com`).
    pub fn new(base_url: &str, key: SigningKey) -> Result<Self, ClientError> {
        approvd_proto::pairing::check_relay_url(base_url)
            .map_err(|_| ClientError::BadUrl(base_url.to_owned()))?;
        let http = http_client(base_url)?;
        Ok(Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            key,
        })
    }

    /// The key this client signs with.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from(&self.key)
    }

    /// The relay's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sign a request at time `now`. `query` is without `?`; `body` is JSON bytes.
    pub fn prepare_at(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: Option<Vec<u8>>,
        now: u64,
    ) -> Prepared {
        let target = RequestTarget {
            method,
            path,
            query,
        };
        let signed = httpsig::sign_request(
            &self.key,
            &target,
            body.as_deref(),
            now,
            &httpsig::new_nonce(),
        );
        let mut headers = vec![
            ("Signature-Input".to_owned(), signed.signature_input),
            ("Signature".to_owned(), signed.signature),
        ];
        if let Some(digest) = signed.content_digest {
            headers.push(("Content-Digest".to_owned(), digest));
            headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
        }
        let wait = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("wait="))
            .and_then(|wait| wait.parse::<u64>().ok())
            .unwrap_or(0);
        Prepared {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
            body: body.unwrap_or_default(),
            timeout: Duration::from_secs(wait + 15),
        }
    }

    /// Sign a request now.
    pub fn prepare(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: Option<Vec<u8>>,
    ) -> Prepared {
        self.prepare_at(method, path, query, body, unix_now())
    }

    /// Send a prepared request; returns the raw response.
    pub async fn send(&self, prepared: Prepared) -> Result<reqwest::Response, ClientError> {
        let method = reqwest::Method::from_bytes(prepared.method.as_bytes())
            .map_err(|_| ClientError::BadUrl(prepared.method.clone()))?;
        let mut url = format!("{}{}", self.base, prepared.path);
        if !prepared.query.is_empty() {
            url.push('?');
            url.push_str(&prepared.query);
        }
        let mut request = self.http.request(method, url).timeout(prepared.timeout);
        for (name, value) in &prepared.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if !prepared.body.is_empty() {
            request = request.body(prepared.body);
        }
        Ok(request.send().await?)
    }

    /// Sign, send and decode: `Ok(Some(T))` for a 2xx with a body, `Ok(None)` for 204.
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: Option<&B>,
    ) -> Result<Option<T>, ClientError> {
        let bytes = body.map(|body| serde_json::to_vec(body).expect("wire types serialize"));
        let response = self.send(self.prepare(method, path, query, bytes)).await?;
        decode(response).await
    }
}

/// The largest relay answer read, bytes (a mailbox page of [`approvd_proto::limits::MAX_ACK`]
/// notices is well under it): a larger one is refused unread, not buffered.
pub const MAX_ANSWER: usize = 1024 * 1024;

/// The body of `response`, refused past [`MAX_ANSWER`] bytes without reading the rest.
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, ClientError> {
    let status = response.status().as_u16();
    let too_large = || ClientError::Unexpected {
        status,
        detail: format!("an answer larger than {MAX_ANSWER} bytes (not read)"),
    };
    if response
        .content_length()
        .is_some_and(|length| length > MAX_ANSWER as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Decode a relay response (see [`RelayClient::call`]). A redirect is an unexpected answer
/// (never followed), and a body past [`MAX_ANSWER`] is refused.
pub async fn decode<T: DeserializeOwned>(
    response: reqwest::Response,
) -> Result<Option<T>, ClientError> {
    let status = response.status().as_u16();
    if status == 204 {
        return Ok(None);
    }
    let bytes = read_capped(response).await?;
    if (200..300).contains(&status) {
        return serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| ClientError::Unexpected {
                status,
                detail: format!("body does not match the protocol: {error}"),
            });
    }
    match serde_json::from_slice::<Problem>(&bytes) {
        Ok(problem) => Err(ClientError::Relay {
            status,
            problem: Box::new(problem),
        }),
        Err(_) => Err(ClientError::Unexpected {
            status,
            detail: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
        }),
    }
}
