//! libFuzzer entry for `approvd_fuzz_targets::sdk_answer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| approvd_fuzz_targets::sdk_answer(data));
