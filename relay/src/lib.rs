//! `approvd-relay`: the relay server — configuration, push handles, the store, push senders, the
//! use cases (`service`), HTTP routes with request authentication, metrics — and the library
//! behind the `approvd` binary (whose client subcommands live with the binary, in
//! `src/bin/approvd/`). See ARCHITECTURE.md for where each part lives and why.

pub mod clock;
pub mod config;
pub mod handle;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod push;
pub mod server;
pub mod service;
pub mod store;
