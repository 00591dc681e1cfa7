//! Pairing URI parsing (every bad field named), claim MAC and SAS.

use approvd_proto::pairing::{self, PairingSecret, PairingUri};
use approvd_proto::vectors::{Examples, NOW};
use approvd_proto::{Error, PairClaim, PublicKey, UriError};

fn uri() -> PairingUri {
    Examples::fixed().pairing_uri
}

/// The example URI with parameter `name` replaced by `value` (or removed when `None`).
fn with_param(name: &str, value: Option<&str>) -> String {
    let text = uri().to_uri();
    let (prefix, query) = text.split_once('?').expect("has a query");
    let params: Vec<String> = query
        .split('&')
        .filter_map(|pair| {
            let (key, _) = pair.split_once('=').expect("key=value");
            if key == name {
                value.map(|value| format!("{key}={value}"))
            } else {
                Some(pair.to_owned())
            }
        })
        .collect();
    format!("{prefix}?{}", params.join("&"))
}

#[test]
fn uri_round_trips() {
    let original = uri();
    let text = original.to_uri();
    assert!(text.starts_with("approvd://pair?v=1&r=https%3A%2F%2Frelay.example.com&p="));
    assert_eq!(PairingUri::parse(&text, NOW), Ok(original));
}

#[test]
fn every_missing_parameter_is_named() {
    for name in ["v", "r", "p", "k", "n", "a", "u", "e"] {
        let text = with_param(name, None);
        assert_eq!(
            PairingUri::parse(&text, NOW),
            Err(Error::Uri(UriError::Missing(name))),
            "{name}"
        );
    }
}

#[test]
fn duplicate_unknown_and_bad_parameters_are_refused() {
    let text = uri().to_uri();
    assert_eq!(
        PairingUri::parse(&format!("{text}&e=1"), NOW),
        Err(Error::Uri(UriError::Duplicate("e".into())))
    );
    assert_eq!(
        PairingUri::parse(&format!("{text}&x=1"), NOW),
        Err(Error::Uri(UriError::Unknown("x".into())))
    );
    assert_eq!(
        PairingUri::parse(&with_param("v", Some("2")), NOW),
        Err(Error::Uri(UriError::Version("2".into())))
    );
    assert_eq!(
        PairingUri::parse(&text.replace("approvd://", "https://"), NOW),
        Err(Error::Uri(UriError::Scheme))
    );
    assert_eq!(
        PairingUri::parse(&with_param("p", Some("AAAA")), NOW),
        Err(Error::Length {
            field: "p",
            expected: 16,
            got: 3
        })
    );
    assert_eq!(
        PairingUri::parse(&with_param("k", Some("!!")), NOW),
        Err(Error::Base64 { field: "k" })
    );
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(
        PairingUri::parse(
            &with_param("n", Some(&approvd_proto::ids::encode_b64(&identity))),
            NOW
        ),
        Err(Error::WeakKey { field: "n" })
    );
    assert_eq!(
        PairingUri::parse(&with_param("e", Some("soon")), NOW),
        Err(Error::Uri(UriError::Expiry))
    );
    assert_eq!(
        PairingUri::parse(&with_param("a", Some("%FF")), NOW),
        Err(Error::Uri(UriError::Encoding("a")))
    );
    assert_eq!(
        PairingUri::parse(&with_param("a", Some("")), NOW),
        Err(Error::Empty { field: "a" })
    );
    assert_eq!(
        PairingUri::parse(&with_param("u", Some("")), NOW),
        Err(Error::Empty { field: "u" })
    );
    assert!(matches!(
        PairingUri::parse(&with_param("u", Some(&"x".repeat(65))), NOW),
        Err(Error::TooLong { field: "u", .. })
    ));
    assert_eq!(
        PairingUri::parse(&with_param("u", Some("J%C3%BCrgen")), NOW)
            .expect("percent-encoded UTF-8")
            .account,
        "Jürgen"
    );
    for relay in [
        "ftp%3A%2F%2Fx",
        "https%3A%2F%2F",
        "https%3A%2F%2Fx%3Fq%3D1",
        "https%3A%2F%2Fa%20b",
    ] {
        assert_eq!(
            PairingUri::parse(&with_param("r", Some(relay)), NOW),
            Err(Error::Uri(UriError::RelayUrl)),
            "{relay}"
        );
    }
    for relay in [
        "http%3A%2F%2Frelay.example.com",
        "http%3A%2F%2F192.168.1.5%3A8080",
        "http%3A%2F%2F127.0.0.1.example.com",
        "http%3A%2F%2F%5B2001%3Adb8%3A%3A1%5D",
    ] {
        assert_eq!(
            PairingUri::parse(&with_param("r", Some(relay)), NOW),
            Err(Error::Uri(UriError::PlainHttp)),
            "{relay}: plain http only to this machine"
        );
    }
    for relay in [
        "http%3A%2F%2F127.0.0.1%3A8080",
        "http%3A%2F%2Flocalhost",
        "http%3A%2F%2F%5B%3A%3A1%5D%3A8080",
        "https%3A%2F%2F192.168.1.5%3A8443",
    ] {
        assert!(
            PairingUri::parse(&with_param("r", Some(relay)), NOW).is_ok(),
            "{relay}"
        );
    }
    let long = format!("{text}&{}", "a".repeat(1100));
    assert_eq!(
        PairingUri::parse(&long, NOW),
        Err(Error::Uri(UriError::TooLong { max: 1024 }))
    );
}

#[test]
fn expired_uri_is_refused() {
    let original = uri();
    assert_eq!(
        PairingUri::parse(&original.to_uri(), original.expires_at),
        Err(Error::Expired {
            expired_at: original.expires_at,
            now: original.expires_at
        })
    );
}

#[test]
fn claim_mac_verifies_only_for_the_same_secret_and_claim() {
    let examples = Examples::fixed();
    let secret = &examples.pairing_uri.secret;
    let mac = pairing::claim_mac(secret, &examples.claim);
    assert_eq!(
        pairing::verify_claim_mac(secret, &examples.claim, &mac),
        Ok(())
    );
    // A relay that swaps in its own signing key cannot recompute the MAC without k.
    let swapped = PairClaim {
        sig_key: PublicKey::from(&examples.keys.nas),
        ..examples.claim.clone()
    };
    assert_eq!(
        pairing::verify_claim_mac(secret, &swapped, &mac),
        Err(Error::BadMac)
    );
    let other_secret = PairingSecret([3; 32]);
    assert_eq!(
        pairing::verify_claim_mac(&other_secret, &examples.claim, &mac),
        Err(Error::BadMac)
    );
    assert_eq!(
        pairing::verify_claim_mac(secret, &examples.claim, &mac[..31]),
        Err(Error::BadMac)
    );
    for index in 0..32 {
        let mut tampered = mac;
        tampered[index] ^= 1;
        assert_eq!(
            pairing::verify_claim_mac(secret, &examples.claim, &tampered),
            Err(Error::BadMac)
        );
    }
}

#[test]
fn sas_is_six_digits_and_changes_with_any_key() {
    let examples = Examples::fixed();
    let secret = &examples.pairing_uri.secret;
    let sas = pairing::sas(secret, &examples.claim);
    assert_eq!(sas.len(), 6);
    assert!(sas.bytes().all(|b| b.is_ascii_digit()));
    let swapped_sig = PairClaim {
        sig_key: PublicKey::from(&examples.keys.nas),
        ..examples.claim.clone()
    };
    let swapped_seal = PairClaim {
        seal_key: approvd_proto::SealKey([5; 32]),
        ..examples.claim.clone()
    };
    assert_ne!(pairing::sas(secret, &swapped_sig), sas);
    assert_ne!(pairing::sas(secret, &swapped_seal), sas);
    assert_ne!(pairing::sas(&PairingSecret([4; 32]), &examples.claim), sas);
    // Independent of the non-key fields (both screens agree even if the name differs in display).
    let renamed = PairClaim {
        claimed_at: 1,
        ..examples.claim.clone()
    };
    assert_eq!(pairing::sas(secret, &renamed), sas);
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let text = format!("{:?}", uri());
    assert!(text.contains("PairingSecret(<redacted>)"));
    assert!(!text.contains(&approvd_proto::ids::encode_b64(&uri().secret.0)));
}

#[test]
fn a_uri_that_would_not_fit_once_encoded_is_refused_before_it_is_shown() {
    // Found by the `pairing_uri` fuzzer: limits apply to the decoded label, account and relay
    // URL, but each byte of non-ASCII text takes three characters once percent-encoded, so a
    // NAS could print a QR code longer than any phone accepts. `checked_uri` refuses it.
    let long = PairingUri {
        label: "é".repeat(pairing::MAX_LABEL / 2),
        account: "ü".repeat(pairing::MAX_ACCOUNT / 2),
        relay: format!("https://relay.example.com/{}", "ä".repeat(100)),
        ..uri()
    };
    // Every field is within its own limit.
    assert!(long.label.len() <= pairing::MAX_LABEL && long.account.len() <= pairing::MAX_ACCOUNT);
    pairing::check_relay_url(&long.relay).expect("a valid relay URL");
    assert!(long.to_uri().len() > pairing::MAX_URI);
    assert!(matches!(long.checked_uri(), Err(Error::TooLong { .. })));
    // The same in ASCII fits, and what `checked_uri` prints parses back to the same values.
    let plain = PairingUri {
        label: "n".repeat(pairing::MAX_LABEL),
        account: "a".repeat(pairing::MAX_ACCOUNT),
        ..uri()
    };
    let printed = plain.checked_uri().expect("fits");
    assert_eq!(PairingUri::parse(&printed, NOW).expect("parses"), plain);
}
