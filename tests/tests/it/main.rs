//! The integration tests as one test binary (linking the relay and the SDK once instead of once
//! per file): real `approvd` processes over real HTTP, real `redis-server`s, a local FCM mock.
//! Each module is one area; shared harness code lives in `approvd_tests` (`tests/src/`).

mod accounts;
mod agent;
mod auth_and_input;
mod cli;
mod flow;
mod forwarding;
mod fuzz_http;
mod hardening;
mod lifecycle;
mod loadtest;
mod malicious_relay;
mod nas_side;
mod operations;
mod pam;
mod protocol_revision;
mod push;
mod push_fcm;
mod redis_production;
mod replicas;
mod sdk;
mod security;
mod signin_web;
mod store_conformance;
mod tidy;
mod webpush;
