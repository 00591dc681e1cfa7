//! `approvd pam`: one PAM authentication (SSH, console, su) approved on the phone, through the
//! agent's API (`client`). Run by `pam_approvd.so` (which relays its lines to the PAM
//! conversation and answers its prompts) or by `pam_exec.so` (messages only, no prompts).
//! Reads `PAM_USER`, `PAM_RHOST`, `PAM_SERVICE`, `PAM_TTY`; the exit status is the verdict.
//! When the agent itself is down, an offline or recovery code is checked in the NAS home
//! through the same `service` the agent runs — as the home's owner, never as root.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use approvd_client::transport::unix_now;
use approvd_proto::Cid;
use clap::{Args, ValueEnum};

use crate::api::{
    AccountName, ApprovalRequest, CodeKind, CodeResult, ProblemType, RequestStatus, MAX_WAIT_SECS,
};
use crate::client::{AgentClient, ClientError, Endpoint};
use crate::service::{Keep, Service};

/// Exit statuses, mapped to PAM results by `pam_approvd.so` (pam_exec fails on any non-zero).
pub mod status {
    /// The phone approved (or a valid offline code was typed): PAM_SUCCESS.
    pub const APPROVED: u8 = 0;
    /// Denied, wrong number, fraud, expired, or a wrong code: PAM_AUTH_ERR.
    pub const REFUSED: u8 = 1;
    /// The agent or the relay cannot be reached and the policy denies: PAM_AUTHINFO_UNAVAIL.
    pub const UNREACHABLE: u8 = 2;
    /// The account has no paired phone: PAM_USER_UNKNOWN (`[user_unknown=ignore]` lets such
    /// accounts through to the next module).
    pub const NO_PHONE: u8 = 3;
    /// Misuse (no PAM_USER, bad options): PAM_SERVICE_ERR.
    pub const MISUSE: u8 = 4;
}

/// What to do when the phone cannot be asked (agent or relay unreachable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WhenUnreachable {
    /// Refuse the login (PAM_AUTHINFO_UNAVAIL).
    Deny,
    /// Ask for the 6-digit offline code the approvd app shows (needs pam_approvd.so for the
    /// prompt; checked by the agent, or in --home when the agent itself is down).
    OfflineCode,
}

/// Ask the phone to approve a PAM login (for pam_approvd.so or pam_exec.so).
#[derive(Debug, Args)]
#[command(
    after_help = "Environment (set by PAM): PAM_USER (required), PAM_RHOST, PAM_SERVICE, PAM_TTY.\n\
Exit status: 0 approved, 1 refused, 2 unreachable, 3 no phone, 4 misuse.\n\n\
Example /etc/pam.d/sshd line (see deploy/pam/):\n  \
auth required /usr/local/lib/security/pam_approvd.so /usr/local/bin/approvd pam --socket /var/lib/approvd/nas/login.sock --when-unreachable offline-code"
)]
pub struct PamArgs {
    /// The agent's login socket (sign-in requests and codes are all PAM needs).
    #[arg(long, default_value = "/var/lib/approvd/nas/login.sock")]
    pub socket: PathBuf,
    /// The NAS home, to check an offline code when the agent itself is down.
    #[arg(long)]
    pub home: Option<PathBuf>,
    /// When the agent or the relay cannot be reached.
    #[arg(long, value_enum, default_value = "deny")]
    pub when_unreachable: WhenUnreachable,
    /// How long the phone has to answer, seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub lifetime: u64,
    /// Show the number as a prompt, answered with Enter once approved (or with the offline
    /// code instead). sshd holds PAM messages back until the next prompt, so without this an
    /// SSH user would not see the number in time. Needs pam_approvd.so.
    #[arg(long)]
    pub prompt_number: bool,
    /// Speak pam_approvd.so's line protocol on stdin/stdout (`info …`, `error …`, `prompt …`
    /// lines; prompt answers on stdin). Without it, messages are plain lines for pam_exec.
    #[arg(long)]
    pub conversation: bool,
}

/// Where messages go: the PAM conversation (through pam_approvd.so), or plain stdout.
struct Talk {
    conversation: bool,
}

impl Talk {
    fn say(&self, kind: &str, text: &str) {
        let text = text.replace(['\n', '\r'], " ");
        let mut stdout = std::io::stdout();
        let _ = if self.conversation {
            writeln!(stdout, "{kind} {text}")
        } else {
            writeln!(stdout, "{text}")
        };
        let _ = stdout.flush();
    }

    fn info(&self, text: &str) {
        self.say("info", text);
    }

    fn error(&self, text: &str) {
        self.say("error", text);
    }

    /// Ask the person (hidden input); `None` without a conversation or when they give up.
    fn prompt(&self, text: &str) -> Option<String> {
        if !self.conversation {
            return None;
        }
        self.say("prompt", text);
        let mut answer = String::new();
        match std::io::stdin().lock().read_line(&mut answer) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(answer.trim().to_owned()),
        }
    }
}

/// Why the agent gave no verdict.
enum Failure {
    /// The person typed a code at the number prompt instead of using the phone, inside
    /// request `request`.
    CodeTyped {
        request: Cid,
        code: String,
    },
    /// The agent or the relay cannot be reached; `request` is the one the agent opened for a
    /// code (when the agent itself answered).
    Unreachable {
        reason: String,
        request: Option<Cid>,
    },
    NoPhone,
    Refused(String),
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        if error.is_unreachable() {
            return Failure::Unreachable {
                reason: error.to_string(),
                request: None,
            };
        }
        match error.kind() {
            Some(ProblemType::NoDevices) => Failure::NoPhone,
            Some(ProblemType::RateLimited) => Failure::Refused(
                "too many requests were sent to your phone; wait a minute.".to_owned(),
            ),
            Some(ProblemType::AccountCoolingDown) => Failure::Refused(
                "a recent login was reported as not you (or approved with wrong numbers); \
                 your phone is not asked for a while."
                    .to_owned(),
            ),
            _ => Failure::Refused(format!("the agent refused: {error}")),
        }
    }
}

/// The service as the phone shows it.
fn service_name(service: &str) -> String {
    match service {
        "sshd" => "SSH".to_owned(),
        "login" => "Console login".to_owned(),
        "" => "Login".to_owned(),
        other => other.to_owned(),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// How long one call to the agent may take: a held poll (25 s) and then some.
const CALL_TIMEOUT: Duration = Duration::from_secs(40);

/// One PAM authentication; the exit status of [`status`].
pub async fn run(args: PamArgs) -> u8 {
    let talk = Talk {
        conversation: args.conversation,
    };
    let Some(user) = env("PAM_USER") else {
        eprintln!("approvd pam: PAM_USER is not set (run me from pam_approvd.so or pam_exec.so)");
        return status::MISUSE;
    };
    // The name as the system knows it: under a case-insensitive name service `ALICE` is
    // alice, who has phones; asking for `ALICE` would answer "no phone" and let a rollout
    // line (`user_unknown=ignore`) skip the phone.
    let user = canonical_name(&user, system_name);
    // The agent's rule for account names: a name outside it has no phone.
    let Ok(account) = AccountName::parse(&user) else {
        talk.error("approvd: this account has no phone paired for approval.");
        return status::NO_PHONE;
    };
    let agent = match AgentClient::with_timeout(Endpoint::Socket(args.socket.clone()), CALL_TIMEOUT)
    {
        Ok(agent) => agent,
        Err(error) => {
            eprintln!("approvd pam: {error}");
            return status::MISUSE;
        }
    };
    let request = ApprovalRequest {
        service: service_name(&env("PAM_SERVICE").unwrap_or_default()),
        // PAM_RHOST may be a host name; the context carries an address or nothing.
        client_ip: env("PAM_RHOST").filter(|host| host.parse::<std::net::IpAddr>().is_ok()),
        user_agent: env("PAM_TTY").map(|tty| format!("terminal {tty}")),
        lifetime_secs: args.lifetime,
        ..ApprovalRequest::sign_in(account.clone())
    };
    let (request, code) = match ask_phone(&agent, &talk, &request, args.prompt_number).await {
        Ok(code) => return code,
        Err(Failure::CodeTyped { request, code }) => (Some(request), code),
        Err(Failure::NoPhone) => {
            talk.error(&format!(
                "approvd: {account} has no phone paired for approval."
            ));
            return status::NO_PHONE;
        }
        Err(Failure::Refused(reason)) => {
            talk.error(&format!("approvd: {reason}"));
            return status::REFUSED;
        }
        Err(Failure::Unreachable { reason, request }) => {
            eprintln!("approvd pam: unreachable: {reason}");
            if args.when_unreachable == WhenUnreachable::Deny {
                if let Some(request) = &request {
                    let _ = agent.cancel_request(request).await;
                }
                talk.error("approvd: your phone cannot be asked right now; login refused.");
                return status::UNREACHABLE;
            }
            match talk.prompt("Your phone cannot be asked. Offline code from the approvd app (or a recovery code): ") {
                Some(code) if !code.is_empty() => (request, code),
                _ => {
                    talk.error("approvd: your phone cannot be asked and no code was given.");
                    return status::UNREACHABLE;
                }
            }
        }
    };
    let checked = check_code(&agent, &talk, &args, &account, request.as_ref(), &code).await;
    if checked != status::APPROVED {
        // The login is over: the phones stop showing its request (an accepted code ended it).
        if let Some(request) = &request {
            let _ = agent.cancel_request(request).await;
        }
    }
    checked
}

/// The account name to ask for: the name service's own name (`pw_name`) for `typed` when
/// `lookup` knows it, else `typed` as it is (a name no user has cannot log in anyway).
fn canonical_name(typed: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    lookup(typed)
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| typed.to_owned())
}

/// `getpwnam(name)`'s `pw_name`, through the system's name services (files, SSSD, winbind…).
fn system_name(name: &str) -> Option<String> {
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(|user| user.name)
}

/// Ask the phones and wait for the agent's verified outcome: an exit status, or why not.
async fn ask_phone(
    agent: &AgentClient,
    talk: &Talk,
    request: &ApprovalRequest,
    prompt_number: bool,
) -> Result<u8, Failure> {
    let created = agent.create_request(request).await?;
    if let Some(reason) = created.relay_error {
        return Err(Failure::Unreachable {
            reason: format!("the relay: {reason}"),
            request: Some(created.request_id),
        });
    }
    let number = created.number.as_deref().unwrap_or("the number shown");
    if prompt_number {
        let typed = talk.prompt(&format!(
            "approvd: approve this login on your phone by typing {number} there, then press Enter (or type the offline code): "
        ));
        if let Some(code) = typed.filter(|typed| !typed.is_empty()) {
            // A code instead of the phone, checked inside this request (which it then ends).
            return Err(Failure::CodeTyped {
                request: created.request_id,
                code,
            });
        }
    } else {
        talk.info(&format!(
            "approvd: approve this login on your phone by typing {number} there."
        ));
    }
    loop {
        let outcome = match agent
            .request_status(&created.request_id, MAX_WAIT_SECS)
            .await
        {
            Ok(outcome) => outcome,
            Err(error) if error.is_unreachable() => {
                return Err(Failure::Unreachable {
                    reason: error.to_string(),
                    request: Some(created.request_id),
                })
            }
            Err(error) => {
                return Err(Failure::Refused(format!(
                    "the agent lost the request: {error}"
                )))
            }
        };
        let message = match outcome {
            RequestStatus::Pending if unix_now() <= created.expires + 5 => continue,
            RequestStatus::Pending | RequestStatus::Expired => {
                "the request expired before your phone answered."
            }
            RequestStatus::Approved(_) => {
                talk.info("approvd: approved.");
                return Ok(status::APPROVED);
            }
            RequestStatus::Denied(_) => "you denied this login on your phone.",
            RequestStatus::WrongNumber(_) => "the number chosen on your phone did not match.",
            RequestStatus::Fraud(_) => "you reported this login as not you; it was refused.",
            RequestStatus::Cancelled => "the request was cancelled.",
            RequestStatus::Invalid { .. } => "your phone's answer could not be verified.",
        };
        return Err(Failure::Refused(message.to_owned()));
    }
}

/// Check an offline code (digits) or a recovery code (anything else) with the agent inside
/// `request`, or in the NAS home when the agent is down (or never answered).
async fn check_code(
    agent: &AgentClient,
    talk: &Talk,
    args: &PamArgs,
    account: &AccountName,
    request: Option<&Cid>,
    code: &str,
) -> u8 {
    let asked = match request {
        Some(request) => agent.check_code(request, code).await,
        None => Err(ClientError::Unreachable("no request was opened".to_owned())),
    };
    let checked = match asked {
        Ok(result) => Ok(result),
        // The agent itself is down: the NAS home holds the code secrets.
        Err(error) if error.is_unreachable() => match &args.home {
            Some(home) => match become_owner_of(home) {
                Ok(()) => match Service::open(home, Keep::InMemory) {
                    Ok(service) => service.check_code(account, CodeKind::of(code), code).await,
                    Err(error) => Err(error),
                }
                .map_err(|error| {
                    eprintln!("approvd pam: the NAS home: {error}");
                    "the code cannot be checked right now."
                }),
                Err(error) => {
                    eprintln!("approvd pam: {error}");
                    Err("the code cannot be checked right now.")
                }
            },
            None => Err(
                "the code cannot be checked right now (the agent is down and no --home was given).",
            ),
        },
        Err(error) => {
            eprintln!("approvd pam: the agent refused the code check: {error}");
            Ok(CodeResult::Rejected { failures: 0 })
        }
    };
    match checked {
        Ok(CodeResult::Accepted { .. }) => {
            talk.info("approvd: code accepted.");
            status::APPROVED
        }
        Ok(CodeResult::Rejected { .. }) => {
            talk.error("approvd: wrong code.");
            status::REFUSED
        }
        Ok(CodeResult::LockedOut { .. }) => {
            talk.error("approvd: too many wrong codes; try again later.");
            status::REFUSED
        }
        Err(message) => {
            talk.error(&format!("approvd: {message}"));
            status::REFUSED
        }
    }
}

/// Become the NAS home's owner before the fallback touches it. PAM runs this helper as root,
/// and root must never write the NAS state: the files would change owner (the agent could no
/// longer read them), and links the NAS's account planted in its home would be followed. For
/// the rest of this process (it ends after the check); a no-op when already the owner.
fn become_owner_of(home: &Path) -> Result<(), String> {
    use nix::unistd::{geteuid, setgid, setgroups, setuid, Gid, Uid};
    use std::os::unix::fs::MetadataExt as _;
    let meta =
        std::fs::symlink_metadata(home).map_err(|error| format!("{}: {error}", home.display()))?;
    let (uid, gid) = (Uid::from_raw(meta.uid()), Gid::from_raw(meta.gid()));
    if geteuid() == uid || !geteuid().is_root() {
        // Not root: nothing to drop (a home of another user is refused when opened).
        return Ok(());
    }
    let dropped = setgroups(&[])
        .and_then(|()| setgid(gid))
        .and_then(|()| setuid(uid));
    dropped.map_err(|error| {
        format!(
            "cannot become uid {uid} (the owner of {}) to check the code there: {error}",
            home.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_service_decides_which_account_a_typed_name_is() {
        // A case-insensitive name service (SSSD, winbind) answers `ALICE` with alice.
        let insensitive = |name: &str| Some(name.to_lowercase());
        assert_eq!(canonical_name("ALICE", insensitive), "alice");
        // A name no user has stays as typed (and finds no phone).
        assert_eq!(canonical_name("nosuchuser", |_: &str| None), "nosuchuser");
        // The real lookup: root is root.
        assert_eq!(canonical_name("root", system_name), "root");
        assert_eq!(system_name("no-such-user-approvd-test"), None);
    }
}
