//! Every error the API can answer, and the only place that knows HTTP status codes and problem
//! `type`s: one exhaustive `match` per property, over [`ApiError`] and the use cases'
//! [`service::Error`] it wraps, with no catch-all. Bodies are RFC 9457
//! `application/problem+json`; 429 and 503 carry `Retry-After`. Also the OpenAPI description of
//! those answers ([`ApiErrors`]).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use approvd_proto::wire::{Problem, PROBLEM_TYPE_PREFIX};
use approvd_proto::HttpSigError;

use crate::service;
use crate::store::StoreError;

/// An error answer: the use case's refusal, or what the HTTP layer itself refuses.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Service(#[from] service::Error),
    #[error("{detail}")]
    InvalidBody { detail: String },
    /// A path segment, query parameter or body value that does not parse or is out of bounds.
    #[error("{detail}")]
    InvalidField { field: String, detail: String },
    #[error("{0}")]
    Unauthenticated(HttpSigError),
    #[error("the nonce was already used: sign every request with a fresh random nonce")]
    ReplayedNonce,
    #[error("this relay requires an admission token: send `Authorization: Bearer <JWT>` issued by the operator")]
    AdmissionRequired,
    #[error("admission token refused: {0}")]
    AdmissionDenied(String),
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// The body did not arrive in time; the connection is closed after this answer.
    #[error("the request body did not arrive within {secs} s")]
    RequestTimeout { secs: u64 },
    /// `allow`: the methods the resource takes, for the `Allow` header (RFC 9110 §15.5.6).
    #[error("method not allowed on this resource; it allows {allow}")]
    MethodNotAllowed { allow: String },
    #[error("no such endpoint; see /openapi.json")]
    NoRoute,
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// A 400 naming `field`.
    pub fn field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::InvalidField {
            field: field.into(),
            detail: detail.into(),
        }
    }

    /// The stable problem name (after [`PROBLEM_TYPE_PREFIX`]).
    pub fn problem_name(&self) -> &'static str {
        use service::Error as S;
        match self {
            ApiError::Service(error) => match error {
                S::InvalidField { .. } => "invalid-field",
                S::InvalidSignature { .. } => "invalid-signature",
                S::NotOwner(_) => "not-owner",
                S::HandleMismatch { .. } => "handle-mismatch",
                S::NotTargeted => "not-targeted",
                S::NotFound(_) => "not-found",
                S::Conflict(_) => "conflict",
                S::AlreadyClaimed => "already-claimed",
                S::AlreadyConfirmed => "already-confirmed",
                S::AlreadyDecided => "already-decided",
                S::PairingExpired => "pairing-expired",
                S::ChallengeExpired => "challenge-expired",
                S::ChallengeCancelled => "challenge-cancelled",
                S::RateLimited { .. } => "rate-limited",
                S::ShuttingDown | S::Store(StoreError::Unavailable(_)) => "unavailable",
                S::Store(StoreError::Data(_)) => "internal",
            },
            ApiError::InvalidBody { .. } => "invalid-body",
            ApiError::InvalidField { .. } => "invalid-field",
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::ReplayedNonce => "replayed-nonce",
            ApiError::AdmissionRequired => "admission-required",
            ApiError::AdmissionDenied(_) => "admission-denied",
            ApiError::BodyTooLarge { .. } => "body-too-large",
            ApiError::RequestTimeout { .. } => "request-timeout",
            ApiError::MethodNotAllowed { .. } => "method-not-allowed",
            ApiError::NoRoute => "no-route",
            ApiError::Internal => "internal",
        }
    }

    fn title(&self) -> &'static str {
        use service::Error as S;
        match self {
            ApiError::Service(error) => match error {
                S::InvalidField { .. } => "Invalid field",
                S::InvalidSignature { .. } => "Signature does not verify",
                S::NotOwner(_) => "Not yours",
                S::HandleMismatch { .. } => "Push handle mismatch",
                S::NotTargeted => "Device not targeted",
                S::NotFound(_) => "Not found",
                S::Conflict(_) => "Conflict",
                S::AlreadyClaimed => "Already claimed",
                S::AlreadyConfirmed => "Already confirmed",
                S::AlreadyDecided => "Already decided",
                S::PairingExpired => "Pairing expired",
                S::ChallengeExpired => "Challenge expired",
                S::ChallengeCancelled => "Challenge cancelled",
                S::RateLimited { .. } => "Rate limited",
                S::ShuttingDown | S::Store(StoreError::Unavailable(_)) => "Service unavailable",
                S::Store(StoreError::Data(_)) => "Internal error",
            },
            ApiError::InvalidBody { .. } => "Malformed request body",
            ApiError::InvalidField { .. } => "Invalid field",
            ApiError::Unauthenticated(_) => "Request authentication failed",
            ApiError::ReplayedNonce => "Replayed request",
            ApiError::AdmissionRequired => "Admission token required",
            ApiError::AdmissionDenied(_) => "Admission token refused",
            ApiError::BodyTooLarge { .. } => "Body too large",
            ApiError::RequestTimeout { .. } => "Request timeout",
            ApiError::MethodNotAllowed { .. } => "Method not allowed",
            ApiError::NoRoute => "No such endpoint",
            ApiError::Internal => "Internal error",
        }
    }

    fn field_name(&self) -> Option<String> {
        use service::Error as S;
        match self {
            ApiError::Service(error) => match error {
                S::InvalidField { field, .. }
                | S::InvalidSignature { field, .. }
                | S::HandleMismatch { field } => Some(field.clone()),
                S::NotOwner(_)
                | S::NotTargeted
                | S::NotFound(_)
                | S::Conflict(_)
                | S::AlreadyClaimed
                | S::AlreadyConfirmed
                | S::AlreadyDecided
                | S::PairingExpired
                | S::ChallengeExpired
                | S::ChallengeCancelled
                | S::RateLimited { .. }
                | S::ShuttingDown
                | S::Store(_) => None,
            },
            ApiError::InvalidField { field, .. } => Some(field.clone()),
            ApiError::Unauthenticated(HttpSigError::MissingHeader(header)) => {
                Some((*header).to_owned())
            }
            ApiError::Unauthenticated(HttpSigError::Malformed { header, .. }) => {
                Some((*header).to_owned())
            }
            ApiError::Unauthenticated(HttpSigError::DateSkew { .. }) => Some("Date".to_owned()),
            ApiError::Unauthenticated(_) => Some("Signature-Input".to_owned()),
            ApiError::InvalidBody { .. }
            | ApiError::ReplayedNonce
            | ApiError::AdmissionRequired
            | ApiError::AdmissionDenied(_)
            | ApiError::BodyTooLarge { .. }
            | ApiError::RequestTimeout { .. }
            | ApiError::MethodNotAllowed { .. }
            | ApiError::NoRoute
            | ApiError::Internal => None,
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        use service::Error as S;
        match self {
            ApiError::Service(error) => match error {
                S::RateLimited {
                    retry_after_secs, ..
                } => Some(*retry_after_secs),
                S::Store(StoreError::Unavailable(_)) => Some(2),
                S::ShuttingDown => Some(1),
                S::InvalidField { .. }
                | S::InvalidSignature { .. }
                | S::NotOwner(_)
                | S::HandleMismatch { .. }
                | S::NotTargeted
                | S::NotFound(_)
                | S::Conflict(_)
                | S::AlreadyClaimed
                | S::AlreadyConfirmed
                | S::AlreadyDecided
                | S::PairingExpired
                | S::ChallengeExpired
                | S::ChallengeCancelled
                | S::Store(StoreError::Data(_)) => None,
            },
            ApiError::InvalidBody { .. }
            | ApiError::InvalidField { .. }
            | ApiError::Unauthenticated(_)
            | ApiError::ReplayedNonce
            | ApiError::AdmissionRequired
            | ApiError::AdmissionDenied(_)
            | ApiError::BodyTooLarge { .. }
            | ApiError::RequestTimeout { .. }
            | ApiError::MethodNotAllowed { .. }
            | ApiError::NoRoute
            | ApiError::Internal => None,
        }
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        Problem {
            type_uri: format!("{PROBLEM_TYPE_PREFIX}{}", self.problem_name()),
            title: self.title().to_owned(),
            status: self.status_code().as_u16(),
            detail: self.to_string(),
            field: self.field_name(),
            instance: None,
        }
    }

    /// The problem response for the request with id `request_id` (named as its `instance`).
    pub fn response_for(&self, request_id: &str) -> HttpResponse {
        self.respond(Some(request_id))
    }

    fn respond(&self, request_id: Option<&str>) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.content_type("application/problem+json");
        if let Some(seconds) = self.retry_after_secs() {
            response.insert_header(("Retry-After", seconds.max(1).to_string()));
        }
        if let ApiError::MethodNotAllowed { allow } = self {
            response.insert_header(("Allow", allow.as_str()));
        }
        if let ApiError::RequestTimeout { .. } = self {
            response.force_close();
        }
        let problem = Problem {
            instance: request_id.map(str::to_owned),
            ..self.problem()
        };
        response.body(serde_json::to_string(&problem).expect("problems serialize"))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        use service::Error as S;
        match self {
            ApiError::Service(error) => match error {
                S::InvalidField { .. } | S::InvalidSignature { .. } => StatusCode::BAD_REQUEST,
                S::NotOwner(_) | S::HandleMismatch { .. } | S::NotTargeted => StatusCode::FORBIDDEN,
                S::NotFound(_) => StatusCode::NOT_FOUND,
                S::Conflict(_) | S::AlreadyClaimed | S::AlreadyConfirmed | S::AlreadyDecided => {
                    StatusCode::CONFLICT
                }
                S::PairingExpired | S::ChallengeExpired | S::ChallengeCancelled => StatusCode::GONE,
                S::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
                S::ShuttingDown | S::Store(StoreError::Unavailable(_)) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                S::Store(StoreError::Data(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::InvalidBody { .. } | ApiError::InvalidField { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_)
            | ApiError::ReplayedNonce
            | ApiError::AdmissionRequired => StatusCode::UNAUTHORIZED,
            ApiError::AdmissionDenied(_) => StatusCode::FORBIDDEN,
            ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Logs store failures (once: the request-id middleware rebuilds this response with
    /// `response_for`, which does not log).
    fn error_response(&self) -> HttpResponse {
        if let ApiError::Service(service::Error::Store(error)) = self {
            match error {
                StoreError::Unavailable(reason) => tracing::warn!(%reason, "store unavailable"),
                StoreError::Data(reason) => tracing::error!(%reason, "store data error"),
            }
        }
        self.respond(None)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::Service(service::Error::Store(error))
    }
}

impl From<approvd_proto::Error> for ApiError {
    fn from(error: approvd_proto::Error) -> Self {
        use approvd_proto::Error as E;
        let detail = error.to_string();
        match error {
            E::Base64 { field }
            | E::Length { field, .. }
            | E::TooLong { field, .. }
            | E::TooMany { field, .. }
            | E::Empty { field }
            | E::InvalidKey { field }
            | E::WeakKey { field }
            | E::Invalid { field, .. } => ApiError::field(field, detail),
            E::BadSignature => ApiError::Service(service::Error::InvalidSignature {
                field: "sig".to_owned(),
                detail,
            }),
            E::Expired { .. } | E::NotYetValid { .. } => ApiError::field("expires", detail),
            E::BadMac | E::OpenFailed | E::SealFailed | E::ContextJson(_) | E::Uri(_) => {
                ApiError::InvalidBody { detail }
            }
            E::HttpSig(error) => ApiError::Unauthenticated(error),
        }
    }
}

/// The errors every `/v1` operation may answer (application/problem+json, PROTOCOL.md §9), for
/// the OpenAPI document.
#[derive(Debug, utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum ApiErrors {
    /// Malformed body, invalid field, or a signed message that does not verify.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// The request signature is missing, malformed, expired, replayed or wrong.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(Problem),
    /// The resource belongs to another key, or a handle does not match.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such pairing or challenge.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// Already claimed, confirmed or decided, or the id exists with another body.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// Expired or cancelled.
    #[response(status = 410, content_type = "application/problem+json")]
    Gone(Problem),
    /// The body did not arrive in time; the connection is closed.
    #[response(status = 408, content_type = "application/problem+json")]
    RequestTimeout(Problem),
    /// The body is larger than 64 KiB.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// Rate limited; see Retry-After.
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(Problem),
    /// The store is unavailable or the relay is shutting down; see Retry-After.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}
