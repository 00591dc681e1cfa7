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

/// One row of [`ApiError::row`]'s table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub status: StatusCode,
    pub name: &'static str,
    pub title: &'static str,
    /// The offending field, for validation errors.
    pub field: Option<String>,
    /// `Retry-After` seconds, for 429 and 503.
    pub retry_after_secs: Option<u64>,
}

/// The field an authentication failure is about.
fn signature_field(error: &HttpSigError) -> &'static str {
    match error {
        HttpSigError::MissingHeader(header) | HttpSigError::Malformed { header, .. } => header,
        HttpSigError::DateSkew { .. } => "Date",
        HttpSigError::Label
        | HttpSigError::MissingComponent(_)
        | HttpSigError::UnsupportedComponent(_)
        | HttpSigError::MissingField(_)
        | HttpSigError::MissingParam(_)
        | HttpSigError::UnknownParam(_)
        | HttpSigError::Alg
        | HttpSigError::Tag
        | HttpSigError::Skew { .. }
        | HttpSigError::Expired
        | HttpSigError::Lifetime { .. }
        | HttpSigError::Nonce
        | HttpSigError::KeyId(_)
        | HttpSigError::DigestMismatch
        | HttpSigError::DigestAlgorithm
        | HttpSigError::BadSignature => "Signature-Input",
    }
}

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
    /// The request head is not valid HTTP/1.1 (answered by `parse_errors` for the parser).
    #[error(
        "the request is not valid HTTP/1.1 (request line, header syntax, Content-Length with \
         chunked, NUL or folded header lines); the connection is closed"
    )]
    MalformedRequest,
    /// The request head is larger than the relay accepts (`parse_errors`).
    #[error("the request head is larger than the relay accepts; the connection is closed")]
    HeadersTooLarge,
    /// The request head did not arrive in time (`parse_errors`).
    #[error(
        "the request head did not arrive within the relay's deadline; the connection is closed"
    )]
    HeadTimeout,
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

    /// The one table: what the API answers for each error — status, problem name (after
    /// [`PROBLEM_TYPE_PREFIX`]), title, the offending field, `Retry-After`. Every variant by
    /// name, no catch-all; `parse_errors` reads the rows of the parser's refusals from here.
    pub fn row(&self) -> Row {
        use service::Error as S;
        use StatusCode as C;
        let row = |status, name, title| Row {
            status,
            name,
            title,
            field: None,
            retry_after_secs: None,
        };
        match self {
            ApiError::Service(error) => match error {
                S::InvalidField { field, .. } => Row {
                    field: Some(field.clone()),
                    ..row(C::BAD_REQUEST, "invalid-field", "Invalid field")
                },
                S::InvalidSignature { field, .. } => Row {
                    field: Some(field.clone()),
                    ..row(
                        C::BAD_REQUEST,
                        "invalid-signature",
                        "Signature does not verify",
                    )
                },
                S::NotOwner(_) => row(C::FORBIDDEN, "not-owner", "Not yours"),
                S::HandleMismatch { field } => Row {
                    field: Some(field.clone()),
                    ..row(C::FORBIDDEN, "handle-mismatch", "Push handle mismatch")
                },
                S::NotTargeted => row(C::FORBIDDEN, "not-targeted", "Device not targeted"),
                S::NotFound(_) => row(C::NOT_FOUND, "not-found", "Not found"),
                S::Conflict(_) => row(C::CONFLICT, "conflict", "Conflict"),
                S::AlreadyClaimed => row(C::CONFLICT, "already-claimed", "Already claimed"),
                S::AlreadyConfirmed => row(C::CONFLICT, "already-confirmed", "Already confirmed"),
                S::AlreadyDecided => row(C::CONFLICT, "already-decided", "Already decided"),
                S::PairingExpired => row(C::GONE, "pairing-expired", "Pairing expired"),
                S::ChallengeExpired => row(C::GONE, "challenge-expired", "Challenge expired"),
                S::ChallengeCancelled => row(C::GONE, "challenge-cancelled", "Challenge cancelled"),
                S::RateLimited {
                    retry_after_secs, ..
                } => Row {
                    retry_after_secs: Some(*retry_after_secs),
                    ..row(C::TOO_MANY_REQUESTS, "rate-limited", "Rate limited")
                },
                S::ShuttingDown => Row {
                    retry_after_secs: Some(1),
                    ..row(C::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable")
                },
                S::Store(StoreError::Unavailable(_)) => Row {
                    retry_after_secs: Some(2),
                    ..row(C::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable")
                },
                S::Store(StoreError::Data(_)) => {
                    row(C::INTERNAL_SERVER_ERROR, "internal", "Internal error")
                }
            },
            ApiError::InvalidBody { .. } => {
                row(C::BAD_REQUEST, "invalid-body", "Malformed request body")
            }
            ApiError::InvalidField { field, .. } => Row {
                field: Some(field.clone()),
                ..row(C::BAD_REQUEST, "invalid-field", "Invalid field")
            },
            ApiError::Unauthenticated(error) => Row {
                field: Some(signature_field(error).to_owned()),
                ..row(
                    C::UNAUTHORIZED,
                    "unauthenticated",
                    "Request authentication failed",
                )
            },
            ApiError::ReplayedNonce => row(C::UNAUTHORIZED, "replayed-nonce", "Replayed request"),
            ApiError::AdmissionRequired => row(
                C::UNAUTHORIZED,
                "admission-required",
                "Admission token required",
            ),
            ApiError::AdmissionDenied(_) => {
                row(C::FORBIDDEN, "admission-denied", "Admission token refused")
            }
            ApiError::BodyTooLarge { .. } => {
                row(C::PAYLOAD_TOO_LARGE, "body-too-large", "Body too large")
            }
            ApiError::RequestTimeout { .. } | ApiError::HeadTimeout => {
                row(C::REQUEST_TIMEOUT, "request-timeout", "Request timeout")
            }
            ApiError::MalformedRequest => row(
                C::BAD_REQUEST,
                "malformed-request",
                "Malformed HTTP request",
            ),
            ApiError::HeadersTooLarge => row(
                C::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers-too-large",
                "Request header fields too large",
            ),
            ApiError::MethodNotAllowed { .. } => row(
                C::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            ApiError::NoRoute => row(C::NOT_FOUND, "no-route", "No such endpoint"),
            ApiError::Internal => row(C::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }

    /// The stable problem name (after [`PROBLEM_TYPE_PREFIX`]).
    pub fn problem_name(&self) -> &'static str {
        self.row().name
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        let row = self.row();
        Problem {
            type_uri: format!("{PROBLEM_TYPE_PREFIX}{}", row.name),
            title: row.title.to_owned(),
            status: row.status.as_u16(),
            detail: self.to_string(),
            field: row.field,
            instance: None,
        }
    }

    /// The problem response for the request with id `request_id` (named as its `instance`).
    pub fn response_for(&self, request_id: &str) -> HttpResponse {
        self.respond(Some(request_id))
    }

    fn respond(&self, request_id: Option<&str>) -> HttpResponse {
        let row = self.row();
        let mut response = HttpResponse::build(row.status);
        response.content_type("application/problem+json");
        if let Some(seconds) = row.retry_after_secs {
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
        self.row().status
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
