//! The request bodies of the agent's local approval API (`approvd agent`, README "The agent's
//! local API"): what a login system sends, how an approval request becomes the login context
//! the phones see, and the bounds applied to lifetimes. Kept here, outside the agent binary, so
//! the fuzzers and other agents decode them exactly as the agent does.

use std::time::Duration;

use approvd_proto::context::{LoginContext, LoginKind};

/// `POST /v1/requests`: ask an account's phones to approve a sign-in or an action.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    pub user: String,
    #[serde(default = "default_service")]
    pub service: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub location: Option<String>,
    #[serde(default)]
    pub kind: Option<LoginKind>,
    pub action: Option<String>,
    /// Number matching for an `action` (always on for sign-ins).
    #[serde(default)]
    pub number_matching: bool,
    #[serde(default = "default_lifetime")]
    pub lifetime_secs: u64,
    /// Only these of the account's phones (device ids).
    #[serde(default)]
    pub devices: Vec<String>,
}

fn default_service() -> String {
    "login".to_owned()
}

fn default_lifetime() -> u64 {
    60
}

impl ApprovalRequest {
    /// The context sealed to the phones: `kind` defaults to an action when one is named, else
    /// a sign-in.
    pub fn login_context(&self, nas_label: &str, now: u64) -> LoginContext {
        let kind = self.kind.unwrap_or(if self.action.is_some() {
            LoginKind::Action
        } else {
            LoginKind::Login
        });
        LoginContext {
            user: self.user.clone(),
            service: self.service.clone(),
            nas_label: nas_label.to_owned(),
            client_ip: self.client_ip.clone(),
            user_agent: self.user_agent.clone(),
            location: self.location.clone(),
            kind,
            action: self.action.clone(),
            time: now,
        }
    }

    /// Whether to ask for number matching: when requested, and always for sign-ins.
    pub fn number_matching(&self, context: &LoginContext) -> bool {
        self.number_matching || context.requires_number_matching()
    }

    /// The challenge's lifetime, 1 to 120 seconds.
    pub fn lifetime(&self) -> Duration {
        Duration::from_secs(self.lifetime_secs.clamp(1, 120))
    }
}

/// `POST /v1/accounts/{user}/offline-code` and `…/recovery-code`: a code the user typed.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    pub code: String,
}

/// `POST /v1/pairings`: start pairing a phone with an account.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairingRequest {
    pub user: String,
    #[serde(default = "default_pairing_ttl")]
    pub ttl_secs: u64,
}

fn default_pairing_ttl() -> u64 {
    300
}

impl PairingRequest {
    /// How long the QR code is valid, 1 to 600 seconds.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs.clamp(1, 600))
    }
}
