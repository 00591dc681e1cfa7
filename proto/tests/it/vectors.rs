//! The committed vectors in `proto/vectors/` are exactly what the generator produces, and they
//! check out when read back the way another implementation would read them.

use approvd_proto::context::{self, ContextBinding, SealSecret};
use approvd_proto::httpsig::{self, IncomingRequest, RequestContext, RequestTarget};
use approvd_proto::ids::{PublicKey, Sig};
use approvd_proto::pairing::PairingUri;
use approvd_proto::signed::{decode, verify_strict};
use approvd_proto::vectors::{self, NOW};
use serde_json::Value;

fn committed(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("vectors")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn json(name: &str) -> Value {
    serde_json::from_str(&committed(name)).expect("vector file is JSON")
}

fn hex_of(value: &Value) -> Vec<u8> {
    hex::decode(value.as_str().expect("hex string")).expect("hex")
}

fn text(value: &Value) -> &str {
    value.as_str().expect("string")
}

#[test]
fn committed_vectors_match_the_generator() {
    for (name, generated) in vectors::generate() {
        assert!(
            committed(name) == generated,
            "proto/vectors/{name} drifted from the generator: if the change is intended, run \
             `cargo run -p approvd-proto --bin approvd-vectors` and say so in PROTOCOL.md"
        );
    }
}

#[test]
fn signed_message_vectors_verify_from_their_hex() {
    let file = json("signed-messages.json");
    let messages = file["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), approvd_proto::Tag::ALL.len());
    for message in messages {
        let key = PublicKey::parse("signer_public", text(&message["signer_public"])).expect("key");
        let bytes = hex_of(&message["message_hex"]);
        let sig = Sig(hex_of(&message["signature_hex"])
            .try_into()
            .expect("64 bytes"));
        assert_eq!(
            verify_strict(&key, &bytes, &sig),
            Ok(()),
            "{}",
            message["tag"]
        );
        let (label, _) = decode(&bytes).expect("decodes");
        assert_eq!(label, text(&message["tag"]));
    }
}

#[test]
fn negative_vectors_are_all_rejected() {
    let file = json("negative.json");
    for case in file["cases"].as_array().expect("cases") {
        let message = hex_of(&case["message_hex"]);
        let sig = Sig(hex_of(&case["signature_hex"]).try_into().expect("64 bytes"));
        let accepted = match case.get("public") {
            Some(public) => {
                let key = PublicKey::parse("public", text(public)).expect("valid key");
                verify_strict(&key, &message, &sig).is_ok()
            }
            None => {
                let bytes: [u8; 32] = hex_of(&case["public_hex"]).try_into().expect("32");
                PublicKey::from_bytes("public", &bytes).is_ok()
            }
        };
        assert!(!accepted, "{}", case["name"]);
    }
}

#[test]
fn pairing_vector_parses_and_its_mac_and_sas_recompute() {
    let file = json("pairing.json");
    let uri = PairingUri::parse(text(&file["uri"]), NOW).expect("parses");
    assert_eq!(hex::encode(uri.secret.0), text(&file["fields"]["k_hex"]));
    assert_eq!(uri.label, text(&file["fields"]["a"]));
    let claim: approvd_proto::PairClaim =
        serde_json::from_value(file["claim"].clone()).expect("claim JSON");
    assert_eq!(
        hex::encode(approvd_proto::pairing::claim_mac(&uri.secret, &claim)),
        text(&file["mac_hex"])
    );
    assert_eq!(
        approvd_proto::pairing::sas(&uri.secret, &claim),
        text(&file["sas"])
    );
}

#[test]
fn context_vector_opens_to_the_published_context() {
    let file = json("context-seal.json");
    let secret = SealSecret::from_bytes(
        hex_of(&file["recipient_secret_hex"])
            .try_into()
            .expect("32"),
    );
    let binding = &file["binding"];
    let binding = ContextBinding {
        cid: approvd_proto::Cid::parse(text(&binding["cid"])).expect("cid"),
        nas_id: approvd_proto::NasId::parse(text(&binding["nas_id"])).expect("nas"),
        device_id: approvd_proto::DeviceId::parse(text(&binding["device_id"])).expect("device"),
        created: binding["created"].as_u64().expect("u64"),
        expires: binding["expires"].as_u64().expect("u64"),
        number_matching: binding["number_matching"].as_bool().expect("bool"),
    };
    assert_eq!(hex::encode(binding.info()), text(&file["info_hex"]));
    assert_eq!(hex::encode(binding.aad()), text(&file["aad_hex"]));
    let sealed =
        approvd_proto::ids::decode_b64("sealed", text(&file["sealed"]), 8192).expect("b64");
    let opened = context::open(&sealed, &binding, &secret).expect("opens");
    assert_eq!(
        serde_json::to_value(&opened).expect("json"),
        file["context"]
    );
}

#[test]
fn http_signature_vectors_verify() {
    let file = json("http-signature.json");
    for case in file["cases"].as_array().expect("cases") {
        let body = case["body"].as_str().unwrap_or("").as_bytes();
        let fields: Vec<(&str, &str)> = case["fields"]
            .as_object()
            .expect("fields")
            .iter()
            .map(|(name, value)| (name.as_str(), text(value)))
            .collect();
        let request = IncomingRequest {
            target: RequestTarget {
                method: text(&case["method"]),
                path: text(&case["path"]),
                query: text(&case["query"]),
            },
            context: RequestContext {
                scheme: case["scheme"].as_str(),
                authority: case["authority"].as_str(),
                fields: &fields,
            },
            signature_input: Some(text(&case["signature_input"])),
            signature: Some(text(&case["signature"])),
            content_digest: case["content_digest"].as_str(),
            body,
        };
        let created = case["created"].as_u64().expect("created");
        assert!(
            httpsig::verify_request(&request, created, httpsig::MAX_SKEW).is_ok(),
            "{}",
            case["name"]
        );
        let (_, params) =
            httpsig::parse_signature_input(text(&case["signature_input"])).expect("parses");
        let base = httpsig::signature_base_in(
            &request.target,
            &request.context,
            request.content_digest,
            &params,
        )
        .expect("base");
        assert_eq!(base, text(&case["signature_base"]));
    }
}
