//! libFuzzer entry for `approvd_fuzz_targets::pairing_uri`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| approvd_fuzz_targets::pairing_uri(data));
