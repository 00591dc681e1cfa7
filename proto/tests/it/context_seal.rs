//! HPKE sealing of the login context: round trip, binding to the challenge, tamper detection,
//! length hiding, limits.

use approvd_proto::context::{
    self, ContextBinding, LoginContext, LoginKind, SealSecret, PAD_BLOCK,
};
use approvd_proto::vectors::Examples;
use approvd_proto::{Cid, DeviceId, Error, NasId, PublicKey};

fn example() -> (Examples, LoginContext, ContextBinding) {
    let examples = Examples::fixed();
    let context = examples.context.clone();
    let binding = examples.binding.clone();
    (examples, context, binding)
}

#[test]
fn sealed_context_opens_with_the_phone_key() {
    let (examples, context, binding) = example();
    let sealed =
        context::seal(&context, &binding, &examples.keys.device_seal.public_key()).expect("seals");
    let opened = context::open(&sealed, &binding, &examples.keys.device_seal).expect("opens");
    assert_eq!(opened, context);
}

#[test]
fn two_seals_of_the_same_context_differ() {
    let (examples, context, binding) = example();
    let recipient = examples.keys.device_seal.public_key();
    let first = context::seal(&context, &binding, &recipient).expect("seals");
    let second = context::seal(&context, &binding, &recipient).expect("seals");
    assert_ne!(first, second, "a fresh ephemeral key per seal");
}

#[test]
fn context_moved_to_another_challenge_device_or_nas_does_not_open() {
    let (examples, context, binding) = example();
    let sealed =
        context::seal(&context, &binding, &examples.keys.device_seal.public_key()).expect("seals");
    let other_key = PublicKey::from(&examples.keys.device_sig);
    let variants = [
        ContextBinding {
            cid: Cid([1; 16]),
            ..binding.clone()
        },
        ContextBinding {
            nas_id: NasId(other_key),
            ..binding.clone()
        },
        ContextBinding {
            device_id: DeviceId(other_key),
            ..binding.clone()
        },
        ContextBinding {
            created: binding.created - 1,
            ..binding.clone()
        },
        ContextBinding {
            expires: binding.expires + 60,
            ..binding.clone()
        },
        ContextBinding {
            number_matching: !binding.number_matching,
            ..binding.clone()
        },
    ];
    for variant in variants {
        assert_eq!(
            context::open(&sealed, &variant, &examples.keys.device_seal),
            Err(Error::OpenFailed),
            "{variant:?}"
        );
    }
}

#[test]
fn wrong_key_or_any_flipped_byte_does_not_open() {
    let (examples, context, binding) = example();
    let sealed =
        context::seal(&context, &binding, &examples.keys.device_seal.public_key()).expect("seals");
    assert_eq!(
        context::open(&sealed, &binding, &SealSecret::generate()),
        Err(Error::OpenFailed)
    );
    for index in 0..sealed.len() {
        let mut tampered = sealed.clone();
        tampered[index] ^= 0x01;
        assert!(
            context::open(&tampered, &binding, &examples.keys.device_seal).is_err(),
            "byte {index}"
        );
    }
    assert_eq!(
        context::open(&sealed[..40], &binding, &examples.keys.device_seal),
        Err(Error::OpenFailed)
    );
}

#[test]
fn sealed_length_does_not_reveal_field_lengths() {
    let (examples, context, binding) = example();
    let recipient = examples.keys.device_seal.public_key();
    let short = LoginContext {
        user: "a".into(),
        location: None,
        ..context.clone()
    };
    let long = LoginContext {
        user: "a-much-longer-user-name".into(),
        ..context
    };
    let short_len = context::seal(&short, &binding, &recipient)
        .expect("seals")
        .len();
    let long_len = context::seal(&long, &binding, &recipient)
        .expect("seals")
        .len();
    assert_eq!(short_len, long_len);
    assert_eq!((short_len - 32 - 16) % PAD_BLOCK, 0);
}

#[test]
fn oversized_or_empty_fields_are_refused_before_sealing() {
    let (examples, context, binding) = example();
    let recipient = examples.keys.device_seal.public_key();
    let too_long = LoginContext {
        user_agent: Some("x".repeat(257)),
        ..context.clone()
    };
    assert_eq!(
        context::seal(&too_long, &binding, &recipient),
        Err(Error::TooLong {
            field: "user_agent",
            max: 256,
            got: 257
        })
    );
    let empty = LoginContext {
        user: String::new(),
        ..context
    };
    assert_eq!(
        context::seal(&empty, &binding, &recipient),
        Err(Error::Empty { field: "user" })
    );
}

#[test]
fn a_sealed_blob_that_is_not_a_context_is_refused() {
    // Seal arbitrary JSON with the real primitives: it opens, but is not a LoginContext.
    let (examples, _, binding) = example();
    let recipient = examples.keys.device_seal.public_key();
    let wrong = LoginContext {
        user: "x".into(),
        service: "y".into(),
        nas_label: "z".into(),
        client_ip: None,
        user_agent: None,
        location: None,
        kind: LoginKind::Action,
        action: Some("Delete the shared folder `photos`".into()),
        time: 0,
    };
    let sealed = context::seal(&wrong, &binding, &recipient).expect("seals");
    assert!(context::open(&sealed, &binding, &examples.keys.device_seal).is_ok());
    let huge = vec![0u8; context::MAX_SEALED + 1];
    assert!(matches!(
        context::open(&huge, &binding, &examples.keys.device_seal),
        Err(Error::TooLong {
            field: "sealed",
            ..
        })
    ));
}

#[test]
fn an_action_must_say_which_and_only_an_action_may() {
    let (examples, context, binding) = example();
    let recipient = examples.keys.device_seal.public_key();
    let unnamed = LoginContext {
        kind: LoginKind::Action,
        action: None,
        ..context.clone()
    };
    assert!(matches!(
        context::seal(&unnamed, &binding, &recipient),
        Err(Error::Invalid {
            field: "action",
            ..
        })
    ));
    let login_with_action = LoginContext {
        action: Some("Delete everything".into()),
        ..context.clone()
    };
    assert!(matches!(
        context::seal(&login_with_action, &binding, &recipient),
        Err(Error::Invalid {
            field: "action",
            ..
        })
    ));
    let named = LoginContext {
        kind: LoginKind::Action,
        action: Some("Delete the shared folder `photos`".into()),
        ..context.clone()
    };
    let sealed = context::seal(&named, &binding, &recipient).expect("seals");
    let opened = context::open(&sealed, &binding, &examples.keys.device_seal).expect("opens");
    assert_eq!(
        opened.action.as_deref(),
        Some("Delete the shared folder `photos`")
    );
    assert!(!opened.requires_number_matching());
    assert!(context.requires_number_matching());
}

/// Every X25519 public key of small order (the all-zero key among them), and their
/// non-canonical encodings: sealing to one would give an all-zero shared secret, so a key that
/// anyone can "open" for. HPKE (RFC 9180 §7.1.4) must refuse them.
const SMALL_ORDER_X25519: [&str; 7] = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];

fn small_order_keys() -> Vec<approvd_proto::ids::SealKey> {
    SMALL_ORDER_X25519
        .iter()
        .map(|text| {
            let bytes: Vec<u8> = (0..64)
                .step_by(2)
                .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
                .collect();
            approvd_proto::ids::SealKey(bytes.try_into().expect("32 bytes"))
        })
        .collect()
}

#[test]
fn all_zero_and_small_order_x25519_keys_are_refused_for_sealing() {
    let (_, context, binding) = example();
    for key in small_order_keys() {
        assert!(
            context::seal(&context, &binding, &key).is_err(),
            "sealed a context to {key:?}"
        );
        let code_secret = approvd_proto::totp::CodeSecret::generate();
        let code_binding = approvd_proto::totp::CodeSecretBinding {
            pairing_id: approvd_proto::PairingId([7; 16]),
            nas_id: binding.nas_id,
            device_id: binding.device_id,
            claim_hash: approvd_proto::ids::Digest::of(b"claim"),
        };
        assert!(
            approvd_proto::totp::seal_code_secret(&code_secret, &code_binding, &key).is_err(),
            "sealed an offline-code secret to {key:?}"
        );
    }
}

#[test]
fn a_blob_sealed_for_one_purpose_never_opens_as_another() {
    // The same recipient key, but HPKE `info`/`aad` of another purpose: an offline-code secret
    // sealed at pairing does not open as a login context, nor a context as a code secret.
    let (examples, context, binding) = example();
    let recipient = examples.keys.device_seal.public_key();
    let code_binding = approvd_proto::totp::CodeSecretBinding {
        pairing_id: approvd_proto::PairingId(binding.cid.0),
        nas_id: binding.nas_id,
        device_id: binding.device_id,
        claim_hash: approvd_proto::ids::Digest::of(b"claim"),
    };
    let code_secret = approvd_proto::totp::CodeSecret::generate();
    let sealed_secret =
        approvd_proto::totp::seal_code_secret(&code_secret, &code_binding, &recipient)
            .expect("seals");
    assert!(context::open(&sealed_secret, &binding, &examples.keys.device_seal).is_err());
    let sealed_context = context::seal(&context, &binding, &recipient).expect("seals");
    assert!(approvd_proto::totp::open_code_secret(
        &sealed_context,
        &code_binding,
        &examples.keys.device_seal
    )
    .is_err());
}
