//! `approvd-relay`: the relay server — configuration, push handles, the store, push senders, the
//! use cases (`service`), HTTP routes with request authentication, metrics. A library only: the
//! `approvd` binary is `cli/`, and nothing here knows the SDK. See ARCHITECTURE.md for where
//! each part lives and why.

pub mod clock;
pub mod config;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod push;
pub mod push_handle;
pub mod server;
pub mod service;
pub mod store;
