//! [`Error`]: why a use case refused or could not finish, in the domain's words. The HTTP layer
//! (`http::problem`) alone turns each variant into a status code and problem type.

use crate::store::{Limit, StoreError};

/// A use case's refusal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value in the request is not acceptable; `field` is its path in the body.
    #[error("{detail}")]
    InvalidField { field: String, detail: String },
    /// A signed protocol message in the body does not verify.
    #[error("{detail}")]
    InvalidSignature { field: String, detail: String },
    /// The resource belongs to another NAS or device, or a message names another signer.
    #[error("{0}")]
    NotOwner(&'static str),
    #[error("the push handle was minted for another NAS or device, or not by this relay")]
    HandleMismatch { field: String },
    #[error("this device is not a target of the challenge")]
    NotTargeted,
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(&'static str),
    #[error("the pairing slot was already claimed")]
    AlreadyClaimed,
    #[error("the pairing was already confirmed")]
    AlreadyConfirmed,
    #[error("the challenge was already decided (the first answer wins)")]
    AlreadyDecided,
    #[error("the pairing slot has expired; start a new pairing")]
    PairingExpired,
    #[error("the challenge has expired")]
    ChallengeExpired,
    #[error("the challenge was cancelled by the NAS")]
    ChallengeCancelled,
    #[error("too many requests ({}); retry after {retry_after_secs} s", limit.description())]
    RateLimited { limit: Limit, retry_after_secs: u64 },
    #[error("the relay is shutting down; retry (another replica will answer)")]
    ShuttingDown,
    /// The store failed; its message is for the log, never for the client.
    #[error("{}", match .0 {
        StoreError::Unavailable(_) => "the relay's store is unavailable; retry shortly",
        StoreError::Data(_) => "internal error",
    })]
    Store(#[from] StoreError),
}

impl Error {
    /// A refused value at `field`.
    pub fn field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::InvalidField {
            field: field.into(),
            detail: detail.into(),
        }
    }
}
