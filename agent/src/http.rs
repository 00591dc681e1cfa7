//! The local API over HTTP: thin handlers (extract, call one `service` function, answer with an
//! `api` type), the one exhaustive mapping of errors to problem+json, the TCP bearer-token
//! check, and the OpenAPI document — made from the same route list the server registers
//! ([`routes`]), so a route cannot be served without being documented or the reverse.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{delete, get, post, web, HttpResponse, ResponseError};
use approvd_proto::wire::{Problem, PROBLEM_TYPE_PREFIX};
use approvd_proto::{Cid, DeviceId, PairingId, PublicKey};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::AppExt as _;

use crate::api::{
    AccountName, ApprovalRequest, CodeKind, CodeRequest, CodeResult, Devices, PairingConfirmed,
    PairingRequest, PairingStarted, PairingStatus, ProblemType, RecoveryCodes, RequestCreated,
    RequestStatus, WaitQuery, MAX_BODY,
};
use crate::service::{self, Service};

/// An error answer: the use case's, or one the HTTP layer itself gives.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Service(#[from] service::Error),
    #[error("{0}")]
    InvalidBody(String),
    #[error("{field}: {detail}")]
    InvalidField { field: &'static str, detail: String },
    /// A path id that does not parse names nothing: `what` is the resource.
    #[error("no such {what}")]
    NoSuch { what: &'static str },
    #[error("the request body is larger than {MAX_BODY} bytes")]
    BodyTooLarge,
    #[error("TCP callers must send `Authorization: Bearer <token from --token-file>`")]
    Unauthenticated,
    #[error("no such endpoint; see /openapi.json")]
    NoRoute,
}

impl ApiError {
    /// The problem type of every error — the one mapping, with no catch-all.
    pub fn problem_type(&self) -> ProblemType {
        use service::Error as S;
        match self {
            ApiError::Service(error) => match error {
                S::NotFound { .. } => ProblemType::NotFound,
                S::NoDevices(_) => ProblemType::NoDevices,
                S::TooManyPhones { .. } => ProblemType::TooManyPhones,
                S::WrongCode(_) => ProblemType::WrongCode,
                S::Conflict(_) => ProblemType::Conflict,
                S::RateLimited => ProblemType::RateLimited,
                S::Invalid(_) => ProblemType::InvalidField,
                S::State(_) => ProblemType::State,
                S::Relay(_) => ProblemType::Relay,
                S::ShuttingDown => ProblemType::Unavailable,
            },
            ApiError::InvalidBody(_) => ProblemType::InvalidBody,
            ApiError::InvalidField { .. } => ProblemType::InvalidField,
            ApiError::NoSuch { .. } => ProblemType::NotFound,
            ApiError::BodyTooLarge => ProblemType::BodyTooLarge,
            ApiError::Unauthenticated => ProblemType::Unauthenticated,
            ApiError::NoRoute => ProblemType::NoRoute,
        }
    }

    /// The field a 400 is about, when there is one.
    fn field(&self) -> Option<&'static str> {
        use service::Error as S;
        match self {
            ApiError::InvalidField { field, .. } => Some(field),
            ApiError::Service(S::Invalid(error)) => error.field(),
            ApiError::Service(
                S::NotFound { .. }
                | S::NoDevices(_)
                | S::TooManyPhones { .. }
                | S::WrongCode(_)
                | S::Conflict(_)
                | S::RateLimited
                | S::State(_)
                | S::Relay(_)
                | S::ShuttingDown,
            )
            | ApiError::InvalidBody(_)
            | ApiError::NoSuch { .. }
            | ApiError::BodyTooLarge
            | ApiError::Unauthenticated
            | ApiError::NoRoute => None,
        }
    }

    pub fn problem(&self) -> Problem {
        let kind = self.problem_type();
        Problem {
            type_uri: format!("{PROBLEM_TYPE_PREFIX}{}", kind.name()),
            title: kind.title().to_owned(),
            status: kind.status(),
            detail: self.to_string(),
            field: self.field().map(str::to_owned),
            instance: None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.problem_type().status()).unwrap_or(StatusCode::BAD_REQUEST)
    }

    fn error_response(&self) -> HttpResponse {
        let kind = self.problem_type();
        if kind == ProblemType::State {
            tracing::error!("{self}");
        }
        let mut response = HttpResponse::build(self.status_code());
        response.content_type("application/problem+json");
        if let Some(seconds) = kind.retry_after_secs() {
            response.insert_header(("Retry-After", seconds.to_string()));
        }
        response.json(self.problem())
    }
}

type Answer = Result<HttpResponse, ApiError>;

fn ok<T: serde::Serialize>(value: &T) -> Answer {
    Ok(HttpResponse::Ok().json(value))
}

fn created<T: serde::Serialize>(value: &T) -> Answer {
    Ok(HttpResponse::Created().json(value))
}

fn request_id(text: &str) -> Result<Cid, ApiError> {
    Cid::parse(text).map_err(|_| ApiError::NoSuch { what: "request" })
}

fn pairing_id(text: &str) -> Result<PairingId, ApiError> {
    PairingId::parse(text).map_err(|_| ApiError::NoSuch { what: "pairing" })
}

fn account(text: &str) -> Result<AccountName, ApiError> {
    AccountName::parse(text).map_err(|error| ApiError::InvalidField {
        field: "user",
        detail: error.to_string(),
    })
}

type Agent = web::Data<Service>;

/// Handle `POST /v1/pairings`.
#[utoipa::path(
    tag = "pairing",
    request_body = PairingRequest,
    responses((status = 201, description = "Show the QR code; poll the pairing's status", body = PairingStarted), Problems),
)]
#[post("/v1/pairings")]
async fn start_pairing(agent: Agent, body: web::Json<PairingRequest>) -> Answer {
    created(&agent.into_inner().start_pairing(&body).await?)
}

/// Handle `GET /v1/pairings/{id}`: waiting, claimed (ask for the phone's code), paired,
/// expired or failed.
#[utoipa::path(
    tag = "pairing",
    params(("id" = String, Path, description = "The pairing id")),
    responses((status = 200, body = PairingStatus), Problems),
)]
#[get("/v1/pairings/{id}")]
async fn pairing_status(agent: Agent, id: web::Path<String>) -> Answer {
    ok(&agent.pairing_status(&pairing_id(&id)?)?)
}

/// Handle `POST /v1/pairings/{id}/confirm`: the code the phone shows, typed by the user.
#[utoipa::path(
    tag = "pairing",
    params(("id" = String, Path, description = "The pairing id")),
    request_body = CodeRequest,
    responses((status = 200, description = "Paired (with recovery codes for an account's first phone)", body = PairingConfirmed), Problems),
)]
#[post("/v1/pairings/{id}/confirm")]
async fn confirm_pairing(
    agent: Agent,
    id: web::Path<String>,
    body: web::Json<CodeRequest>,
) -> Answer {
    ok(&agent.confirm_pairing(&pairing_id(&id)?, &body.code).await?)
}

/// Handle `POST /v1/pairings/{id}/reject`: the phone is not the user's; nothing is recorded.
#[utoipa::path(
    tag = "pairing",
    params(("id" = String, Path, description = "The pairing id")),
    responses((status = 200, body = PairingStatus), Problems),
)]
#[post("/v1/pairings/{id}/reject")]
async fn reject_pairing(agent: Agent, id: web::Path<String>) -> Answer {
    ok(&agent.reject_pairing(&pairing_id(&id)?)?)
}

/// Handle `POST /v1/requests`: ask an account's phones to approve.
#[utoipa::path(
    tag = "request",
    request_body = ApprovalRequest,
    responses((status = 201, description = "Sent: show the number; poll the outcome", body = RequestCreated), Problems),
)]
#[post("/v1/requests")]
async fn create_request(agent: Agent, body: web::Json<ApprovalRequest>) -> Answer {
    created(&agent.create_request(&body).await?)
}

/// Handle `GET /v1/requests/{id}`: the verified outcome (`?wait=N` holds up to 25 s).
#[utoipa::path(
    tag = "request",
    params(("id" = String, Path, description = "The request id"), WaitQuery),
    responses((status = 200, body = RequestStatus), Problems),
)]
#[get("/v1/requests/{id}")]
async fn request_status(
    agent: Agent,
    id: web::Path<String>,
    query: web::Query<WaitQuery>,
) -> Answer {
    ok(&agent
        .request_status(&request_id(&id)?, query.duration())
        .await?)
}

/// Handle `DELETE /v1/requests/{id}`: no answer counts from now on.
#[utoipa::path(
    tag = "request",
    params(("id" = String, Path, description = "The request id")),
    responses((status = 204, description = "Cancelled"), Problems),
)]
#[delete("/v1/requests/{id}")]
async fn cancel_request(agent: Agent, id: web::Path<String>) -> Answer {
    agent.cancel_request(&request_id(&id)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Handle `GET /v1/accounts/{user}/devices`.
#[utoipa::path(
    tag = "account",
    params(("user" = String, Path, description = "The account")),
    responses((status = 200, body = Devices), Problems),
)]
#[get("/v1/accounts/{user}/devices")]
async fn devices(agent: Agent, user: web::Path<String>) -> Answer {
    ok(&agent.devices(&account(&user)?)?)
}

/// Handle `DELETE /v1/accounts/{user}/devices/{device_id}`: no more requests to that phone;
/// its codes stop working.
#[utoipa::path(
    tag = "account",
    params(("user" = String, Path, description = "The account"), ("device_id" = String, Path, description = "The phone")),
    responses((status = 204, description = "Forgotten"), Problems),
)]
#[delete("/v1/accounts/{user}/devices/{device_id}")]
async fn remove_device(agent: Agent, path: web::Path<(String, String)>) -> Answer {
    let (user, device_id) = path.into_inner();
    let device_id = PublicKey::parse("device_id", &device_id)
        .map(DeviceId)
        .map_err(|_| ApiError::NoSuch { what: "device" })?;
    agent.remove_device(&account(&user)?, &device_id)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Handle `POST /v1/accounts/{user}/recovery-codes`: shown once; the old set stops working.
#[utoipa::path(
    tag = "account",
    params(("user" = String, Path, description = "The account")),
    responses((status = 201, body = RecoveryCodes), Problems),
)]
#[post("/v1/accounts/{user}/recovery-codes")]
async fn new_recovery_codes(agent: Agent, user: web::Path<String>) -> Answer {
    created(&agent.new_recovery_codes(&account(&user)?)?)
}

/// Handle `POST /v1/accounts/{user}/offline-code`.
#[utoipa::path(
    tag = "account",
    params(("user" = String, Path, description = "The account")),
    request_body = CodeRequest,
    responses((status = 200, body = CodeResult), Problems),
)]
#[post("/v1/accounts/{user}/offline-code")]
async fn offline_code(
    agent: Agent,
    user: web::Path<String>,
    body: web::Json<CodeRequest>,
) -> Answer {
    ok(&agent.check_code(&account(&user)?, CodeKind::Offline, &body.code)?)
}

/// Handle `POST /v1/accounts/{user}/recovery-code`: each works once.
#[utoipa::path(
    tag = "account",
    params(("user" = String, Path, description = "The account")),
    request_body = CodeRequest,
    responses((status = 200, body = CodeResult), Problems),
)]
#[post("/v1/accounts/{user}/recovery-code")]
async fn recovery_code(
    agent: Agent,
    user: web::Path<String>,
    body: web::Json<CodeRequest>,
) -> Answer {
    ok(&agent.check_code(&account(&user)?, CodeKind::Recovery, &body.code)?)
}

/// The OpenAPI document, computed once (`GET /openapi.json`).
#[derive(Debug)]
struct Document(serde_json::Value);

/// Handle `GET /openapi.json`: this document.
#[utoipa::path(tag = "meta", responses((status = 200, description = "The OpenAPI 3.1 document")))]
#[get("/openapi.json")]
async fn openapi(document: web::Data<Document>) -> Answer {
    ok(&document.0)
}

/// Every route: the one list both the server and the OpenAPI document are made from.
pub fn routes(config: &mut ServiceConfig<'_>) {
    config
        .service(start_pairing)
        .service(pairing_status)
        .service(confirm_pairing)
        .service(reject_pairing)
        .service(create_request)
        .service(request_status)
        .service(cancel_request)
        .service(devices)
        .service(remove_device)
        .service(new_recovery_codes)
        .service(offline_code)
        .service(recovery_code)
        .service(openapi);
}

/// The errors every route may answer (application/problem+json), for the document.
#[derive(Debug, utoipa::IntoResponses)]
#[allow(dead_code)]
enum Problems {
    /// Malformed body, an invalid field, or a wrong pairing code.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// A TCP caller without the bearer token.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(Problem),
    /// No such request, pairing, device or endpoint; or the account has no phone.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// Too many phones, or not in a state that allows this.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// The body is larger than 16 KiB.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The relay refuses more requests to these phones for now; see Retry-After.
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(Problem),
    /// The agent's state cannot be read or written.
    #[response(status = 500, content_type = "application/problem+json")]
    State(Problem),
    /// The relay cannot be reached or refused the call.
    #[response(status = 502, content_type = "application/problem+json")]
    Relay(Problem),
    /// The agent is shutting down; see Retry-After.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// The OpenAPI 3.1 document of [`routes`].
pub fn document() -> utoipa::openapi::OpenApi {
    let mut base = utoipa::openapi::OpenApiBuilder::new()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title("approvd agent")
                .description(Some(
                    "The NAS agent's local approval API: a Unix socket (its mode decides who \
                     may call), or loopback TCP with a bearer token. Errors are \
                     application/problem+json (RFC 9457).",
                ))
                .version(env!("CARGO_PKG_VERSION"))
                .build(),
        )
        .build();
    base.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("TCP callers only: the token of `--token-file`."))
                    .build(),
            ),
        );
    actix_web::App::new()
        .into_utoipa_app()
        .openapi(base)
        .configure(routes)
        .split_for_parts()
        .1
}

/// The app: the routes, the token check for TCP callers, problem+json for every refusal.
pub fn app(
    service: web::Data<Service>,
    token: Option<Arc<str>>,
    document: Arc<serde_json::Value>,
) -> actix_web::App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let (app, _) = actix_web::App::new()
        .into_utoipa_app()
        .configure(routes)
        .split_for_parts();
    app.app_data(service)
        .app_data(web::Data::new(Document((*document).clone())))
        .app_data(web::Data::new(Token(token)))
        .app_data(
            web::JsonConfig::default()
                .limit(MAX_BODY)
                .error_handler(|error, _| body_error(&error).into()),
        )
        .app_data(web::PathConfig::default().error_handler(|error, _| {
            ApiError::InvalidField {
                field: "path",
                detail: error.to_string(),
            }
            .into()
        }))
        .app_data(web::QueryConfig::default().error_handler(|error, _| {
            ApiError::InvalidField {
                field: "wait",
                detail: error.to_string(),
            }
            .into()
        }))
        .wrap(actix_web::middleware::from_fn(require_token))
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::NoRoute)
        }))
}

fn body_error(error: &actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::JsonPayloadError as E;
    match error {
        E::Overflow { .. } | E::OverflowKnownLength { .. } => ApiError::BodyTooLarge,
        other => ApiError::InvalidBody(other.to_string()),
    }
}

/// The bearer token TCP callers must present (Unix-socket callers are vouched for by the
/// socket's mode); `None` when the agent serves no TCP.
#[derive(Debug)]
struct Token(Option<Arc<str>>);

/// TCP callers (they have a peer address; Unix-socket callers do not) must present the token.
async fn require_token(
    request: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    use subtle::ConstantTimeEq as _;
    if request.peer_addr().is_some() {
        let expected = request
            .app_data::<web::Data<Token>>()
            .and_then(|token| token.0.clone());
        let presented = request
            .headers()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        let allowed = match (expected, presented) {
            (Some(expected), Some(presented)) => {
                bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
            }
            _ => false,
        };
        if !allowed {
            return Ok(request.error_response(ApiError::Unauthenticated));
        }
    }
    Ok(next.call(request).await?.map_into_boxed_body())
}
