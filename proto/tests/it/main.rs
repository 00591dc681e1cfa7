//! `approvd-proto`'s integration tests as one test binary (one link instead of eight): the
//! modules below each test one part of the protocol through the public API only.

mod context_seal;
mod fuzz_parsers;
mod http_signatures;
mod pairing;
mod rfc8032;
mod schema_patterns;
mod signed_messages;
mod vectors;
mod wire_bodies;
