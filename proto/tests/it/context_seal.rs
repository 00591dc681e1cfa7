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
