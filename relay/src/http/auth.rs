//! Request authentication as extractors: a handler that takes [`Signed<NasCaller, _>`] or
//! [`Signed<DeviceCaller, _>`] runs only after the RFC 9421 signature, body digest, clock skew,
//! nonce replay cache, per-IP failure limit, per-caller rate limit and (for NAS calls, when
//! configured) the operator's admission token were all checked — and after its body was parsed
//! and validated ([`Json`] requires [`Validate`]) and its query parsed ([`Wait`]). Owns reading
//! the body (with the size limit); nothing else in the relay reads request bodies.

use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use approvd_proto::httpsig::{self, IncomingRequest, RequestContext, RequestTarget};
use approvd_proto::ids::{Digest, PublicKey};
use approvd_proto::wire::Validate;
use approvd_proto::{DeviceId, HttpSigError, NasId};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt as _;
use serde::de::DeserializeOwned;

use super::problem::ApiError;
use super::tokens::TokenPurpose;
use super::AppState;
use crate::service::access;

/// A caller's role, decided by the route.
pub trait Role: Sized + 'static {
    /// Whether the operator's admission token (when configured) applies to this role.
    const NEEDS_ADMISSION: bool;
    fn from_key(key: PublicKey) -> Self;
}

/// A verified NAS (the request was signed by `N`).
#[derive(Debug, Clone, Copy)]
pub struct NasCaller(pub NasId);

impl Role for NasCaller {
    const NEEDS_ADMISSION: bool = true;
    fn from_key(key: PublicKey) -> Self {
        Self(NasId(key))
    }
}

/// A verified device (the request was signed by `D_api`).
#[derive(Debug, Clone, Copy)]
pub struct DeviceCaller(pub DeviceId);

impl Role for DeviceCaller {
    const NEEDS_ADMISSION: bool = false;
    fn from_key(key: PublicKey) -> Self {
        Self(DeviceId(key))
    }
}

/// How a route's body is parsed.
pub trait BodyKind: Sized + 'static {
    fn parse(bytes: &[u8]) -> Result<Self, ApiError>;
}

/// The route takes no body.
#[derive(Debug)]
pub struct NoBody;

impl BodyKind for NoBody {
    fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        if bytes.is_empty() {
            Ok(Self)
        } else {
            Err(ApiError::InvalidBody {
                detail: "this endpoint takes no body".to_owned(),
            })
        }
    }
}

/// A JSON body of type `T`, parsed and then checked against its limits ([`Validate`]).
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + Validate + 'static> BodyKind for Json<T> {
    fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(json_error)?;
        deserializer.end().map_err(|error| ApiError::InvalidBody {
            detail: format!("the JSON body does not match the schema: {error}"),
        })?;
        value.validate()?;
        Ok(Json(value))
    }
}

/// A body that did not deserialize. A value of the right JSON type that breaks a protocol rule
/// (bad base64, wrong length, weak key: the wire types' own checks, whose messages start with
/// the field in backticks) is `invalid-field` at its path, e.g. `claim.sig_key`; not JSON, a
/// wrong type, a missing or unknown field is `invalid-body` (PROTOCOL.md §9).
fn json_error(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = error.path().to_string();
    let message = error.inner().to_string();
    let rule = message
        .strip_prefix('`')
        .and_then(|rest| rest.split_once('`'))
        .map(|(_, reason)| reason);
    match rule {
        Some(reason) if error.inner().is_data() && path != "." => {
            let reason = reason.split(" at line ").next().unwrap_or(reason);
            ApiError::InvalidField {
                detail: format!("`{path}`{reason}"),
                field: path,
            }
        }
        _ => ApiError::InvalidBody {
            detail: format!("the JSON body does not match the schema: {error}"),
        },
    }
}

/// How a route's query string is parsed (it is signed, so it is read only after the signature
/// verified).
pub trait QueryKind: Sized + 'static {
    fn parse(query: &str, state: &AppState) -> Result<Self, ApiError>;
}

/// The route reads no query parameters.
#[derive(Debug)]
pub struct AnyQuery;

impl QueryKind for AnyQuery {
    fn parse(_: &str, _: &AppState) -> Result<Self, ApiError> {
        Ok(Self)
    }
}

/// A long-poll's `?wait=<seconds>`, capped by `--max-wait-secs` (absent: do not wait). Any other
/// query parameter is an error, since a typo would otherwise be silently ignored.
#[derive(Debug, Clone, Copy)]
pub struct Wait(pub std::time::Duration);

impl QueryKind for Wait {
    fn parse(query: &str, state: &AppState) -> Result<Self, ApiError> {
        let mut wait = 0;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair.split_once('=') {
                Some(("wait", value)) => {
                    wait = value.parse::<u64>().map_err(|_| {
                        ApiError::field("wait", "`wait` must be a whole number of seconds")
                    })?;
                }
                _ => {
                    return Err(ApiError::field(
                        "query",
                        format!(
                            "unknown query parameter `{}`; only `wait` is accepted",
                            pair.split('=').next().unwrap_or(pair)
                        ),
                    ))
                }
            }
        }
        let wait = std::time::Duration::from_secs(wait);
        Ok(Self(wait.min(state.deps.limits.max_wait)))
    }
}

/// An authenticated request: the verified caller in role `R`, the parsed body and query.
#[derive(Debug)]
pub struct Signed<R, B, Q = AnyQuery> {
    pub caller: R,
    pub body: B,
    pub query: Q,
    /// SHA-256 of the raw body (idempotency of challenge creation).
    pub body_digest: Digest,
    /// The client address per-IP limits count ([`client_ip`]).
    pub ip: Option<IpAddr>,
}

impl<R: Role, B: BodyKind, Q: QueryKind> FromRequest for Signed<R, B, Q> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let request = request.clone();
        let payload = payload.take();
        Box::pin(async move {
            let state = app_state(&request)?;
            let (key, body) = authenticate::<R>(&state, &request, payload).await?;
            let ip = client_ip(&state, &request);
            let parsed = B::parse(&body)?;
            let query = Q::parse(request.query_string(), &state)?;
            Ok(Signed {
                caller: R::from_key(key),
                body: parsed,
                query,
                body_digest: Digest::of(&body),
                ip,
            })
        })
    }
}

/// The application state the server registered (absent only in a misbuilt app: 500).
fn app_state(request: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    request
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or(ApiError::Internal)
}

/// The client address used for per-IP limits. Behind a trusted proxy (`--trust-forwarded-for`)
/// it is the right-most address of all `X-Forwarded-For` lines read as one list — the address
/// the proxy itself saw; whatever the client wrote further left (or on an earlier line, which
/// is how HAProxy's `option forwardfor` appends) is ignored. Without a usable header, the peer.
pub fn client_ip(state: &AppState, request: &HttpRequest) -> Option<IpAddr> {
    if state.trust_forwarded_for {
        let forwarded = request
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|value| value.to_str().ok())
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .last()
            .and_then(|last| last.parse().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    request.peer_addr().map(|address| address.ip())
}

/// The scheme and authority the client addressed, for signatures that cover `@scheme`,
/// `@authority` or `@target-uri`: the relay itself speaks plain HTTP with the `Host` it got;
/// behind a trusted proxy (`--trust-forwarded-for`), the proxy's `X-Forwarded-Proto` and
/// `X-Forwarded-Host` (their right-most entries) say what the client used.
fn addressed_as<'a>(state: &AppState, request: &'a HttpRequest) -> (&'a str, Option<&'a str>) {
    let forwarded = |name| {
        if !state.trust_forwarded_for {
            return None;
        }
        let value = request.headers().get(name)?.to_str().ok()?;
        value
            .rsplit(',')
            .next()
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let host = request
        .headers()
        .get("host")
        .and_then(|value| value.to_str().ok())
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(|authority| authority.as_str())
        });
    (
        forwarded("x-forwarded-proto").unwrap_or("http"),
        forwarded("x-forwarded-host").or(host),
    )
}

/// The one line of header `name`, if present: a second line is refused (PROTOCOL.md §7.1: a
/// request carries exactly one signature), never ignored.
fn header<'a>(
    request: &'a HttpRequest,
    name: &'static str,
) -> Result<Option<&'a str>, HttpSigError> {
    let mut lines = request.headers().get_all(name);
    let Some(value) = lines.next() else {
        return Ok(None);
    };
    if lines.next().is_some() {
        return Err(HttpSigError::Malformed {
            header: name,
            reason: "must appear once",
        });
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| HttpSigError::Malformed {
            header: name,
            reason: "not ASCII",
        })
}

async fn read_body(mut payload: Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| match error {
            actix_web::error::PayloadError::Overflow => ApiError::BodyTooLarge { limit },
            other => ApiError::InvalidBody {
                detail: format!("could not read the body: {other}"),
            },
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::BodyTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The request body, refused past [`approvd_proto::wire::MAX_BODY`] (by its declared length
/// before reading) or when it does not arrive within the body deadline.
async fn body_within_limits(
    state: &AppState,
    request: &HttpRequest,
    payload: Payload,
) -> Result<Vec<u8>, ApiError> {
    let limit = approvd_proto::wire::MAX_BODY;
    let declared = request
        .headers()
        .get("content-length")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    match tokio::time::timeout(state.body_timeout, read_body(payload, limit)).await {
        Ok(body) => body,
        Err(_) => {
            state.deps.metrics.request_timeouts.inc();
            Err(ApiError::RequestTimeout {
                secs: state.body_timeout.as_secs(),
            })
        }
    }
}

/// A request from a downstream relay to `POST /v1/push/forward`: its forwarding token verified
/// (signed by `--push-forward-key-file`, not revoked), the request signed (RFC 9421, as every
/// API call) by the key the token is bound to (`cnf.jkt`) with a fresh nonce, its body parsed
/// (N-13: a token seen in transit or in a log is useless without the downstream's private
/// key, and a captured request cannot be sent again). Without that option the endpoint is
/// off and answers 404. A refused token or signature counts as a failed authentication of
/// the source IP.
#[derive(Debug)]
pub struct Forwarded<B> {
    /// The token's `sub`: which downstream relay this is (its rate limit, logs).
    pub downstream: String,
    pub body: B,
}

impl<B: BodyKind> FromRequest for Forwarded<B> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let request = request.clone();
        let payload = payload.take();
        Box::pin(async move {
            let state = app_state(&request)?;
            let verifier = state.forwarding.as_ref().ok_or(ApiError::NoRoute)?;
            let ip = client_ip(&state, &request);
            let refused = |reason: &'static str, error: ApiError| {
                let state = state.clone();
                async move {
                    state
                        .deps
                        .metrics
                        .auth_failures
                        .with_label_values(&[reason])
                        .inc();
                    if let Some(ip) = ip {
                        access::check_ip(&state.deps, ip).await?;
                        access::record_failure(&state.deps, ip).await?;
                    }
                    Err::<Self, _>(error)
                }
            };
            let claims = match verifier.claims(&request) {
                Ok(claims) => claims,
                Err(error) => return refused("bad_token", error).await,
            };
            let downstream = match downstream_name(claims.sub) {
                Ok(downstream) => downstream,
                Err(error) => return refused("bad_token", error).await,
            };
            let body = body_within_limits(&state, &request, payload).await?;
            let verified = match verify_signature(&state, &request, &body) {
                Ok(verified) => verified,
                Err(failure) => return refused(failure.reason(), failure.into()).await,
            };
            if claims.jkt.as_deref() != Some(verified.key.jwk_thumbprint().as_str()) {
                return refused(
                    "bad_token",
                    ApiError::AdmissionDenied(
                        "the request is not signed by the key the forwarding token is bound to \
                         (its `cnf.jkt`)"
                            .to_owned(),
                    ),
                )
                .await;
            }
            let nonce = crate::store::Nonce {
                key: verified.key,
                nonce: verified.nonce,
            };
            let now = state.deps.clock.now();
            let ttl = verified.expires.saturating_sub(now) + state.deps.limits.clock_skew_secs + 1;
            let fresh = state
                .deps
                .store
                .remember_nonce(&nonce, std::time::Duration::from_secs(ttl))
                .await
                .map_err(|error| ApiError::Service(error.into()))?;
            if !fresh {
                return refused("replayed_nonce", ApiError::ReplayedNonce).await;
            }
            Ok(Forwarded {
                downstream,
                body: B::parse(&body)?,
            })
        })
    }
}

/// A forwarding token's `sub`, which names a downstream relay in rate-limit keys and logs:
/// 1 to 64 of `A-Z a-z 0-9 . _ -`.
fn downstream_name(sub: String) -> Result<String, ApiError> {
    if TokenPurpose::Forward.valid_subject(&sub) {
        Ok(sub)
    } else {
        Err(ApiError::AdmissionDenied(
            "the forwarding token's `sub` must be 1 to 64 of A-Z a-z 0-9 . _ -".to_owned(),
        ))
    }
}

async fn authenticate<R: Role>(
    state: &AppState,
    request: &HttpRequest,
    payload: Payload,
) -> Result<(PublicKey, Vec<u8>), ApiError> {
    let ip = client_ip(state, request);
    let body = body_within_limits(state, request, payload).await?;

    let (key, budget) = match verify(state, request, &body).await {
        Ok(admitted) => admitted,
        Err(failure) => {
            state
                .deps
                .metrics
                .auth_failures
                .with_label_values(&[failure.reason()])
                .inc();
            // Failures count against the source address, and past its budget they are answered
            // 429. A request that verifies is never refused for what others behind the same
            // address (a carrier NAT, an office) did: its own key's budget applies instead.
            if let Some(ip) = ip {
                access::check_ip(&state.deps, ip).await?;
                access::record_failure(&state.deps, ip).await?;
            }
            return Err(failure.into());
        }
    };
    // Past its key's budget a request is refused (429), though it authenticated.
    budget?;
    if R::NEEDS_ADMISSION {
        if let Some(admission) = &state.admission {
            admission.check(request, &NasId(key))?;
        }
    }
    Ok((key, body))
}

/// Why a request's signature was refused (each is counted by reason).
#[derive(Debug)]
enum AuthFailure {
    Signature(HttpSigError),
    ReplayedNonce,
    /// The replay cache could not be asked: not the caller's fault, but not verified either.
    Service(crate::service::Error),
}

/// Every `reason` label of `approvd_auth_failures_total` (created at zero on startup).
pub const AUTH_FAILURE_REASONS: [&str; 7] = [
    "bad_token",
    "replayed_nonce",
    "clock_skew",
    "bad_signature",
    "digest_mismatch",
    "malformed",
    "store_error",
];

impl AuthFailure {
    /// The `reason` label of `approvd_auth_failures_total`.
    fn reason(&self) -> &'static str {
        match self {
            AuthFailure::ReplayedNonce => "replayed_nonce",
            AuthFailure::Signature(HttpSigError::Skew { .. } | HttpSigError::DateSkew { .. }) => {
                "clock_skew"
            }
            AuthFailure::Signature(HttpSigError::BadSignature) => "bad_signature",
            AuthFailure::Signature(HttpSigError::DigestMismatch) => "digest_mismatch",
            AuthFailure::Signature(
                HttpSigError::MissingHeader(_)
                | HttpSigError::Malformed { .. }
                | HttpSigError::Label
                | HttpSigError::MissingComponent(_)
                | HttpSigError::UnsupportedComponent(_)
                | HttpSigError::MissingField(_)
                | HttpSigError::MissingParam(_)
                | HttpSigError::UnknownParam(_)
                | HttpSigError::Alg
                | HttpSigError::Tag
                | HttpSigError::Expired
                | HttpSigError::Lifetime { .. }
                | HttpSigError::Nonce
                | HttpSigError::KeyId(_)
                | HttpSigError::DigestAlgorithm,
            ) => "malformed",
            AuthFailure::Service(_) => "store_error",
        }
    }
}

impl From<AuthFailure> for ApiError {
    fn from(failure: AuthFailure) -> Self {
        match failure {
            AuthFailure::Signature(error) => ApiError::Unauthenticated(error),
            AuthFailure::ReplayedNonce => ApiError::ReplayedNonce,
            AuthFailure::Service(error) => ApiError::Service(error),
        }
    }
}

/// The RFC 9421 signature, body digest and time checks (not the nonce).
fn verify_signature(
    state: &AppState,
    request: &HttpRequest,
    body: &[u8],
) -> Result<httpsig::VerifiedRequest, AuthFailure> {
    let signature_header = |name| header(request, name).map_err(AuthFailure::Signature);
    let fields: Vec<(&str, &str)> = request
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    let (scheme, authority) = addressed_as(state, request);
    let incoming = IncomingRequest {
        target: RequestTarget {
            method: request.method().as_str(),
            path: request.uri().path(),
            query: request.uri().query().unwrap_or(""),
        },
        context: RequestContext {
            scheme: Some(scheme),
            authority,
            fields: &fields,
        },
        signature_input: signature_header("signature-input")?,
        signature: signature_header("signature")?,
        content_digest: signature_header("content-digest")?,
        body,
    };
    httpsig::verify_request(
        &incoming,
        state.deps.clock.now(),
        state.deps.limits.clock_skew_secs,
    )
    .map_err(AuthFailure::Signature)
}

/// Signature, digest, time and nonce checks; the signing key and its request budget's verdict.
async fn verify(
    state: &AppState,
    request: &HttpRequest,
    body: &[u8],
) -> Result<(PublicKey, Result<(), crate::service::Error>), AuthFailure> {
    let verified = verify_signature(state, request, body)?;
    let budget = access::admit(&state.deps, verified.key, &verified.nonce, verified.expires)
        .await
        .map_err(AuthFailure::Service)?
        .ok_or(AuthFailure::ReplayedNonce)?;
    Ok((verified.key, budget))
}
