//! The three scenarios; `main` sets each up, runs it and reports.

pub mod fanout;
pub mod hold;
pub mod roundtrip;
