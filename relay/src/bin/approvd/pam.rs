//! `approvd pam`: one PAM authentication (SSH, console, su) approved on the phone, through the
//! NAS agent. Run by `pam_approvd.so` (which relays its lines to the PAM conversation and
//! answers its prompts) or by `pam_exec.so` (messages only, no prompts). Reads `PAM_USER`,
//! `PAM_RHOST`, `PAM_SERVICE`, `PAM_TTY`; the exit status is the verdict.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use approvd_client::transport::unix_now;
use approvd_client::{CodeCheck, NasHome};
use clap::{Args, ValueEnum};

/// Exit statuses, mapped to PAM results by `pam_approvd.so` (pam_exec fails on any non-zero).
mod status {
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
auth required /usr/local/lib/security/pam_approvd.so /usr/local/bin/approvd pam --socket /var/lib/approvd/nas/agent.sock --when-unreachable offline-code"
)]
pub struct PamArgs {
    /// The agent's Unix socket.
    #[arg(long, default_value = "/var/lib/approvd/nas/agent.sock")]
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
    /// The person typed a code at the number prompt instead of using the phone.
    CodeTyped(String),
    Unreachable(String),
    NoPhone,
    Refused(String),
}

struct AgentCall {
    http: reqwest::Client,
}

impl AgentCall {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, serde_json::Value), Failure> {
        let mut request = self.http.request(method, format!("http://agent{path}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| Failure::Unreachable(format!("the approvd agent: {error}")))?;
        let status = response.status().as_u16();
        let json: serde_json::Value = response.json().await.unwrap_or_default();
        if matches!(status, 502..=504) {
            return Err(Failure::Unreachable(
                json["detail"].as_str().unwrap_or("the relay").to_owned(),
            ));
        }
        Ok((status, json))
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

pub async fn run(args: PamArgs) -> ExitCode {
    let talk = Talk {
        conversation: args.conversation,
    };
    let Some(user) = env("PAM_USER") else {
        eprintln!("approvd pam: PAM_USER is not set (run me from pam_approvd.so or pam_exec.so)");
        return ExitCode::from(status::MISUSE);
    };
    // Account names go into the agent's URL paths: a name outside this set has no phone.
    let plain = user.len() <= 64
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if !plain {
        talk.error("approvd: this account has no phone paired for approval.");
        return ExitCode::from(status::NO_PHONE);
    }
    let http = match reqwest::Client::builder()
        .unix_socket(args.socket.clone())
        .timeout(Duration::from_secs(40))
        .connect_timeout(Duration::from_secs(3))
        .build()
    {
        Ok(http) => http,
        Err(error) => {
            eprintln!("approvd pam: {error}");
            return ExitCode::from(status::MISUSE);
        }
    };
    let agent = AgentCall { http };
    let service = service_name(&env("PAM_SERVICE").unwrap_or_default());
    // PAM_RHOST may be a host name; the context carries an address or nothing.
    let client_ip = env("PAM_RHOST").filter(|host| host.parse::<std::net::IpAddr>().is_ok());
    let body = serde_json::json!({
        "user": user,
        "service": service,
        "client_ip": client_ip,
        "user_agent": env("PAM_TTY").map(|tty| format!("terminal {tty}")),
        "lifetime_secs": args.lifetime,
    });
    let verdict = ask_phone(&agent, &talk, body, args.prompt_number).await;
    let code = match verdict {
        Ok(code) => return ExitCode::from(code),
        Err(Failure::CodeTyped(code)) => code,
        Err(Failure::NoPhone) => {
            talk.error(&format!(
                "approvd: {user} has no phone paired for approval."
            ));
            return ExitCode::from(status::NO_PHONE);
        }
        Err(Failure::Refused(reason)) => {
            talk.error(&format!("approvd: {reason}"));
            return ExitCode::from(status::REFUSED);
        }
        Err(Failure::Unreachable(reason)) => {
            eprintln!("approvd pam: unreachable: {reason}");
            if args.when_unreachable == WhenUnreachable::Deny {
                talk.error("approvd: your phone cannot be asked right now; login refused.");
                return ExitCode::from(status::UNREACHABLE);
            }
            match talk.prompt("Your phone cannot be asked. Offline code from the approvd app (or a recovery code): ") {
                Some(code) if !code.is_empty() => code,
                _ => {
                    talk.error("approvd: your phone cannot be asked and no code was given.");
                    return ExitCode::from(status::UNREACHABLE);
                }
            }
        }
    };
    ExitCode::from(check_code(&agent, &talk, &args, &user, &code).await)
}

/// Ask the phones and wait for the agent's verified outcome: an exit status, or why not.
async fn ask_phone(
    agent: &AgentCall,
    talk: &Talk,
    body: serde_json::Value,
    prompt_number: bool,
) -> Result<u8, Failure> {
    let (status, created) = agent
        .call(reqwest::Method::POST, "/v1/requests", Some(body))
        .await?;
    match status {
        201 => {}
        404 => return Err(Failure::NoPhone),
        429 => {
            return Err(Failure::Refused(
                "too many requests were sent to your phone; wait a minute.".to_owned(),
            ))
        }
        _ => {
            return Err(Failure::Refused(format!(
                "the agent refused: {}",
                created["detail"].as_str().unwrap_or("no detail")
            )))
        }
    }
    let id = created["request_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let expires = created["expires"].as_u64().unwrap_or(0);
    let number = created["number"].as_str().unwrap_or("the number shown");
    if prompt_number {
        let typed = talk.prompt(&format!(
            "approvd: approve this login on your phone by choosing {number}, then press Enter (or type the offline code): "
        ));
        if let Some(code) = typed.filter(|typed| !typed.is_empty()) {
            // A code instead of the phone: withdraw the phone's request first.
            let path = format!("/v1/requests/{id}");
            let _ = agent.call(reqwest::Method::DELETE, &path, None).await;
            return Err(Failure::CodeTyped(code));
        }
    } else {
        talk.info(&format!(
            "approvd: approve this login on your phone by choosing {number}."
        ));
    }
    loop {
        let path = format!("/v1/requests/{id}?wait=25");
        let (status, outcome) = agent.call(reqwest::Method::GET, &path, None).await?;
        if status != 200 {
            return Err(Failure::Refused(format!(
                "the agent lost the request: {}",
                outcome["detail"].as_str().unwrap_or("no detail")
            )));
        }
        let message = match outcome["status"].as_str().unwrap_or("invalid") {
            "pending" if unix_now() <= expires + 5 => continue,
            "pending" | "expired" => "the request expired before your phone answered.",
            "approved" => {
                talk.info("approvd: approved.");
                return Ok(status::APPROVED);
            }
            "denied" => "you denied this login on your phone.",
            "wrong_number" => "the number chosen on your phone did not match.",
            "fraud" => "you reported this login as not you; it was refused.",
            "cancelled" => "the request was cancelled.",
            _ => "your phone's answer could not be verified.",
        };
        return Err(Failure::Refused(message.to_owned()));
    }
}

/// One of the NAS home's code checks.
type HomeCheck = fn(&NasHome, &str, &str, u64) -> Result<CodeCheck, approvd_client::ClientError>;

/// Check an offline code (digits) or a recovery code (anything else) with the agent, or in
/// the NAS home when the agent is down.
async fn check_code(agent: &AgentCall, talk: &Talk, args: &PamArgs, user: &str, code: &str) -> u8 {
    let offline = code.bytes().all(|byte| byte.is_ascii_digit());
    let (endpoint, check): (&str, HomeCheck) = if offline {
        ("offline-code", NasHome::check_offline_code)
    } else {
        ("recovery-code", NasHome::use_recovery_code)
    };
    let path = format!("/v1/accounts/{user}/{endpoint}");
    let body = serde_json::json!({ "code": code });
    let checked = match agent.call(reqwest::Method::POST, &path, Some(body)).await {
        Ok((200, answer)) => match answer["result"].as_str() {
            Some("accepted") => Ok(true),
            Some("locked_out") => Err("too many wrong codes; try again later."),
            _ => Ok(false),
        },
        Ok(_) => Ok(false),
        // The agent itself is down: the NAS home holds the code secrets.
        Err(_) => match args.home.as_deref().map(NasHome::open) {
            Some(Ok(home)) => match check(&home, user, code, unix_now()) {
                Ok(CodeCheck::Accepted { .. }) => Ok(true),
                Ok(CodeCheck::Rejected { .. }) => Ok(false),
                Ok(CodeCheck::LockedOut { .. }) => Err("too many wrong codes; try again later."),
                Err(error) => {
                    eprintln!("approvd pam: the NAS home: {error}");
                    Err("the code cannot be checked right now.")
                }
            },
            Some(Err(error)) => {
                eprintln!("approvd pam: the NAS home: {error}");
                Err("the code cannot be checked right now.")
            }
            None => Err(
                "the code cannot be checked right now (the agent is down and no --home was given).",
            ),
        },
    };
    match checked {
        Ok(true) => {
            talk.info("approvd: code accepted.");
            status::APPROVED
        }
        Ok(false) => {
            talk.error("approvd: wrong code.");
            status::REFUSED
        }
        Err(message) => {
            talk.error(&format!("approvd: {message}"));
            status::REFUSED
        }
    }
}
