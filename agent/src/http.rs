//! The local API over HTTP: thin handlers (extract, call one `service` function, answer with an
//! `api` type), the one exhaustive mapping of errors to problem+json, the TCP bearer-token
//! check, and the OpenAPI document — made from the same route list the server registers
//! ([`routes`]), so a route cannot be served without being documented or the reverse.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{delete, get, post, put, web, HttpResponse, ResponseError};
use approvd_proto::wire::{Problem, PROBLEM_TYPE_PREFIX};
use approvd_proto::{Cid, DeviceId, PairingId, PublicKey};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::AppExt as _;

use crate::access::Access;
use crate::api::{
    AccountName, AccountPolicy, ApprovalForChange, ApprovalRequest, Authorisation, CodeRequest,
    CodeResult, Devices, PairingConfirmed, PairingRequest, PairingStarted, PairingStatus,
    ProblemType, Purpose, RecoveryCodes, RequestCreated, RequestStatus, WaitQuery, MAX_BODY,
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
    #[error(
        "TCP callers must send `Authorization: Bearer <token>` (of --token-file for login, \
         --admin-token-file for admin)"
    )]
    Unauthenticated,
    /// The caller's capability does not reach the route, or the socket refuses its uid.
    #[error("{0}")]
    NotAllowed(String),
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
                S::TooManyPending(_) => ProblemType::TooManyPending,
                S::CoolingDown { .. } => ProblemType::AccountCoolingDown,
                S::Invalid(_) => ProblemType::InvalidField,
                S::State(_) => ProblemType::State,
                S::Busy(_) => ProblemType::StateBusy,
                S::Relay(_) | S::RelayPoll(_) => ProblemType::Relay,
                S::ShuttingDown => ProblemType::Unavailable,
                S::ApprovalRequired(_) => ProblemType::ApprovalRequired,
            },
            ApiError::InvalidBody(_) => ProblemType::InvalidBody,
            ApiError::InvalidField { .. } => ProblemType::InvalidField,
            ApiError::NoSuch { .. } => ProblemType::NotFound,
            ApiError::BodyTooLarge => ProblemType::BodyTooLarge,
            ApiError::Unauthenticated => ProblemType::Unauthenticated,
            ApiError::NotAllowed(_) => ProblemType::NotAllowed,
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
                | S::TooManyPending(_)
                | S::CoolingDown { .. }
                | S::State(_)
                | S::Busy(_)
                | S::Relay(_)
                | S::RelayPoll(_)
                | S::ShuttingDown
                | S::ApprovalRequired(_),
            )
            | ApiError::InvalidBody(_)
            | ApiError::NoSuch { .. }
            | ApiError::BodyTooLarge
            | ApiError::Unauthenticated
            | ApiError::NotAllowed(_)
            | ApiError::NoRoute => None,
        }
    }

    /// `Retry-After`: the type's, or the time left for a cool-down.
    fn retry_after_secs(&self) -> Option<u64> {
        if let ApiError::Service(service::Error::CoolingDown { until, .. }) = self {
            return Some(
                until
                    .saturating_sub(approvd_client::transport::unix_now())
                    .max(1),
            );
        }
        self.problem_type().retry_after_secs()
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
        if let Some(seconds) = self.retry_after_secs() {
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
    let agent = agent.into_inner();
    agent
        .authorise(&body.user, Purpose::Pair, &body.authorisation())
        .await?;
    created(&agent.start_pairing(&body).await?)
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

/// Handle `POST /v1/requests/{id}/code`: the app's offline code (digits) or a recovery code
/// typed instead of answering on the phone. The request must be open (pending, or expired less
/// than 5 minutes ago) and takes 3 wrong codes at most; an accepted code ends it.
#[utoipa::path(
    tag = "request",
    params(("id" = String, Path, description = "The request id")),
    request_body = CodeRequest,
    responses((status = 200, body = CodeResult), Problems),
)]
#[post("/v1/requests/{id}/code")]
async fn request_code(agent: Agent, id: web::Path<String>, body: web::Json<CodeRequest>) -> Answer {
    ok(&agent
        .check_request_code(&request_id(&id)?, &body.code)
        .await?)
}

/// Handle `GET /v1/accounts/{user}/devices`.
#[utoipa::path(
    tag = "account",
    params(("user" = String, Path, description = "The account")),
    responses((status = 200, body = Devices), Problems),
)]
#[get("/v1/accounts/{user}/devices")]
async fn list_devices(agent: Agent, user: web::Path<String>) -> Answer {
    ok(&agent.devices(&account(&user)?).await?)
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
    agent.remove_device(&account(&user)?, &device_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Handle `GET /v1/accounts/{user}/policy`: the account's approval policy.
#[utoipa::path(
    tag = "account",
    params(("user" = String, Path, description = "The account")),
    responses((status = 200, body = AccountPolicy), Problems),
)]
#[get("/v1/accounts/{user}/policy")]
async fn get_policy(agent: Agent, user: web::Path<String>) -> Answer {
    ok(&agent.policy(&account(&user)?).await?)
}

/// Handle `PUT /v1/accounts/{user}/policy`: e.g. require user-verified approvals (I-9).
#[utoipa::path(
    tag = "account",
    params(("user" = String, Path, description = "The account")),
    request_body = AccountPolicy,
    responses((status = 200, body = AccountPolicy), Problems),
)]
#[put("/v1/accounts/{user}/policy")]
async fn set_policy(
    agent: Agent,
    user: web::Path<String>,
    body: web::Json<AccountPolicy>,
) -> Answer {
    ok(&agent.set_policy(&account(&user)?, &body).await?)
}

/// Handle `POST /v1/accounts/{user}/recovery-codes`: shown once; the old set stops working.
/// Once the account has a phone, the body must approve it (`approval` or `recovery_code`).
#[utoipa::path(
    tag = "account",
    params(("user" = String, Path, description = "The account")),
    request_body(content = Authorisation, description = "Optional until the account has a phone"),
    responses((status = 201, body = RecoveryCodes), Problems),
)]
#[post("/v1/accounts/{user}/recovery-codes")]
async fn new_recovery_codes(agent: Agent, user: web::Path<String>, body: web::Bytes) -> Answer {
    let account = account(&user)?;
    let given: Authorisation = if body.iter().all(u8::is_ascii_whitespace) {
        Authorisation::default()
    } else if body.len() > MAX_BODY {
        return Err(ApiError::BodyTooLarge);
    } else {
        serde_json::from_slice(&body).map_err(|error| ApiError::InvalidBody(error.to_string()))?
    };
    let agent = agent.into_inner();
    agent
        .authorise(&account, Purpose::RecoveryCodes, &given)
        .await?;
    created(&agent.new_recovery_codes(&account).await?)
}

/// Handle `POST /v1/accounts/{user}/approvals`: ask the account's phones to approve a change
/// (pairing another phone, new recovery codes); poll the request, then give it as `approval`.
#[utoipa::path(
    tag = "account",
    params(("user" = String, Path, description = "The account")),
    request_body = ApprovalForChange,
    responses((status = 201, description = "Sent: show the number; poll the request", body = RequestCreated), Problems),
)]
#[post("/v1/accounts/{user}/approvals")]
async fn ask_approval(
    agent: Agent,
    user: web::Path<String>,
    body: web::Json<ApprovalForChange>,
) -> Answer {
    created(&agent.ask_approval(&account(&user)?, body.purpose).await?)
}

/// The OpenAPI document, computed once (`GET /openapi.json`).
#[derive(Debug)]
struct Document(Arc<serde_json::Value>);

/// Handle `GET /openapi.json`: this document.
#[utoipa::path(tag = "meta", responses((status = 200, description = "The OpenAPI 3.1 document")))]
#[get("/openapi.json")]
async fn get_openapi(document: web::Data<Document>) -> Answer {
    ok(&*document.0)
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
        .service(request_code)
        .service(list_devices)
        .service(remove_device)
        .service(get_policy)
        .service(set_policy)
        .service(new_recovery_codes)
        .service(ask_approval)
        .service(get_openapi);
}

/// The errors every route may answer (application/problem+json), for the document.
#[derive(Debug, utoipa::IntoResponses)]
#[allow(dead_code)]
enum Problems {
    /// Malformed body, an invalid field, or a wrong pairing code.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// A TCP caller without a bearer token.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(Problem),
    /// The caller's capability (login or admin) does not reach this route, or the socket
    /// refuses its uid; or the account has a phone and the change is not approved.
    #[response(status = 403, content_type = "application/problem+json")]
    NotAllowed(Problem),
    /// No such request, pairing, device or endpoint; or the account has no phone.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// Too many phones, or not in a state that allows this.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// The body is larger than 16 KiB.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The relay refuses more requests to these phones for now, or the account has too many
    /// pending; see Retry-After.
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(Problem),
    /// The agent's state cannot be read or written.
    #[response(status = 500, content_type = "application/problem+json")]
    State(Problem),
    /// The relay cannot be reached or refused the call.
    #[response(status = 502, content_type = "application/problem+json")]
    Relay(Problem),
    /// The agent is shutting down, or its state is locked by another process; see
    /// Retry-After.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// [`document`] as JSON, as `GET /openapi.json` serves it (unsigned formats named as the
/// OpenAPI format registry names them).
pub fn served_document() -> serde_json::Value {
    let mut value = serde_json::to_value(document()).expect("the OpenAPI document serializes");
    approvd_proto::openapi::registry_formats(&mut value);
    value
}

/// The OpenAPI 3.1 document of [`routes`].
pub fn document() -> utoipa::openapi::OpenApi {
    let mut base = utoipa::openapi::OpenApiBuilder::new()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title("approvd agent")
                .description(Some(
                    "The NAS agent's local approval API. Two capabilities: login (sign-in \
                     requests, the codes typed into them, an account's phones) and admin \
                     (everything: pairings, recovery codes, removing phones; once an account \
                     has a phone, pairing another or new recovery codes need an approval on \
                     it). A caller holds one by the Unix socket it connects to (agent.sock: \
                     admin; login.sock: login; each checks the caller's uid) or, over \
                     loopback TCP, by its bearer token. Errors are application/problem+json \
                     (RFC 9457).",
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
                    .description(Some(
                        "TCP callers only: the token of `--token-file` (login) or \
                         `--admin-token-file` (admin).",
                    ))
                    .build(),
            ),
        );
    let mut document = actix_web::App::new()
        .into_utoipa_app()
        .openapi(base)
        .configure(routes)
        .split_for_parts()
        .1;
    // The problem answers name `Problem`, which no route body brings along.
    document
        .components
        .get_or_insert_with(Default::default)
        .schemas
        .insert(
            "Problem".to_owned(),
            <Problem as utoipa::PartialSchema>::schema(),
        );
    document
}

/// The app: the routes, who may call which ([`crate::access::authorize`]), problem+json for
/// every refusal.
pub fn app(
    service: web::Data<Service>,
    access: web::Data<Access>,
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
        .app_data(web::Data::new(Document(document)))
        .app_data(access)
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
        .wrap(actix_web::middleware::from_fn(crate::access::authorize))
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::NoRoute)
        }))
}

/// The JSON extractor's refusal as ours. actix's error enum is `#[non_exhaustive]`, so every
/// kind but the size limit is a malformed body.
fn body_error(error: &actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::JsonPayloadError as E;
    match error {
        E::Overflow { .. } | E::OverflowKnownLength { .. } => ApiError::BodyTooLarge,
        other => ApiError::InvalidBody(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use approvd_proto::wire::{Delivery, TargetDelivery};

    use super::*;
    use crate::api::{Decider, Device, PairingState};

    /// A device id (a distinct fresh key per call; `_n` only tells them apart in the code).
    fn key(_n: u8) -> DeviceId {
        DeviceId(PublicKey::from(&approvd_proto::generate_signing_key()))
    }

    /// A validator for the schema the document gives `pointer` (a JSON pointer into it), with
    /// the document's components in reach of its `$ref`s.
    fn validator(document: &serde_json::Value, pointer: &str) -> jsonschema::Validator {
        let schema = document
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{pointer}"));
        let mut root = schema.clone();
        root["components"] = document["components"].clone();
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&root)
            .unwrap_or_else(|error| panic!("{pointer}: {error}"))
    }

    /// `value` serialized fits the schema at `pointer`, and reads back as itself.
    fn round_trips<T>(document: &serde_json::Value, pointer: &str, value: &T)
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let json = serde_json::to_value(value).expect("serializes");
        let validator = validator(document, pointer);
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{pointer}: {json} does not fit: {errors:?}"
        );
        let back: T = serde_json::from_value(json.clone()).expect("reads back");
        assert_eq!(&back, value, "{json}");
    }

    fn answer(method: &str, path: &str, status: &str) -> String {
        format!(
            "/paths/{}/{method}/responses/{status}/content/application~1json/schema",
            path.replace('~', "~0").replace('/', "~1")
        )
    }

    fn body(method: &str, path: &str) -> String {
        format!(
            "/paths/{}/{method}/requestBody/content/application~1json/schema",
            path.replace('~', "~0").replace('/', "~1")
        )
    }

    #[test]
    fn every_answer_and_body_round_trips_against_the_document() {
        let document = serde_json::to_value(document()).expect("document");
        let alice = AccountName::parse("alice").expect("name");
        let decider = Decider {
            device_id: key(1),
            device_name: Some("Alice's phone".to_owned()),
        };
        let statuses = [
            RequestStatus::Pending,
            RequestStatus::Approved(decider.clone()),
            RequestStatus::Denied(Decider {
                device_name: None,
                ..decider.clone()
            }),
            RequestStatus::WrongNumber(decider.clone()),
            RequestStatus::Fraud(decider.clone()),
            RequestStatus::Expired,
            RequestStatus::Cancelled,
            RequestStatus::Invalid {
                reason: "bad signature".to_owned(),
            },
        ];
        for status in &statuses {
            round_trips(
                &document,
                &answer("get", "/v1/requests/{id}", "200"),
                status,
            );
        }
        let created = RequestCreated {
            request_id: Cid([7; 16]),
            number: Some("042".to_owned()),
            expires: 1_800_000_000,
            deliveries: vec![
                TargetDelivery {
                    device_id: key(1),
                    delivery: Delivery::Pushed,
                },
                TargetDelivery {
                    device_id: key(2),
                    delivery: Delivery::RateLimited,
                },
            ],
            relay_error: None,
        };
        round_trips(&document, &answer("post", "/v1/requests", "201"), &created);
        round_trips(
            &document,
            &answer("post", "/v1/requests", "201"),
            &RequestCreated {
                number: None,
                deliveries: Vec::new(),
                ..created.clone()
            },
        );
        round_trips(
            &document,
            &answer("post", "/v1/requests", "201"),
            &RequestCreated {
                number: None,
                deliveries: Vec::new(),
                relay_error: Some("network: connection refused".to_owned()),
                ..created
            },
        );
        let states = [
            PairingState::Waiting,
            PairingState::Claimed {
                device_name: "Alice's phone".to_owned(),
                platform: "ios".to_owned(),
            },
            PairingState::Paired {
                device_id: key(1),
                device_name: "Alice's phone".to_owned(),
            },
            PairingState::Expired,
            PairingState::Failed {
                reason: "rejected".to_owned(),
            },
        ];
        for state in states {
            let status = PairingStatus {
                user: alice.clone(),
                state,
            };
            round_trips(
                &document,
                &answer("get", "/v1/pairings/{id}", "200"),
                &status,
            );
            round_trips(
                &document,
                &answer("post", "/v1/pairings/{id}/reject", "200"),
                &status,
            );
        }
        for recovery_codes in [None, Some(vec!["abcde-fghjk".to_owned()])] {
            let confirmed = PairingConfirmed {
                pairing: PairingStatus {
                    user: alice.clone(),
                    state: PairingState::Paired {
                        device_id: key(1),
                        device_name: "Alice's phone".to_owned(),
                    },
                },
                recovery_codes,
            };
            round_trips(
                &document,
                &answer("post", "/v1/pairings/{id}/confirm", "200"),
                &confirmed,
            );
        }
        round_trips(
            &document,
            &answer("post", "/v1/pairings", "201"),
            &PairingStarted {
                pairing_id: PairingId([3; 16]),
                uri: "approvd://pair?v=1".to_owned(),
                qr_svg: "<svg/>".to_owned(),
                expires_at: 1_800_000_000,
            },
        );
        let devices = Devices {
            devices: vec![Device {
                device_id: key(1),
                name: "Alice's phone".to_owned(),
                platform: "ios".to_owned(),
                push_gone: false,
                muted_until: Some(1_800_000_000),
            }],
        };
        round_trips(
            &document,
            &answer("get", "/v1/accounts/{user}/devices", "200"),
            &devices,
        );
        round_trips(
            &document,
            &answer("post", "/v1/accounts/{user}/recovery-codes", "201"),
            &RecoveryCodes {
                recovery_codes: vec!["abcde-fghjk".to_owned()],
            },
        );
        for result in [
            CodeResult::Accepted {
                device_id: Some(key(1)),
            },
            CodeResult::Accepted { device_id: None },
            CodeResult::Rejected { failures: 3 },
            CodeResult::LockedOut {
                locked_until: 1_800_000_000,
            },
        ] {
            round_trips(
                &document,
                &answer("post", "/v1/requests/{id}/code", "200"),
                &result,
            );
        }
        let problem = ApiError::Service(service::Error::NoDevices(alice.clone())).problem();
        round_trips(
            &document,
            "/paths/~1v1~1requests/post/responses/404/content/application~1problem+json/schema",
            &problem,
        );

        // Request bodies, as small and as full as they come.
        let full = ApprovalRequest {
            client_ip: Some("203.0.113.7".to_owned()),
            user_agent: Some("Firefox".to_owned()),
            location: Some("Berlin, DE".to_owned()),
            kind: Some(approvd_proto::context::LoginKind::Action),
            action: Some("Delete the share".to_owned()),
            number_matching: true,
            devices: vec![key(1)],
            ..ApprovalRequest::sign_in(alice.clone())
        };
        round_trips(&document, &body("post", "/v1/requests"), &full);
        round_trips(
            &document,
            &body("post", "/v1/requests"),
            &ApprovalRequest::sign_in(alice.clone()),
        );
        round_trips(
            &document,
            &body("post", "/v1/pairings"),
            &PairingRequest {
                user: alice.clone(),
                ttl_secs: 120,
                approval: None,
                recovery_code: None,
            },
        );
        round_trips(
            &document,
            &body("post", "/v1/pairings"),
            &PairingRequest {
                user: alice.clone(),
                ttl_secs: 120,
                approval: Some(Cid([9; 16])),
                recovery_code: Some("abcde-fghjk".to_owned()),
            },
        );
        round_trips(
            &document,
            &body("post", "/v1/accounts/{user}/approvals"),
            &ApprovalForChange {
                purpose: Purpose::RecoveryCodes,
            },
        );
        round_trips(
            &document,
            &body("post", "/v1/accounts/{user}/recovery-codes"),
            &Authorisation {
                approval: Some(Cid([9; 16])),
                recovery_code: None,
            },
        );
        round_trips(
            &document,
            &body("post", "/v1/pairings/{id}/confirm"),
            &CodeRequest {
                code: "123456".to_owned(),
            },
        );
    }

    #[test]
    fn the_document_refuses_what_the_types_refuse() {
        let document = serde_json::to_value(document()).expect("document");
        let status = validator(&document, &answer("get", "/v1/requests/{id}", "200"));
        assert!(status.is_valid(&serde_json::json!({"status": "pending"})));
        for wrong in [
            serde_json::json!({"status": "approved_maybe"}),
            serde_json::json!({"status": "approved"}),
            serde_json::json!({"status": "denied", "device_id": 7}),
            serde_json::json!({}),
        ] {
            assert!(!status.is_valid(&wrong), "{wrong}");
            assert!(serde_json::from_value::<RequestStatus>(wrong).is_err());
        }
        let request = validator(&document, &body("post", "/v1/requests"));
        for wrong in [
            serde_json::json!({}),
            serde_json::json!({"user": ""}),
            serde_json::json!({"user": "alice", "usr": "alice"}),
            serde_json::json!({"user": "alice", "lifetime_secs": -1}),
        ] {
            assert!(!request.is_valid(&wrong), "{wrong}");
            assert!(serde_json::from_value::<ApprovalRequest>(wrong).is_err());
        }
    }

    /// Every `$ref` in `value`.
    fn refs<'v>(value: &'v serde_json::Value, found: &mut Vec<&'v str>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(target)) = map.get("$ref") {
                    found.push(target);
                }
                map.values().for_each(|value| refs(value, found));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|value| refs(value, found)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_in_the_document_resolves() {
        let document = serde_json::to_value(document()).expect("document");
        let mut found = Vec::new();
        refs(&document, &mut found);
        assert!(found.len() > 20, "{found:?}");
        for target in found {
            let pointer = target.strip_prefix('#').expect("a local reference");
            assert!(document.pointer(pointer).is_some(), "{target} is dangling");
        }
    }

    #[test]
    fn the_document_lists_every_route_the_app_serves() {
        let document = serde_json::to_value(document()).expect("document");
        let mut listed: Vec<String> = document["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("methods")
                    .keys()
                    .map(move |method| format!("{} {path}", method.to_uppercase()))
            })
            .collect();
        listed.sort();
        assert_eq!(
            listed,
            [
                "DELETE /v1/accounts/{user}/devices/{device_id}",
                "DELETE /v1/requests/{id}",
                "GET /openapi.json",
                "GET /v1/accounts/{user}/devices",
                "GET /v1/accounts/{user}/policy",
                "GET /v1/pairings/{id}",
                "GET /v1/requests/{id}",
                "POST /v1/accounts/{user}/approvals",
                "POST /v1/accounts/{user}/recovery-codes",
                "POST /v1/pairings",
                "POST /v1/pairings/{id}/confirm",
                "POST /v1/pairings/{id}/reject",
                "POST /v1/requests",
                "POST /v1/requests/{id}/code",
                "PUT /v1/accounts/{user}/policy",
            ]
        );
    }

    #[test]
    fn every_error_maps_to_a_problem_of_its_status() {
        let alice = AccountName::parse("alice").expect("name");
        let errors = [
            ApiError::Service(service::Error::NotFound { what: "request" }),
            ApiError::Service(service::Error::NoDevices(alice.clone())),
            ApiError::Service(service::Error::TooManyPhones {
                account: alice,
                max: 2,
            }),
            ApiError::Service(service::Error::WrongCode("wrong".to_owned())),
            ApiError::Service(service::Error::Conflict("no")),
            ApiError::Service(service::Error::RateLimited),
            ApiError::Service(service::Error::Invalid(approvd_proto::Error::Empty {
                field: "service",
            })),
            ApiError::Service(service::Error::ShuttingDown),
            ApiError::InvalidBody("not JSON".to_owned()),
            ApiError::InvalidField {
                field: "wait",
                detail: "not a number".to_owned(),
            },
            ApiError::NoSuch { what: "pairing" },
            ApiError::BodyTooLarge,
            ApiError::Unauthenticated,
            ApiError::NotAllowed("login may not pair".to_owned()),
            ApiError::Service(service::Error::ApprovalRequired("approve it".to_owned())),
            ApiError::NoRoute,
        ];
        for error in errors {
            let problem = error.problem();
            let response = error.error_response();
            assert_eq!(response.status().as_u16(), problem.status, "{error:?}");
            assert_eq!(ProblemType::of(&problem), Some(error.problem_type()));
            assert!(!problem.detail.is_empty());
            let retry = response.headers().get("retry-after").is_some();
            assert_eq!(
                retry,
                error.problem_type().retry_after_secs().is_some(),
                "{error:?}"
            );
        }
        let field = ApiError::Service(service::Error::Invalid(approvd_proto::Error::Empty {
            field: "service",
        }));
        assert_eq!(field.problem().field.as_deref(), Some("service"));
    }
}
