//! JSON bodies: they round-trip, refuse unknown fields, name the bad field, and validate limits.

use approvd_proto::vectors::Examples;
use approvd_proto::wire::Validate as _;
use approvd_proto::wire::{
    ChallengeTarget, ClaimMac, ClaimRequest, CreateChallengeRequest, CreatePairingRequest,
    MailboxEntry, Notice, PushProvider, PushRegistration, Sealed, SignedVerdict,
};
use approvd_proto::{Error, SignedMessage as _};

fn challenge_request() -> CreateChallengeRequest {
    let examples = Examples::fixed();
    CreateChallengeRequest {
        cid: examples.challenge.cid,
        created: examples.challenge.created,
        expires: examples.challenge.expires,
        number_matching: true,
        targets: vec![ChallengeTarget {
            device_id: examples.keys.device_id(),
            push_handle: approvd_proto::wire::PushHandle(vec![1; 80]),
            sealed: Sealed(examples.sealed.clone()),
            sig: examples.challenge.sign(&examples.keys.nas),
        }],
    }
}

#[test]
fn bodies_round_trip_through_json() {
    let request = challenge_request();
    let text = serde_json::to_string(&request).expect("serializes");
    assert_eq!(
        serde_json::from_str::<CreateChallengeRequest>(&text).expect("parses"),
        request
    );
    // The challenge the relay reconstructs is the one the NAS signed.
    let examples = Examples::fixed();
    let rebuilt = request.challenge_for(examples.keys.nas_id(), &request.targets[0]);
    assert_eq!(rebuilt, examples.challenge);
    assert!(rebuilt
        .verify(&examples.keys.nas_id().0, &request.targets[0].sig)
        .is_ok());
}

#[test]
fn unknown_fields_and_wrong_types_are_refused_with_the_field_named() {
    let mut value = serde_json::to_value(challenge_request()).expect("value");
    value["surprise"] = serde_json::json!(1);
    let error = serde_json::from_value::<CreateChallengeRequest>(value).expect_err("refused");
    assert!(
        error.to_string().contains("unknown field `surprise`"),
        "{error}"
    );

    let mut value = serde_json::to_value(challenge_request()).expect("value");
    value["expires"] = serde_json::json!("soon");
    let error = serde_json::from_value::<CreateChallengeRequest>(value).expect_err("refused");
    assert!(error.to_string().contains("invalid type"), "{error}");

    let mut value = serde_json::to_value(challenge_request()).expect("value");
    value.as_object_mut().expect("object").remove("cid");
    let error = serde_json::from_value::<CreateChallengeRequest>(value).expect_err("refused");
    assert!(error.to_string().contains("missing field `cid`"), "{error}");

    let mut value = serde_json::to_value(challenge_request()).expect("value");
    value["cid"] = serde_json::json!("AAAA");
    let error = serde_json::from_value::<CreateChallengeRequest>(value).expect_err("refused");
    assert!(
        error.to_string().contains("`cid` must be 16 bytes"),
        "{error}"
    );
}

#[test]
fn challenge_structure_is_validated() {
    assert_eq!(challenge_request().validate(), Ok(()));
    let mut request = challenge_request();
    request.expires = request.created + 121;
    assert!(matches!(
        request.validate(),
        Err(Error::Invalid {
            field: "expires",
            ..
        })
    ));
    let mut request = challenge_request();
    request.expires = request.created;
    assert!(matches!(
        request.validate(),
        Err(Error::Invalid {
            field: "expires",
            ..
        })
    ));
    let mut request = challenge_request();
    request.targets.clear();
    assert_eq!(request.validate(), Err(Error::Empty { field: "targets" }));
    let mut request = challenge_request();
    request.targets.push(request.targets[0].clone());
    assert!(matches!(
        request.validate(),
        Err(Error::Invalid {
            field: "targets",
            ..
        })
    ));
    let mut request = challenge_request();
    request.targets = vec![request.targets[0].clone(); 11];
    assert!(matches!(
        request.validate(),
        Err(Error::TooMany {
            field: "targets",
            ..
        })
    ));
}

#[test]
fn pairing_and_claim_limits() {
    let slot = CreatePairingRequest {
        pairing_id: approvd_proto::PairingId([0; 16]),
        ttl_secs: 601,
        claim_verifier: approvd_proto::Digest([0; 32]),
    };
    assert!(slot.validate().is_err());
    let slot = CreatePairingRequest {
        ttl_secs: 600,
        ..slot
    };
    assert_eq!(slot.validate(), Ok(()));

    let examples = Examples::fixed();
    let mut claim = ClaimRequest {
        claim: examples.claim.clone(),
        claim_key: approvd_proto::ids::ClaimKey([0; 32]),
        mac: ClaimMac([0; 32]),
        sig: examples.claim.sign(&examples.keys.device_sig),
        push: Some(PushRegistration {
            provider: PushProvider::Apns,
            token: "ab".repeat(32),
            topic: "dev.approvd.app".into(),
            p256dh: None,
            auth: None,
        }),
    };
    assert_eq!(claim.validate(), Ok(()));
    let sig_key = claim.claim.sig_key;
    claim.claim.sig_key = claim.claim.device_id.0;
    assert!(matches!(
        claim.validate(),
        Err(Error::Invalid {
            field: "claim.sig_key",
            ..
        })
    ));
    claim.claim.sig_key = sig_key;
    claim.push.as_mut().expect("push").token = "has space".into();
    assert!(matches!(
        claim.validate(),
        Err(Error::Invalid {
            field: "push.token",
            ..
        })
    ));
    let debug = format!("{:?}", claim.push);
    assert!(
        debug.contains("<redacted>") && !debug.contains("has space"),
        "{debug}"
    );
}

#[test]
fn verdict_number_must_be_digits() {
    let examples = Examples::fixed();
    let mut verdict = SignedVerdict {
        verdict: examples.verdict.clone(),
        sig: examples.verdict.sign(&examples.keys.device_sig),
    };
    assert_eq!(verdict.validate(), Ok(()));
    for bad in ["", "4a", "123456789", " 42"] {
        verdict.verdict.number = Some(bad.into());
        assert!(verdict.validate().is_err(), "{bad:?}");
    }
    verdict.verdict.number = None;
    assert_eq!(verdict.validate(), Ok(()));
}

#[test]
fn mailbox_notices_are_tagged_by_kind() {
    let examples = Examples::fixed();
    let entry = MailboxEntry {
        id: "1".into(),
        at: 5,
        notice: Notice::Unpaired {
            unpair: examples.unpair.clone(),
            sig: examples.unpair.sign(&examples.keys.device_sig),
        },
    };
    let value = serde_json::to_value(&entry).expect("json");
    assert_eq!(value["notice"]["kind"], "unpaired");
    assert_eq!(
        serde_json::from_value::<MailboxEntry>(value).expect("parses"),
        entry
    );
}
