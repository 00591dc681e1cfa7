//! The base64url patterns published in the OpenAPI document admit exactly the strings the
//! parsers accept: every length around the right one, every last character (so every value of
//! the unused trailing bits), for fixed-length fields and for opaque blobs.

use approvd_proto::ids::{b64_pattern, decode_b64, decode_fixed, encode_b64};

const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Strings near the encoding of `bytes` random bytes: each length from 2 shorter to 2 longer,
/// each ending in every alphabet character.
fn candidates(bytes: usize) -> Vec<String> {
    let valid = encode_b64(&vec![0x5a; bytes]);
    let mut found = Vec::new();
    for length in valid.len().saturating_sub(2)..=valid.len() + 2 {
        let stem: String = valid
            .chars()
            .cycle()
            .take(length.saturating_sub(1))
            .collect();
        for last in ALPHABET.chars() {
            found.push(format!("{stem}{last}"));
        }
    }
    found
}

fn check<const N: usize>() {
    let pattern = regex::Regex::new(&b64_pattern(Some(N))).expect("valid regex");
    let mut accepted = 0;
    for text in candidates(N) {
        let parses = decode_fixed::<N>("x", &text).is_ok();
        assert_eq!(pattern.is_match(&text), parses, "{N} bytes: {text}");
        accepted += usize::from(parses);
    }
    assert!(accepted > 0, "some candidate of {N} bytes is valid");
}

#[test]
fn fixed_length_patterns_match_the_parser() {
    check::<16>();
    check::<32>();
    check::<64>();
    check::<1>();
    check::<2>();
}

#[test]
fn the_any_length_pattern_matches_the_parser() {
    let pattern = regex::Regex::new(&b64_pattern(None)).expect("valid regex");
    for bytes in 1..12 {
        for text in candidates(bytes) {
            let parses = decode_b64("x", &text, 1 << 16).is_ok();
            assert_eq!(pattern.is_match(&text), parses, "{text}");
        }
    }
}
