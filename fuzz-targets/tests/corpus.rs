//! The fuzz corpus in the normal test run: every committed input of `fuzz/corpus/<target>/`
//! (the seeds, and whatever the fuzzers found worth keeping) goes through its target, which
//! must not panic; the seeds built from the test vectors are in the corpus
//! (`APPROVD_BLESS=1 cargo test -p approvd-fuzz-targets` writes missing ones), each target has
//! a fuzz binary, and every request-body seed is one the relay accepts.

use std::path::PathBuf;

use approvd_fuzz_targets::{relay_body_parses, seeds, TARGETS};

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// libFuzzer names a corpus file by the SHA-1 of its bytes; a seed is named by its index and
/// target, which is as stable and needs no hash.
fn seed_name(index: usize) -> String {
    format!("seed-{index:02}")
}

#[test]
fn every_corpus_input_goes_through_its_target_without_a_panic() {
    let mut replayed = 0;
    for (target, run) in TARGETS {
        let dir = corpus(target);
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
        for entry in entries {
            let path = entry.expect("entry").path();
            let bytes = std::fs::read(&path).expect("read");
            run(&bytes);
            replayed += 1;
        }
    }
    println!(
        "replayed {replayed} corpus inputs through {} targets",
        TARGETS.len()
    );
    assert!(replayed >= seeds().len());
}

#[test]
fn the_seeds_are_in_the_corpus() {
    let bless = std::env::var_os("APPROVD_BLESS").is_some();
    for (index, (target, bytes)) in seeds().into_iter().enumerate() {
        let path = corpus(target).join(seed_name(index));
        // A seed holding a push handle differs on every run (a handle's nonce is random), so
        // the committed one is kept once it exists.
        match std::fs::read(&path) {
            Ok(_) => {}
            Err(_) if bless => {
                std::fs::create_dir_all(corpus(target)).expect("mkdir");
                std::fs::write(&path, &bytes).expect("write");
            }
            _ => panic!(
                "{} is missing; APPROVD_BLESS=1 cargo test -p approvd-fuzz-targets writes it",
                path.display()
            ),
        }
    }
}

#[test]
fn every_target_has_a_fuzz_binary() {
    let manifest = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/Cargo.toml"),
    )
    .expect("fuzz/Cargo.toml");
    for (target, _) in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "fuzz/Cargo.toml lacks a [[bin]] for {target}"
        );
        let source = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../fuzz/fuzz_targets/{target}.rs"));
        let text = std::fs::read_to_string(&source).expect("fuzz target source");
        assert!(text.contains(&format!("approvd_fuzz_targets::{target}(data)")));
    }
}

#[test]
fn the_request_body_seeds_are_bodies_the_relay_accepts() {
    // So that the fuzzer starts from inputs that reach past the JSON parser into each type's
    // checks; the one deliberately empty object is the exception.
    for (index, (target, bytes)) in seeds().into_iter().enumerate() {
        if target == "relay_body" && bytes.len() > 3 {
            assert!(
                relay_body_parses(&bytes),
                "seed {index}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
}
