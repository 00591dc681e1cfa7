//! Every error the API can answer, and the only place that knows HTTP status codes and problem
//! `type`s: one exhaustive `match` per property, no catch-all. Bodies are RFC 9457
//! `application/problem+json`; 429 and 503 carry `Retry-After`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use approvd_proto::wire::Problem;
use approvd_proto::HttpSigError;

use crate::store::StoreError;

/// Prefix of every problem `type`.
pub const TYPE_PREFIX: &str = "urn:approvd:problem:";

/// An error answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    InvalidBody { detail: String },
    #[error("{detail}")]
    InvalidField { field: String, detail: String },
    #[error("{detail}")]
    InvalidSignature { field: String, detail: String },
    #[error("{0}")]
    Unauthenticated(HttpSigError),
    #[error("the nonce was already used: sign every request with a fresh random nonce")]
    ReplayedNonce,
    #[error("this relay requires an admission token: send `Authorization: Bearer <JWT>` issued by the operator")]
    AdmissionRequired,
    #[error("admission token refused: {0}")]
    AdmissionDenied(String),
    #[error("{0}")]
    NotOwner(&'static str),
    #[error("the push handle was minted for another NAS or device, or not by this relay")]
    HandleMismatch { field: String },
    #[error("this device is not a target of the challenge")]
    NotTargeted,
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(&'static str),
    #[error("the pairing slot was already claimed")]
    AlreadyClaimed,
    #[error("the pairing was already confirmed")]
    AlreadyConfirmed,
    #[error("the challenge was already decided (the first answer wins)")]
    AlreadyDecided,
    #[error("the pairing slot has expired; start a new pairing")]
    PairingExpired,
    #[error("the challenge has expired")]
    ChallengeExpired,
    #[error("the challenge was cancelled by the NAS")]
    ChallengeCancelled,
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("method not allowed on this resource")]
    MethodNotAllowed,
    #[error("no such endpoint; see /openapi.json")]
    NoRoute,
    #[error("too many requests ({limit}); retry after {retry_after_secs} s")]
    RateLimited {
        limit: &'static str,
        retry_after_secs: u64,
    },
    #[error("the relay's store is unavailable; retry shortly")]
    StoreUnavailable,
    #[error("the relay is shutting down; retry (another replica will answer)")]
    ShuttingDown,
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

    /// The stable problem name (after [`TYPE_PREFIX`]).
    pub fn problem_name(&self) -> &'static str {
        match self {
            ApiError::InvalidBody { .. } => "invalid-body",
            ApiError::InvalidField { .. } => "invalid-field",
            ApiError::InvalidSignature { .. } => "invalid-signature",
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::ReplayedNonce => "replayed-nonce",
            ApiError::AdmissionRequired => "admission-required",
            ApiError::AdmissionDenied(_) => "admission-denied",
            ApiError::NotOwner(_) => "not-owner",
            ApiError::HandleMismatch { .. } => "handle-mismatch",
            ApiError::NotTargeted => "not-targeted",
            ApiError::NotFound(_) => "not-found",
            ApiError::Conflict(_) => "conflict",
            ApiError::AlreadyClaimed => "already-claimed",
            ApiError::AlreadyConfirmed => "already-confirmed",
            ApiError::AlreadyDecided => "already-decided",
            ApiError::PairingExpired => "pairing-expired",
            ApiError::ChallengeExpired => "challenge-expired",
            ApiError::ChallengeCancelled => "challenge-cancelled",
            ApiError::BodyTooLarge { .. } => "body-too-large",
            ApiError::MethodNotAllowed => "method-not-allowed",
            ApiError::NoRoute => "no-route",
            ApiError::RateLimited { .. } => "rate-limited",
            ApiError::StoreUnavailable | ApiError::ShuttingDown => "unavailable",
            ApiError::Internal => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::InvalidBody { .. } => "Malformed request body",
            ApiError::InvalidField { .. } => "Invalid field",
            ApiError::InvalidSignature { .. } => "Signature does not verify",
            ApiError::Unauthenticated(_) => "Request authentication failed",
            ApiError::ReplayedNonce => "Replayed request",
            ApiError::AdmissionRequired => "Admission token required",
            ApiError::AdmissionDenied(_) => "Admission token refused",
            ApiError::NotOwner(_) => "Not yours",
            ApiError::HandleMismatch { .. } => "Push handle mismatch",
            ApiError::NotTargeted => "Device not targeted",
            ApiError::NotFound(_) => "Not found",
            ApiError::Conflict(_) => "Conflict",
            ApiError::AlreadyClaimed => "Already claimed",
            ApiError::AlreadyConfirmed => "Already confirmed",
            ApiError::AlreadyDecided => "Already decided",
            ApiError::PairingExpired => "Pairing expired",
            ApiError::ChallengeExpired => "Challenge expired",
            ApiError::ChallengeCancelled => "Challenge cancelled",
            ApiError::BodyTooLarge { .. } => "Body too large",
            ApiError::MethodNotAllowed => "Method not allowed",
            ApiError::NoRoute => "No such endpoint",
            ApiError::RateLimited { .. } => "Rate limited",
            ApiError::StoreUnavailable | ApiError::ShuttingDown => "Service unavailable",
            ApiError::Internal => "Internal error",
        }
    }

    fn field_name(&self) -> Option<String> {
        match self {
            ApiError::InvalidField { field, .. }
            | ApiError::InvalidSignature { field, .. }
            | ApiError::HandleMismatch { field } => Some(field.clone()),
            ApiError::Unauthenticated(HttpSigError::MissingHeader(header)) => {
                Some((*header).to_owned())
            }
            ApiError::Unauthenticated(HttpSigError::Malformed { header, .. }) => {
                Some((*header).to_owned())
            }
            ApiError::Unauthenticated(_) => Some("Signature-Input".to_owned()),
            ApiError::InvalidBody { .. }
            | ApiError::ReplayedNonce
            | ApiError::AdmissionRequired
            | ApiError::AdmissionDenied(_)
            | ApiError::NotOwner(_)
            | ApiError::NotTargeted
            | ApiError::NotFound(_)
            | ApiError::Conflict(_)
            | ApiError::AlreadyClaimed
            | ApiError::AlreadyConfirmed
            | ApiError::AlreadyDecided
            | ApiError::PairingExpired
            | ApiError::ChallengeExpired
            | ApiError::ChallengeCancelled
            | ApiError::BodyTooLarge { .. }
            | ApiError::MethodNotAllowed
            | ApiError::NoRoute
            | ApiError::RateLimited { .. }
            | ApiError::StoreUnavailable
            | ApiError::ShuttingDown
            | ApiError::Internal => None,
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            ApiError::StoreUnavailable => Some(2),
            ApiError::ShuttingDown => Some(1),
            _ => None,
        }
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        Problem {
            type_uri: format!("{TYPE_PREFIX}{}", self.problem_name()),
            title: self.title().to_owned(),
            status: self.status_code().as_u16(),
            detail: self.to_string(),
            field: self.field_name(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidBody { .. }
            | ApiError::InvalidField { .. }
            | ApiError::InvalidSignature { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_)
            | ApiError::ReplayedNonce
            | ApiError::AdmissionRequired => StatusCode::UNAUTHORIZED,
            ApiError::AdmissionDenied(_)
            | ApiError::NotOwner(_)
            | ApiError::HandleMismatch { .. }
            | ApiError::NotTargeted => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_)
            | ApiError::AlreadyClaimed
            | ApiError::AlreadyConfirmed
            | ApiError::AlreadyDecided => StatusCode::CONFLICT,
            ApiError::PairingExpired
            | ApiError::ChallengeExpired
            | ApiError::ChallengeCancelled => StatusCode::GONE,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::StoreUnavailable | ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.content_type("application/problem+json");
        if let Some(seconds) = self.retry_after_secs() {
            response.insert_header(("Retry-After", seconds.max(1).to_string()));
        }
        response.body(serde_json::to_string(&self.problem()).expect("problems serialize"))
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(reason) => {
                tracing::warn!(%reason, "store unavailable");
                ApiError::StoreUnavailable
            }
            StoreError::Data(reason) => {
                tracing::error!(%reason, "store data error");
                ApiError::Internal
            }
        }
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
            | E::Empty { field }
            | E::InvalidKey { field }
            | E::WeakKey { field }
            | E::Invalid { field, .. } => ApiError::field(field, detail),
            E::BadSignature => ApiError::InvalidSignature {
                field: "sig".to_owned(),
                detail,
            },
            E::Expired { .. } | E::NotYetValid { .. } => ApiError::field("expires", detail),
            E::BadMac | E::OpenFailed | E::SealFailed | E::ContextJson(_) | E::Uri(_) => {
                ApiError::InvalidBody { detail }
            }
            E::HttpSig(error) => ApiError::Unauthenticated(error),
        }
    }
}
