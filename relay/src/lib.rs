//! `approvd-relay`: the relay server — configuration, push handles, the store, push senders,
//! HTTP routes with request authentication, metrics — and the library behind the `approvd`
//! binary. See ARCHITECTURE.md for where each part lives and why.

pub mod cli;
pub mod clock;
pub mod config;
pub mod handle;
pub mod http;
pub mod metrics;
pub mod push;
pub mod server;
pub mod store;
