//! Signed-message encoding: every tag signs and verifies; tampering with any byte fails;
//! a signature under one tag never verifies under another; the encoding is injective.

use approvd_proto::ids::{PublicKey, Sig};
use approvd_proto::signed::{decode, verify_strict, Encoder, SignedMessage, Tag};
use approvd_proto::vectors::{add_group_order, Examples};
use approvd_proto::{Decision, DeviceId, Error, PairClaim, Verdict};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

/// `(tag, signed bytes, signer public key, signature)` for every example message.
fn signed_examples() -> Vec<(Tag, Vec<u8>, PublicKey, Sig)> {
    let examples = Examples::fixed();
    let keys = &examples.keys;
    fn one<M: SignedMessage>(message: &M, key: &SigningKey) -> (Tag, Vec<u8>, PublicKey, Sig) {
        (
            M::TAG,
            message.signed_bytes(),
            PublicKey::from(key),
            message.sign(key),
        )
    }
    vec![
        one(&examples.claim, &keys.device_sig),
        one(&examples.accept, &keys.nas),
        one(&examples.confirm, &keys.nas),
        one(&examples.challenge, &keys.nas),
        one(&examples.verdict, &keys.device_sig),
        one(&examples.unpair, &keys.device_sig),
        one(&examples.mute, &keys.device_sig),
    ]
}

#[test]
fn every_tag_has_an_example_and_it_verifies() {
    let examples = signed_examples();
    let tags: Vec<Tag> = examples.iter().map(|(tag, ..)| *tag).collect();
    assert_eq!(tags, Tag::ALL.to_vec());
    for (tag, bytes, key, sig) in &examples {
        assert_eq!(verify_strict(key, bytes, sig), Ok(()), "{tag:?}");
        let (label, _) = decode(bytes).expect("decodes");
        assert_eq!(label, tag.as_str());
    }
}

#[test]
fn flipping_any_bit_of_the_message_or_signature_fails_verification() {
    for (tag, bytes, key, sig) in signed_examples() {
        for index in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut tampered = bytes.clone();
                tampered[index] ^= bit;
                assert_eq!(
                    verify_strict(&key, &tampered, &sig),
                    Err(Error::BadSignature),
                    "{tag:?}: message byte {index} bit {bit:#x}"
                );
            }
        }
        for index in 0..64 {
            let mut tampered = sig;
            tampered.0[index] ^= 0x01;
            assert_eq!(
                verify_strict(&key, &bytes, &tampered),
                Err(Error::BadSignature),
                "{tag:?}: signature byte {index}"
            );
        }
        // Truncated and extended messages fail too.
        assert!(verify_strict(&key, &bytes[..bytes.len() - 1], &sig).is_err());
        let mut extended = bytes.clone();
        extended.push(0);
        assert!(verify_strict(&key, &extended, &sig).is_err());
    }
}

#[test]
fn a_signature_under_one_tag_never_verifies_under_another() {
    for (tag, bytes, key, sig) in signed_examples() {
        let (_, fields) = decode(&bytes).expect("decodes");
        for other in Tag::ALL.into_iter().filter(|other| *other != tag) {
            let relabelled = fields
                .iter()
                .fold(Encoder::new(other.as_str()), |encoder, field| {
                    encoder.bytes(field)
                })
                .finish();
            assert_eq!(
                verify_strict(&key, &relabelled, &sig),
                Err(Error::BadSignature),
                "{tag:?} signature accepted as {other:?}"
            );
        }
    }
}

#[test]
fn a_signature_by_another_key_is_refused() {
    let examples = Examples::fixed();
    let keys = &examples.keys;
    // The relay (or anyone) signing a verdict with the NAS key or the API key must fail under
    // D_sig: keys are not interchangeable.
    let forged = examples.verdict.sign(&keys.device_api);
    assert_eq!(
        examples.verdict.verify(&keys.sig_key(), &forged),
        Err(Error::BadSignature)
    );
    let forged = examples.challenge.sign(&keys.device_sig);
    assert_eq!(
        examples
            .challenge
            .verify(&PublicKey::from(&keys.nas), &forged),
        Err(Error::BadSignature)
    );
}

#[test]
fn changing_any_verdict_field_invalidates_the_signature() {
    let examples = Examples::fixed();
    let keys = &examples.keys;
    let original = examples.verdict.clone();
    let sig = original.sign(&keys.device_sig);
    let other_device = DeviceId(PublicKey::from(&keys.nas));
    let variants: Vec<Verdict> = vec![
        Verdict {
            cid: approvd_proto::Cid([7; 16]),
            ..original.clone()
        },
        Verdict {
            nas_id: approvd_proto::NasId(keys.sig_key()),
            ..original.clone()
        },
        Verdict {
            device_id: other_device,
            ..original.clone()
        },
        Verdict {
            challenge_hash: approvd_proto::Digest([9; 32]),
            ..original.clone()
        },
        Verdict {
            decision: Decision::Deny,
            ..original.clone()
        },
        Verdict {
            decision: Decision::Fraud,
            ..original.clone()
        },
        Verdict {
            number: Some("43".into()),
            ..original.clone()
        },
        Verdict {
            number: None,
            ..original.clone()
        },
        Verdict {
            user_verified: !original.user_verified,
            ..original.clone()
        },
        Verdict {
            decided_at: original.decided_at + 1,
            ..original.clone()
        },
    ];
    for variant in variants {
        assert_eq!(
            variant.verify(&keys.sig_key(), &sig),
            Err(Error::BadSignature),
            "{variant:?}"
        );
    }
}

#[test]
fn non_canonical_and_small_order_signatures_are_refused() {
    let examples = Examples::fixed();
    let key = PublicKey::from(&examples.keys.nas);
    let mut sig = examples.challenge.sign(&examples.keys.nas);
    assert!(examples.challenge.verify(&key, &sig).is_ok());
    add_group_order(&mut sig.0[32..]);
    assert_eq!(
        examples.challenge.verify(&key, &sig),
        Err(Error::BadSignature)
    );

    // Identity public key with R = identity and S = 0 "verifies" every message under lax
    // verification; it can never even become a PublicKey here.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(
        PublicKey::from_bytes("key", &identity),
        Err(Error::WeakKey { field: "key" })
    );
    let lax = ed25519_dalek::VerifyingKey::from_bytes(&identity).expect("decompresses");
    let mut small = [0u8; 64];
    small[0] = 1;
    let small = ed25519_dalek::Signature::from_bytes(&small);
    assert!(lax.verify_strict(b"anything", &small).is_err());
}

fn key_from_seed(seed: [u8; 32]) -> PublicKey {
    PublicKey::from(&SigningKey::from_bytes(&seed))
}

fn arb_claim() -> impl Strategy<Value = PairClaim> {
    (
        any::<[u8; 16]>(),
        any::<[[u8; 32]; 4]>(),
        prop::collection::vec(any::<u8>(), approvd_proto::pairing::SEALED_DEVICE_INFO),
        any::<u64>(),
    )
        .prop_map(|(pairing_id, keys, device_info, claimed_at)| PairClaim {
            pairing_id: approvd_proto::PairingId(pairing_id),
            nas_id: approvd_proto::NasId(key_from_seed(keys[0])),
            device_id: DeviceId(key_from_seed(keys[1])),
            sig_key: key_from_seed(keys[2]),
            seal_key: approvd_proto::SealKey(keys[3]),
            device_info: approvd_proto::pairing::SealedDeviceInfo(
                device_info.try_into().expect("the sealed length"),
            ),
            claimed_at,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `decode` is a left inverse of the encoder, so the encoding is injective: two different
    /// (label, field list) pairs can never produce the same bytes.
    #[test]
    fn encoding_decodes_back_to_exactly_its_fields(
        tag in prop::sample::select(Tag::ALL.to_vec()),
        fields in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..9),
    ) {
        let bytes = fields
            .iter()
            .fold(Encoder::new(tag.as_str()), |encoder, field| encoder.bytes(field))
            .finish();
        let (label, decoded) = decode(&bytes).expect("our own encoding decodes");
        prop_assert_eq!(label, tag.as_str());
        let decoded: Vec<Vec<u8>> = decoded.into_iter().map(<[u8]>::to_vec).collect();
        prop_assert_eq!(decoded, fields);
    }

    /// Moving bytes between adjacent variable-length fields (the classic `"ab"+"c"` vs
    /// `"a"+"bc"` ambiguity) always changes the signed bytes — as between a verdict's
    /// `decision` and `number`.
    #[test]
    fn shifting_text_between_fields_changes_the_bytes(first in ".{0,12}", second in ".{0,6}", split in 0usize..20) {
        let joined = format!("{first}{second}");
        let split = joined.char_indices().map(|(i, _)| i).chain([joined.len()]).nth(split).unwrap_or(joined.len());
        let (a, b) = joined.split_at(split);
        let original = Encoder::new("verdict").str(&first).str(&second).finish();
        let shifted = Encoder::new("verdict").str(a).str(b).finish();
        if (a, b) != (first.as_str(), second.as_str()) {
            prop_assert_ne!(shifted, original);
        }
    }

    /// Distinct claims have distinct bytes.
    #[test]
    fn distinct_claims_have_distinct_bytes(a in arb_claim(), b in arb_claim()) {
        prop_assert_eq!(a == b, a.signed_bytes() == b.signed_bytes());
    }
}
