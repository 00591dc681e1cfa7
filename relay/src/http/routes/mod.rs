//! The route table: every endpoint's method, path and handler in one list (the OpenAPI document
//! is checked against it), and the parsing of path segments. Handlers are thin: they take a
//! verified caller, parsed body and query from `auth`, call one `service` use case, and return
//! its typed answer or an `ApiError`.

pub mod challenges;
pub mod devices;
pub mod forward;
pub mod health;
pub mod inbox;
pub mod mailbox;
pub mod pairings;
pub mod webpush;

use actix_web::{web, HttpResponse};
use approvd_proto::{Cid, PairingId};

use super::problem::ApiError;

/// Every API route as `(method, path pattern)`.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/pairings"),
    ("POST", "/v1/pairings/{pairing_id}/claim"),
    ("GET", "/v1/pairings/{pairing_id}/claim"),
    ("POST", "/v1/pairings/{pairing_id}/accept"),
    ("GET", "/v1/pairings/{pairing_id}/acceptance"),
    ("POST", "/v1/pairings/{pairing_id}/confirm"),
    ("GET", "/v1/pairings/{pairing_id}/confirmation"),
    ("POST", "/v1/challenges"),
    ("DELETE", "/v1/challenges/{cid}"),
    ("GET", "/v1/challenges/{cid}/verdict"),
    ("POST", "/v1/challenges/{cid}/verdict"),
    ("GET", "/v1/inbox"),
    ("POST", "/v1/devices/push"),
    ("POST", "/v1/devices/mute"),
    ("POST", "/v1/devices/unpair"),
    ("GET", "/v1/mailbox"),
    ("POST", "/v1/mailbox/ack"),
    ("POST", "/v1/push/forward"),
    ("GET", "/v1/push/webpush"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

pub(super) fn register(config: &mut web::ServiceConfig) {
    let resource = |path: &'static str| {
        web::resource(path).default_service(web::to(move || method_not_allowed(path)))
    };
    config
        .service(resource("/v1/pairings").route(web::post().to(pairings::create_pairing)))
        .service(
            resource("/v1/pairings/{pairing_id}/claim")
                .route(web::post().to(pairings::claim_pairing))
                .route(web::get().to(pairings::get_claim)),
        )
        .service(
            resource("/v1/pairings/{pairing_id}/accept")
                .route(web::post().to(pairings::accept_pairing)),
        )
        .service(
            resource("/v1/pairings/{pairing_id}/acceptance")
                .route(web::get().to(pairings::get_acceptance)),
        )
        .service(
            resource("/v1/pairings/{pairing_id}/confirm")
                .route(web::post().to(pairings::confirm_pairing)),
        )
        .service(
            resource("/v1/pairings/{pairing_id}/confirmation")
                .route(web::get().to(pairings::get_confirmation)),
        )
        .service(resource("/v1/challenges").route(web::post().to(challenges::create_challenge)))
        .service(
            resource("/v1/challenges/{cid}").route(web::delete().to(challenges::cancel_challenge)),
        )
        .service(
            resource("/v1/challenges/{cid}/verdict")
                .route(web::get().to(challenges::get_verdict))
                .route(web::post().to(challenges::submit_verdict)),
        )
        .service(resource("/v1/inbox").route(web::get().to(inbox::get_inbox)))
        .service(resource("/v1/devices/push").route(web::post().to(devices::refresh_push)))
        .service(resource("/v1/devices/mute").route(web::post().to(devices::mute_nas)))
        .service(resource("/v1/devices/unpair").route(web::post().to(devices::unpair_device)))
        .service(resource("/v1/mailbox").route(web::get().to(mailbox::get_mailbox)))
        .service(resource("/v1/mailbox/ack").route(web::post().to(mailbox::ack_mailbox)))
        .service(resource("/v1/push/forward").route(web::post().to(forward::forward_push)))
        .service(resource("/v1/push/webpush").route(web::get().to(webpush::webpush_key)))
        .service(resource("/healthz").route(web::get().to(health::healthz)))
        .service(resource("/readyz").route(web::get().to(health::readyz)))
        .service(resource("/metrics").route(web::get().to(health::metrics)))
        .service(resource("/openapi.json").route(web::get().to(super::openapi::openapi)));
}

/// 405 naming the methods `path` takes (from [`ROUTES`]).
async fn method_not_allowed(path: &'static str) -> Result<HttpResponse, ApiError> {
    let allow: Vec<&str> = ROUTES
        .iter()
        .filter(|(_, route)| *route == path)
        .map(|(method, _)| *method)
        .collect();
    Err(ApiError::MethodNotAllowed {
        allow: allow.join(", "),
    })
}

/// Parse the `{pairing_id}` path segment.
pub fn pairing_id(path: &str) -> Result<PairingId, ApiError> {
    PairingId::parse(path).map_err(|error| ApiError::field("pairing_id", error.to_string()))
}

/// Parse the `{cid}` path segment.
pub fn cid(path: &str) -> Result<Cid, ApiError> {
    Cid::parse(path).map_err(|error| ApiError::field("cid", error.to_string()))
}
