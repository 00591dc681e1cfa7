//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and the
//! wire types' schemas, and its handler (`GET /openapi.json`). A test checks that it lists
//! exactly the routes of `routes::ROUTES`.

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::routes::{challenges, devices, forward, health, inbox, mailbox, pairings, webpush};

/// Adds the request-signature security scheme.
struct HttpSignatures;

impl Modify for HttpSignatures {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "httpsig",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Signature",
                "RFC 9421 HTTP Message Signature (Ed25519) with Signature-Input and, with a body, \
                 Content-Digest; keyid is the caller's nas_id or device_id. See PROTOCOL.md §7.",
            ))),
        );
        components.add_security_scheme(
            "forwarding",
            SecurityScheme::Http(
                utoipa::openapi::security::HttpBuilder::new()
                    .scheme(utoipa::openapi::security::HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A forwarding token: a JWT (EdDSA or ES256) the upstream's operator \
                         signed for one downstream relay, `sub` naming it. See PROTOCOL.md §8.6.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "approvd relay",
        description = "Push-approval relay. Every /v1 request is signed (PROTOCOL.md §7); errors are application/problem+json (RFC 9457).",
        license(name = "Apache-2.0")
    ),
    paths(
        pairings::create_pairing,
        pairings::claim_pairing,
        pairings::get_claim,
        pairings::accept_pairing,
        pairings::get_acceptance,
        pairings::confirm_pairing,
        pairings::get_confirmation,
        challenges::create_challenge,
        challenges::cancel_challenge,
        challenges::get_verdict,
        challenges::submit_verdict,
        inbox::get_inbox,
        devices::refresh_push,
        devices::mute_nas,
        devices::unpair_device,
        mailbox::get_mailbox,
        mailbox::ack_mailbox,
        forward::forward_push,
        webpush::webpush_key,
        health::healthz,
        health::readyz,
        health::metrics,
        openapi,
    ),
    modifiers(&HttpSignatures)
)]
struct ApiDoc;

/// The document as a value.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The limits the relay's validators enforce, written into the document from the same
/// constants, so a client generated from it sends only what the relay accepts:
/// (schema, property, keyword, value).
fn bounds() -> Vec<(&'static str, &'static str, &'static str, serde_json::Value)> {
    use approvd_proto::pairing::MAX_PAIRING_TTL;
    use approvd_proto::wire::{
        MAX_ACK, MAX_NUMBER, MAX_PUSH_TOKEN, MAX_TARGETS, MAX_TOPIC, MIN_NUMBER,
    };
    use serde_json::json;
    let printable = json!("^[\\x21-\\x7e]+$");
    vec![
        ("CreatePairingRequest", "ttl_secs", "minimum", json!(1)),
        (
            "CreatePairingRequest",
            "ttl_secs",
            "maximum",
            json!(MAX_PAIRING_TTL),
        ),
        ("CreateChallengeRequest", "targets", "minItems", json!(1)),
        (
            "CreateChallengeRequest",
            "targets",
            "maxItems",
            json!(MAX_TARGETS),
        ),
        ("MailboxAck", "ids", "maxItems", json!(MAX_ACK)),
        ("PushRegistration", "token", "minLength", json!(1)),
        (
            "PushRegistration",
            "token",
            "maxLength",
            json!(MAX_PUSH_TOKEN),
        ),
        ("PushRegistration", "token", "pattern", printable.clone()),
        ("PushRegistration", "topic", "minLength", json!(1)),
        ("PushRegistration", "topic", "maxLength", json!(MAX_TOPIC)),
        ("PushRegistration", "topic", "pattern", printable),
        (
            "Verdict",
            "number",
            "pattern",
            json!(format!("^[0-9]{{{MIN_NUMBER},{MAX_NUMBER}}}$")),
        ),
    ]
}

/// The document as JSON text (computed once per variant), with [`bounds`] applied. Without
/// `forwarding` (the relay's default) `/v1/push/forward` and its security scheme are left out:
/// the document lists what this relay answers.
pub fn document_json(forwarding: bool) -> &'static str {
    static WITH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static WITHOUT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let cell = if forwarding { &WITH } else { &WITHOUT };
    cell.get_or_init(|| {
        let mut value = serde_json::to_value(document()).expect("the OpenAPI document serializes");
        for (schema, property, keyword, bound) in bounds() {
            let target = &mut value["components"]["schemas"][schema]["properties"][property];
            assert!(target.is_object(), "{schema}.{property} is in the document");
            target[keyword] = bound;
        }
        approvd_proto::openapi::registry_formats(&mut value);
        if !forwarding {
            let paths = value["paths"].as_object_mut().expect("paths");
            assert!(
                paths.remove(FORWARD_PATH).is_some(),
                "{FORWARD_PATH} is documented"
            );
            let schemes = value["components"]["securitySchemes"]
                .as_object_mut()
                .expect("security schemes");
            assert!(
                schemes.remove("forwarding").is_some(),
                "the forwarding scheme"
            );
        }
        serde_json::to_string(&value).expect("the OpenAPI document serializes")
    })
}

/// The one route that exists only where push forwarding is on.
const FORWARD_PATH: &str = "/v1/push/forward";

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses(
        (status = 200, description = "This document", body = Object),
    ),
    security(())
)]
/// Handle `GET /openapi.json`: this API as OpenAPI 3.1, as this relay is configured.
pub async fn openapi(state: actix_web::web::Data<super::AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document_json(state.forwarding.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn document_lists_exactly_the_routes() {
        let document = document();
        let mut documented = BTreeSet::new();
        for (path, item) in &document.paths.paths {
            for (method, operation) in [
                ("GET", &item.get),
                ("POST", &item.post),
                ("DELETE", &item.delete),
                ("PUT", &item.put),
                ("PATCH", &item.patch),
            ] {
                if operation.is_some() {
                    documented.insert((method.to_owned(), path.clone()));
                }
            }
        }
        let routes: BTreeSet<(String, String)> = crate::http::routes::ROUTES
            .iter()
            .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
            .collect();
        assert_eq!(documented, routes);
    }

    #[test]
    fn the_validators_limits_and_the_id_schemas_are_in_the_document() {
        let json: serde_json::Value =
            serde_json::from_str(document_json(true)).expect("valid JSON");
        let schemas = &json["components"]["schemas"];
        assert_eq!(
            schemas["CreatePairingRequest"]["properties"]["ttl_secs"]["maximum"],
            600
        );
        assert_eq!(
            schemas["CreateChallengeRequest"]["properties"]["targets"]["maxItems"],
            10
        );
        assert_eq!(schemas["MailboxAck"]["properties"]["ids"]["maxItems"], 100);
        let cid = &schemas["Cid"]["pattern"];
        assert_eq!(cid, "^[A-Za-z0-9_-]{21}[AQgw]$");
        for path in ["/v1/challenges/{cid}", "/v1/pairings/{pairing_id}/claim"] {
            let operation = json["paths"][path]
                .as_object()
                .and_then(|item| item.values().next())
                .expect("operation");
            let parameter = &operation["parameters"][0];
            assert!(
                parameter["schema"]["$ref"]
                    .as_str()
                    .is_some_and(|reference| reference.ends_with("/Cid")
                        || reference.ends_with("/PairingId")),
                "{path}: {parameter}"
            );
        }
    }

    #[test]
    fn document_has_the_wire_schemas_and_is_json() {
        let json: serde_json::Value =
            serde_json::from_str(document_json(true)).expect("valid JSON");
        let schemas = &json["components"]["schemas"];
        for name in [
            "CreateChallengeRequest",
            "SignedVerdict",
            "Problem",
            "Notice",
            "Delivery",
        ] {
            assert!(schemas.get(name).is_some(), "schema {name} missing");
        }
        assert_eq!(json["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    }

    #[test]
    fn integers_are_unsigned_and_forwarding_is_listed_only_where_it_is_on() {
        let with: serde_json::Value = serde_json::from_str(document_json(true)).expect("JSON");
        let without: serde_json::Value = serde_json::from_str(document_json(false)).expect("JSON");
        let ttl =
            &without["components"]["schemas"]["CreatePairingRequest"]["properties"]["ttl_secs"];
        assert_eq!(ttl["format"], "uint64", "{ttl}");
        let text = document_json(false);
        for format in ["int64", "int32", "u-int64", "u-int32", "u-int16"] {
            assert!(
                !text.contains(&format!("\"{format}\"")),
                "format {format} in the document"
            );
        }
        assert!(with["paths"].get(FORWARD_PATH).is_some());
        assert!(without["paths"].get(FORWARD_PATH).is_none());
        assert!(without["components"]["securitySchemes"]
            .get("forwarding")
            .is_none());
        assert!(without["paths"].get("/v1/challenges").is_some());
    }
}
