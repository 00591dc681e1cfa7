//! `approvd-client`: the NAS and phone sides of the approvd protocol over HTTP. `transport`
//! signs every request (PROTOCOL.md §7) and turns problem+json answers into typed errors; `nas`
//! and `phone` run the flows and apply every end-to-end check of PROTOCOL.md §11, so a relay can
//! delay or drop, never approve; `home` keeps their state in private, atomically written files.

pub mod files;
pub mod home;
pub mod nas;
pub mod phone;
pub mod transport;

pub use home::{CodeCheck, DeviceRecord, NasHome, PhoneHome};
pub use nas::{
    ChallengeRecord, ChallengeState, MailboxEvent, Nas, Outcome, PairedDevice, SentChallenge,
    VerifiedClaim, MAX_PENDING_PER_USER, NUMBER_DIGITS, RECORD_RETENTION, VERDICT_GRACE,
};
pub use phone::{
    Phone, PhoneState, PromptMemory, ReceivedChallenge, MAX_PROMPTS, PAIRING_IDLE_LIMIT,
    PROMPT_WINDOW,
};
pub use transport::{ClientError, Prepared, RelayClient};
