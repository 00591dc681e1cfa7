//! `approvd-agent`: the NAS side as a product — the daemon that owns a NAS home, keeps its
//! mailbox applied and serves the local approval API. `api` is the contract (every request and
//! answer), `access` who may call what (the login and admin capabilities), `service` the use
//! cases without HTTP, `cooling` the per-account cool-downs after refused sign-ins, `http` the
//! thin handlers and the one error mapping, `client` the one Rust client of the API, `pam` the
//! PAM helper built on it, and `run` (here) the daemon's lifecycle. See ARCHITECTURE.md, "The
//! NAS side".

pub mod access;
pub mod api;
pub mod client;
pub mod cooling;
mod daemon;
pub mod http;
pub mod pam;
pub mod service;

pub use daemon::{hold_instance_lock, run, shutdown_signal, AgentArgs, RunError};
