//! Request authentication as extractors: a handler that takes [`Signed<NasCaller, _>`] or
//! [`Signed<DeviceCaller, _>`] runs only after the RFC 9421 signature, body digest, clock skew,
//! nonce replay cache, per-IP failure limit, per-caller rate limit and (for NAS calls, when
//! configured) the operator's admission token were all checked. Owns reading the body (with the
//! size limit) and parsing it; nothing else in the relay reads request bodies.

use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use approvd_proto::httpsig::{self, IncomingRequest, RequestTarget};
use approvd_proto::ids::{Digest, PublicKey};
use approvd_proto::{DeviceId, HttpSigError, NasId};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt as _;
use serde::de::DeserializeOwned;

use super::problem::ApiError;
use super::AppState;
use crate::store::Rate;

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

/// A JSON body of type `T`.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> BodyKind for Json<T> {
    fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        serde_json::from_slice(bytes)
            .map(Json)
            .map_err(|error| ApiError::InvalidBody {
                detail: format!("the JSON body does not match the schema: {error}"),
            })
    }
}

/// An authenticated request: the verified caller in role `R` and the parsed body.
#[derive(Debug)]
pub struct Signed<R, B> {
    pub caller: R,
    pub body: B,
    /// SHA-256 of the raw body (idempotency of challenge creation).
    pub body_digest: Digest,
}

impl<R: Role, B: BodyKind> FromRequest for Signed<R, B> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let request = request.clone();
        let payload = payload.take();
        Box::pin(async move {
            let state = request
                .app_data::<web::Data<AppState>>()
                .ok_or(ApiError::Internal)?
                .clone();
            let (key, body) = authenticate::<R>(&state, &request, payload).await?;
            let parsed = B::parse(&body)?;
            Ok(Signed {
                caller: R::from_key(key),
                body: parsed,
                body_digest: Digest::of(&body),
            })
        })
    }
}

/// The client address used for per-IP limits.
pub fn client_ip(state: &AppState, request: &HttpRequest) -> Option<IpAddr> {
    if state.config.trust_forwarded_for {
        let forwarded = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.rsplit(',').next())
            .and_then(|last| last.trim().parse().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    request.peer_addr().map(|address| address.ip())
}

fn header<'a>(request: &'a HttpRequest, name: &'static str) -> Result<Option<&'a str>, ApiError> {
    match request.headers().get(name) {
        None => Ok(None),
        Some(value) => value.to_str().map(Some).map_err(|_| {
            ApiError::Unauthenticated(HttpSigError::Malformed {
                header: name,
                reason: "not ASCII",
            })
        }),
    }
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

async fn authenticate<R: Role>(
    state: &AppState,
    request: &HttpRequest,
    payload: Payload,
) -> Result<(PublicKey, Vec<u8>), ApiError> {
    let now_ms = state.clock.now_ms();
    let ip_bucket = client_ip(state, request).map(|ip| format!("authfail:{ip}"));
    let ip_rate = Rate {
        per_minute: state.config.rate_auth_failures_per_ip,
    };
    if let Some(bucket) = &ip_bucket {
        let decision = state
            .store
            .rate_limit(bucket, ip_rate, now_ms, false)
            .await?;
        if !decision.allowed {
            state
                .metrics
                .rate_limited
                .with_label_values(&["auth_failures_per_ip"])
                .inc();
            return Err(ApiError::RateLimited {
                limit: "failed authentications per IP",
                retry_after_secs: decision.retry_after_ms.div_ceil(1000),
            });
        }
    }
    let limit = approvd_proto::wire::MAX_BODY;
    let declared = request
        .headers()
        .get("content-length")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    let body = read_body(payload, limit).await?;

    let result = verify(state, request, &body, now_ms).await;
    let key = match result {
        Ok(key) => key,
        Err(error) => {
            let reason = match &error {
                ApiError::ReplayedNonce => "replayed_nonce",
                ApiError::Unauthenticated(HttpSigError::Skew { .. }) => "clock_skew",
                ApiError::Unauthenticated(HttpSigError::BadSignature) => "bad_signature",
                ApiError::Unauthenticated(HttpSigError::DigestMismatch) => "digest_mismatch",
                ApiError::Unauthenticated(_) => "malformed",
                _ => "other",
            };
            state
                .metrics
                .auth_failures
                .with_label_values(&[reason])
                .inc();
            if let Some(bucket) = &ip_bucket {
                state
                    .store
                    .rate_limit(bucket, ip_rate, now_ms, true)
                    .await?;
            }
            return Err(error);
        }
    };

    let caller_rate = Rate {
        per_minute: state.config.rate_requests_per_caller,
    };
    let decision = state
        .store
        .rate_limit(&format!("caller:{key}"), caller_rate, now_ms, true)
        .await?;
    if !decision.allowed {
        state
            .metrics
            .rate_limited
            .with_label_values(&["requests_per_caller"])
            .inc();
        return Err(ApiError::RateLimited {
            limit: "requests per caller",
            retry_after_secs: decision.retry_after_ms.div_ceil(1000),
        });
    }
    if R::NEEDS_ADMISSION {
        if let Some(admission) = &state.admission {
            admission.check(request, &NasId(key))?;
        }
    }
    Ok((key, body))
}

/// Signature, digest, time and nonce checks.
async fn verify(
    state: &AppState,
    request: &HttpRequest,
    body: &[u8],
    now_ms: u64,
) -> Result<PublicKey, ApiError> {
    let incoming = IncomingRequest {
        target: RequestTarget {
            method: request.method().as_str(),
            path: request.uri().path(),
            query: request.uri().query().unwrap_or(""),
        },
        signature_input: header(request, "signature-input")?,
        signature: header(request, "signature")?,
        content_digest: header(request, "content-digest")?,
        body,
    };
    let now = now_ms / 1000;
    let verified = httpsig::verify_request(&incoming, now, state.config.clock_skew_secs)
        .map_err(ApiError::Unauthenticated)?;
    // Keep the nonce until the signature could no longer pass the time checks anyway.
    let ttl = verified.expires.saturating_sub(now) + state.config.clock_skew_secs + 1;
    let fresh = state
        .store
        .remember_nonce(
            &format!("nonce:{}:{}", verified.key, verified.nonce),
            std::time::Duration::from_secs(ttl),
        )
        .await?;
    if !fresh {
        return Err(ApiError::ReplayedNonce);
    }
    Ok(verified.key)
}

/// The operator's admission check for NAS requests (`Authorization: Bearer <JWT>`).
pub struct Admission {
    /// The operator's public key.
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission").finish_non_exhaustive()
    }
}

#[derive(Debug, serde::Deserialize)]
struct AdmissionClaims {
    sub: String,
}

impl Admission {
    /// From a PEM public key: Ed25519 (EdDSA tokens) or P-256 (ES256 tokens).
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let (key, algorithm) = match jsonwebtoken::DecodingKey::from_ed_pem(pem) {
            Ok(key) => (key, jsonwebtoken::Algorithm::EdDSA),
            Err(_) => (
                jsonwebtoken::DecodingKey::from_ec_pem(pem).map_err(|error| {
                    format!("not an Ed25519 or P-256 public key in PEM form: {error}")
                })?,
                jsonwebtoken::Algorithm::ES256,
            ),
        };
        let mut validation = jsonwebtoken::Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 60;
        Ok(Self { key, validation })
    }

    fn check(&self, request: &HttpRequest, nas_id: &NasId) -> Result<(), ApiError> {
        let token = request
            .headers()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or(ApiError::AdmissionRequired)?;
        let data =
            jsonwebtoken::decode::<AdmissionClaims>(token.trim(), &self.key, &self.validation)
                .map_err(|error| ApiError::AdmissionDenied(error.to_string()))?;
        if data.claims.sub != nas_id.to_string() {
            return Err(ApiError::AdmissionDenied(
                "the token's `sub` is not the nas_id that signed the request".to_owned(),
            ));
        }
        Ok(())
    }
}
