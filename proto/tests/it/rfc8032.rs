//! RFC 8032 §7.1 Ed25519 test vectors through our key and verify path (`PublicKey` +
//! `verify_strict`), and published malleability / small-order cases rejected.

use approvd_proto::ids::{PublicKey, Sig};
use approvd_proto::signed::verify_strict;
use approvd_proto::Error;
use ed25519_dalek::{Signer as _, SigningKey};

struct Case {
    secret: &'static str,
    public: &'static str,
    message: &'static str,
    signature: &'static str,
}

const RFC8032: [Case; 3] = [
    Case {
        secret: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        public: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        message: "",
        signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    },
    Case {
        secret: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        public: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        message: "72",
        signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    },
    Case {
        secret: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        public: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        message: "af82",
        signature: "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    },
];

fn bytes<const N: usize>(text: &str) -> [u8; N] {
    hex::decode(text).expect("hex").try_into().expect("length")
}

#[test]
fn rfc8032_vectors_sign_and_verify_through_our_path() {
    for case in &RFC8032 {
        let secret = SigningKey::from_bytes(&bytes(case.secret));
        let public = PublicKey::from_bytes("key", &bytes(case.public)).expect("valid key");
        assert_eq!(PublicKey::from(&secret), public);
        let message = hex::decode(case.message).expect("hex");
        let signature = Sig(bytes(case.signature));
        assert_eq!(secret.sign(&message).to_bytes(), signature.0);
        assert_eq!(verify_strict(&public, &message, &signature), Ok(()));
        let mut other = message.clone();
        other.push(0);
        assert_eq!(
            verify_strict(&public, &other, &signature),
            Err(Error::BadSignature)
        );
    }
}

#[test]
fn rfc8032_signature_with_s_plus_l_is_refused() {
    let case = &RFC8032[0];
    let public = PublicKey::from_bytes("key", &bytes(case.public)).expect("valid key");
    let mut signature = Sig(bytes(case.signature));
    approvd_proto::vectors::add_group_order(&mut signature.0[32..]);
    assert_eq!(
        verify_strict(&public, b"", &signature),
        Err(Error::BadSignature)
    );
}

/// Small-order points from "Taming the many EdDSAs" (Chalkias, Garillot, Nikolaenko, 2020):
/// every one must be refused as a public key.
#[test]
fn published_small_order_points_are_refused_as_keys() {
    let small_order = [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    ];
    for point in small_order {
        let result = PublicKey::from_bytes("key", &bytes(point));
        assert!(
            matches!(
                result,
                Err(Error::WeakKey { .. }) | Err(Error::InvalidKey { .. })
            ),
            "{point} accepted"
        );
    }
}
