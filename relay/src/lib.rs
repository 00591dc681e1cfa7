//! `approvd-relay`: the relay server. The server itself (config, routes, auth, store, push,
//! metrics) is built on `approvd-proto`; see ARCHITECTURE.md for where each part lives.
